-- kd.select_best_per_label: the patent's claim. For each label (and effective slice key) the teacher
-- ranked first by kd.select_ranking; all of its outputs for that label become targets.
-- Grain: one row per example x label (non-valid examples) where that best teacher has an output.
-- value = the best teacher's score (multilabel target); evidence = metric * score (multiclass targets are
-- evidence normalised per example by kdstore.select); weight = 1; teacher_id = the best teacher.
-- Empty-group rule: a label without a qualified teacher gets no rows. Oracle: tests/oracles_select.py::policy.
CREATE OR REPLACE VIEW kd.select_best_per_label AS
SELECT example_id, split, label_id,
       CAST(score AS DOUBLE) AS value,
       metric * score AS evidence,
       1.0 AS weight,
       teacher_id,
       'best_per_label' AS rule
FROM kd.select_candidates
WHERE is_best;
