-- Grouped one-coin M-step: per pair, sz = sum of 1 / z over the examples with that pair, so the
-- posterior mass of the pair's label there is exp(u) * sz (the only pass over the examples).
CREATE OR REPLACE TEMP TABLE kd_lm_st AS
SELECT g.pair, SUM(1.0 / z.z) AS sz
FROM kd_lm_g AS g
JOIN kd_lm_z AS z ON z.example_id = g.example_id
GROUP BY g.pair
