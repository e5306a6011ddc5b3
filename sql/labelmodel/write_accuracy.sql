INSERT INTO kd.label_model_accuracy SELECT $run_id, teacher_id, label_id, voted, p FROM kd_lm_theta
