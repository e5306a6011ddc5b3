CREATE OR REPLACE VIEW kd.teacher_summary AS
WITH t AS (
  SELECT
    teacher_id,
    name
  FROM kd.teachers
  WHERE
    output_type IN ('binary', 'multilabel', 'multiclass', 'vote')
), sp AS (
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
), te AS (
  SELECT
    d.teacher_id,
    d.example_id,
    MIN(CASE WHEN d.positive = (
      NOT g.example_id IS NULL
    ) THEN 1 ELSE 0 END) AS correct
  FROM kd.decisions AS d
  LEFT JOIN kd.gold AS g
    ON g.example_id = d.example_id AND g.label_id = d.label_id
  GROUP BY
    d.teacher_id,
    d.example_id
), nt AS (
  SELECT
    example_id,
    COUNT(*) AS n_teachers
  FROM te
  GROUP BY
    example_id
), agg AS (
  SELECT
    te.teacher_id,
    x.split,
    COUNT(*) AS covered,
    COUNT(*) FILTER(WHERE
      nt.n_teachers >= 2) AS overlapped,
    COUNT(*) FILTER(WHERE
      ex.conflicted = 1) AS conflicted,
    CAST(SUM(te.correct) AS BIGINT) AS correct
  FROM te
  JOIN kd.examples AS x
    ON x.example_id = te.example_id
  JOIN nt
    ON nt.example_id = te.example_id
  JOIN ex
    ON ex.example_id = te.example_id
  GROUP BY
    te.teacher_id,
    x.split
), pol AS (
  SELECT
    d.teacher_id,
    x.split,
    ARRAY_SORT(COLLECT_LIST(DISTINCT d.label_id)) AS polarity
  FROM kd.decisions AS d
  JOIN kd.examples AS x
    ON x.example_id = d.example_id
  WHERE
    d.positive
  GROUP BY
    d.teacher_id,
    x.split
)
SELECT
  t.teacher_id,
  t.name AS teacher,
  sp.split,
  sp.n_examples,
  COALESCE(pol.polarity, ARRAY()) AS polarity,
  COALESCE(agg.covered, 0) AS covered,
  COALESCE(agg.covered, 0) / CAST(sp.n_examples AS DOUBLE) AS coverage,
  COALESCE(agg.overlapped, 0) / CAST(sp.n_examples AS DOUBLE) AS overlaps,
  COALESCE(agg.conflicted, 0) / CAST(sp.n_examples AS DOUBLE) AS conflicts,
  CASE WHEN sp.split = 'valid' THEN COALESCE(agg.correct, 0) END AS correct,
  CASE
    WHEN sp.split = 'valid'
    THEN COALESCE(agg.covered, 0) - COALESCE(agg.correct, 0)
  END AS incorrect,
  CASE
    WHEN sp.split = 'valid'
    THEN COALESCE(agg.correct / CAST(NULLIF(agg.covered, 0) AS DOUBLE), CAST(0.0 AS DOUBLE))
  END AS emp_acc
FROM t
CROSS JOIN sp
LEFT JOIN agg
  ON agg.teacher_id = t.teacher_id AND agg.split = sp.split
LEFT JOIN pol
  ON pol.teacher_id = t.teacher_id AND pol.split = sp.split;
