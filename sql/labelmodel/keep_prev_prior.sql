CREATE OR REPLACE TEMP TABLE kd_lm_prior_prev AS SELECT * FROM kd_lm_prior
