-- label_experts: for every label, the teachers that have it, ranked by the chosen metric.
-- grain: one row per label x teacher that has the label (a row of kd.label_metrics).
-- empty: a teacher qualifies iff support >= min_support, recall >= min_recall and its metric is
--   not NULL; rank, is_best and within_margin are NULL / false for teachers that do not
--   qualify. A label no teacher qualifies for has no is_best row: kd.labels_without_expert lists
--   it (reported, not hidden).
-- rule: metric = the label_metrics column chosen by the 'expert_metric' setting (0 precision_lb,
--   the default; 1 recall_lb; 2 f1; 3 precision; 4 recall; 5 accuracy). Qualifying teachers are
--   ranked by metric descending, ties -> the lowest teacher_id; rank 1 is the best;
--   within_margin = qualifies and metric >= best_metric - expert_margin.
-- oracle: tests/oracles.py::label_experts
CREATE OR REPLACE VIEW kd.label_experts AS
WITH m AS (
    SELECT
        lm.label_id,
        lm.label,
        lm.teacher_id,
        lm.teacher,
        CASE CAST(p.expert_metric AS INTEGER)
            WHEN 0 THEN 'precision_lb' WHEN 1 THEN 'recall_lb' WHEN 2 THEN 'f1'
            WHEN 3 THEN 'precision' WHEN 4 THEN 'recall' WHEN 5 THEN 'accuracy'
        END AS metric_name,
        CASE CAST(p.expert_metric AS INTEGER)
            WHEN 0 THEN lm.precision_lb WHEN 1 THEN lm.recall_lb WHEN 2 THEN lm.f1
            WHEN 3 THEN lm.precision WHEN 4 THEN lm.recall WHEN 5 THEN lm.accuracy
        END AS metric,
        lm.support,
        lm.recall,
        p.min_support,
        p.min_recall,
        p.expert_margin
    FROM kd.label_metrics AS lm
    CROSS JOIN kd.params AS p
),
q AS (
    SELECT
        m.*,
        coalesce(m.support >= m.min_support AND m.recall >= m.min_recall AND m.metric IS NOT NULL, FALSE) AS qualifies
    FROM m
),
r AS (
    SELECT
        q.*,
        row_number() OVER (PARTITION BY q.label_id ORDER BY q.qualifies DESC, q.metric DESC, q.teacher_id) AS position,
        max(CASE WHEN q.qualifies THEN q.metric END) OVER (PARTITION BY q.label_id) AS best_metric
    FROM q
)
SELECT
    r.label_id,
    r.label,
    r.teacher_id,
    r.teacher,
    r.metric_name,
    r.metric,
    r.support,
    r.recall,
    r.qualifies,
    CASE WHEN r.qualifies THEN r.position END AS rank,
    r.qualifies AND r.position = 1 AS is_best,
    r.qualifies AND r.metric >= r.best_metric - r.expert_margin AS within_margin,
    r.best_metric
FROM r;
