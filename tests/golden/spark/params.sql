CREATE OR REPLACE VIEW kd.params AS
SELECT
  MAX(CASE WHEN name = 'threshold' THEN value END) AS threshold,
  MAX(CASE WHEN name = 'confidence' THEN value END) AS confidence,
  MAX(CASE WHEN name = 'min_support' THEN value END) AS min_support,
  MAX(CASE WHEN name = 'min_recall' THEN value END) AS min_recall,
  MAX(CASE WHEN name = 'expert_margin' THEN value END) AS expert_margin,
  MAX(CASE WHEN name = 'expert_metric' THEN value END) AS expert_metric,
  MAX(CASE WHEN name = 'z_threshold' THEN value END) AS z_threshold
FROM kd.settings;
