-- Grouped one-coin path, the working table of the iterations, derived once per fit: one row per
-- fit example x voted label, pair = mask * K + the label's rank, where mask = the bits of the
-- teachers that voted that label. Hard votes as setup_obs_hard.sql (the top-scoring label, ties:
-- the lowest output index; a vote teacher's one-hot row is read by the position of its 1.0; NULLIF:
-- Spark says 0 for "not found"); every teacher of this path has all the labels and no "none"
-- symbol. A row with no score has no top index and drops out of the label join (abstain).
CREATE OR REPLACE TEMP TABLE kd_lm_g AS
WITH top AS (
    SELECT s.teacher_id,
           s.example_id,
           CASE WHEN t.output_type = 'vote'
                THEN COALESCE(NULLIF(array_position(s.scores, CAST(1.0 AS FLOAT)), 0), array_position(s.scores, list_max(s.scores)))
                ELSE array_position(s.scores, list_max(s.scores)) END - 1 AS output_index
    FROM kd.scores AS s
    JOIN kd_lm_teachers AS t ON t.teacher_id = s.teacher_id
    JOIN kd_lm_x AS x ON x.example_id = s.example_id
)
SELECT top.example_id, CAST(SUM(tl.bit_value) AS BIGINT) * $k + tl.label_rank AS pair
FROM top
JOIN kd_lm_tl AS tl ON tl.teacher_id = top.teacher_id AND tl.output_index = top.output_index
GROUP BY top.example_id, tl.label_rank
