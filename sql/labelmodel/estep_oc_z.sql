-- Grouped one-coin E-step normaliser per example with a vote: z = sum over its voted labels of
-- exp(u) + (1 - their base mass) for the others = 1 + sum of eb (eb = exp(u) - b; estep_oc_u.sql),
-- without a per-example shift (|u| < 700 is checked before this path is chosen). Posteriors:
-- exp(u) / z for a voted label, b_k / z for the others.
CREATE OR REPLACE TEMP TABLE kd_lm_z AS
SELECT g.example_id, 1.0 + SUM(u.eb) AS z
FROM kd_lm_g AS g
JOIN kd_lm_u AS u ON u.pair = g.pair
GROUP BY g.example_id
