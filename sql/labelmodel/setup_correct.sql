-- One-coin model: the symbol a correct teacher outputs for each true label: the label itself when it
-- is one of the teacher's labels, -2 (none) for other labels of a binary/multilabel teacher; no row
-- when a teacher has no correct output for that label (it then outputs uniformly at random).
CREATE OR REPLACE TEMP TABLE kd_lm_correct AS
SELECT t.teacher_id, c.label_id,
       CASE WHEN tl.label_id IS NOT NULL THEN c.label_id ELSE -2 END AS voted
FROM kd_lm_teachers AS t
CROSS JOIN kd_lm_classes AS c
LEFT JOIN kd.teacher_labels AS tl ON tl.teacher_id = t.teacher_id AND tl.label_id = c.label_id
WHERE tl.label_id IS NOT NULL OR t.has_none
