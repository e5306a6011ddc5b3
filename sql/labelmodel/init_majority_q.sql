-- Majority-vote start: each example's posterior is its share of (weighted) label votes; -2 votes
-- count for no label. Only labels that got votes have rows (the others are 0).
CREATE OR REPLACE TEMP TABLE kd_lm_q AS
WITH v AS (
    SELECT example_id, voted AS label_id, SUM(w) AS c
    FROM kd_lm_obs
    WHERE voted >= 0
    GROUP BY example_id, voted
),
t AS (SELECT example_id, SUM(c) AS tot FROM v GROUP BY example_id)
SELECT v.example_id, v.label_id, v.c / t.tot AS q
FROM v JOIN t ON t.example_id = v.example_id
WHERE t.tot > 0
