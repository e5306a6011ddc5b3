-- Remember this iteration's parameters for the convergence test.
CREATE OR REPLACE TEMP TABLE kd_lm_theta_prev AS SELECT * FROM kd_lm_theta
