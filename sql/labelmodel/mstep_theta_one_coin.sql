-- M-step, one-coin: one accuracy a(t) per teacher, a = (correct + alpha) / (total + alpha * |symbols|)
-- (mstep_one_coin_counts.sql). theta = a on the correct symbol of each true label,
-- (1 - a) / (|symbols| - 1) on each other symbol, uniform 1 / |symbols| for a true label the teacher
-- has no correct output for.
CREATE OR REPLACE TEMP TABLE kd_lm_theta AS
WITH a AS (
    SELECT acc.teacher_id, (acc.correct + $alpha) / (acc.total + $alpha * s.n_symbols) AS a, s.n_symbols
    FROM kd_lm_acc AS acc
    JOIN kd_lm_nsym AS s ON s.teacher_id = acc.teacher_id
)
SELECT sy.teacher_id,
       c.label_id,
       sy.voted,
       CASE WHEN cr.voted IS NULL THEN 1.0 / a.n_symbols
            WHEN cr.voted = sy.voted THEN a.a
            ELSE (1.0 - a.a) / NULLIF(a.n_symbols - 1, 0) END AS p
FROM kd_lm_symbols AS sy
CROSS JOIN kd_lm_classes AS c
JOIN a ON a.teacher_id = sy.teacher_id
LEFT JOIN kd_lm_correct AS cr ON cr.teacher_id = sy.teacher_id AND cr.label_id = c.label_id
WHERE sy.voted <> -1
