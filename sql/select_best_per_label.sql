-- select_best_per_label: the patent's claim: per label (and effective slice key) the best-ranked
-- teacher; all of its outputs for that label become targets.
-- grain: one row per example x label (non-valid examples) where that teacher has an output.
-- empty: a label without a qualified teacher gets no rows.
-- rule: value = its score (multilabel target); evidence = metric * score (kdstore.select normalises
--   evidence per example into multiclass targets); weight = 1; teacher_id = the best teacher.
-- oracle: tests/oracles_select.py::policy
CREATE OR REPLACE VIEW kd.select_best_per_label AS
SELECT example_id, split, label_id,
       CAST(score AS DOUBLE) AS value,
       metric * score AS evidence,
       1.0 AS weight,
       teacher_id,
       'best_per_label' AS rule
FROM kd.select_candidates
WHERE is_best;
