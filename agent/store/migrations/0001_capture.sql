-- Capture tables: one row per LLM call (samples), the other spans of the same traces, and
-- end-user feedback. ReplacingMergeTree folds replayed rows that share the sorting key.
CREATE TABLE IF NOT EXISTS {db}.samples {on_cluster}
(
    sample_id UUID,
    trace_id String,
    span_id String,
    parent_span_id String,
    ts DateTime64(6, 'UTC'),
    duration_ms Float64,
    status LowCardinality(String),
    error_type LowCardinality(String),
    service LowCardinality(String),
    environment LowCardinality(String),
    k8s_namespace LowCardinality(String),
    k8s_pod String,
    provider LowCardinality(String),
    operation LowCardinality(String),
    request_model LowCardinality(String),
    response_model LowCardinality(String),
    input_messages String CODEC(ZSTD(3)),
    output_messages String CODEC(ZSTD(3)),
    system_instructions String CODEC(ZSTD(3)),
    prompt_text String CODEC(ZSTD(3)),
    completion_text String CODEC(ZSTD(3)),
    input_tokens Nullable(UInt32),
    output_tokens Nullable(UInt32),
    finish_reasons Array(LowCardinality(String)),
    conversation_id String,
    user_id String,
    attributes Map(String, String) CODEC(ZSTD(3)),
    redactions UInt32,
    source LowCardinality(String),
    scope LowCardinality(String),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3),
    -- ingest looks replayed samples up by id; feedback and reviews join on it too
    INDEX sample_id_idx sample_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = {engine_samples}
PARTITION BY toDate(ts)
ORDER BY (service, toStartOfHour(ts), sample_id)
{ttl}
SETTINGS {table_settings};

CREATE TABLE IF NOT EXISTS {db}.spans {on_cluster}
(
    trace_id String,
    span_id String,
    parent_span_id String,
    ts DateTime64(6, 'UTC'),
    duration_ms Float64,
    name LowCardinality(String),
    kind LowCardinality(String),
    status LowCardinality(String),
    service LowCardinality(String),
    environment LowCardinality(String),
    scope LowCardinality(String),
    attributes Map(String, String) CODEC(ZSTD(3)),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = {engine_spans}
PARTITION BY toDate(ts)
ORDER BY (service, toStartOfHour(ts), trace_id, span_id)
{ttl}
SETTINGS {table_settings};

CREATE TABLE IF NOT EXISTS {db}.user_feedback {on_cluster}
(
    trace_id String,
    span_id String,
    ts DateTime64(6, 'UTC'),
    score Nullable(Float64),
    thumbs LowCardinality(String),
    comment String,
    user_id String,
    service LowCardinality(String),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = {engine_user_feedback}
PARTITION BY toDate(ts)
ORDER BY (trace_id, span_id, ts)
{ttl}
SETTINGS {table_settings};
