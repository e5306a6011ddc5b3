-- select_consensus_experts: the label-free policy: experts per label by kd.select_consensus_ranking
-- (agreement with the other teachers, no gold); target = metric-weighted average of their scores.
-- grain: one row per example x label (non-valid examples) where at least one such expert has an output.
-- empty: no expert output -> no row.
-- rule: value / evidence / weight / teacher_id as kd.select_experts.
-- oracle: tests/oracles_select.py::policy
CREATE OR REPLACE VIEW kd.select_consensus_experts AS
WITH c AS (
    SELECT d.example_id, d.split, d.label_id, d.teacher_id, d.score, r.metric,
           row_number() OVER (PARTITION BY d.example_id, d.label_id ORDER BY r.metric DESC, d.teacher_id) AS rn
    FROM kd.select_decisions AS d
    JOIN kd.select_consensus_ranking AS r ON r.teacher_id = d.teacher_id AND r.label_id = d.label_id
    WHERE d.split <> 'valid' AND r.is_expert
)
SELECT example_id,
       min(split) AS split,
       label_id,
       -- exact (DECIMAL) sums, so the value does not change in its last bits from run to run
       CAST(sum(CAST(metric * score AS DECIMAL(38, 18))) AS DOUBLE)
           / CAST(sum(CAST(metric AS DECIMAL(38, 18))) AS DOUBLE) AS value,
       CAST(sum(CAST(metric * score AS DECIMAL(38, 18))) AS DOUBLE) AS evidence,
       1.0 AS weight,
       max(CASE WHEN rn = 1 THEN teacher_id END) AS teacher_id,
       'consensus_experts' AS rule
FROM c
GROUP BY example_id, label_id;
