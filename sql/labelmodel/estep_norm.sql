-- E-step normaliser per touched example: m = max over touched classes of lb + s, and
-- z = sum_touched exp(lb + s - m) + exp(-m) * (1 - sum_touched b) (the untouched classes keep b).
CREATE OR REPLACE TEMP TABLE kd_lm_z AS
WITH u AS (
    SELECT s.example_id, b.lb + s.s AS u, b.b
    FROM kd_lm_s AS s
    JOIN kd_lm_base AS b ON b.label_id = s.label_id
),
m AS (
    SELECT example_id, MAX(u) AS m, SUM(b) AS tb, COUNT(*) AS nt FROM u GROUP BY example_id
),
z AS (
    SELECT u.example_id, SUM(EXP(u.u - m.m)) AS zt
    FROM u JOIN m ON m.example_id = u.example_id
    GROUP BY u.example_id
)
SELECT m.example_id,
       m.m,
       z.zt + EXP(-m.m) * CASE WHEN m.nt >= $k THEN 0.0 ELSE GREATEST(1.0 - m.tb, 0.0) END AS z
FROM m JOIN z ON z.example_id = m.example_id
