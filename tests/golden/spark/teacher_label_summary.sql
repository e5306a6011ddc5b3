CREATE OR REPLACE VIEW kd.teacher_label_summary AS
WITH sp AS (
  SELECT
    split,
    COUNT(*) AS n_examples
  FROM kd.examples
  WHERE
    split IN ('train', 'valid')
  GROUP BY
    split
), el AS (
  SELECT
    example_id,
    label_id,
    MAX(CASE WHEN positive THEN 1 ELSE 0 END) <> MIN(CASE WHEN positive THEN 1 ELSE 0 END) AS disagree
  FROM kd.decisions
  GROUP BY
    example_id,
    label_id
), ex AS (
  SELECT
    example_id,
    MAX(CASE WHEN disagree THEN 1 ELSE 0 END) AS conflicted
  FROM el
  GROUP BY
    example_id
), nt AS (
  SELECT
    s.example_id,
    COUNT(*) AS n_teachers
  FROM kd.scores AS s
  JOIN kd.teachers AS t
    ON t.teacher_id = s.teacher_id
  WHERE
    t.output_type IN ('binary', 'multilabel', 'multiclass', 'vote')
  GROUP BY
    s.example_id
), agg AS (
  SELECT
    d.teacher_id,
    d.label_id,
    x.split,
    COUNT(*) AS fired,
    COUNT(*) FILTER(WHERE
      nt.n_teachers >= 2) AS overlapped,
    COUNT(*) FILTER(WHERE
      ex.conflicted = 1) AS conflicted,
    COUNT(g.example_id) AS correct
  FROM kd.decisions AS d
  JOIN kd.examples AS x
    ON x.example_id = d.example_id
  JOIN nt
    ON nt.example_id = d.example_id
  JOIN ex
    ON ex.example_id = d.example_id
  LEFT JOIN kd.gold AS g
    ON g.example_id = d.example_id AND g.label_id = d.label_id
  WHERE
    d.positive
  GROUP BY
    d.teacher_id,
    d.label_id,
    x.split
)
SELECT
  tl.teacher_id,
  t.name AS teacher,
  tl.label_id,
  l.name AS label,
  sp.split,
  sp.n_examples,
  COALESCE(agg.fired, 0) AS fired,
  COALESCE(agg.fired, 0) / CAST(sp.n_examples AS DOUBLE) AS coverage,
  COALESCE(agg.overlapped, 0) / CAST(sp.n_examples AS DOUBLE) AS overlaps,
  COALESCE(agg.conflicted, 0) / CAST(sp.n_examples AS DOUBLE) AS conflicts,
  CASE WHEN sp.split = 'valid' THEN COALESCE(agg.correct, 0) END AS correct,
  CASE
    WHEN sp.split = 'valid'
    THEN COALESCE(agg.fired, 0) - COALESCE(agg.correct, 0)
  END AS incorrect,
  CASE
    WHEN sp.split = 'valid'
    THEN COALESCE(agg.correct / CAST(NULLIF(agg.fired, 0) AS DOUBLE), CAST(0.0 AS DOUBLE))
  END AS emp_acc
FROM kd.teacher_labels AS tl
JOIN kd.teachers AS t
  ON t.teacher_id = tl.teacher_id
JOIN kd.labels AS l
  ON l.label_id = tl.label_id
CROSS JOIN sp
LEFT JOIN agg
  ON agg.teacher_id = tl.teacher_id
  AND agg.label_id = tl.label_id
  AND agg.split = sp.split
WHERE
  t.output_type IN ('binary', 'multilabel', 'multiclass', 'vote');
