-- The examples of the gold initialisation: valid examples with at least one gold label among the classes.
CREATE OR REPLACE TEMP TABLE kd_lm_x AS
SELECT DISTINCT g.example_id
FROM kd.gold AS g
JOIN kd.examples AS e ON e.example_id = g.example_id
JOIN kd_lm_classes AS c ON c.label_id = g.label_id
WHERE e.split = 'valid'
