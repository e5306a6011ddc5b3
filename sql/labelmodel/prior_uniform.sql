-- Fixed uniform class prior.
CREATE OR REPLACE TEMP TABLE kd_lm_prior AS
SELECT c.label_id, 1.0 / k.k AS prior
FROM kd_lm_classes AS c
CROSS JOIN (SELECT COUNT(*) AS k FROM kd_lm_classes) AS k
