-- What the watchers said about each sample, the vectors they computed, and the review queue.
CREATE TABLE IF NOT EXISTS {db}.scores {on_cluster}
(
    sample_id UUID,
    ts DateTime64(6, 'UTC'),
    service LowCardinality(String),
    watcher LowCardinality(String),
    version LowCardinality(String),
    field LowCardinality(String),
    label LowCardinality(String),
    score Float32,
    flagged Bool,
    threshold Nullable(Float32),
    latency_ms Float32,
    error String,
    scored_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = {engine_scores}
PARTITION BY toDate(ts)
ORDER BY (service, watcher, label, toStartOfHour(ts), sample_id, field)
{ttl}
SETTINGS {table_settings};

CREATE TABLE IF NOT EXISTS {db}.embeddings {on_cluster}
(
    sample_id UUID,
    ts DateTime64(6, 'UTC'),
    service LowCardinality(String),
    model LowCardinality(String),
    field LowCardinality(String),
    vector Array(Float32) CODEC(ZSTD(1)),
    created_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = {engine_embeddings}
PARTITION BY toDate(ts)
ORDER BY (service, model, field, toStartOfHour(ts), sample_id)
{ttl}
SETTINGS {table_settings};

-- The review queue: one row per flag, updated in place (ReplacingMergeTree on updated_at) as
-- reviewers accept, reject or correct it. flag_id is a function of what was flagged, so a
-- re-scored sample does not queue twice.
CREATE TABLE IF NOT EXISTS {db}.flags {on_cluster}
(
    flag_id UUID,
    sample_id Nullable(UUID),
    ts DateTime64(6, 'UTC'),
    service LowCardinality(String),
    source LowCardinality(String),
    reason String,
    label LowCardinality(String),
    score Float32,
    status LowCardinality(String) DEFAULT 'open',
    reviewer String DEFAULT '',
    review_label String DEFAULT '',
    correction String DEFAULT '',
    created_at DateTime64(3, 'UTC') DEFAULT now64(3),
    updated_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = {engine_flags}
PARTITION BY toYYYYMM(ts)
ORDER BY flag_id
{ttl}
SETTINGS {table_settings};
