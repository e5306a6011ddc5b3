-- E-step posteriors of the touched classes: q = exp(lb + s - m) / z.
CREATE OR REPLACE TEMP TABLE kd_lm_q AS
SELECT s.example_id, s.label_id, EXP(b.lb + s.s - z.m) / z.z AS q
FROM kd_lm_s AS s
JOIN kd_lm_base AS b ON b.label_id = s.label_id
JOIN kd_lm_z AS z ON z.example_id = s.example_id
