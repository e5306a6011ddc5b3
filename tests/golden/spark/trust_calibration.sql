CREATE OR REPLACE VIEW kd.trust_calibration AS
WITH lab AS (
  SELECT
    tr.teacher_id,
    tr.model_id,
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
), ranked AS (
  SELECT
    *,
    RANK() OVER (PARTITION BY teacher_id ORDER BY p_correct NULLS LAST) + (
      COUNT(*) OVER (PARTITION BY teacher_id, p_correct) - 1
    ) / CAST(2.0 AS DOUBLE) AS avg_rank
  FROM lab
), agg AS (
  SELECT
    teacher_id,
    MAX(model_id) AS model_id,
    COUNT(*) AS n,
    CAST(SUM(correct) AS BIGINT) AS n_correct,
    AVG((
      p_correct - correct
    ) * (
      p_correct - correct
    )) AS brier,
    SUM(avg_rank) FILTER(WHERE
      correct = 1) AS rank_sum
  FROM ranked
  GROUP BY
    teacher_id
)
SELECT
  teacher_id,
  model_id,
  n,
  n_correct,
  brier,
  (
    rank_sum - n_correct * (
      n_correct + 1
    ) / CAST(2.0 AS DOUBLE)
  ) / NULLIF(n_correct * (
    n - n_correct
  ), 0) AS auc
FROM agg;
