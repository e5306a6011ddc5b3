-- consensus_z: every output's z-score against the consensus of the teachers covering it.
-- grain: one row per output (teacher x example x label with a score) of the consensus teachers
--   (binary, multilabel, multiclass, vote) on train and valid examples (never test).
-- empty: z is NULL when the consensus stddev is NULL (a single teacher) or 0 (all agree);
--   likewise z_example.
-- rule: z = (score - mean) / stddev against kd.consensus of that example x label; z_example =
--   (score - mean) / stddev against kd.consensus_example (all outputs on the example). The output
--   itself is part of the consensus (not leave-one-out): this is the patent's comparison with the
--   population, and it needs no per-output re-aggregation. Hence |z| <= (n - 1) / sqrt(n): a
--   z_threshold of 2 needs n >= 6 scores in the group (n >= 4 for 1.5).
-- oracle: tests/oracles.py::consensus_z
CREATE OR REPLACE VIEW kd.consensus_z AS
WITH tp AS (
    SELECT DISTINCT teacher_id, page FROM kd.teacher_slots
),
r AS (
    -- each teacher row once per page it has labels on, beside that page's statistics
    SELECT
        s.teacher_id,
        s.example_id,
        s.scores,
        c.page,
        c.mean1, c.stddev1,
        c.mean2, c.stddev2,
        c.mean3, c.stddev3,
        c.mean4, c.stddev4,
        c.mean5, c.stddev5,
        c.mean6, c.stddev6,
        c.mean7, c.stddev7,
        c.mean8, c.stddev8,
        c.mean_example,
        c.stddev_example
    FROM kd.scores AS s
    JOIN tp ON tp.teacher_id = s.teacher_id
    JOIN kd.consensus_pages AS c ON c.example_id = s.example_id AND c.page = tp.page
),
o AS (
    SELECT
        r.teacher_id,
        r.example_id,
        ts.label_id,
        CAST(r.scores[ts.output_index + 1] AS DOUBLE) AS score,
        CASE ts.slot WHEN 0 THEN r.mean1 WHEN 1 THEN r.mean2 WHEN 2 THEN r.mean3 WHEN 3 THEN r.mean4 WHEN 4 THEN r.mean5 WHEN 5 THEN r.mean6 WHEN 6 THEN r.mean7 WHEN 7 THEN r.mean8 END AS mean,
        CASE ts.slot WHEN 0 THEN r.stddev1 WHEN 1 THEN r.stddev2 WHEN 2 THEN r.stddev3 WHEN 3 THEN r.stddev4 WHEN 4 THEN r.stddev5 WHEN 5 THEN r.stddev6 WHEN 6 THEN r.stddev7 WHEN 7 THEN r.stddev8 END AS stddev,
        r.mean_example,
        r.stddev_example
    FROM r
    JOIN kd.teacher_slots AS ts ON ts.teacher_id = r.teacher_id AND ts.page = r.page
)
SELECT
    o.teacher_id,
    o.example_id,
    o.label_id,
    o.score,
    (o.score - o.mean) / NULLIF(o.stddev, 0.0) AS z,
    (o.score - o.mean_example) / NULLIF(o.stddev_example, 0.0) AS z_example
FROM o
WHERE o.score IS NOT NULL;
