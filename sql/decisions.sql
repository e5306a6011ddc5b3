-- decisions: every output turned into a positive/negative decision for its label.
-- grain: one row per output (teacher x example x label with a non-NULL score) of the teachers
--   whose output_type is binary, multilabel, multiclass or vote, on train and valid examples
--   (the test split is never read).
-- empty: an abstain (no kd.scores row, or a NULL element) has no row. Regression teachers have no
--   decisions (a regression score has no positive class: threshold it in a view of your own);
--   embedding teachers have no scores.
-- rule: binary and multilabel: positive iff score >= threshold, the teacher's own threshold
--   (kd.teachers.threshold) or else the 'threshold' setting; multiclass: positive iff the output
--   is the largest of the teacher's outputs for that example, ties -> the lowest output_index
--   (exactly one positive per row); vote: the voted label (the 1 of the one-hot row) is positive.
--   The threshold column is the one applied (NULL for the argmax rules).
-- oracle: tests/oracles.py::decisions
CREATE OR REPLACE VIEW kd.decisions AS
WITH t AS (
    SELECT
        t.teacher_id,
        t.output_type IN ('multiclass', 'vote') AS by_argmax,
        coalesce(t.threshold, p.threshold) AS threshold
    FROM kd.teachers AS t
    CROSS JOIN kd.params AS p
    WHERE t.output_type IN ('binary', 'multilabel', 'multiclass', 'vote')
),
r AS (
    SELECT
        s.teacher_id,
        s.example_id,
        s.scores,
        t.by_argmax,
        t.threshold,
        -- 1-based position of the first maximum: the lowest output_index wins a tie
        CASE WHEN t.by_argmax THEN array_position(s.scores, list_max(s.scores)) END AS winner
    FROM kd.scores AS s
    JOIN t ON t.teacher_id = s.teacher_id
    WHERE NOT EXISTS (
        SELECT 1 FROM kd.examples AS x WHERE x.example_id = s.example_id AND x.split = 'test'
    )
)
SELECT
    r.teacher_id,
    r.example_id,
    tl.label_id,
    tl.output_index,
    CAST(r.scores[tl.output_index + 1] AS DOUBLE) AS score,
    CASE WHEN r.by_argmax THEN NULL ELSE r.threshold END AS threshold,
    CASE
        WHEN r.by_argmax THEN r.winner = tl.output_index + 1
        ELSE r.scores[tl.output_index + 1] >= r.threshold
    END AS positive
FROM r
JOIN kd.teacher_labels AS tl ON tl.teacher_id = r.teacher_id
WHERE r.scores[tl.output_index + 1] IS NOT NULL;
