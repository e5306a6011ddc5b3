-- consensus_example: the crowd's opinion of each example across all teachers and labels.
-- grain: one row per train or valid example with at least one output of a consensus teacher
--   (binary, multilabel, multiclass, vote); the test split is never read.
-- empty: an example no teacher scored has no row; stddev is NULL when n = 1 and exactly 0 when
--   all the scores are equal.
-- columns: n = outputs on the example (all teachers, all labels); mean and stddev (sample) of
--   their scores. The patent's crowd average: with binary specialists the mean is low for an
--   example of a label few teachers know, and the specialist for it stands out.
-- oracle: tests/oracles.py::consensus_example
CREATE OR REPLACE VIEW kd.consensus_example AS
SELECT DISTINCT
    c.example_id,
    c.n_example AS n,
    c.mean_example AS mean,
    c.stddev_example AS stddev
FROM kd.consensus_pages AS c;
