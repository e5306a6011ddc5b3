-- teacher_summary: Snorkel's LFAnalysis.lf_summary for every teacher, per split.
-- grain: one row per teacher with decisions (binary, multilabel, multiclass, vote) x split in
--   (train, valid) that has at least one example; the test split is never read.
-- empty: a teacher without outputs in a split has coverage, overlaps and conflicts 0 and an
--   empty polarity; correct, incorrect and emp_acc are NULL on train (no gold there) and, on
--   valid, emp_acc = 0 when the teacher covers nothing (Snorkel's nan_to_num, not NULL).
-- columns (Snorkel's definitions, n = examples in the split): polarity = sorted label_ids the
--   teacher decided positive at least once; coverage = covered / n (covered = examples the
--   teacher has a kd.scores row for: a non-abstain); overlaps = covered examples that at least
--   one other teacher also covers, / n; conflicts = covered examples on which two teachers
--   disagree, / n; correct = covered valid examples on which every decision of the teacher
--   matches gold (closed world), incorrect = covered - correct; emp_acc = correct / covered.
-- rule: two teachers disagree on an example when some label both have an opinion on is positive
--   for one and negative for the other. For vote teachers sharing their labels (Snorkel's LFs:
--   vote = the label, abstain = no row) this is exactly Snorkel's "labeled differently", and every
--   column equals LFAnalysis(L_split).lf_summary(Y_split) (Y only on valid).
-- oracle: tests/oracles.py::teacher_summary
CREATE OR REPLACE VIEW kd.teacher_summary AS
WITH t AS (
    SELECT teacher_id, name
    FROM kd.teachers
    WHERE output_type IN ('binary', 'multilabel', 'multiclass', 'vote')
),
sp AS (
    SELECT split, count(*) AS n_examples
    FROM kd.examples
    WHERE split IN ('train', 'valid')
    GROUP BY split
),
el AS (
    -- per example x label: do the covering teachers split between positive and negative?
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
te AS (
    -- per teacher x covered example
    SELECT
        d.teacher_id,
        d.example_id,
        min(CASE WHEN d.positive = (g.example_id IS NOT NULL) THEN 1 ELSE 0 END) AS correct
    FROM kd.decisions AS d
    LEFT JOIN kd.gold AS g ON g.example_id = d.example_id AND g.label_id = d.label_id
    GROUP BY d.teacher_id, d.example_id
),
nt AS (
    SELECT example_id, count(*) AS n_teachers
    FROM te
    GROUP BY example_id
),
agg AS (
    SELECT
        te.teacher_id,
        x.split,
        count(*) AS covered,
        count(*) FILTER (WHERE nt.n_teachers >= 2) AS overlapped,
        count(*) FILTER (WHERE ex.conflicted = 1) AS conflicted,
        CAST(sum(te.correct) AS BIGINT) AS correct
    FROM te
    JOIN kd.examples AS x ON x.example_id = te.example_id
    JOIN nt ON nt.example_id = te.example_id
    JOIN ex ON ex.example_id = te.example_id
    GROUP BY te.teacher_id, x.split
),
pol AS (
    SELECT d.teacher_id, x.split, list_sort(list(DISTINCT d.label_id)) AS polarity
    FROM kd.decisions AS d
    JOIN kd.examples AS x ON x.example_id = d.example_id
    WHERE d.positive
    GROUP BY d.teacher_id, x.split
)
SELECT
    t.teacher_id,
    t.name AS teacher,
    sp.split,
    sp.n_examples,
    coalesce(pol.polarity, []) AS polarity,
    coalesce(agg.covered, 0) AS covered,
    coalesce(agg.covered, 0) / CAST(sp.n_examples AS DOUBLE) AS coverage,
    coalesce(agg.overlapped, 0) / CAST(sp.n_examples AS DOUBLE) AS overlaps,
    coalesce(agg.conflicted, 0) / CAST(sp.n_examples AS DOUBLE) AS conflicts,
    CASE WHEN sp.split = 'valid' THEN coalesce(agg.correct, 0) END AS correct,
    CASE WHEN sp.split = 'valid' THEN coalesce(agg.covered, 0) - coalesce(agg.correct, 0) END AS incorrect,
    CASE
        WHEN sp.split = 'valid' THEN coalesce(agg.correct / CAST(NULLIF(agg.covered, 0) AS DOUBLE), 0.0)
    END AS emp_acc
FROM t
CROSS JOIN sp
LEFT JOIN agg ON agg.teacher_id = t.teacher_id AND agg.split = sp.split
LEFT JOIN pol ON pol.teacher_id = t.teacher_id AND pol.split = sp.split;
