CREATE OR REPLACE VIEW kd.select_best_per_label AS
SELECT
  example_id,
  split,
  label_id,
  CAST(score AS DOUBLE) AS value,
  metric * score AS evidence,
  CAST(1.0 AS DOUBLE) AS weight,
  teacher_id,
  'best_per_label' AS rule
FROM kd.select_candidates
WHERE
  is_best;
