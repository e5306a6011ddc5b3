-- label_model_posteriors: P(true label | teacher outputs) under the latest label-model fit
-- (kdstore.labelmodel.fit_label_model), applied to every example of every split.
-- grain: one row per example (kd.examples, all splits) x label of the latest run's class prior.
-- Outputs are read as in the fit (sql/labelmodel/setup_obs_hard.sql / setup_obs_soft.sql, by the
-- run's `votes`), from the teachers the run fitted, with the current thresholds.
-- empty: an example none of those teachers covers gets the base distribution: the class
--   prior (abstain 'ignore' / 'propensity') or prior x P(all teachers abstain | label), normalised
--   ('observe'). No fitted run: no rows.
-- oracle: tests/oracles_labelmodel.py::posteriors
CREATE OR REPLACE VIEW kd.label_model_posteriors AS
WITH run AS (
    SELECT r.run_id, r.abstain, r.votes
    FROM kd.label_model_runs AS r
    WHERE r.run_id = (SELECT MAX(run_id) FROM kd.label_model_runs)
),
theta AS (
    SELECT a.teacher_id, a.true_label_id AS label_id, a.voted_label_id AS voted, LN(a.prob) AS lp
    FROM kd.label_model_accuracy AS a
    JOIN run ON run.run_id = a.run_id
),
teachers AS (
    SELECT t.teacher_id,
           t.output_type,
           COALESCE(t.threshold, (SELECT s.value FROM kd.settings AS s WHERE s.name = 'threshold')) AS threshold
    FROM kd.teachers AS t
    WHERE t.teacher_id IN (SELECT teacher_id FROM theta)
),
top AS (
    SELECT s.teacher_id,
           s.example_id,
           t.output_type,
           t.threshold,
           array_position(s.scores, list_max(s.scores)) - 1 AS output_index,
           list_max(s.scores) AS score
    FROM kd.scores AS s
    JOIN teachers AS t ON t.teacher_id = s.teacher_id
),
hard AS (
    SELECT top.example_id, top.teacher_id,
           CASE WHEN top.output_type IN ('binary', 'multilabel') AND top.score < top.threshold THEN -2
                ELSE tl.label_id END AS voted,
           1.0 AS w
    FROM top
    JOIN kd.teacher_labels AS tl ON tl.teacher_id = top.teacher_id AND tl.output_index = top.output_index
    WHERE top.score IS NOT NULL
),
multi AS (
    SELECT o.example_id, o.teacher_id, o.label_id AS voted,
           GREATEST(CAST(o.score AS DOUBLE), 0.0)
           / NULLIF(SUM(GREATEST(CAST(o.score AS DOUBLE), 0.0)) OVER (PARTITION BY o.teacher_id, o.example_id), 0.0) AS w
    FROM kd.outputs AS o
    JOIN teachers AS t ON t.teacher_id = o.teacher_id
    WHERE t.output_type IN ('vote', 'multiclass')
),
soft AS (
    SELECT example_id, teacher_id, voted, w FROM multi WHERE w > 0
    UNION ALL
    SELECT top.example_id, top.teacher_id, tl.label_id AS voted, LEAST(GREATEST(CAST(top.score AS DOUBLE), 0.0), 1.0) AS w
    FROM top
    JOIN kd.teacher_labels AS tl ON tl.teacher_id = top.teacher_id AND tl.output_index = top.output_index
    WHERE top.output_type = 'binary' AND top.score > 0
    UNION ALL
    SELECT top.example_id, top.teacher_id, -2 AS voted, 1.0 - LEAST(GREATEST(CAST(top.score AS DOUBLE), 0.0), 1.0) AS w
    FROM top
    WHERE top.output_type = 'binary' AND top.score < 1
    UNION ALL
    SELECT example_id, teacher_id, voted, w FROM hard
    WHERE teacher_id IN (SELECT teacher_id FROM teachers WHERE output_type = 'multilabel')
),
obs AS (
    SELECT hard.* FROM hard CROSS JOIN run WHERE run.votes = 'hard'
    UNION ALL
    SELECT soft.* FROM soft CROSS JOIN run WHERE run.votes = 'soft'
),
evidence AS (
    SELECT th.teacher_id, th.label_id, th.voted,
           th.lp - CASE WHEN run.abstain = 'observe' THEN ab.lp ELSE 0.0 END AS x
    FROM theta AS th
    CROSS JOIN run
    LEFT JOIN theta AS ab ON ab.teacher_id = th.teacher_id AND ab.label_id = th.label_id AND ab.voted = -1
    WHERE th.voted <> -1
),
base AS (
    SELECT p.label_id,
           LN(p.prior) + CASE WHEN run.abstain = 'observe' THEN COALESCE(a.s, 0.0) ELSE 0.0 END AS base
    FROM kd.label_model_priors AS p
    JOIN run ON run.run_id = p.run_id
    LEFT JOIN (SELECT label_id, SUM(lp) AS s FROM theta WHERE voted = -1 GROUP BY label_id) AS a
      ON a.label_id = p.label_id
),
votes AS (
    SELECT o.example_id, ev.label_id, SUM(o.w * ev.x) AS s
    FROM obs AS o
    JOIN evidence AS ev ON ev.teacher_id = o.teacher_id AND ev.voted = o.voted
    GROUP BY o.example_id, ev.label_id
),
scores AS (
    SELECT e.example_id, e.split, b.label_id, b.base + COALESCE(v.s, 0.0) AS s
    FROM kd.examples AS e
    CROSS JOIN base AS b
    LEFT JOIN votes AS v ON v.example_id = e.example_id AND v.label_id = b.label_id
),
mx AS (SELECT example_id, MAX(s) AS mx FROM scores GROUP BY example_id)
SELECT sc.example_id,
       sc.split,
       sc.label_id,
       EXP(sc.s - mx.mx) / SUM(EXP(sc.s - mx.mx)) OVER (PARTITION BY sc.example_id) AS posterior,
       (SELECT run_id FROM run) AS run_id
FROM scores AS sc
JOIN mx ON mx.example_id = sc.example_id
