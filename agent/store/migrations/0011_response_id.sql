-- The provider's id of a call's response (gen_ai.response.id, which both ingest paths keep in
-- the attributes), as a column with a bloom filter: an evaluation event that names only the
-- response id, not the span (gen_ai.evaluation.result allows that), is joined to its sample by
-- it (agent/ingest/writer.py).
ALTER TABLE {db}.samples {on_cluster}
    ADD COLUMN IF NOT EXISTS response_id String MATERIALIZED attributes['gen_ai.response.id']
        AFTER output_tokens_per_s,
    ADD INDEX IF NOT EXISTS response_id_index response_id TYPE bloom_filter GRANULARITY 4;
