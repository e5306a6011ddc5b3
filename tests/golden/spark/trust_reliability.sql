CREATE OR REPLACE VIEW kd.trust_reliability AS
WITH cfg AS (
  SELECT
    MAX(value) FILTER(WHERE
      name = 'calibration_bins') AS bins
  FROM kd.settings
), lab AS (
  SELECT
    tr.teacher_id,
    tr.p_correct,
    CAST(d.positive = (
      NOT g.example_id IS NULL
    ) AS INT) AS correct
  FROM kd.trust AS tr
  JOIN kd.select_decisions AS d
    ON d.teacher_id = tr.teacher_id
    AND d.example_id = tr.example_id
    AND d.label_id = tr.label_id
  LEFT JOIN kd.gold AS g
    ON g.example_id = tr.example_id AND g.label_id = tr.label_id
  WHERE
    d.split = 'valid'
)
SELECT
  teacher_id,
  CAST(LEAST(FLOOR(p_correct * cfg.bins), cfg.bins - 1) AS INT) AS bin,
  COUNT(*) AS n,
  AVG(p_correct) AS mean_p,
  AVG(correct) AS frac_correct
FROM lab
CROSS JOIN cfg
GROUP BY ALL;
