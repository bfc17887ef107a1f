-- The answer the model should have given, written by the reviewer who confirmed a flag: with
-- the flagged answer, a preference pair for fine-tuning (`watchkeeper export --format dpo`).
ALTER TABLE {db}.reviews {on_cluster}
    ADD COLUMN IF NOT EXISTS correction String DEFAULT '' AFTER note;
