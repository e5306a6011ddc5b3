-- Grouped one-coin path: number of votes per teacher x voted label (enters the log-likelihood).
CREATE OR REPLACE TEMP TABLE kd_lm_wsum AS
SELECT teacher_id, label_id AS voted, CAST(SUM(n) AS DOUBLE) AS w FROM kd_lm_mt GROUP BY teacher_id, label_id
