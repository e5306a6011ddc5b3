-- Wide class-conditional log-likelihood (as loglik.sql): the sum over vote patterns of count x the
-- log-sum-exp over classes of the log prior + the teachers' log confusion entries, summed by the
-- E-step (the grand-total row t = -1 of kd_lm_wn).
SELECT SUM(ll) AS ll FROM kd_lm_wn WHERE t = -1
