-- trust_calibration: per teacher, how good its current trust scores are on the VALID split
-- (out-of-fold there).
-- grain: one row per teacher with at least one valid trust row.
-- empty: auc is NULL when all rows are correct or all wrong.
-- rule: correct as in kd.trust_reliability; brier = mean (p_correct - correct)^2; auc = Mann-Whitney
--   rank statistic (sum of the correct rows' average ranks - n1 (n1 + 1) / 2) / (n1 n0), ties get
--   their average rank; model_id = the largest model id among its rows.
-- oracle: tests/oracles_select.py::calibration
CREATE OR REPLACE VIEW kd.trust_calibration AS
WITH lab AS (
    SELECT tr.teacher_id, tr.model_id, tr.p_correct,
           CAST(d.positive = (g.example_id IS NOT NULL) AS INTEGER) AS correct
    FROM kd.trust AS tr
    JOIN kd.select_decisions AS d
      ON d.teacher_id = tr.teacher_id AND d.example_id = tr.example_id AND d.label_id = tr.label_id
    LEFT JOIN kd.gold AS g ON g.example_id = tr.example_id AND g.label_id = tr.label_id
    WHERE d.split = 'valid'
),
ranked AS (
    SELECT *,
           rank() OVER (PARTITION BY teacher_id ORDER BY p_correct)
           + (count(*) OVER (PARTITION BY teacher_id, p_correct) - 1) / 2.0 AS avg_rank
    FROM lab
),
agg AS (
    SELECT teacher_id,
           max(model_id) AS model_id,
           count(*) AS n,
           CAST(sum(correct) AS BIGINT) AS n_correct,
           avg((p_correct - correct) * (p_correct - correct)) AS brier,
           sum(avg_rank) FILTER (WHERE correct = 1) AS rank_sum
    FROM ranked
    GROUP BY teacher_id
)
SELECT teacher_id, model_id, n, n_correct, brier,
       (rank_sum - n_correct * (n_correct + 1) / 2.0) / nullif(n_correct * (n - n_correct), 0) AS auc
FROM agg;
