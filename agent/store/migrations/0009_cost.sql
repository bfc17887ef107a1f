-- What calls cost. `prices` records the price table in force (agent/cost/prices.json merged
-- with config `cost.prices`); `samples.price_model` is the table's key a sample matched ('' when
-- none) and `samples.cost_usd` what the call cost, NULL without a price or tokens, never a
-- guessed 0. Both are computed by the engine when a row is inserted, by every writer alike.
-- Their expressions carry the prices themselves and are set by agent/cost/prices.py at every
-- start (ALTER ... MODIFY COLUMN, metadata only, which reaches every replica); until then
-- nothing is priced. `watchkeeper reprice` recomputes stored rows after a price changes.
CREATE TABLE IF NOT EXISTS {db}.prices {on_cluster}
(
    model String,
    provider LowCardinality(String),
    input Float64,
    cached_input Float64,
    cached_listed Bool,
    output Float64,
    checked Nullable(Date),
    origin LowCardinality(String),
    updated_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = {engine_prices}
ORDER BY model
SETTINGS {table_settings};

ALTER TABLE {db}.samples {on_cluster}
    ADD COLUMN IF NOT EXISTS price_model LowCardinality(String) MATERIALIZED ''
        AFTER output_tokens,
    ADD COLUMN IF NOT EXISTS cost_usd Nullable(Float64)
        MATERIALIZED CAST(NULL, 'Nullable(Float64)') AFTER price_model;
