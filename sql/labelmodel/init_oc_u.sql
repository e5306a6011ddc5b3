-- Grouped one-coin majority-vote start: a pair's weight is its number of voters, so an example's
-- posterior is its share of the votes (init_majority_q.sql); b = the uniform base; rs = 0: no
-- mass outside the voted labels (examples without votes keep the base). eu = exp(u); eb = eu
-- (no base mass: init_oc_z.sql sums it as estep_oc_z.sql does).
CREATE OR REPLACE TEMP TABLE kd_lm_u AS
SELECT mt.pair, MAX(mt.label_id) AS label_id, LN(COUNT(*)) AS u, CAST(COUNT(*) AS DOUBLE) AS eu,
       CAST(COUNT(*) AS DOUBLE) AS eb, MAX(b.b) AS b,
       CAST(0.0 AS DOUBLE) AS rs
FROM kd_lm_mt AS mt
JOIN kd_lm_base AS b ON b.label_id = mt.label_id
GROUP BY mt.pair
