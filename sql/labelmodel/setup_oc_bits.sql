-- Grouped one-coin path: the fitted teachers' labels with one bit per teacher (bit_value = 2^rank,
-- rank by teacher id; the teachers voting the same label on an example are one BIGINT mask) and
-- the label's rank among the classes (0..K-1).
CREATE OR REPLACE TEMP TABLE kd_lm_tl AS
WITH bits AS (
    SELECT teacher_id,
           CAST(1 AS BIGINT) << CAST(ROW_NUMBER() OVER (ORDER BY teacher_id) - 1 AS INTEGER) AS bit_value
    FROM kd_lm_teachers
),
ranks AS (
    SELECT label_id, CAST(ROW_NUMBER() OVER (ORDER BY label_id) - 1 AS INTEGER) AS label_rank FROM kd_lm_classes
)
SELECT tl.teacher_id, tl.output_index, tl.label_id, r.label_rank, b.bit_value
FROM kd.teacher_labels AS tl
JOIN bits AS b ON b.teacher_id = tl.teacher_id
JOIN ranks AS r ON r.label_id = tl.label_id
