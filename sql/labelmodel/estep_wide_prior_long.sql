-- Wide class-conditional E-step parameters, long: lp(t, v, k) = ln theta(t, k, v) per teacher column
-- t, vote code v (kd_lm_wsym) and class column k; abstain (v = -1) is ln theta(t, k, abstain) when
-- abstains are evidence, else 0 (a silent teacher says nothing). Pivoted to columns by estep_wide_params.
CREATE OR REPLACE TEMP TABLE kd_lm_wlp AS
SELECT s.t, s.v, r.k, LN(th.p) AS lp
FROM kd_lm_theta AS th
JOIN kd_lm_wsym AS s ON s.teacher_id = th.teacher_id AND s.voted = th.voted
JOIN kd_lm_wrank AS r ON r.label_id = th.label_id
WHERE th.voted <> -1
UNION ALL
SELECT w.t, -1 AS v, r.k, CASE WHEN $abstain_evidence AND th.p IS NOT NULL THEN LN(th.p) ELSE 0.0 END AS lp
FROM kd_lm_wteach AS w
CROSS JOIN kd_lm_wrank AS r
LEFT JOIN kd_lm_theta AS th ON th.teacher_id = w.teacher_id AND th.label_id = r.label_id AND th.voted = -1
UNION ALL
SELECT -1 AS t, 0 AS v, r.k, LN(p.prior) AS lp
FROM kd_lm_prior AS p
JOIN kd_lm_wrank AS r ON r.label_id = p.label_id
