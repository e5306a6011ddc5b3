CREATE OR REPLACE VIEW kd.label_metrics AS
WITH v AS (
  SELECT
    example_id
  FROM kd.examples
  WHERE
    split = 'valid'
), nv AS (
  SELECT
    COUNT(*) AS n_valid
  FROM v
), gl AS (
  SELECT
    g.example_id,
    COLLECT_LIST(g.label_id) AS labels
  FROM kd.gold AS g
  JOIN v
    ON v.example_id = g.example_id
  GROUP BY
    g.example_id
), th AS (
  SELECT
    t.teacher_id,
    t.output_type IN ('multiclass', 'vote') AS by_argmax,
    COALESCE(t.threshold, p.threshold) AS threshold
  FROM kd.teachers AS t
  CROSS JOIN kd.params AS p
  WHERE
    t.output_type IN ('binary', 'multilabel', 'multiclass', 'vote')
), vr AS (
  SELECT
    s.teacher_id,
    s.scores,
    th.by_argmax,
    th.threshold,
    CASE WHEN th.by_argmax THEN ARRAY_POSITION(s.scores, ARRAY_MAX(s.scores)) END AS winner,
    gl.labels
  FROM kd.scores AS s
  JOIN th
    ON th.teacher_id = s.teacher_id
  JOIN v
    ON v.example_id = s.example_id
  LEFT JOIN gl
    ON gl.example_id = s.example_id
), d AS (
  SELECT
    vr.teacher_id,
    tl.label_id,
    CASE
      WHEN vr.by_argmax
      THEN vr.winner = tl.output_index + 1
      ELSE TRY_ELEMENT_AT(vr.scores, tl.output_index + 1) >= vr.threshold
    END AS positive,
    COALESCE(ARRAY_CONTAINS(vr.labels, tl.label_id), FALSE) AS gold
  FROM vr
  JOIN kd.teacher_labels AS tl
    ON tl.teacher_id = vr.teacher_id
  WHERE
    NOT TRY_ELEMENT_AT(vr.scores, tl.output_index + 1) IS NULL
), k AS (
  SELECT
    teacher_id,
    label_id,
    positive,
    gold,
    COUNT(*) AS n
  FROM d
  GROUP BY
    teacher_id,
    label_id,
    positive,
    gold
), c AS (
  SELECT
    teacher_id,
    label_id,
    CAST(SUM(CASE WHEN positive AND gold THEN n ELSE 0 END) AS BIGINT) AS tp,
    CAST(SUM(CASE WHEN positive AND NOT gold THEN n ELSE 0 END) AS BIGINT) AS fp,
    CAST(SUM(CASE WHEN NOT positive AND gold THEN n ELSE 0 END) AS BIGINT) AS fn,
    CAST(SUM(CASE WHEN NOT positive AND NOT gold THEN n ELSE 0 END) AS BIGINT) AS tn
  FROM k
  GROUP BY
    teacher_id,
    label_id
), m AS (
  SELECT
    tl.teacher_id,
    t.name AS teacher,
    tl.label_id,
    l.name AS label,
    nv.n_valid,
    COALESCE(c.tp, 0) AS tp,
    COALESCE(c.fp, 0) AS fp,
    COALESCE(c.fn, 0) AS fn,
    COALESCE(c.tn, 0) AS tn,
    cz.z
  FROM kd.teacher_labels AS tl
  JOIN kd.teachers AS t
    ON t.teacher_id = tl.teacher_id
  JOIN kd.labels AS l
    ON l.label_id = tl.label_id
  LEFT JOIN c
    ON c.teacher_id = tl.teacher_id AND c.label_id = tl.label_id
  CROSS JOIN nv
  CROSS JOIN kd.confidence_z AS cz
  WHERE
    t.output_type IN ('binary', 'multilabel', 'multiclass', 'vote')
), r AS (
  SELECT
    m.*,
    m.tp + m.fp + m.fn + m.tn AS covered,
    m.tp + m.fn AS support,
    CAST(NULLIF(m.tp + m.fp, 0) AS DOUBLE) AS n_pos,
    CAST(NULLIF(m.tp + m.fn, 0) AS DOUBLE) AS n_gold,
    m.tp / CAST(NULLIF(m.tp + m.fp, 0) AS DOUBLE) AS precision,
    m.tp / CAST(NULLIF(m.tp + m.fn, 0) AS DOUBLE) AS recall
  FROM m
)
SELECT
  r.teacher_id,
  r.teacher,
  r.label_id,
  r.label,
  r.n_valid,
  r.covered,
  CAST(r.covered AS DOUBLE) / NULLIF(r.n_valid, 0) AS coverage,
  r.support,
  r.tp,
  r.fp,
  r.fn,
  r.tn,
  r.precision,
  r.recall,
  CAST(2 * r.tp AS DOUBLE) / NULLIF(2 * r.tp + r.fp + r.fn, 0) AS f1,
  CAST(r.tp + r.tn AS DOUBLE) / NULLIF(r.covered, 0) AS accuracy,
  (
    r.precision + r.z * r.z / (
      CAST(2.0 AS DOUBLE) * r.n_pos
    ) - r.z * SQRT(
      r.precision * (
        CAST(1.0 AS DOUBLE) - r.precision
      ) / r.n_pos + r.z * r.z / (
        CAST(4.0 AS DOUBLE) * r.n_pos * r.n_pos
      )
    )
  ) / (
    CAST(1.0 AS DOUBLE) + r.z * r.z / r.n_pos
  ) AS precision_lb,
  (
    r.recall + r.z * r.z / (
      CAST(2.0 AS DOUBLE) * r.n_gold
    ) - r.z * SQRT(
      r.recall * (
        CAST(1.0 AS DOUBLE) - r.recall
      ) / r.n_gold + r.z * r.z / (
        CAST(4.0 AS DOUBLE) * r.n_gold * r.n_gold
      )
    )
  ) / (
    CAST(1.0 AS DOUBLE) + r.z * r.z / r.n_gold
  ) AS recall_lb
FROM r;
