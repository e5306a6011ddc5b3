-- Grouped one-coin path: the distinct pairs (mask, label) and how many examples have each (n).
CREATE OR REPLACE TEMP TABLE kd_lm_km AS
WITH c AS (SELECT pair, COUNT(*) AS n FROM kd_lm_g GROUP BY pair)
SELECT c.pair, c.pair // $k AS mask, r.label_id, c.n
FROM c
JOIN (SELECT DISTINCT label_id, label_rank FROM kd_lm_tl) AS r ON r.label_rank = c.pair % $k
