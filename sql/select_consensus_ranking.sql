-- select_consensus_ranking: label-free judgement of each teacher x label (no gold is read).
-- grain: one row per qualified teacher x label.
-- empty: n_eval = 0 -> not qualified (no row).
-- rule: for each positive decision of a teacher on a label at a train or valid example where at least
--   one OTHER teacher has an output on that label, agreement = the share of those others that also
--   decide positive (leave-one-out consensus); metric = (sum of agreements + 1) / (n_eval + 2)
--   (Laplace); qualified = n_eval >= 'min_support'; rank / is_best / is_expert as kd.select_ranking.
--   Deterministic: the agreements are summed exactly (each rounded to 1e-18 first).
--   Test outputs are never read.
-- oracle: tests/oracles_select.py::consensus_ranking
CREATE OR REPLACE VIEW kd.select_consensus_ranking AS
WITH cfg AS (
    SELECT max(value) FILTER (WHERE name = 'min_support') AS min_support,
           max(value) FILTER (WHERE name = 'expert_margin') AS margin
    FROM kd.settings
),
d AS (
    SELECT teacher_id, example_id, label_id, positive,
           count(*) OVER (PARTITION BY example_id, label_id) AS n,
           sum(CASE WHEN positive THEN 1 ELSE 0 END) OVER (PARTITION BY example_id, label_id) AS n_pos
    FROM kd.select_decisions
    WHERE split IN ('train', 'valid')
),
agg AS (
    SELECT teacher_id, label_id,
           count(*) AS n_eval,
           -- exact sum (DECIMAL) of the per-decision agreements: a DOUBLE sum's order, and so its last
           -- bits, change from run to run under parallel aggregation, and rank / is_expert compare it
           CAST(sum(CAST((n_pos - 1.0) / (n - 1.0) AS DECIMAL(38, 18))) AS DOUBLE) AS agree
    FROM d
    WHERE positive AND n > 1
    GROUP BY teacher_id, label_id
),
q AS (
    SELECT a.teacher_id, a.label_id, a.n_eval, a.agree / a.n_eval AS agreement,
           (a.agree + 1.0) / (a.n_eval + 2.0) AS metric
    FROM agg AS a CROSS JOIN cfg
    WHERE a.n_eval >= cfg.min_support
),
r AS (
    SELECT q.*,
           row_number() OVER (PARTITION BY label_id ORDER BY metric DESC, teacher_id) AS rank,
           max(metric) OVER (PARTITION BY label_id) AS best_metric
    FROM q
)
SELECT r.teacher_id, r.label_id, r.n_eval, r.agreement, r.metric, r.rank, r.best_metric,
       r.rank = 1 AS is_best,
       r.metric >= r.best_metric - cfg.margin AS is_expert
FROM r CROSS JOIN cfg;
