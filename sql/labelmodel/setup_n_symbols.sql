-- Number of symbols per teacher (the Dirichlet smoothing adds one pseudo-count per symbol).
CREATE OR REPLACE TEMP TABLE kd_lm_nsym AS
SELECT teacher_id, COUNT(*) AS n_symbols FROM kd_lm_symbols GROUP BY teacher_id
