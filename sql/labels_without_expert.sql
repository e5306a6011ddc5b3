-- labels_without_expert: the labels for which no teacher qualifies as an expert, and why.
-- grain: one row per label of kd.labels with no qualifying teacher in kd.label_experts
--   (including labels no teacher has at all).
-- empty: n_teachers = 0 and max_support NULL for a label no teacher has.
-- rule: reason = 'no teacher has this label' | 'no teacher reaches min_support' |
--   'no teacher reaches min_recall' | 'metric undefined' (checked in that order).
-- oracle: tests/oracles.py::labels_without_expert
CREATE OR REPLACE VIEW kd.labels_without_expert AS
WITH e AS (
    SELECT
        label_id,
        count(*) AS n_teachers,
        count(*) FILTER (WHERE support >= min_support) AS n_supported,
        count(*) FILTER (WHERE support >= min_support AND recall >= min_recall) AS n_recalled,
        count(*) FILTER (WHERE qualifies) AS n_qualified,
        max(support) AS max_support
    FROM (
        SELECT x.label_id, x.support, x.recall, x.qualifies, p.min_support, p.min_recall
        FROM kd.label_experts AS x
        CROSS JOIN kd.params AS p
    ) AS y
    GROUP BY label_id
)
SELECT
    l.label_id,
    l.name AS label,
    coalesce(e.n_teachers, 0) AS n_teachers,
    e.max_support,
    CASE
        WHEN coalesce(e.n_teachers, 0) = 0 THEN 'no teacher has this label'
        WHEN e.n_supported = 0 THEN 'no teacher reaches min_support'
        WHEN e.n_recalled = 0 THEN 'no teacher reaches min_recall'
        ELSE 'metric undefined'
    END AS reason
FROM kd.labels AS l
LEFT JOIN e ON e.label_id = l.label_id
WHERE coalesce(e.n_qualified, 0) = 0;
