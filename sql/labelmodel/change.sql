-- Largest absolute change of any parameter since the previous iteration.
SELECT GREATEST(
    COALESCE((
        SELECT MAX(ABS(a.p - b.p))
        FROM kd_lm_theta AS a
        JOIN kd_lm_theta_prev AS b ON b.teacher_id = a.teacher_id AND b.label_id = a.label_id AND b.voted = a.voted
    ), 0.0),
    COALESCE((
        SELECT MAX(ABS(a.prior - b.prior))
        FROM kd_lm_prior AS a
        JOIN kd_lm_prior_prev AS b ON b.label_id = a.label_id
    ), 0.0)
) AS change
