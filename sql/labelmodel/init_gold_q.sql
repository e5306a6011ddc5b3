-- Gold start: the posterior of a valid example is its gold label (split evenly over several).
CREATE OR REPLACE TEMP TABLE kd_lm_q AS
SELECT g.example_id, g.label_id, 1.0 / COUNT(*) OVER (PARTITION BY g.example_id) AS q
FROM kd.gold AS g
JOIN kd_lm_x AS x ON x.example_id = g.example_id
JOIN kd_lm_classes AS c ON c.label_id = g.label_id
