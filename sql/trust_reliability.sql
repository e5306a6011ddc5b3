-- trust_reliability: reliability-curve data of the current trust scores on the VALID split
-- (out-of-fold there, so honest).
-- grain: one row per teacher x non-empty bin; bin = least(floor(p_correct * B), B - 1), B = the
--   setting 'calibration_bins'.
-- empty: empty bins have no row.
-- rule: correct = the decision the trust row is about agrees with kd.gold (closed world); columns
--   n, mean_p, frac_correct.
-- oracle: tests/oracles_select.py::reliability
CREATE OR REPLACE VIEW kd.trust_reliability AS
WITH cfg AS (SELECT max(value) FILTER (WHERE name = 'calibration_bins') AS bins FROM kd.settings),
lab AS (
    SELECT tr.teacher_id, tr.p_correct,
           CAST(d.positive = (g.example_id IS NOT NULL) AS INTEGER) AS correct
    FROM kd.trust AS tr
    JOIN kd.select_decisions AS d
      ON d.teacher_id = tr.teacher_id AND d.example_id = tr.example_id AND d.label_id = tr.label_id
    LEFT JOIN kd.gold AS g ON g.example_id = tr.example_id AND g.label_id = tr.label_id
    WHERE d.split = 'valid'
)
SELECT teacher_id,
       CAST(least(floor(p_correct * cfg.bins), cfg.bins - 1) AS INTEGER) AS bin,
       count(*) AS n,
       avg(p_correct) AS mean_p,
       avg(correct) AS frac_correct
FROM lab CROSS JOIN cfg
GROUP BY ALL;
