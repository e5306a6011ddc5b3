-- The dense posteriors of the fit examples: the touched rows, b_k * r_e for the others.
INSERT INTO kd.label_model_fit_posteriors
SELECT $run_id, x.example_id, b.label_id, COALESCE(q.q, b.b * r.r) AS posterior
FROM kd_lm_x AS x
JOIN kd_lm_r AS r ON r.example_id = x.example_id
CROSS JOIN kd_lm_base AS b
LEFT JOIN kd_lm_q AS q ON q.example_id = x.example_id AND q.label_id = b.label_id
