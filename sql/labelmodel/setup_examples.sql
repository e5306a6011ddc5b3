-- The examples of one fit: every example of the chosen splits (kd_lm_splits).
CREATE OR REPLACE TEMP TABLE kd_lm_x AS
SELECT e.example_id FROM kd.examples AS e WHERE e.split IN (SELECT split FROM kd_lm_splits)
