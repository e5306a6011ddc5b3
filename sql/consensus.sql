-- consensus: the crowd's opinion of each example x label.
-- grain: one row per example x label covered by at least one output of a consensus teacher
--   (binary, multilabel, multiclass, vote), over train and valid examples (never test).
-- empty: an example x label no teacher scored has no row; stddev is NULL when n = 1 and exactly
--   0 when all the scores are equal.
-- columns: n = teachers scoring this example x label; mean and stddev (sample, n - 1) of their
--   scores.
-- oracle: tests/oracles.py::consensus
CREATE OR REPLACE VIEW kd.consensus AS
WITH ls AS (
    SELECT DISTINCT label_id, page, slot FROM kd.teacher_slots
),
o AS (
    SELECT
        r.example_id,
        ts.label_id,
        CASE ts.slot WHEN 0 THEN r.n1 WHEN 1 THEN r.n2 WHEN 2 THEN r.n3 WHEN 3 THEN r.n4 WHEN 4 THEN r.n5 WHEN 5 THEN r.n6 WHEN 6 THEN r.n7 WHEN 7 THEN r.n8 END AS n,
        CASE ts.slot WHEN 0 THEN r.mean1 WHEN 1 THEN r.mean2 WHEN 2 THEN r.mean3 WHEN 3 THEN r.mean4 WHEN 4 THEN r.mean5 WHEN 5 THEN r.mean6 WHEN 6 THEN r.mean7 WHEN 7 THEN r.mean8 END AS mean,
        CASE ts.slot WHEN 0 THEN r.stddev1 WHEN 1 THEN r.stddev2 WHEN 2 THEN r.stddev3 WHEN 3 THEN r.stddev4 WHEN 4 THEN r.stddev5 WHEN 5 THEN r.stddev6 WHEN 6 THEN r.stddev7 WHEN 7 THEN r.stddev8 END AS stddev
    FROM kd.consensus_pages AS r
    JOIN ls AS ts ON ts.page = r.page
)
SELECT o.example_id, o.label_id, o.n, o.mean, o.stddev
FROM o
WHERE o.n > 0;
