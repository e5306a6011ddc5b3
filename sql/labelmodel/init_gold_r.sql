-- Gold start: no posterior mass outside the gold rows.
CREATE OR REPLACE TEMP TABLE kd_lm_r AS
SELECT x.example_id, 0.0 AS r FROM kd_lm_x AS x
