-- Where a score came from: Watchkeeper's own watchers ('watcher'), or an evaluation event that
-- an application or another evaluator sent ('event': gen_ai.evaluation.result, docs/evaluations.md),
-- with the evaluator's type and its explanation.
ALTER TABLE {db}.scores {on_cluster}
    ADD COLUMN IF NOT EXISTS source LowCardinality(String) DEFAULT 'watcher' AFTER error,
    ADD COLUMN IF NOT EXISTS evaluator_type LowCardinality(String) DEFAULT '' AFTER source,
    ADD COLUMN IF NOT EXISTS explanation String DEFAULT '' AFTER evaluator_type;
