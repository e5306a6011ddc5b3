CREATE OR REPLACE VIEW kd.labels_without_expert AS
WITH e AS (
  SELECT
    label_id,
    COUNT(*) AS n_teachers,
    COUNT(*) FILTER(WHERE
      support >= min_support) AS n_supported,
    COUNT(*) FILTER(WHERE
      support >= min_support AND recall >= min_recall) AS n_recalled,
    COUNT(*) FILTER(WHERE
      qualifies) AS n_qualified,
    MAX(support) AS max_support
  FROM (
    SELECT
      x.label_id,
      x.support,
      x.recall,
      x.qualifies,
      p.min_support,
      p.min_recall
    FROM kd.label_experts AS x
    CROSS JOIN kd.params AS p
  ) AS y
  GROUP BY
    label_id
)
SELECT
  l.label_id,
  l.name AS label,
  COALESCE(e.n_teachers, 0) AS n_teachers,
  e.max_support,
  CASE
    WHEN COALESCE(e.n_teachers, 0) = 0
    THEN 'no teacher has this label'
    WHEN e.n_supported = 0
    THEN 'no teacher reaches min_support'
    WHEN e.n_recalled = 0
    THEN 'no teacher reaches min_recall'
    ELSE 'metric undefined'
  END AS reason
FROM kd.labels AS l
LEFT JOIN e
  ON e.label_id = l.label_id
WHERE
  COALESCE(e.n_qualified, 0) = 0;
