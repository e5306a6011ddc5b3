CREATE OR REPLACE VIEW kd.select_until_covered AS
WITH cfg AS (
  SELECT
    MAX(value) FILTER(WHERE
      name = 'min_targets') AS n_min,
    MAX(value) FILTER(WHERE
      name = 'confident_threshold') AS conf
  FROM kd.settings
), c AS (
  SELECT
    *
  FROM kd.select_candidates
), firsts AS (
  SELECT
    c.example_id,
    c.label_id,
    c.slice_key,
    MIN(c.rank) AS first_rank
  FROM c
  CROSS JOIN cfg
  WHERE
    c.split = 'train' AND c.positive AND c.score >= cfg.conf
  GROUP BY
    c.example_id,
    c.label_id,
    c.slice_key
), hist AS (
  SELECT
    label_id,
    slice_key,
    first_rank,
    COUNT(*) AS n
  FROM firsts
  GROUP BY
    label_id,
    slice_key,
    first_rank
), cum AS (
  SELECT
    *,
    SUM(n) OVER (PARTITION BY label_id, slice_key ORDER BY first_rank NULLS LAST) AS covered
  FROM hist
), reach AS (
  SELECT
    label_id,
    slice_key,
    MIN(first_rank) AS k
  FROM cum
  CROSS JOIN cfg
  WHERE
    covered >= cfg.n_min
  GROUP BY
    label_id,
    slice_key
), sel AS (
  SELECT
    c.example_id,
    c.split,
    c.label_id,
    c.teacher_id,
    c.metric,
    c.score,
    ROW_NUMBER() OVER (
      PARTITION BY c.example_id, c.label_id
      ORDER BY c.metric DESC, c.teacher_id NULLS LAST
    ) AS rn
  FROM c
  LEFT JOIN reach AS k
    ON k.label_id = c.label_id AND k.slice_key IS NOT DISTINCT FROM c.slice_key
  WHERE
    k.k IS NULL OR c.rank <= k.k
)
SELECT
  example_id,
  MIN(split) AS split,
  label_id,
  SUM(metric * score) / SUM(metric) AS value,
  SUM(metric * score) AS evidence,
  CAST(1.0 AS DOUBLE) AS weight,
  MAX(CASE WHEN rn = 1 THEN teacher_id END) AS teacher_id,
  'until_covered' AS rule
FROM sel
GROUP BY
  example_id,
  label_id;
