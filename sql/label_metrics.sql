-- label_metrics: how well each teacher decides each of its labels, judged on the valid split.
-- grain: one row per teacher x label of the teacher's alignment (kd.teacher_labels), for the
--   teachers with decisions (binary, multilabel, multiclass, vote); a teacher is judged only on
--   its own labels and only over the valid examples it covers (has a score for that label).
-- empty: counts of an uncovered teacher x label are 0; a ratio whose denominator is 0 is NULL
--   (precision without positive decisions, recall without gold positives, coverage without
--   valid examples), and so are its Wilson bounds. Every division is NULLIF-guarded.
-- columns: n_valid = valid examples; covered = valid examples with a decision; coverage =
--   covered / n_valid; support = tp + fn (gold positives among covered); precision = tp/(tp+fp);
--   recall = tp/(tp+fn); f1 = 2tp/(2tp+fp+fn); accuracy = (tp+tn)/covered; precision_lb and
--   recall_lb = lower end of the two-sided Wilson score interval at the 'confidence' setting
--   (z from kd.confidence_z). Gold is closed-world: a label not listed in kd.gold is negative.
-- rule: decisions as in kd.decisions (multiclass/vote: the first argmax; binary/multilabel: score
--   >= the teacher's threshold or the setting), computed here straight from kd.scores so that the
--   valid filter and the gold lookup run once per teacher row, not once per output (1.7x faster).
-- oracle: tests/oracles.py::label_metrics
CREATE OR REPLACE VIEW kd.label_metrics AS
WITH v AS (
    SELECT example_id FROM kd.examples WHERE split = 'valid'
),
nv AS (
    SELECT count(*) AS n_valid FROM v
),
gl AS (
    -- the gold labels of each valid example, joined once per teacher row rather than per output
    SELECT g.example_id, list(g.label_id) AS labels
    FROM kd.gold AS g
    JOIN v ON v.example_id = g.example_id
    GROUP BY g.example_id
),
th AS (
    SELECT
        t.teacher_id,
        t.output_type IN ('multiclass', 'vote') AS by_argmax,
        coalesce(t.threshold, p.threshold) AS threshold
    FROM kd.teachers AS t
    CROSS JOIN kd.params AS p
    WHERE t.output_type IN ('binary', 'multilabel', 'multiclass', 'vote')
),
vr AS (
    -- valid teacher rows only (a zone-map-friendly filter when splits are id ranges)
    SELECT
        s.teacher_id,
        s.scores,
        th.by_argmax,
        th.threshold,
        CASE WHEN th.by_argmax THEN array_position(s.scores, list_max(s.scores)) END AS winner,
        gl.labels
    FROM kd.scores AS s
    JOIN th ON th.teacher_id = s.teacher_id
    JOIN v ON v.example_id = s.example_id
    LEFT JOIN gl ON gl.example_id = s.example_id
),
d AS (
    -- the rule of kd.decisions, restated on the valid rows (tests check both against one oracle)
    SELECT
        vr.teacher_id,
        tl.label_id,
        CASE
            WHEN vr.by_argmax THEN vr.winner = tl.output_index + 1
            ELSE vr.scores[tl.output_index + 1] >= vr.threshold
        END AS positive,
        coalesce(list_contains(vr.labels, tl.label_id), FALSE) AS gold
    FROM vr
    JOIN kd.teacher_labels AS tl ON tl.teacher_id = vr.teacher_id
    WHERE vr.scores[tl.output_index + 1] IS NOT NULL
),
k AS (
    SELECT teacher_id, label_id, positive, gold, count(*) AS n
    FROM d
    GROUP BY teacher_id, label_id, positive, gold
),
c AS (
    SELECT
        teacher_id,
        label_id,
        CAST(sum(CASE WHEN positive AND gold THEN n ELSE 0 END) AS BIGINT) AS tp,
        CAST(sum(CASE WHEN positive AND NOT gold THEN n ELSE 0 END) AS BIGINT) AS fp,
        CAST(sum(CASE WHEN NOT positive AND gold THEN n ELSE 0 END) AS BIGINT) AS fn,
        CAST(sum(CASE WHEN NOT positive AND NOT gold THEN n ELSE 0 END) AS BIGINT) AS tn
    FROM k
    GROUP BY teacher_id, label_id
),
m AS (
    SELECT
        tl.teacher_id,
        t.name AS teacher,
        tl.label_id,
        l.name AS label,
        nv.n_valid,
        coalesce(c.tp, 0) AS tp,
        coalesce(c.fp, 0) AS fp,
        coalesce(c.fn, 0) AS fn,
        coalesce(c.tn, 0) AS tn,
        cz.z
    FROM kd.teacher_labels AS tl
    JOIN kd.teachers AS t ON t.teacher_id = tl.teacher_id
    JOIN kd.labels AS l ON l.label_id = tl.label_id
    LEFT JOIN c ON c.teacher_id = tl.teacher_id AND c.label_id = tl.label_id
    CROSS JOIN nv
    CROSS JOIN kd.confidence_z AS cz
    WHERE t.output_type IN ('binary', 'multilabel', 'multiclass', 'vote')
),
r AS (
    SELECT
        m.*,
        m.tp + m.fp + m.fn + m.tn AS covered,
        m.tp + m.fn AS support,
        CAST(NULLIF(m.tp + m.fp, 0) AS DOUBLE) AS n_pos,
        CAST(NULLIF(m.tp + m.fn, 0) AS DOUBLE) AS n_gold,
        m.tp / CAST(NULLIF(m.tp + m.fp, 0) AS DOUBLE) AS precision,
        m.tp / CAST(NULLIF(m.tp + m.fn, 0) AS DOUBLE) AS recall
    FROM m
)
SELECT
    r.teacher_id,
    r.teacher,
    r.label_id,
    r.label,
    r.n_valid,
    r.covered,
    CAST(r.covered AS DOUBLE) / NULLIF(r.n_valid, 0) AS coverage,
    r.support,
    r.tp,
    r.fp,
    r.fn,
    r.tn,
    r.precision,
    r.recall,
    CAST(2 * r.tp AS DOUBLE) / NULLIF(2 * r.tp + r.fp + r.fn, 0) AS f1,
    CAST(r.tp + r.tn AS DOUBLE) / NULLIF(r.covered, 0) AS accuracy,
    (r.precision + r.z * r.z / (2.0 * r.n_pos)
        - r.z * sqrt(r.precision * (1.0 - r.precision) / r.n_pos + r.z * r.z / (4.0 * r.n_pos * r.n_pos)))
        / (1.0 + r.z * r.z / r.n_pos) AS precision_lb,
    (r.recall + r.z * r.z / (2.0 * r.n_gold)
        - r.z * sqrt(r.recall * (1.0 - r.recall) / r.n_gold + r.z * r.z / (4.0 * r.n_gold * r.n_gold)))
        / (1.0 + r.z * r.z / r.n_gold) AS recall_lb
FROM r;
