-- Reviewers' verdicts on flags, one row per verdict. They live here rather than on the flag
-- row: the watch service re-inserts a flag when it re-scores a sample (same flag_id, newer
-- updated_at), which would wipe a verdict kept in `flags`. The latest verdict per flag wins:
-- ReplacingMergeTree on ts keeps only it once parts merge, and readers take argMax(…, ts) so
-- they agree before merges too.
CREATE TABLE IF NOT EXISTS {db}.reviews {on_cluster}
(
    flag_id UUID,
    sample_id Nullable(UUID),
    verdict LowCardinality(String),
    label LowCardinality(String),
    reviewer String,
    note String,
    ts DateTime64(6, 'UTC')
)
ENGINE = {engine_reviews}
PARTITION BY toYYYYMM(ts)
ORDER BY flag_id
{ttl}
SETTINGS {table_settings};

-- Which text a watcher flagged (prompt, completion, pair): what a review labels, and what
-- retraining from reviews learns from.
ALTER TABLE {db}.flags {on_cluster}
    ADD COLUMN IF NOT EXISTS field LowCardinality(String) DEFAULT '' AFTER label;
