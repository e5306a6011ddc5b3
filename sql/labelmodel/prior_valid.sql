-- Fixed class prior from the valid split's gold labels: (count + beta) / (n + K beta).
CREATE OR REPLACE TEMP TABLE kd_lm_prior AS
WITH g AS (
    SELECT g.example_id, g.label_id, 1.0 / COUNT(*) OVER (PARTITION BY g.example_id) AS q
    FROM kd.gold AS g
    JOIN kd.examples AS e ON e.example_id = g.example_id
    JOIN kd_lm_classes AS c ON c.label_id = g.label_id
    WHERE e.split = 'valid'
),
m AS (SELECT label_id, SUM(q) AS m FROM g GROUP BY label_id),
n AS (SELECT COUNT(DISTINCT example_id) AS n FROM g),
k AS (SELECT COUNT(*) AS k FROM kd_lm_classes)
SELECT c.label_id, (COALESCE(m.m, 0.0) + $beta) / (n.n + $beta * k.k) AS prior
FROM kd_lm_classes AS c
CROSS JOIN n
CROSS JOIN k
LEFT JOIN m ON m.label_id = c.label_id
