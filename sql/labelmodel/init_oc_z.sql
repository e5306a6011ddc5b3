-- Grouped one-coin majority-vote start: z = the example's number of votes (examples with a vote only).
CREATE OR REPLACE TEMP TABLE kd_lm_z AS
SELECT g.example_id, SUM(u.eb) AS z
FROM kd_lm_g AS g
JOIN kd_lm_u AS u ON u.pair = g.pair
GROUP BY g.example_id
