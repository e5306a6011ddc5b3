CREATE OR REPLACE VIEW kd.select_ranking AS
WITH cfg AS (
  SELECT
    MAX(value) FILTER(WHERE
      name = 'expert_margin') AS margin,
    MAX(value) FILTER(WHERE
      name = 'slice_experts') AS slice_experts
  FROM kd.settings
), q AS (
  SELECT
    m.teacher_id,
    m.label_id,
    m.slice_key,
    m.metric
  FROM kd.select_metrics AS m
  CROSS JOIN cfg
  WHERE
    m.qualified
    AND NOT m.metric IS NULL
    AND (
      m.slice_key IS NULL OR cfg.slice_experts = 1
    )
), r AS (
  SELECT
    q.*,
    ROW_NUMBER() OVER (PARTITION BY label_id, slice_key ORDER BY metric DESC, teacher_id NULLS LAST) AS rank,
    MAX(metric) OVER (PARTITION BY label_id, slice_key) AS best_metric
  FROM q
)
SELECT
  r.teacher_id,
  r.label_id,
  r.slice_key,
  r.metric,
  r.rank,
  r.best_metric,
  r.rank = 1 AS is_best,
  r.metric >= r.best_metric - cfg.margin AS is_expert
FROM r
CROSS JOIN cfg;
