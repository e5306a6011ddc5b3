-- E-step: s(e, k) = sum over the example's observations of w * d, for the classes some output touches.
CREATE OR REPLACE TEMP TABLE kd_lm_s AS
SELECT o.example_id, d.label_id, SUM(o.w * d.d) AS s
FROM kd_lm_obs AS o
JOIN kd_lm_delta AS d ON d.teacher_id = o.teacher_id AND d.voted = o.voted AND d.d > 0
GROUP BY o.example_id, d.label_id
