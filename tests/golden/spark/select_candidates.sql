CREATE OR REPLACE VIEW kd.select_candidates AS
WITH sliced AS (
  SELECT DISTINCT
    label_id,
    slice_key
  FROM kd.select_ranking
  WHERE
    NOT slice_key IS NULL
), d AS (
  SELECT
    d.*,
    sl.slice_key
  FROM kd.select_decisions AS d
  LEFT JOIN sliced AS sl
    ON sl.label_id = d.label_id AND sl.slice_key = d.slice
  WHERE
    d.split <> 'valid'
)
SELECT
  d.teacher_id,
  d.example_id,
  d.split,
  d.label_id,
  d.score,
  d.positive,
  d.slice_key,
  r.metric,
  r.rank,
  r.is_best,
  r.is_expert
FROM d
JOIN kd.select_ranking AS r
  ON r.teacher_id = d.teacher_id
  AND r.label_id = d.label_id
  AND r.slice_key IS NOT DISTINCT FROM d.slice_key;
