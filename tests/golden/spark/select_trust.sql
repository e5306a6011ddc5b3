CREATE OR REPLACE VIEW kd.select_trust AS
WITH cfg AS (
  SELECT
    MAX(value) FILTER(WHERE
      name = 'trust_threshold') AS thr,
    MAX(value) FILTER(WHERE
      name = 'trust_weighting') AS mode
  FROM kd.settings
), k AS (
  SELECT
    t.teacher_id,
    CASE
      WHEN t.output_type IN ('multiclass', 'vote')
      THEN GREATEST(COUNT(tl.label_id), 2)
      ELSE 2
    END AS k
  FROM kd.teachers AS t
  LEFT JOIN kd.teacher_labels AS tl
    ON tl.teacher_id = t.teacher_id
  GROUP BY
    t.teacher_id,
    t.output_type
), t AS (
  SELECT
    o.teacher_id,
    o.example_id,
    o.split,
    o.label_id,
    o.score,
    o.p_correct,
    CASE
      WHEN cfg.mode = 0
      THEN o.p_correct
      ELSE LN(
        LEAST(o.p_correct, CAST(1.0 AS DOUBLE) - 1e-6) * (
          CASE WHEN cfg.mode = 2 THEN k.k - 1 ELSE 1 END
        ) / (
          CAST(1.0 AS DOUBLE) - LEAST(o.p_correct, CAST(1.0 AS DOUBLE) - 1e-6)
        )
      )
    END AS w
  FROM kd.trusted_outputs AS o
  JOIN k
    ON k.teacher_id = o.teacher_id
  CROSS JOIN cfg
  WHERE
    o.split <> 'valid' AND o.p_correct >= cfg.thr
), r AS (
  SELECT
    t.*,
    ROW_NUMBER() OVER (PARTITION BY example_id, label_id ORDER BY w DESC, teacher_id NULLS LAST) AS rn
  FROM t
  WHERE
    w > 0
)
SELECT
  example_id,
  MIN(split) AS split,
  label_id,
  SUM(w * score) / SUM(w) AS value,
  SUM(w * score) AS evidence,
  AVG(p_correct) AS weight,
  MAX(CASE WHEN rn = 1 THEN teacher_id END) AS teacher_id,
  'trust' AS rule
FROM r
GROUP BY
  example_id,
  label_id;
