-- Grouped one-coin path, derived once per fit: one row per fit example x voted label with the mask
-- of the teachers that voted it. Hard votes as setup_obs_hard.sql (the top-scoring label, ties: the
-- lowest output index; a vote teacher's one-hot row is read by the position of its 1.0; NULLIF:
-- Spark says 0 for "not found"); every teacher of this path has all the labels and no "none"
-- symbol. A row with no score has no top index and drops out of the label join (abstain).
CREATE OR REPLACE TEMP TABLE kd_lm_g0 AS
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
SELECT top.example_id, tl.label_id, CAST(SUM(b.bit_value) AS BIGINT) AS mask
FROM top
JOIN kd.teacher_labels AS tl ON tl.teacher_id = top.teacher_id AND tl.output_index = top.output_index
JOIN kd_lm_bits AS b ON b.teacher_id = top.teacher_id
GROUP BY top.example_id, tl.label_id
