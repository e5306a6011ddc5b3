-- Grouped one-coin path: one bit per teacher of the fit (bit_value = 2^rank, rank by teacher id),
-- so that the teachers voting the same label on an example are one BIGINT mask.
CREATE OR REPLACE TEMP TABLE kd_lm_bits AS
SELECT t.teacher_id, CAST(1 AS BIGINT) << CAST(ROW_NUMBER() OVER (ORDER BY t.teacher_id) - 1 AS INTEGER) AS bit_value
FROM kd_lm_teachers AS t
