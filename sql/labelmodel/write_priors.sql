INSERT INTO kd.label_model_priors SELECT $run_id, label_id, prior FROM kd_lm_prior
