-- E-step base: log prior, plus (abstain = 'observe') the log-probability that every teacher abstains.
-- b = softmax(base) is the posterior of an example no teacher covers; lb = log b; lse = logsumexp.
CREATE OR REPLACE TEMP TABLE kd_lm_base AS
WITH base AS (
    SELECT p.label_id, LN(p.prior) + COALESCE(a.s, 0.0) AS base
    FROM kd_lm_prior AS p
    LEFT JOIN (
        SELECT label_id, SUM(LN(p)) AS s FROM kd_lm_theta WHERE voted = -1 AND $abstain_evidence GROUP BY label_id
    ) AS a ON a.label_id = p.label_id
),
mx AS (SELECT MAX(base) AS mx FROM base),
lse AS (
    SELECT MAX(mx.mx) + LN(SUM(EXP(base.base - mx.mx))) AS lse FROM base CROSS JOIN mx
)
SELECT base.label_id, EXP(base.base - lse.lse) AS b, base.base - lse.lse AS lb, lse.lse
FROM base CROSS JOIN lse
