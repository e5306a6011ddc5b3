-- select_decisions: every output turned into the teacher's decision on that label.
-- grain: one row per output (teacher x example x label) of the binary, multiclass, multilabel and
--   vote teachers, every split (the selection views filter the splits they may read).
-- empty: an abstain (no output) has no row; embedding and regression teachers have no rows.
-- rule: multiclass and vote teachers decide one class per example: the argmax of their scores there
--   (ties: the smallest label_id) is positive, every other label negative; binary and multilabel
--   teachers: score >= kd.teachers.threshold, else the setting 'threshold'.
-- oracle: tests/oracles_select.py::decisions
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
