CREATE OR REPLACE VIEW kd.select_experts AS
WITH c AS (
  SELECT
    example_id,
    split,
    label_id,
    teacher_id,
    metric,
    score,
    ROW_NUMBER() OVER (PARTITION BY example_id, label_id ORDER BY metric DESC, teacher_id NULLS LAST) AS rn
  FROM kd.select_candidates
  WHERE
    is_expert
)
SELECT
  example_id,
  MIN(split) AS split,
  label_id,
  SUM(metric * score) / SUM(metric) AS value,
  SUM(metric * score) AS evidence,
  CAST(1.0 AS DOUBLE) AS weight,
  MAX(CASE WHEN rn = 1 THEN teacher_id END) AS teacher_id,
  'experts' AS rule
FROM c
GROUP BY
  example_id,
  label_id;
