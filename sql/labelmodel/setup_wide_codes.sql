-- Wide class-conditional path: a teacher's raw vote digit c (kd_lm_wv keys: 0 abstain, 1 none of its
-- labels, output index + 2) -> its vote code v (the label's column number k, -2 none). A digit
-- without a row (abstain, or an output index with no label) decodes as -1 (abstain), as the general
-- path drops an output it cannot align (setup_obs_hard.sql).
CREATE OR REPLACE TEMP TABLE kd_lm_wcode AS
SELECT w.t, tl.output_index + 2 AS c, r.k AS v
FROM kd.teacher_labels AS tl
JOIN kd_lm_wteach AS w ON w.teacher_id = tl.teacher_id
JOIN kd_lm_wrank AS r ON r.label_id = tl.label_id
UNION ALL
SELECT w.t, 1 AS c, -2 AS v FROM kd_lm_wteach AS w WHERE w.has_none
