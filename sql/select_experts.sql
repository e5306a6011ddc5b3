-- select_experts: every teacher within 'expert_margin' of the label's best (kd.select_ranking.is_expert);
-- target = metric-weighted average of their scores.
-- grain: one row per example x label (non-valid examples) where at least one expert has an output.
-- empty: no expert output -> no row.
-- rule: value = sum(metric * score) / sum(metric) (multilabel target); evidence = sum(metric * score)
--   (multiclass: a metric-weighted vote normalised per example by kdstore.select); weight = 1;
--   teacher_id = the contributing expert with the highest metric (ties: smallest id).
-- oracle: tests/oracles_select.py::policy
CREATE OR REPLACE VIEW kd.select_experts AS
WITH c AS (
    SELECT example_id, split, label_id, teacher_id, metric, score,
           row_number() OVER (PARTITION BY example_id, label_id ORDER BY metric DESC, teacher_id) AS rn
    FROM kd.select_candidates
    WHERE is_expert
)
SELECT example_id,
       min(split) AS split,
       label_id,
       sum(metric * score) / sum(metric) AS value,
       sum(metric * score) AS evidence,
       1.0 AS weight,
       max(CASE WHEN rn = 1 THEN teacher_id END) AS teacher_id,
       'experts' AS rule
FROM c
GROUP BY example_id, label_id;
