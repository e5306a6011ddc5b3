-- Log-likelihood of the fit examples' outputs under the current parameters:
-- n * lse + sum over observations of w * ref + sum over touched examples of (m + ln z).
SELECT (SELECT COUNT(*) FROM kd_lm_x) * (SELECT MAX(lse) FROM kd_lm_base)
     + COALESCE((
           SELECT SUM(w.w * r.ref)
           FROM kd_lm_wsum AS w
           JOIN (SELECT DISTINCT teacher_id, voted, ref FROM kd_lm_delta) AS r
             ON r.teacher_id = w.teacher_id AND r.voted = w.voted
       ), 0.0)
     + COALESCE((SELECT SUM(m + LN(z)) FROM kd_lm_z), 0.0) AS ll
