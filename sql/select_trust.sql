-- select_trust: outputs whose trust (kd.trusted_outputs.p_correct) is >= 'trust_threshold';
-- target = trust-weighted average of their scores.
-- grain: one row per example x label (non-valid examples) with at least one trusted output.
-- empty: no trusted output -> no row.
-- rule: weight of an output w by 'trust_weighting': 0 p_correct; 1 log-odds ln(p / (1 - p)); 2 K-class
--   log-odds ln(p (K - 1) / (1 - p)), K = the teacher's number of labels for multiclass/vote teachers
--   (else 2), positive when the teacher beats a uniform guess; p clipped to 1 - 1e-6; w <= 0 dropped.
--   value = sum(w * score) / sum(w); evidence = sum(w * score); weight = mean p_correct of the
--   contributing outputs; teacher_id = the contributor with the largest w (ties: smallest id).
-- oracle: tests/oracles_select.py::policy
CREATE OR REPLACE VIEW kd.select_trust AS
WITH cfg AS (
    SELECT max(value) FILTER (WHERE name = 'trust_threshold') AS thr,
           max(value) FILTER (WHERE name = 'trust_weighting') AS mode
    FROM kd.settings
),
k AS (
    SELECT t.teacher_id,
           CASE WHEN t.output_type IN ('multiclass', 'vote') THEN greatest(count(tl.label_id), 2) ELSE 2 END AS k
    FROM kd.teachers AS t LEFT JOIN kd.teacher_labels AS tl ON tl.teacher_id = t.teacher_id
    GROUP BY t.teacher_id, t.output_type
),
t AS (
    SELECT o.teacher_id, o.example_id, o.split, o.label_id, o.score, o.p_correct,
           CASE WHEN cfg.mode = 0 THEN o.p_correct
                ELSE ln(least(o.p_correct, 1.0 - 1e-6) * (CASE WHEN cfg.mode = 2 THEN k.k - 1 ELSE 1 END)
                        / (1.0 - least(o.p_correct, 1.0 - 1e-6)))
           END AS w
    FROM kd.trusted_outputs AS o
    JOIN k ON k.teacher_id = o.teacher_id
    CROSS JOIN cfg
    WHERE o.split <> 'valid' AND o.p_correct >= cfg.thr
),
r AS (
    SELECT t.*, row_number() OVER (PARTITION BY example_id, label_id ORDER BY w DESC, teacher_id) AS rn
    FROM t
    WHERE w > 0
)
SELECT example_id,
       min(split) AS split,
       label_id,
       sum(w * score) / sum(w) AS value,
       sum(w * score) AS evidence,
       avg(p_correct) AS weight,
       max(CASE WHEN rn = 1 THEN teacher_id END) AS teacher_id,
       'trust' AS rule
FROM r
GROUP BY example_id, label_id;
