-- teacher_slots: where each teacher's outputs go in the consensus pages.
-- grain: one row per teacher x label of kd.teacher_labels, for the teachers that enter the
--   consensus (output_type binary, multilabel, multiclass or vote).
-- empty: regression and embedding teachers have no rows.
-- rule: labels are ranked by label_id (label_rank 0, 1, ...); page = label_rank // 8 and
--   slot = label_rank % 8. The consensus is computed per example x page with one column per slot,
--   so the engine groups teacher rows (one FLOAT[] each) instead of single outputs: 8 labels per
--   group key instead of 1 (see docs/design.md).
-- oracle: tests/oracles.py::teacher_slots
CREATE OR REPLACE VIEW kd.teacher_slots AS
WITH lr AS (
    SELECT label_id, row_number() OVER (ORDER BY label_id) - 1 AS label_rank
    FROM kd.labels
)
SELECT
    tl.teacher_id,
    tl.label_id,
    tl.output_index,
    lr.label_rank,
    lr.label_rank // 8 AS page,
    lr.label_rank % 8 AS slot
FROM kd.teacher_labels AS tl
JOIN kd.teachers AS t ON t.teacher_id = tl.teacher_id
JOIN lr ON lr.label_id = tl.label_id
WHERE t.output_type IN ('binary', 'multilabel', 'multiclass', 'vote');
