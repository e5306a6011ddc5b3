-- Majority-vote start: examples without any label vote are uniform (base = uniform, r = 1).
CREATE OR REPLACE TEMP TABLE kd_lm_r AS
SELECT x.example_id, CASE WHEN v.example_id IS NULL THEN 1.0 ELSE 0.0 END AS r
FROM kd_lm_x AS x
LEFT JOIN (SELECT DISTINCT example_id FROM kd_lm_q) AS v ON v.example_id = x.example_id
