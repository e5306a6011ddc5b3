-- Wide class-conditional path: the column number k (0..K-1, by label id) of each class.
CREATE OR REPLACE TEMP TABLE kd_lm_wrank AS
SELECT label_id, CAST(ROW_NUMBER() OVER (ORDER BY label_id) - 1 AS INTEGER) AS k FROM kd_lm_classes
