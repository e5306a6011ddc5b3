-- M-step counts of the one-coin model, without the full n(t, k, v) table: per teacher,
-- correct = sum over its observations of w * P(true label is the one this output is correct for)
--         = w * q_e(v) for a label output v, w * (1 - sum of q_e over its own labels) for -2;
-- total   = sum of w * P(true label has a correct output) = w when every label has one (the teacher
--           has all labels, or a -2 symbol), else w * sum of q_e over its own labels.
-- q_e(k) is the kd_lm_q row or b_k * r_e (see mstep_counts.sql).
CREATE OR REPLACE TEMP TABLE kd_lm_acc AS
WITH tinfo AS (
    SELECT t.teacher_id,
           t.has_none OR COUNT(tl.label_id) = (SELECT COUNT(*) FROM kd_lm_classes) AS all_defined
    FROM kd_lm_teachers AS t
    LEFT JOIN kd.teacher_labels AS tl ON tl.teacher_id = t.teacher_id
    GROUP BY t.teacher_id, t.has_none
),
label_outputs AS (
    SELECT o.teacher_id,
           SUM(o.w * COALESCE(q.q, b.b * r.r)) AS correct,
           SUM(o.w) AS w
    FROM kd_lm_obs AS o
    JOIN kd_lm_r AS r ON r.example_id = o.example_id
    JOIN kd_lm_base AS b ON b.label_id = o.voted
    LEFT JOIN kd_lm_q AS q ON q.example_id = o.example_id AND q.label_id = o.voted
    GROUP BY o.teacher_id
),
own_q AS (
    -- only -2 outputs and teachers without every label need the sum over the teacher's own labels
    SELECT o.teacher_id, o.example_id, o.voted, o.w, SUM(COALESCE(q.q, b.b * r.r)) AS s_own
    FROM kd_lm_obs AS o
    JOIN tinfo AS ti ON ti.teacher_id = o.teacher_id
    JOIN kd.teacher_labels AS tl ON tl.teacher_id = o.teacher_id
    JOIN kd_lm_r AS r ON r.example_id = o.example_id
    JOIN kd_lm_base AS b ON b.label_id = tl.label_id
    LEFT JOIN kd_lm_q AS q ON q.example_id = o.example_id AND q.label_id = tl.label_id
    WHERE o.voted = -2 OR NOT ti.all_defined
    GROUP BY o.teacher_id, o.example_id, o.voted, o.w
),
own_parts AS (
    SELECT teacher_id,
           SUM(CASE WHEN voted = -2 THEN w * (1.0 - s_own) ELSE 0.0 END) AS correct,
           SUM(CASE WHEN voted = -2 THEN w ELSE w * s_own END) AS total
    FROM own_q
    GROUP BY teacher_id
)
SELECT t.teacher_id,
       COALESCE(lo.correct, 0.0) + COALESCE(op.correct, 0.0) AS correct,
       CASE WHEN ti.all_defined THEN COALESCE(lo.w, 0.0) ELSE 0.0 END + COALESCE(op.total, 0.0) AS total
FROM kd_lm_teachers AS t
JOIN tinfo AS ti ON ti.teacher_id = t.teacher_id
LEFT JOIN label_outputs AS lo ON lo.teacher_id = t.teacher_id
LEFT JOIN own_parts AS op ON op.teacher_id = t.teacher_id
