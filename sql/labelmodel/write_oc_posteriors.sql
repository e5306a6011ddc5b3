-- Grouped one-coin path: the dense posteriors of the fit examples, exp(u) / z for a voted label,
-- b_k / z for the others, b_k without a vote.
INSERT INTO kd.label_model_fit_posteriors
SELECT $run_id, x.example_id, b.label_id,
       COALESCE(u.eu / z.z, b.b * COALESCE((SELECT MAX(rs) FROM kd_lm_u) / z.z, 1.0)) AS posterior
FROM kd_lm_x AS x
CROSS JOIN kd_lm_base AS b
LEFT JOIN kd_lm_z AS z ON z.example_id = x.example_id
LEFT JOIN (
    SELECT g.example_id, u.label_id, u.eu FROM kd_lm_g AS g JOIN kd_lm_u AS u ON u.pair = g.pair
) AS u ON u.example_id = x.example_id AND u.label_id = b.label_id
