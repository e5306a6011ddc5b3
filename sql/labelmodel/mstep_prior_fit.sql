-- M-step class prior with Dirichlet smoothing: (m_k + beta) / (n + K beta).
CREATE OR REPLACE TEMP TABLE kd_lm_prior AS
SELECT m.label_id, (m.m + $beta) / (n.n + $beta * k.k) AS prior
FROM kd_lm_mass AS m
CROSS JOIN (SELECT COUNT(*) AS n FROM kd_lm_x) AS n
CROSS JOIN (SELECT COUNT(*) AS k FROM kd_lm_classes) AS k
