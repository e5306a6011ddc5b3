-- M-step counts of the abstain symbol (-1): the class mass of the examples a teacher did not cover,
-- m_k - sum over its output symbols of n(t, k, v) (observation weights sum to 1 per covered example).
INSERT INTO kd_lm_n
SELECT t.teacher_id, m.label_id, -1 AS voted, GREATEST(m.m - COALESCE(c.n, 0.0), 0.0) AS n
FROM kd_lm_teachers AS t
CROSS JOIN kd_lm_mass AS m
LEFT JOIN (
    SELECT teacher_id, label_id, SUM(n) AS n FROM kd_lm_n GROUP BY teacher_id, label_id
) AS c ON c.teacher_id = t.teacher_id AND c.label_id = m.label_id
