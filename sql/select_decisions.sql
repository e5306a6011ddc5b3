-- kd.select_decisions: one row per teacher output (teacher x example x label), every split.
-- positive = the teacher's decision on that label:
--   * multiclass and vote teachers decide one class per example: the argmax of their scores at that
--     example (ties: the smallest label_id) is positive, every other label of theirs negative;
--   * binary / multilabel teachers decide per label: score >= kd.teachers.threshold, else the
--     setting 'threshold'.
-- No output = abstain = no row. Embedding and regression teachers make no decisions (excluded).
-- Empty-group rule: none (row level). Oracle: tests/oracles_select.py::decisions.
CREATE OR REPLACE VIEW kd.select_decisions AS
SELECT o.teacher_id,
       o.example_id,
       o.label_id,
       o.score,
       e.split,
       e.slice,
       CASE
           WHEN t.output_type IN ('multiclass', 'vote')
               THEN row_number() OVER (PARTITION BY o.teacher_id, o.example_id ORDER BY o.score DESC, o.label_id) = 1
           ELSE o.score >= coalesce(t.threshold, s.value)
       END AS positive
FROM kd.outputs AS o
JOIN kd.teachers AS t ON t.teacher_id = o.teacher_id
JOIN kd.examples AS e ON e.example_id = o.example_id
CROSS JOIN (SELECT value FROM kd.settings WHERE name = 'threshold') AS s
WHERE t.output_type IN ('binary', 'multiclass', 'multilabel', 'vote');
