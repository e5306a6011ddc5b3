-- Observations, hard: one row per teacher x fit example the teacher covers. voted = the label of the
-- highest score (ties: lowest output index); a binary/multilabel teacher whose top score is below its
-- threshold outputs -2 (none of its labels). A NULL top score (no opinion on any label) = abstain.
CREATE OR REPLACE TEMP TABLE kd_lm_obs AS
WITH top AS (
    SELECT s.teacher_id,
           s.example_id,
           array_position(s.scores, list_max(s.scores)) - 1 AS output_index,
           list_max(s.scores) AS score
    FROM kd.scores AS s
    JOIN kd_lm_teachers AS t ON t.teacher_id = s.teacher_id
    JOIN kd_lm_x AS x ON x.example_id = s.example_id
)
SELECT top.example_id,
       top.teacher_id,
       CASE WHEN t.has_none AND top.score < t.threshold THEN -2 ELSE tl.label_id END AS voted,
       1.0 AS w
FROM top
JOIN kd_lm_teachers AS t ON t.teacher_id = top.teacher_id
JOIN kd.teacher_labels AS tl ON tl.teacher_id = top.teacher_id AND tl.output_index = top.output_index
WHERE top.score IS NOT NULL
