-- The teachers of one fit (kd_lm_selected holds their ids): output type, decision threshold and
-- whether a "none of my labels" symbol (-2) exists (binary / multilabel teachers).
CREATE OR REPLACE TEMP TABLE kd_lm_teachers AS
SELECT t.teacher_id,
       t.output_type,
       COALESCE(t.threshold, (SELECT s.value FROM kd.settings AS s WHERE s.name = 'threshold')) AS threshold,
       t.output_type IN ('binary', 'multilabel') AS has_none
FROM kd.teachers AS t
WHERE t.teacher_id IN (SELECT teacher_id FROM kd_lm_selected)
