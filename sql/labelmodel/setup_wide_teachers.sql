-- Wide class-conditional path: each fitted teacher's column number t (0..M-1, by teacher id) and
-- each class's column number k (0..K-1, by label id); the votes and parameters are columns v<t>, l<k>.
CREATE OR REPLACE TEMP TABLE kd_lm_wteach AS
SELECT teacher_id, CAST(ROW_NUMBER() OVER (ORDER BY teacher_id) - 1 AS INTEGER) AS t FROM kd_lm_teachers
