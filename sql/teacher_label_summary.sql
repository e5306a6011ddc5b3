-- teacher_label_summary: teacher_summary broken down by the label a teacher fires.
-- grain: one row per teacher x label of its alignment (teachers with decisions) x split in
--   (train, valid) that has at least one example; the test split is never read.
-- empty: a label the teacher never fires has fired = 0 and coverage, overlaps, conflicts 0;
--   correct, incorrect and emp_acc are NULL on train; on valid emp_acc = 0 when the teacher never
--   fires the label (Snorkel's nan_to_num).
-- columns (n = examples in the split): fired = examples on which the teacher decides this label
--   positive (a vote for it); coverage = fired / n; overlaps = fired examples that another
--   teacher also covers, / n; conflicts = fired examples on which two teachers disagree (as in
--   kd.teacher_summary), / n; correct = fired valid examples whose gold has the label, incorrect
--   = fired - correct; emp_acc = correct / fired (the precision of its votes for the label).
-- rule: for vote teachers the rows of a teacher add up to its kd.teacher_summary row (every
--   covered example fires exactly one label); for binary/multilabel teachers negatives fire
--   nothing, so they count in teacher_summary's coverage but in no row here.
-- oracle: tests/oracles.py::teacher_label_summary
CREATE OR REPLACE VIEW kd.teacher_label_summary AS
WITH sp AS (
    SELECT split, count(*) AS n_examples
    FROM kd.examples
    WHERE split IN ('train', 'valid')
    GROUP BY split
),
el AS (
    SELECT
        example_id,
        label_id,
        max(CASE WHEN positive THEN 1 ELSE 0 END) <> min(CASE WHEN positive THEN 1 ELSE 0 END) AS disagree
    FROM kd.decisions
    GROUP BY example_id, label_id
),
ex AS (
    SELECT
        example_id,
        max(CASE WHEN disagree THEN 1 ELSE 0 END) AS conflicted
    FROM el
    GROUP BY example_id
),
nt AS (
    SELECT s.example_id, count(*) AS n_teachers
    FROM kd.scores AS s
    JOIN kd.teachers AS t ON t.teacher_id = s.teacher_id
    WHERE t.output_type IN ('binary', 'multilabel', 'multiclass', 'vote')
    GROUP BY s.example_id
),
agg AS (
    SELECT
        d.teacher_id,
        d.label_id,
        x.split,
        count(*) AS fired,
        count(*) FILTER (WHERE nt.n_teachers >= 2) AS overlapped,
        count(*) FILTER (WHERE ex.conflicted = 1) AS conflicted,
        count(g.example_id) AS correct
    FROM kd.decisions AS d
    JOIN kd.examples AS x ON x.example_id = d.example_id
    JOIN nt ON nt.example_id = d.example_id
    JOIN ex ON ex.example_id = d.example_id
    LEFT JOIN kd.gold AS g ON g.example_id = d.example_id AND g.label_id = d.label_id
    WHERE d.positive
    GROUP BY d.teacher_id, d.label_id, x.split
)
SELECT
    tl.teacher_id,
    t.name AS teacher,
    tl.label_id,
    l.name AS label,
    sp.split,
    sp.n_examples,
    coalesce(agg.fired, 0) AS fired,
    coalesce(agg.fired, 0) / CAST(sp.n_examples AS DOUBLE) AS coverage,
    coalesce(agg.overlapped, 0) / CAST(sp.n_examples AS DOUBLE) AS overlaps,
    coalesce(agg.conflicted, 0) / CAST(sp.n_examples AS DOUBLE) AS conflicts,
    CASE WHEN sp.split = 'valid' THEN coalesce(agg.correct, 0) END AS correct,
    CASE WHEN sp.split = 'valid' THEN coalesce(agg.fired, 0) - coalesce(agg.correct, 0) END AS incorrect,
    CASE
        WHEN sp.split = 'valid' THEN coalesce(agg.correct / CAST(NULLIF(agg.fired, 0) AS DOUBLE), 0.0)
    END AS emp_acc
FROM kd.teacher_labels AS tl
JOIN kd.teachers AS t ON t.teacher_id = tl.teacher_id
JOIN kd.labels AS l ON l.label_id = tl.label_id
CROSS JOIN sp
LEFT JOIN agg ON agg.teacher_id = tl.teacher_id AND agg.label_id = tl.label_id AND agg.split = sp.split
WHERE t.output_type IN ('binary', 'multilabel', 'multiclass', 'vote');
