CREATE OR REPLACE VIEW kd.label_experts AS
WITH m AS (
  SELECT
    lm.label_id,
    lm.label,
    lm.teacher_id,
    lm.teacher,
    CASE CAST(p.expert_metric AS INT)
      WHEN 0
      THEN 'precision_lb'
      WHEN 1
      THEN 'recall_lb'
      WHEN 2
      THEN 'f1'
      WHEN 3
      THEN 'precision'
      WHEN 4
      THEN 'recall'
      WHEN 5
      THEN 'accuracy'
    END AS metric_name,
    CASE CAST(p.expert_metric AS INT)
      WHEN 0
      THEN lm.precision_lb
      WHEN 1
      THEN lm.recall_lb
      WHEN 2
      THEN lm.f1
      WHEN 3
      THEN lm.precision
      WHEN 4
      THEN lm.recall
      WHEN 5
      THEN lm.accuracy
    END AS metric,
    lm.support,
    lm.recall,
    p.min_support,
    p.min_recall,
    p.expert_margin
  FROM kd.label_metrics AS lm
  CROSS JOIN kd.params AS p
), q AS (
  SELECT
    m.*,
    COALESCE(
      m.support >= m.min_support AND m.recall >= m.min_recall AND NOT m.metric IS NULL,
      FALSE
    ) AS qualifies
  FROM m
), r AS (
  SELECT
    q.*,
    ROW_NUMBER() OVER (
      PARTITION BY q.label_id
      ORDER BY q.qualifies DESC, q.metric DESC, q.teacher_id NULLS LAST
    ) AS position,
    MAX(CASE WHEN q.qualifies THEN q.metric END) OVER (PARTITION BY q.label_id) AS best_metric
  FROM q
)
SELECT
  r.label_id,
  r.label,
  r.teacher_id,
  r.teacher,
  r.metric_name,
  r.metric,
  r.support,
  r.recall,
  r.qualifies,
  CASE WHEN r.qualifies THEN r.position END AS rank,
  r.qualifies AND r.position = 1 AS is_best,
  r.qualifies AND r.metric >= r.best_metric - r.expert_margin AS within_margin,
  r.best_metric
FROM r;
