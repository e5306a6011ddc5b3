-- Grouped one-coin log-likelihood (as loglik.sql): n * lse + sum over votes of ref + sum of ln z.
SELECT (SELECT COUNT(*) FROM kd_lm_x) * (SELECT MAX(lse) FROM kd_lm_base)
     + COALESCE((
           SELECT SUM(w.w * r.ref)
           FROM kd_lm_wsum AS w
           JOIN kd_lm_delta AS r ON r.teacher_id = w.teacher_id AND r.voted = w.voted
       ), 0.0)
     + COALESCE((SELECT SUM(LN(z)) FROM kd_lm_z), 0.0) AS ll
