CREATE OR REPLACE VIEW kd.decisions AS
WITH t AS (
  SELECT
    t.teacher_id,
    t.output_type IN ('multiclass', 'vote') AS by_argmax,
    COALESCE(t.threshold, p.threshold) AS threshold
  FROM kd.teachers AS t
  CROSS JOIN kd.params AS p
  WHERE
    t.output_type IN ('binary', 'multilabel', 'multiclass', 'vote')
), r AS (
  SELECT
    s.teacher_id,
    s.example_id,
    s.scores,
    t.by_argmax,
    t.threshold,
    CASE WHEN t.by_argmax THEN ARRAY_POSITION(s.scores, ARRAY_MAX(s.scores)) END AS winner
  FROM kd.scores AS s
  JOIN t
    ON t.teacher_id = s.teacher_id
  WHERE
    NOT EXISTS(
      SELECT
        1
      FROM kd.examples AS x
      WHERE
        x.example_id = s.example_id AND x.split = 'test'
    )
)
SELECT
  r.teacher_id,
  r.example_id,
  tl.label_id,
  tl.output_index,
  CAST(TRY_ELEMENT_AT(r.scores, tl.output_index + 1) AS DOUBLE) AS score,
  CASE WHEN r.by_argmax THEN NULL ELSE r.threshold END AS threshold,
  CASE
    WHEN r.by_argmax
    THEN r.winner = tl.output_index + 1
    ELSE TRY_ELEMENT_AT(r.scores, tl.output_index + 1) >= r.threshold
  END AS positive
FROM r
JOIN kd.teacher_labels AS tl
  ON tl.teacher_id = r.teacher_id
WHERE
  NOT TRY_ELEMENT_AT(r.scores, tl.output_index + 1) IS NULL;
