-- Grouped one-coin path: the distinct (mask, label) pairs, numbered 0.. (pair), with how many
-- examples have each (n).
CREATE OR REPLACE TEMP TABLE kd_lm_km AS
SELECT CAST(ROW_NUMBER() OVER (ORDER BY mask, label_id) - 1 AS INTEGER) AS pair, mask, label_id, n
FROM (SELECT mask, label_id, COUNT(*) AS n FROM kd_lm_g0 GROUP BY mask, label_id) AS c
