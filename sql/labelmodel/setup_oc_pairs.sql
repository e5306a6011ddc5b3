-- Grouped one-coin path: the working table of the iterations, one row per fit example x voted
-- label holding its pair number (a dense small key: the per-iteration joins are array lookups).
CREATE OR REPLACE TEMP TABLE kd_lm_g AS
SELECT g.example_id, km.pair
FROM kd_lm_g0 AS g
JOIN kd_lm_km AS km ON km.mask = g.mask AND km.label_id = g.label_id
