-- Wide class-conditional path: each teacher's symbols (kd_lm_symbols) in vote-column coding v: a
-- label's column number k, -2 (none of its labels), -1 (abstain, only when abstains are an outcome).
CREATE OR REPLACE TEMP TABLE kd_lm_wsym AS
SELECT sy.teacher_id, w.t, sy.voted, CASE WHEN sy.voted < 0 THEN sy.voted ELSE r.k END AS v
FROM kd_lm_symbols AS sy
JOIN kd_lm_wteach AS w ON w.teacher_id = sy.teacher_id
LEFT JOIN kd_lm_wrank AS r ON r.label_id = sy.voted
