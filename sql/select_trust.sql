-- kd.select_trust: outputs whose trust (kd.trusted_outputs.p_correct) is >= 'trust_threshold';
-- target = trust-weighted average of their scores. Weight of an output w = p_correct (setting
-- 'trust_weighting' = 0) or its log-odds ln(p / (1 - p)) (= 1); outputs with w <= 0 are dropped.
-- Grain: one row per example x label (non-valid examples) with at least one trusted output.
-- value = sum(w * score) / sum(w); evidence = sum(w * score); weight = mean p_correct of the
-- contributing outputs; teacher_id = the contributing teacher with the highest p_correct (ties: smallest id).
-- Empty-group rule: no trusted output -> no row. Oracle: tests/oracles_select.py::policy.
CREATE OR REPLACE VIEW kd.select_trust AS
WITH cfg AS (
    SELECT max(value) FILTER (WHERE name = 'trust_threshold') AS thr,
           max(value) FILTER (WHERE name = 'trust_weighting') AS mode
    FROM kd.settings
),
t AS (
    SELECT o.teacher_id, o.example_id, o.split, o.label_id, o.score, o.p_correct,
           CASE WHEN cfg.mode = 1
                THEN ln(least(o.p_correct, 1.0 - 1e-6) / (1.0 - least(o.p_correct, 1.0 - 1e-6)))
                ELSE o.p_correct END AS w
    FROM kd.trusted_outputs AS o CROSS JOIN cfg
    WHERE o.split <> 'valid' AND o.p_correct >= cfg.thr
)
SELECT example_id,
       min(split) AS split,
       label_id,
       sum(w * score) / sum(w) AS value,
       sum(w * score) AS evidence,
       avg(p_correct) AS weight,
       first(teacher_id ORDER BY p_correct DESC, teacher_id) AS teacher_id,
       'trust' AS rule
FROM t
WHERE w > 0
GROUP BY example_id, label_id;
