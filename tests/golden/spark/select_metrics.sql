CREATE OR REPLACE VIEW kd.select_metrics AS
WITH cfg AS (
  SELECT
    MAX(value) FILTER(WHERE
      name = 'confidence') AS confidence,
    MAX(value) FILTER(WHERE
      name = 'select_metric') AS metric_code,
    MAX(value) FILTER(WHERE
      name = 'min_support') AS min_support,
    MAX(value) FILTER(WHERE
      name = 'min_recall') AS min_recall
  FROM kd.settings
), tail AS (
  SELECT
    *,
    SQRT(
      -CAST(2.0 AS DOUBLE) * LN(GREATEST((
        CAST(1.0 AS DOUBLE) - confidence
      ) / CAST(2.0 AS DOUBLE), 1e-300))
    ) AS t
  FROM cfg
), zq AS (
  SELECT
    *,
    t - (
      CAST(2.515517 AS DOUBLE) + CAST(0.802853 AS DOUBLE) * t + CAST(0.010328 AS DOUBLE) * t * t
    ) / (
      CAST(1.0 AS DOUBLE) + CAST(1.432788 AS DOUBLE) * t + CAST(0.189269 AS DOUBLE) * t * t + CAST(0.001308 AS DOUBLE) * t * t * t
    ) AS z
  FROM tail
), keyed AS (
  SELECT
    example_id,
    CAST(NULL AS STRING) AS slice_key
  FROM kd.examples
  WHERE
    split = 'valid'
  UNION ALL
  SELECT
    example_id,
    slice
  FROM kd.examples
  WHERE
    split = 'valid' AND NOT slice IS NULL
), keys AS (
  SELECT DISTINCT
    slice_key
  FROM keyed
), vgold AS (
  SELECT DISTINCT
    g.example_id,
    g.label_id
  FROM kd.gold AS g
  JOIN kd.examples AS e
    ON e.example_id = g.example_id AND e.split = 'valid'
), support AS (
  SELECT
    g.label_id,
    k.slice_key,
    COUNT(*) AS support
  FROM vgold AS g
  JOIN keyed AS k
    ON k.example_id = g.example_id
  GROUP BY
    g.label_id,
    k.slice_key
), counts AS (
  SELECT
    d.teacher_id,
    d.label_id,
    k.slice_key,
    COUNT(*) AS n_out,
    COUNT(*) FILTER(WHERE
      d.positive AND NOT g.example_id IS NULL) AS tp,
    COUNT(*) FILTER(WHERE
      d.positive AND g.example_id IS NULL) AS fp
  FROM kd.select_decisions AS d
  JOIN keyed AS k
    ON k.example_id = d.example_id
  LEFT JOIN vgold AS g
    ON g.example_id = d.example_id AND g.label_id = d.label_id
  WHERE
    d.split = 'valid'
  GROUP BY
    d.teacher_id,
    d.label_id,
    k.slice_key
), base AS (
  SELECT
    tl.teacher_id,
    tl.label_id,
    k.slice_key,
    COALESCE(c.n_out, 0) AS n_out,
    COALESCE(c.tp, 0) AS tp,
    COALESCE(c.fp, 0) AS fp,
    COALESCE(s.support, 0) AS support
  FROM (
    SELECT DISTINCT
      teacher_id,
      label_id
    FROM kd.teacher_labels
  ) AS tl
  JOIN kd.teachers AS t
    ON t.teacher_id = tl.teacher_id
    AND t.output_type IN ('binary', 'multiclass', 'multilabel', 'vote')
  CROSS JOIN keys AS k
  LEFT JOIN counts AS c
    ON c.teacher_id = tl.teacher_id
    AND c.label_id = tl.label_id
    AND c.slice_key IS NOT DISTINCT FROM k.slice_key
  LEFT JOIN support AS s
    ON s.label_id = tl.label_id AND s.slice_key IS NOT DISTINCT FROM k.slice_key
), m AS (
  SELECT
    b.*,
    b.support - b.tp AS fn,
    b.tp / NULLIF(b.tp + b.fp, 0) AS precision,
    b.tp / NULLIF(b.support, 0) AS recall,
    CAST(2.0 AS DOUBLE) * b.tp / NULLIF(2 * b.tp + b.fp + (
      b.support - b.tp
    ), 0) AS f1,
    CASE
      WHEN b.tp + b.fp > 0
      THEN (
        b.tp / (
          b.tp + b.fp
        ) + zq.z * zq.z / (
          CAST(2.0 AS DOUBLE) * (
            b.tp + b.fp
          )
        ) - zq.z * SQRT(
          (
            b.tp / (
              b.tp + b.fp
            )
          ) * (
            CAST(1.0 AS DOUBLE) - b.tp / (
              b.tp + b.fp
            )
          ) / (
            b.tp + b.fp
          ) + zq.z * zq.z / (
            CAST(4.0 AS DOUBLE) * (
              b.tp + b.fp
            ) * (
              b.tp + b.fp
            )
          )
        )
      ) / (
        CAST(1.0 AS DOUBLE) + zq.z * zq.z / (
          b.tp + b.fp
        )
      )
    END AS precision_lb,
    zq.metric_code,
    zq.min_support,
    zq.min_recall
  FROM base AS b
  CROSS JOIN zq
)
SELECT
  teacher_id,
  label_id,
  slice_key,
  n_out,
  tp,
  fp,
  fn,
  support,
  precision,
  recall,
  f1,
  precision_lb,
  CASE CAST(metric_code AS INT)
    WHEN 0
    THEN precision_lb
    WHEN 1
    THEN f1
    WHEN 2
    THEN precision
    WHEN 3
    THEN recall
  END AS metric,
  COALESCE(support >= min_support AND tp > 0 AND recall >= min_recall, FALSE) AS qualified
FROM m;
