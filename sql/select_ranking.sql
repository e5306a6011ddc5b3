-- select_ranking: the qualified teachers of each label (and slice key), ranked by kd.select_metrics.metric.
-- grain: one row per qualified teacher x label x slice_key (slice_key NULL = all valid examples);
--   slice rows only when the setting 'slice_experts' is 1.
-- empty: a label with no qualified teacher has no rows.
-- rule: rank 1, 2, ... by metric descending, ties to the smaller teacher_id; is_best = rank 1;
--   is_expert = metric >= best metric - 'expert_margin'.
-- oracle: tests/oracles_select.py::ranking
CREATE OR REPLACE VIEW kd.select_ranking AS
WITH cfg AS (
    SELECT max(value) FILTER (WHERE name = 'expert_margin') AS margin,
           max(value) FILTER (WHERE name = 'slice_experts') AS slice_experts
    FROM kd.settings
),
q AS (
    SELECT m.teacher_id, m.label_id, m.slice_key, m.metric
    FROM kd.select_metrics AS m CROSS JOIN cfg
    WHERE m.qualified AND m.metric IS NOT NULL AND (m.slice_key IS NULL OR cfg.slice_experts = 1)
),
r AS (
    SELECT q.*,
           row_number() OVER (PARTITION BY label_id, slice_key ORDER BY metric DESC, teacher_id) AS rank,
           max(metric) OVER (PARTITION BY label_id, slice_key) AS best_metric
    FROM q
)
SELECT r.teacher_id, r.label_id, r.slice_key, r.metric, r.rank, r.best_metric,
       r.rank = 1 AS is_best,
       r.metric >= r.best_metric - cfg.margin AS is_expert
FROM r CROSS JOIN cfg;
