CREATE OR REPLACE VIEW kd.select_decisions AS
WITH t AS (
  SELECT
    t.teacher_id,
    t.output_type IN ('multiclass', 'vote') AS by_argmax,
    COALESCE(t.threshold, s.value) AS threshold
  FROM kd.teachers AS t
  CROSS JOIN (
    SELECT
      value
    FROM kd.settings
    WHERE
      name = 'threshold'
  ) AS s
  WHERE
    t.output_type IN ('binary', 'multiclass', 'multilabel', 'vote')
), o AS (
  SELECT
    o.teacher_id,
    o.example_id,
    o.label_id,
    o.score,
    e.split,
    e.slice,
    t.by_argmax,
    t.threshold
  FROM kd.outputs AS o
  JOIN t
    ON t.teacher_id = o.teacher_id
  JOIN kd.examples AS e
    ON e.example_id = o.example_id
)
SELECT
  teacher_id,
  example_id,
  label_id,
  score,
  split,
  slice,
  score >= threshold AS positive
FROM o
WHERE
  NOT by_argmax
UNION ALL
SELECT
  teacher_id,
  example_id,
  label_id,
  score,
  split,
  slice,
  ROW_NUMBER() OVER (
    PARTITION BY teacher_id, example_id, split
    ORDER BY score DESC, label_id NULLS LAST
  ) = 1 AS positive
FROM o
WHERE
  by_argmax;
