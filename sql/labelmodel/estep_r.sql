-- E-step: the untouched classes of example e have posterior b_k * r_e (r = 1: the example is untouched).
CREATE OR REPLACE TEMP TABLE kd_lm_r AS
SELECT x.example_id, COALESCE(EXP(-z.m) / z.z, 1.0) AS r
FROM kd_lm_x AS x
LEFT JOIN kd_lm_z AS z ON z.example_id = x.example_id
