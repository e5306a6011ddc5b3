-- select_candidates: every train/test output of a ranked teacher, with its standing for the label.
-- grain: one row per output (teacher x example x label) on a non-valid example whose teacher is in
--   kd.select_ranking for the label under the example's effective slice key.
-- empty: none (row level); valid examples are never candidates (they judged the teachers).
-- rule: effective slice key = the example's slice when kd.select_ranking has rows for (label, slice),
--   else NULL (the label-level ranking).
-- oracle: tests/oracles_select.py::candidates
CREATE OR REPLACE VIEW kd.select_candidates AS
WITH sliced AS (SELECT DISTINCT label_id, slice_key FROM kd.select_ranking WHERE slice_key IS NOT NULL),
d AS (
    SELECT d.*, sl.slice_key
    FROM kd.select_decisions AS d
    LEFT JOIN sliced AS sl ON sl.label_id = d.label_id AND sl.slice_key = d.slice
    WHERE d.split <> 'valid'
)
SELECT d.teacher_id, d.example_id, d.split, d.label_id, d.score, d.positive, d.slice_key,
       r.metric, r.rank, r.is_best, r.is_expert
FROM d
JOIN kd.select_ranking AS r
  ON r.teacher_id = d.teacher_id AND r.label_id = d.label_id
 AND r.slice_key IS NOT DISTINCT FROM d.slice_key;
