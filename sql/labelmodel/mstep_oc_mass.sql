-- Grouped one-coin M-step class mass: m_k = b_k * R + sum over the pairs of label k of
-- (exp(u) - b_k rs) * sz, where R = rs * (sum of 1 / z) + the number of fit examples without a vote
-- (no vote at all: no pairs, R = the number of fit examples).
CREATE OR REPLACE TEMP TABLE kd_lm_mass AS
WITH rs AS (
    SELECT COALESCE((SELECT MAX(rs) FROM kd_lm_u), 0.0) * COALESCE(SUM(1.0 / z), 0.0) + (SELECT COUNT(*) FROM kd_lm_x) - COUNT(*) AS r
    FROM kd_lm_z
),
excess AS (
    SELECT u.label_id, SUM((u.eu - u.b * u.rs) * st.sz) AS s
    FROM kd_lm_st AS st
    JOIN kd_lm_u AS u ON u.pair = st.pair
    GROUP BY u.label_id
)
SELECT b.label_id, b.b * rs.r + COALESCE(excess.s, 0.0) AS m
FROM kd_lm_base AS b
CROSS JOIN rs
LEFT JOIN excess ON excess.label_id = b.label_id
