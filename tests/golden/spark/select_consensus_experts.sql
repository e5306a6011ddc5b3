CREATE OR REPLACE VIEW kd.select_consensus_experts AS
WITH c AS (
  SELECT
    d.example_id,
    d.split,
    d.label_id,
    d.teacher_id,
    d.score,
    r.metric,
    ROW_NUMBER() OVER (
      PARTITION BY d.example_id, d.label_id
      ORDER BY r.metric DESC, d.teacher_id NULLS LAST
    ) AS rn
  FROM kd.select_decisions AS d
  JOIN kd.select_consensus_ranking AS r
    ON r.teacher_id = d.teacher_id AND r.label_id = d.label_id
  WHERE
    d.split <> 'valid' AND r.is_expert
)
SELECT
  example_id,
  MIN(split) AS split,
  label_id,
  CAST(SUM(CAST(metric * score AS DECIMAL(38, 18))) AS DOUBLE) / CAST(SUM(CAST(metric AS DECIMAL(38, 18))) AS DOUBLE) AS value,
  CAST(SUM(CAST(metric * score AS DECIMAL(38, 18))) AS DOUBLE) AS evidence,
  CAST(1.0 AS DOUBLE) AS weight,
  MAX(CASE WHEN rn = 1 THEN teacher_id END) AS teacher_id,
  'consensus_experts' AS rule
FROM c
GROUP BY
  example_id,
  label_id;
