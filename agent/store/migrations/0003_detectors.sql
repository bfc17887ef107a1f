-- One row per detector run (per job, scope and window): what was compared, the statistic,
-- its p-value against the threshold, the effect size, and whether it alerted.
CREATE TABLE IF NOT EXISTS {db}.detector_runs {on_cluster}
(
    run_id UUID,
    job LowCardinality(String),
    detector LowCardinality(String),
    scope String,
    window_start DateTime64(3, 'UTC'),
    window_end DateTime64(3, 'UTC'),
    reference_start DateTime64(3, 'UTC'),
    reference_end DateTime64(3, 'UTC'),
    statistic Nullable(Float64),
    p_value Nullable(Float64),
    threshold Float64,
    effect_size Nullable(Float64),
    alert Bool,
    n_reference UInt32,
    n_current UInt32,
    details String CODEC(ZSTD(3)),
    ran_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = {engine_detector_runs}
PARTITION BY toYYYYMM(window_end)
ORDER BY (job, scope, window_end, run_id)
TTL toDateTime(window_end) + INTERVAL {retention_days} DAY
SETTINGS {table_settings};
