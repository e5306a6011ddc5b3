CREATE OR REPLACE VIEW kd.teacher_slots AS
WITH lr AS (
  SELECT
    label_id,
    ROW_NUMBER() OVER (ORDER BY label_id NULLS LAST) - 1 AS label_rank
  FROM kd.labels
)
SELECT
  tl.teacher_id,
  tl.label_id,
  tl.output_index,
  lr.label_rank,
  lr.label_rank DIV 8 AS page,
  lr.label_rank % 8 AS slot
FROM kd.teacher_labels AS tl
JOIN kd.teachers AS t
  ON t.teacher_id = tl.teacher_id
JOIN lr
  ON lr.label_id = tl.label_id
WHERE
  t.output_type IN ('binary', 'multilabel', 'multiclass', 'vote');
