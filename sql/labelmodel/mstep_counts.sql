-- M-step counts: n(t, k, v) = sum over observations (t, e, v, w) of w * q_e(k), for every teacher x
-- class x output symbol (abstains excluded). q_e(k) is stored sparsely: kd_lm_q rows, and b_k * r_e
-- for the labels without a row, so n = b_k * sum(w r_e) + sum over rows of w (q - b_k r_e).
CREATE OR REPLACE TEMP TABLE kd_lm_n AS
WITH wr AS (
    SELECT o.teacher_id, o.voted, SUM(o.w * r.r) AS wr
    FROM kd_lm_obs AS o
    JOIN kd_lm_r AS r ON r.example_id = o.example_id
    GROUP BY o.teacher_id, o.voted
),
excess AS (
    SELECT o.teacher_id, o.voted, q.label_id, SUM(o.w * (q.q - b.b * r.r)) AS s
    FROM kd_lm_obs AS o
    JOIN kd_lm_q AS q ON q.example_id = o.example_id
    JOIN kd_lm_r AS r ON r.example_id = o.example_id
    JOIN kd_lm_base AS b ON b.label_id = q.label_id
    GROUP BY o.teacher_id, o.voted, q.label_id
)
SELECT sy.teacher_id,
       b.label_id,
       sy.voted,
       COALESCE(b.b * wr.wr, 0.0) + COALESCE(excess.s, 0.0) AS n
FROM kd_lm_symbols AS sy
CROSS JOIN kd_lm_base AS b
LEFT JOIN wr ON wr.teacher_id = sy.teacher_id AND wr.voted = sy.voted
LEFT JOIN excess ON excess.teacher_id = sy.teacher_id AND excess.voted = sy.voted AND excess.label_id = b.label_id
WHERE sy.voted <> -1
