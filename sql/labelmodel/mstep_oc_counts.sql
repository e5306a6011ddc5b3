-- Grouped one-coin M-step counts (as mstep_one_coin_counts.sql for teachers with all labels):
-- correct = sum over the teacher's votes of the posterior of the voted label, total = its votes.
CREATE OR REPLACE TEMP TABLE kd_lm_acc AS
WITH c AS (
    SELECT mt.teacher_id, SUM(u.eu * st.sz) AS correct, SUM(mt.n) AS total
    FROM kd_lm_mt AS mt
    JOIN kd_lm_st AS st ON st.pair = mt.pair
    JOIN kd_lm_u AS u ON u.pair = mt.pair
    GROUP BY mt.teacher_id
)
SELECT t.teacher_id, COALESCE(c.correct, 0.0) AS correct, CAST(COALESCE(c.total, 0) AS DOUBLE) AS total
FROM kd_lm_teachers AS t
LEFT JOIN c ON c.teacher_id = t.teacher_id
