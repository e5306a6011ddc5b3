-- M-step, class-conditional (full confusion row per teacher x true class) with Dirichlet smoothing:
-- theta(t, k, v) = (n(t, k, v) + alpha) / (sum_v' n(t, k, v') + alpha * |symbols of t|).
CREATE OR REPLACE TEMP TABLE kd_lm_theta AS
SELECT n.teacher_id,
       n.label_id,
       n.voted,
       (n.n + $alpha) / (SUM(n.n) OVER (PARTITION BY n.teacher_id, n.label_id) + $alpha * s.n_symbols) AS p
FROM kd_lm_n AS n
JOIN kd_lm_nsym AS s ON s.teacher_id = n.teacher_id
