-- Grouped one-coin path: the teachers of each pair (each voted the pair's label).
CREATE OR REPLACE TEMP TABLE kd_lm_mt AS
SELECT km.pair, km.label_id, b.teacher_id, km.n
FROM kd_lm_km AS km
JOIN (SELECT DISTINCT teacher_id, bit_value FROM kd_lm_tl) AS b ON (km.mask & b.bit_value) <> 0
