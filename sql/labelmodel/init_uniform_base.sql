-- The uniform distribution over the classes as the base of the posteriors.
CREATE OR REPLACE TEMP TABLE kd_lm_base AS
SELECT c.label_id,
       1.0 / k.k AS b,
       -LN(k.k) AS lb,
       0.0 AS lse
FROM kd_lm_classes AS c
CROSS JOIN (SELECT COUNT(*) AS k FROM kd_lm_classes) AS k
