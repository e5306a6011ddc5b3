-- Total observation weight per teacher x symbol (constant over the iterations; enters the log-likelihood).
CREATE OR REPLACE TEMP TABLE kd_lm_wsum AS
SELECT teacher_id, voted, SUM(w) AS w FROM kd_lm_obs GROUP BY teacher_id, voted
