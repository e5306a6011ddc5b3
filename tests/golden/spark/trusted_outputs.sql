CREATE OR REPLACE VIEW kd.trusted_outputs AS
SELECT
  o.teacher_id,
  o.example_id,
  e.split,
  o.label_id,
  o.score,
  tr.p_correct,
  tr.model_id
FROM kd.outputs AS o
JOIN kd.teachers AS t
  ON t.teacher_id = o.teacher_id
JOIN kd.examples AS e
  ON e.example_id = o.example_id
LEFT JOIN kd.trust AS tr
  ON tr.teacher_id = o.teacher_id
  AND tr.example_id = o.example_id
  AND (
    tr.label_id = o.label_id OR t.output_type IN ('multiclass', 'vote')
  );
