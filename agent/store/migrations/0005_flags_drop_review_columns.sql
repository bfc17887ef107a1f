-- The review columns of `flags` have been dead since verdicts moved to `reviews` (0004): the
-- watch service re-inserts a flag whenever it re-scores its sample, so nothing kept there
-- survived, and they only ever read 'open'. The status of a flag is its latest verdict in
-- `reviews`, or open without one.
ALTER TABLE {db}.flags {on_cluster}
    DROP COLUMN IF EXISTS status,
    DROP COLUMN IF EXISTS reviewer,
    DROP COLUMN IF EXISTS review_label,
    DROP COLUMN IF EXISTS correction;
