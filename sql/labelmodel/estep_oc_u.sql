-- Grouped one-coin E-step per pair: u = lb + sum of d over the pair's teachers (eu = exp(u), eb = eu - b);
-- b = the base of its label; rs = 1: an unvoted label k of an example has posterior b_k / z (estep_oc_z.sql).
-- (Grouped by pair alone: a second key would size DuckDB's perfect hash table by both ranges.)
CREATE OR REPLACE TEMP TABLE kd_lm_u AS
WITH s AS (
    SELECT mt.pair, MAX(mt.label_id) AS label_id, MAX(b.lb) + SUM(d.d) AS u, MAX(b.b) AS b
    FROM kd_lm_mt AS mt
    JOIN kd_lm_delta AS d ON d.teacher_id = mt.teacher_id AND d.voted = mt.label_id
    JOIN kd_lm_base AS b ON b.label_id = mt.label_id
    GROUP BY mt.pair
)
SELECT pair, label_id, u, EXP(u) AS eu, EXP(u) - b AS eb, b, CAST(1.0 AS DOUBLE) AS rs FROM s
