-- select_metrics: how good each teacher is on each of its labels, judged on the VALID split only.
-- grain: one row per (teacher, label) of kd.teacher_labels x slice_key; slice_key NULL = all valid
--   examples, else one row per non-NULL kd.examples.slice seen in valid.
-- empty: a ratio with a zero denominator is NULL (not 0); a NULL metric is not qualified.
-- rule: tp/fp count positive decisions (kd.select_decisions) against kd.gold (closed world); support =
--   gold positives of the label in the key's valid examples (abstains are misses: recall = tp / support);
--   precision_lb = Wilson lower bound of precision, z = two-sided normal quantile of 'confidence'
--   (Abramowitz-Stegun 26.2.23, |error| < 4.5e-4); metric = by 'select_metric': 0 precision_lb, 1 f1,
--   2 precision, 3 recall; qualified = support >= 'min_support' AND tp > 0 AND recall >= 'min_recall'.
-- oracle: tests/oracles_select.py::metrics
CREATE OR REPLACE VIEW kd.select_metrics AS
WITH cfg AS (
    SELECT max(value) FILTER (WHERE name = 'confidence') AS confidence,
           max(value) FILTER (WHERE name = 'select_metric') AS metric_code,
           max(value) FILTER (WHERE name = 'min_support') AS min_support,
           max(value) FILTER (WHERE name = 'min_recall') AS min_recall
    FROM kd.settings
),
tail AS (
    SELECT *, sqrt(-2.0 * ln(greatest((1.0 - confidence) / 2.0, 1e-300))) AS t FROM cfg
),
zq AS (
    SELECT *, t - (2.515517 + 0.802853 * t + 0.010328 * t * t)
                  / (1.0 + 1.432788 * t + 0.189269 * t * t + 0.001308 * t * t * t) AS z
    FROM tail
),
keyed AS (
    SELECT example_id, CAST(NULL AS VARCHAR) AS slice_key FROM kd.examples WHERE split = 'valid'
    UNION ALL
    SELECT example_id, slice FROM kd.examples WHERE split = 'valid' AND slice IS NOT NULL
),
keys AS (SELECT DISTINCT slice_key FROM keyed),
vgold AS (
    SELECT DISTINCT g.example_id, g.label_id
    FROM kd.gold AS g JOIN kd.examples AS e ON e.example_id = g.example_id AND e.split = 'valid'
),
support AS (
    SELECT g.label_id, k.slice_key, count(*) AS support
    FROM vgold AS g JOIN keyed AS k ON k.example_id = g.example_id
    GROUP BY g.label_id, k.slice_key
),
counts AS (
    SELECT d.teacher_id, d.label_id, k.slice_key,
           count(*) AS n_out,
           count(*) FILTER (WHERE d.positive AND g.example_id IS NOT NULL) AS tp,
           count(*) FILTER (WHERE d.positive AND g.example_id IS NULL) AS fp
    FROM kd.select_decisions AS d
    JOIN keyed AS k ON k.example_id = d.example_id
    LEFT JOIN vgold AS g ON g.example_id = d.example_id AND g.label_id = d.label_id
    WHERE d.split = 'valid'
    GROUP BY d.teacher_id, d.label_id, k.slice_key
),
base AS (
    SELECT tl.teacher_id, tl.label_id, k.slice_key,
           coalesce(c.n_out, 0) AS n_out,
           coalesce(c.tp, 0) AS tp,
           coalesce(c.fp, 0) AS fp,
           coalesce(s.support, 0) AS support
    FROM (SELECT DISTINCT teacher_id, label_id FROM kd.teacher_labels) AS tl
    JOIN kd.teachers AS t ON t.teacher_id = tl.teacher_id
        AND t.output_type IN ('binary', 'multiclass', 'multilabel', 'vote')
    CROSS JOIN keys AS k
    LEFT JOIN counts AS c ON c.teacher_id = tl.teacher_id AND c.label_id = tl.label_id
        AND c.slice_key IS NOT DISTINCT FROM k.slice_key
    LEFT JOIN support AS s ON s.label_id = tl.label_id AND s.slice_key IS NOT DISTINCT FROM k.slice_key
),
m AS (
    SELECT b.*,
           b.support - b.tp AS fn,
           b.tp / nullif(b.tp + b.fp, 0) AS precision,
           b.tp / nullif(b.support, 0) AS recall,
           2.0 * b.tp / nullif(2 * b.tp + b.fp + (b.support - b.tp), 0) AS f1,
           CASE WHEN b.tp + b.fp > 0 THEN (
               b.tp / (b.tp + b.fp) + zq.z * zq.z / (2.0 * (b.tp + b.fp))
               - zq.z * sqrt((b.tp / (b.tp + b.fp)) * (1.0 - b.tp / (b.tp + b.fp)) / (b.tp + b.fp)
                             + zq.z * zq.z / (4.0 * (b.tp + b.fp) * (b.tp + b.fp)))
           ) / (1.0 + zq.z * zq.z / (b.tp + b.fp)) END AS precision_lb,
           zq.metric_code, zq.min_support, zq.min_recall
    FROM base AS b CROSS JOIN zq
)
SELECT teacher_id, label_id, slice_key, n_out, tp, fp, fn, support,
       precision, recall, f1, precision_lb,
       CASE CAST(metric_code AS INTEGER)
           WHEN 0 THEN precision_lb WHEN 1 THEN f1 WHEN 2 THEN precision WHEN 3 THEN recall
       END AS metric,
       coalesce(support >= min_support AND tp > 0 AND recall >= min_recall, false) AS qualified
FROM m;
