-- M-step, one-coin: one accuracy a(t) per teacher, a = (correct + alpha) / (total + alpha * |symbols|),
-- where correct = mass on the correct symbol of each true class and total = mass of the classes that
-- have a correct symbol. theta = a on the correct symbol, (1 - a) / (|symbols| - 1) on each other
-- one, uniform 1 / |symbols| for a class the teacher has no correct output for.
CREATE OR REPLACE TEMP TABLE kd_lm_theta AS
WITH acc AS (
    SELECT n.teacher_id,
           SUM(CASE WHEN c.voted = n.voted THEN n.n ELSE 0.0 END) AS correct,
           SUM(CASE WHEN c.voted IS NOT NULL THEN n.n ELSE 0.0 END) AS total
    FROM kd_lm_n AS n
    LEFT JOIN kd_lm_correct AS c ON c.teacher_id = n.teacher_id AND c.label_id = n.label_id
    GROUP BY n.teacher_id
),
a AS (
    SELECT acc.teacher_id, (acc.correct + $alpha) / (acc.total + $alpha * s.n_symbols) AS a, s.n_symbols
    FROM acc
    JOIN kd_lm_nsym AS s ON s.teacher_id = acc.teacher_id
)
SELECT n.teacher_id,
       n.label_id,
       n.voted,
       CASE WHEN c.voted IS NULL THEN 1.0 / a.n_symbols
            WHEN c.voted = n.voted THEN a.a
            ELSE (1.0 - a.a) / NULLIF(a.n_symbols - 1, 0) END AS p
FROM kd_lm_n AS n
JOIN a ON a.teacher_id = n.teacher_id
LEFT JOIN kd_lm_correct AS c ON c.teacher_id = n.teacher_id AND c.label_id = n.label_id
