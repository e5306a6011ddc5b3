-- select_until_covered: per label (and slice key) add teachers best-first (kd.select_ranking.rank)
-- until at least 'min_targets' TRAIN examples have a confident target for the label.
-- grain: one row per example x label (non-valid examples) where a selected teacher has an output.
-- empty: a label without a qualified teacher gets no rows.
-- rule: confident = a positive decision with score >= 'confident_threshold' by a teacher added so far;
--   a label that never gets there uses every ranked teacher; only train examples are counted (test
--   outputs never influence the cut); targets = metric-weighted average, as kd.select_experts.
-- oracle: tests/oracles_select.py::policy
CREATE OR REPLACE VIEW kd.select_until_covered AS
WITH cfg AS (
    SELECT max(value) FILTER (WHERE name = 'min_targets') AS n_min,
           max(value) FILTER (WHERE name = 'confident_threshold') AS conf
    FROM kd.settings
),
c AS (SELECT * FROM kd.select_candidates),
firsts AS (
    SELECT c.example_id, c.label_id, c.slice_key, min(c.rank) AS first_rank
    FROM c CROSS JOIN cfg
    WHERE c.split = 'train' AND c.positive AND c.score >= cfg.conf
    GROUP BY c.example_id, c.label_id, c.slice_key
),
hist AS (
    SELECT label_id, slice_key, first_rank, count(*) AS n FROM firsts GROUP BY label_id, slice_key, first_rank
),
cum AS (
    SELECT *, sum(n) OVER (PARTITION BY label_id, slice_key ORDER BY first_rank) AS covered FROM hist
),
reach AS (
    SELECT label_id, slice_key, min(first_rank) AS k
    FROM cum CROSS JOIN cfg WHERE covered >= cfg.n_min
    GROUP BY label_id, slice_key
),
sel AS (
    SELECT c.example_id, c.split, c.label_id, c.teacher_id, c.metric, c.score,
           row_number() OVER (PARTITION BY c.example_id, c.label_id ORDER BY c.metric DESC, c.teacher_id) AS rn
    FROM c
    LEFT JOIN reach AS k ON k.label_id = c.label_id AND k.slice_key IS NOT DISTINCT FROM c.slice_key
    WHERE k.k IS NULL OR c.rank <= k.k
)
SELECT example_id,
       min(split) AS split,
       label_id,
       sum(metric * score) / sum(metric) AS value,
       sum(metric * score) AS evidence,
       1.0 AS weight,
       max(CASE WHEN rn = 1 THEN teacher_id END) AS teacher_id,
       'until_covered' AS rule
FROM sel
GROUP BY example_id, label_id;
