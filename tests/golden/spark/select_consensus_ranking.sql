CREATE OR REPLACE VIEW kd.select_consensus_ranking AS
WITH cfg AS (
  SELECT
    MAX(value) FILTER(WHERE
      name = 'min_support') AS min_support,
    MAX(value) FILTER(WHERE
      name = 'expert_margin') AS margin
  FROM kd.settings
), d AS (
  SELECT
    teacher_id,
    example_id,
    label_id,
    positive,
    COUNT(*) OVER (PARTITION BY example_id, label_id) AS n,
    SUM(CASE WHEN positive THEN 1 ELSE 0 END) OVER (PARTITION BY example_id, label_id) AS n_pos
  FROM kd.select_decisions
  WHERE
    split IN ('train', 'valid')
), agg AS (
  SELECT
    teacher_id,
    label_id,
    COUNT(*) AS n_eval,
    CAST(SUM(
      CAST((
        n_pos - CAST(1.0 AS DOUBLE)
      ) / (
        n - CAST(1.0 AS DOUBLE)
      ) AS DECIMAL(38, 18))
    ) AS DOUBLE) AS agree
  FROM d
  WHERE
    positive AND n > 1
  GROUP BY
    teacher_id,
    label_id
), q AS (
  SELECT
    a.teacher_id,
    a.label_id,
    a.n_eval,
    a.agree / a.n_eval AS agreement,
    (
      a.agree + CAST(1.0 AS DOUBLE)
    ) / (
      a.n_eval + CAST(2.0 AS DOUBLE)
    ) AS metric
  FROM agg AS a
  CROSS JOIN cfg
  WHERE
    a.n_eval >= cfg.min_support
), r AS (
  SELECT
    q.*,
    ROW_NUMBER() OVER (PARTITION BY label_id ORDER BY metric DESC, teacher_id NULLS LAST) AS rank,
    MAX(metric) OVER (PARTITION BY label_id) AS best_metric
  FROM q
)
SELECT
  r.teacher_id,
  r.label_id,
  r.n_eval,
  r.agreement,
  r.metric,
  r.rank,
  r.best_metric,
  r.rank = 1 AS is_best,
  r.metric >= r.best_metric - cfg.margin AS is_expert
FROM r
CROSS JOIN cfg;
