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
o AS (
    SELECT ob.teacher_id, ob.example_id, ob.voted, ob.w, ti.all_defined
    FROM kd_lm_obs AS ob
    JOIN tinfo AS ti ON ti.teacher_id = ob.teacher_id
),
own_q AS (
    SELECT o.teacher_id, o.example_id, o.voted, o.w, SUM(COALESCE(q.q, b.b * r.r)) AS s_own
    FROM o
    JOIN kd.teacher_labels AS tl ON tl.teacher_id = o.teacher_id
    JOIN kd_lm_r AS r ON r.example_id = o.example_id
    JOIN kd_lm_base AS b ON b.label_id = tl.label_id
    LEFT JOIN kd_lm_q AS q ON q.example_id = o.example_id AND q.label_id = tl.label_id
    WHERE o.voted = -2 OR NOT o.all_defined
    GROUP BY o.teacher_id, o.example_id, o.voted, o.w
),
parts AS (
    SELECT o.teacher_id,
           o.w * COALESCE(q.q, b.b * r.r) AS correct,
           CASE WHEN o.all_defined THEN o.w ELSE 0.0 END AS total
    FROM o
    JOIN kd_lm_r AS r ON r.example_id = o.example_id
    JOIN kd_lm_base AS b ON b.label_id = o.voted
    LEFT JOIN kd_lm_q AS q ON q.example_id = o.example_id AND q.label_id = o.voted
    WHERE o.voted >= 0
    UNION ALL
    SELECT teacher_id, w * (1.0 - s_own) AS correct, w AS total FROM own_q WHERE voted = -2
    UNION ALL
    SELECT teacher_id, 0.0 AS correct, w * s_own AS total FROM own_q WHERE voted >= 0
)
SELECT t.teacher_id, COALESCE(SUM(p.correct), 0.0) AS correct, COALESCE(SUM(p.total), 0.0) AS total
FROM kd_lm_teachers AS t
LEFT JOIN parts AS p ON p.teacher_id = t.teacher_id
GROUP BY t.teacher_id
