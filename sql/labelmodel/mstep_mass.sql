-- M-step: the posterior mass of each class over all fit examples, m_k = sum_e q_e(k).
CREATE OR REPLACE TEMP TABLE kd_lm_mass AS
WITH rs AS (SELECT COALESCE(SUM(r), 0.0) AS rs FROM kd_lm_r),
excess AS (
    SELECT q.label_id, SUM(q.q - b.b * r.r) AS s
    FROM kd_lm_q AS q
    JOIN kd_lm_r AS r ON r.example_id = q.example_id
    JOIN kd_lm_base AS b ON b.label_id = q.label_id
    GROUP BY q.label_id
)
SELECT b.label_id, b.b * rs.rs + COALESCE(excess.s, 0.0) AS m
FROM kd_lm_base AS b
CROSS JOIN rs
LEFT JOIN excess ON excess.label_id = b.label_id
