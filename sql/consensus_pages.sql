-- consensus_pages: the crowd's statistics per example and label, laid out 8 labels to a row.
-- grain: one row per example x label page (kd.teacher_slots: page = label_rank // 8) on which at
--   least one output exists, over train and valid examples (test rows are dropped before any
--   statistic leaves the view).
-- empty: n<k> = 0 and mean<k>, stddev<k> NULL for a slot no output covers (no such label, or no
--   teacher scored it for this example); stddev is NULL when n < 2 and exactly 0 when all the
--   values are equal (Welford's update then adds x - mean = 0; the example statistics test
--   min = max), so every z against it is NULL.
-- columns: n<k>, mean<k>, stddev<k> for slot k - 1 (k = 1..8) = count, mean and sample standard
--   deviation (n - 1) of the scores of the teachers covering that example x label;
--   n_example, mean_example, stddev_example = the same over all outputs of all teachers on the
--   example (every label and page: the patent's crowd average), repeated on each page row.
-- rule: the engine groups teacher rows (one FLOAT[] each) by example x page, one aggregate per
--   slot, instead of single outputs by example x label: 8 labels per hash-table probe (see
--   docs/design.md). Slots and pages combine by Chan's formula M2 = sum M2_k + sum n_k (mean_k -
--   mean)^2, numerically stable.
-- oracle: tests/oracles.py::consensus_pages
CREATE OR REPLACE VIEW kd.consensus_pages AS
WITH tp AS (
    -- per teacher x page: the 1-based position in scores of the teacher's output for each slot
    SELECT
        teacher_id,
        page,
        max(CASE WHEN slot = 0 THEN output_index + 1 END) AS p1,
        max(CASE WHEN slot = 1 THEN output_index + 1 END) AS p2,
        max(CASE WHEN slot = 2 THEN output_index + 1 END) AS p3,
        max(CASE WHEN slot = 3 THEN output_index + 1 END) AS p4,
        max(CASE WHEN slot = 4 THEN output_index + 1 END) AS p5,
        max(CASE WHEN slot = 5 THEN output_index + 1 END) AS p6,
        max(CASE WHEN slot = 6 THEN output_index + 1 END) AS p7,
        max(CASE WHEN slot = 7 THEN output_index + 1 END) AS p8
    FROM kd.teacher_slots
    GROUP BY teacher_id, page
),
v AS (
    SELECT
        s.example_id,
        tp.page,
        s.scores[tp.p1] AS v1,
        s.scores[tp.p2] AS v2,
        s.scores[tp.p3] AS v3,
        s.scores[tp.p4] AS v4,
        s.scores[tp.p5] AS v5,
        s.scores[tp.p6] AS v6,
        s.scores[tp.p7] AS v7,
        s.scores[tp.p8] AS v8,
        list_min(s.scores) AS lo,
        list_max(s.scores) AS hi
    FROM kd.scores AS s
    JOIN tp ON tp.teacher_id = s.teacher_id
),
a AS (
    SELECT
        example_id,
        page,
        count(v1) AS n1, avg(v1) AS m1, var_samp(v1) AS q1,
        count(v2) AS n2, avg(v2) AS m2, var_samp(v2) AS q2,
        count(v3) AS n3, avg(v3) AS m3, var_samp(v3) AS q3,
        count(v4) AS n4, avg(v4) AS m4, var_samp(v4) AS q4,
        count(v5) AS n5, avg(v5) AS m5, var_samp(v5) AS q5,
        count(v6) AS n6, avg(v6) AS m6, var_samp(v6) AS q6,
        count(v7) AS n7, avg(v7) AS m7, var_samp(v7) AS q7,
        count(v8) AS n8, avg(v8) AS m8, var_samp(v8) AS q8,
        min(lo) AS lo,
        max(hi) AS hi
    FROM v
    GROUP BY example_id, page
),
b AS (
    SELECT
        a.*,
        a.n1 + a.n2 + a.n3 + a.n4 + a.n5 + a.n6 + a.n7 + a.n8 AS n_all,
        (a.n1 * coalesce(a.m1, 0.0) + a.n2 * coalesce(a.m2, 0.0) + a.n3 * coalesce(a.m3, 0.0) + a.n4 * coalesce(a.m4, 0.0) + a.n5 * coalesce(a.m5, 0.0) + a.n6 * coalesce(a.m6, 0.0) + a.n7 * coalesce(a.m7, 0.0) + a.n8 * coalesce(a.m8, 0.0))
            / CAST(NULLIF(a.n1 + a.n2 + a.n3 + a.n4 + a.n5 + a.n6 + a.n7 + a.n8, 0) AS DOUBLE) AS mean_all
    FROM a
    WHERE a.n1 + a.n2 + a.n3 + a.n4 + a.n5 + a.n6 + a.n7 + a.n8 > 0
      AND NOT EXISTS (
          SELECT 1 FROM kd.examples AS x WHERE x.example_id = a.example_id AND x.split = 'test'
      )
),
c AS (
    SELECT
        b.*,
        coalesce(b.q1 * (b.n1 - 1), 0.0) +
        coalesce(b.q2 * (b.n2 - 1), 0.0) +
        coalesce(b.q3 * (b.n3 - 1), 0.0) +
        coalesce(b.q4 * (b.n4 - 1), 0.0) +
        coalesce(b.q5 * (b.n5 - 1), 0.0) +
        coalesce(b.q6 * (b.n6 - 1), 0.0) +
        coalesce(b.q7 * (b.n7 - 1), 0.0) +
        coalesce(b.q8 * (b.n8 - 1), 0.0)
        + coalesce(b.n1 * (b.m1 - b.mean_all) * (b.m1 - b.mean_all), 0.0)
        + coalesce(b.n2 * (b.m2 - b.mean_all) * (b.m2 - b.mean_all), 0.0)
        + coalesce(b.n3 * (b.m3 - b.mean_all) * (b.m3 - b.mean_all), 0.0)
        + coalesce(b.n4 * (b.m4 - b.mean_all) * (b.m4 - b.mean_all), 0.0)
        + coalesce(b.n5 * (b.m5 - b.mean_all) * (b.m5 - b.mean_all), 0.0)
        + coalesce(b.n6 * (b.m6 - b.mean_all) * (b.m6 - b.mean_all), 0.0)
        + coalesce(b.n7 * (b.m7 - b.mean_all) * (b.m7 - b.mean_all), 0.0)
        + coalesce(b.n8 * (b.m8 - b.mean_all) * (b.m8 - b.mean_all), 0.0) AS m2_all
    FROM b
),
e AS (
    SELECT
        example_id,
        sum(n_all) AS n_example,
        sum(n_all * mean_all) / CAST(sum(n_all) AS DOUBLE) AS mean_example,
        min(lo) AS lo_example,
        max(hi) AS hi_example
    FROM c
    GROUP BY example_id
),
f AS (
    SELECT
        c.example_id,
        sum(c.m2_all + c.n_all * (c.mean_all - e.mean_example) * (c.mean_all - e.mean_example)) AS m2_example
    FROM c
    JOIN e ON e.example_id = c.example_id
    GROUP BY c.example_id
)
SELECT
    c.example_id,
    c.page,
        c.n1,
        c.n2,
        c.n3,
        c.n4,
        c.n5,
        c.n6,
        c.n7,
        c.n8,
        c.m1 AS mean1,
        c.m2 AS mean2,
        c.m3 AS mean3,
        c.m4 AS mean4,
        c.m5 AS mean5,
        c.m6 AS mean6,
        c.m7 AS mean7,
        c.m8 AS mean8,
        CASE WHEN c.n1 < 2 THEN NULL ELSE sqrt(c.q1) END AS stddev1,
        CASE WHEN c.n2 < 2 THEN NULL ELSE sqrt(c.q2) END AS stddev2,
        CASE WHEN c.n3 < 2 THEN NULL ELSE sqrt(c.q3) END AS stddev3,
        CASE WHEN c.n4 < 2 THEN NULL ELSE sqrt(c.q4) END AS stddev4,
        CASE WHEN c.n5 < 2 THEN NULL ELSE sqrt(c.q5) END AS stddev5,
        CASE WHEN c.n6 < 2 THEN NULL ELSE sqrt(c.q6) END AS stddev6,
        CASE WHEN c.n7 < 2 THEN NULL ELSE sqrt(c.q7) END AS stddev7,
        CASE WHEN c.n8 < 2 THEN NULL ELSE sqrt(c.q8) END AS stddev8,
    e.n_example,
    e.mean_example,
    CASE
        WHEN e.n_example < 2 THEN NULL
        WHEN e.lo_example = e.hi_example THEN 0.0
        ELSE sqrt(f.m2_example / (e.n_example - 1))
    END AS stddev_example
FROM c
JOIN e ON e.example_id = c.example_id
JOIN f ON f.example_id = c.example_id;
