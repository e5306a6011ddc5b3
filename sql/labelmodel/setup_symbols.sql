-- What each teacher can output: its labels, -2 (none of its labels) for binary/multilabel teachers,
-- and -1 (abstain) when abstains are an outcome of the model ($abstain_rows).
CREATE OR REPLACE TEMP TABLE kd_lm_symbols AS
SELECT tl.teacher_id, tl.label_id AS voted
FROM kd.teacher_labels AS tl
JOIN kd_lm_teachers AS t ON t.teacher_id = tl.teacher_id
UNION ALL
SELECT t.teacher_id, -2 AS voted FROM kd_lm_teachers AS t WHERE t.has_none
UNION ALL
SELECT t.teacher_id, -1 AS voted FROM kd_lm_teachers AS t WHERE $abstain_rows
