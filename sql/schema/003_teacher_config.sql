-- kdstore schema, version 3: how to run a teacher.
-- kd.teachers.config holds what kdstore needs to rebuild and run a model teacher (kdstore.teachers):
-- output tensor, embedding tensor, input name -> feature column mapping, logits or probabilities,
-- the recorded input signature (for store.teachers.compatible) and HTTP transport settings.
-- NULL for stored-predictions teachers.
ALTER TABLE kd.teachers ADD COLUMN config JSON;
