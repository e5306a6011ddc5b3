CREATE OR REPLACE VIEW kd.consensus_pages AS
WITH tp AS (
  SELECT
    teacher_id,
    page,
    MAX(CASE WHEN slot = 0 THEN output_index + 1 END) AS p1,
    MAX(CASE WHEN slot = 1 THEN output_index + 1 END) AS p2,
    MAX(CASE WHEN slot = 2 THEN output_index + 1 END) AS p3,
    MAX(CASE WHEN slot = 3 THEN output_index + 1 END) AS p4,
    MAX(CASE WHEN slot = 4 THEN output_index + 1 END) AS p5,
    MAX(CASE WHEN slot = 5 THEN output_index + 1 END) AS p6,
    MAX(CASE WHEN slot = 6 THEN output_index + 1 END) AS p7,
    MAX(CASE WHEN slot = 7 THEN output_index + 1 END) AS p8
  FROM kd.teacher_slots
  GROUP BY
    teacher_id,
    page
), v AS (
  SELECT
    s.example_id,
    tp.page,
    TRY_ELEMENT_AT(s.scores, tp.p1) AS v1,
    TRY_ELEMENT_AT(s.scores, tp.p2) AS v2,
    TRY_ELEMENT_AT(s.scores, tp.p3) AS v3,
    TRY_ELEMENT_AT(s.scores, tp.p4) AS v4,
    TRY_ELEMENT_AT(s.scores, tp.p5) AS v5,
    TRY_ELEMENT_AT(s.scores, tp.p6) AS v6,
    TRY_ELEMENT_AT(s.scores, tp.p7) AS v7,
    TRY_ELEMENT_AT(s.scores, tp.p8) AS v8,
    ARRAY_MIN(s.scores) AS lo,
    ARRAY_MAX(s.scores) AS hi
  FROM kd.scores AS s
  JOIN tp
    ON tp.teacher_id = s.teacher_id
), a AS (
  SELECT
    example_id,
    page,
    COUNT(v1) AS n1,
    AVG(v1) AS m1,
    VARIANCE(v1) AS q1,
    COUNT(v2) AS n2,
    AVG(v2) AS m2,
    VARIANCE(v2) AS q2,
    COUNT(v3) AS n3,
    AVG(v3) AS m3,
    VARIANCE(v3) AS q3,
    COUNT(v4) AS n4,
    AVG(v4) AS m4,
    VARIANCE(v4) AS q4,
    COUNT(v5) AS n5,
    AVG(v5) AS m5,
    VARIANCE(v5) AS q5,
    COUNT(v6) AS n6,
    AVG(v6) AS m6,
    VARIANCE(v6) AS q6,
    COUNT(v7) AS n7,
    AVG(v7) AS m7,
    VARIANCE(v7) AS q7,
    COUNT(v8) AS n8,
    AVG(v8) AS m8,
    VARIANCE(v8) AS q8,
    MIN(lo) AS lo,
    MAX(hi) AS hi
  FROM v
  GROUP BY
    example_id,
    page
), b AS (
  SELECT
    a.*,
    a.n1 + a.n2 + a.n3 + a.n4 + a.n5 + a.n6 + a.n7 + a.n8 AS n_all,
    (
      a.n1 * COALESCE(a.m1, CAST(0.0 AS DOUBLE)) + a.n2 * COALESCE(a.m2, CAST(0.0 AS DOUBLE)) + a.n3 * COALESCE(a.m3, CAST(0.0 AS DOUBLE)) + a.n4 * COALESCE(a.m4, CAST(0.0 AS DOUBLE)) + a.n5 * COALESCE(a.m5, CAST(0.0 AS DOUBLE)) + a.n6 * COALESCE(a.m6, CAST(0.0 AS DOUBLE)) + a.n7 * COALESCE(a.m7, CAST(0.0 AS DOUBLE)) + a.n8 * COALESCE(a.m8, CAST(0.0 AS DOUBLE))
    ) / CAST(NULLIF(a.n1 + a.n2 + a.n3 + a.n4 + a.n5 + a.n6 + a.n7 + a.n8, 0) AS DOUBLE) AS mean_all
  FROM a
  WHERE
    a.n1 + a.n2 + a.n3 + a.n4 + a.n5 + a.n6 + a.n7 + a.n8 > 0
    AND NOT EXISTS(
      SELECT
        1
      FROM kd.examples AS x
      WHERE
        x.example_id = a.example_id AND x.split = 'test'
    )
), c AS (
  SELECT
    b.*,
    COALESCE(b.q1 * (
      b.n1 - 1
    ), CAST(0.0 AS DOUBLE)) + COALESCE(b.q2 * (
      b.n2 - 1
    ), CAST(0.0 AS DOUBLE)) + COALESCE(b.q3 * (
      b.n3 - 1
    ), CAST(0.0 AS DOUBLE)) + COALESCE(b.q4 * (
      b.n4 - 1
    ), CAST(0.0 AS DOUBLE)) + COALESCE(b.q5 * (
      b.n5 - 1
    ), CAST(0.0 AS DOUBLE)) + COALESCE(b.q6 * (
      b.n6 - 1
    ), CAST(0.0 AS DOUBLE)) + COALESCE(b.q7 * (
      b.n7 - 1
    ), CAST(0.0 AS DOUBLE)) + COALESCE(b.q8 * (
      b.n8 - 1
    ), CAST(0.0 AS DOUBLE)) + COALESCE(b.n1 * (
      b.m1 - b.mean_all
    ) * (
      b.m1 - b.mean_all
    ), CAST(0.0 AS DOUBLE)) + COALESCE(b.n2 * (
      b.m2 - b.mean_all
    ) * (
      b.m2 - b.mean_all
    ), CAST(0.0 AS DOUBLE)) + COALESCE(b.n3 * (
      b.m3 - b.mean_all
    ) * (
      b.m3 - b.mean_all
    ), CAST(0.0 AS DOUBLE)) + COALESCE(b.n4 * (
      b.m4 - b.mean_all
    ) * (
      b.m4 - b.mean_all
    ), CAST(0.0 AS DOUBLE)) + COALESCE(b.n5 * (
      b.m5 - b.mean_all
    ) * (
      b.m5 - b.mean_all
    ), CAST(0.0 AS DOUBLE)) + COALESCE(b.n6 * (
      b.m6 - b.mean_all
    ) * (
      b.m6 - b.mean_all
    ), CAST(0.0 AS DOUBLE)) + COALESCE(b.n7 * (
      b.m7 - b.mean_all
    ) * (
      b.m7 - b.mean_all
    ), CAST(0.0 AS DOUBLE)) + COALESCE(b.n8 * (
      b.m8 - b.mean_all
    ) * (
      b.m8 - b.mean_all
    ), CAST(0.0 AS DOUBLE)) AS m2_all
  FROM b
), e AS (
  SELECT
    example_id,
    SUM(n_all) AS n_example,
    SUM(n_all * mean_all) / CAST(SUM(n_all) AS DOUBLE) AS mean_example,
    MIN(lo) AS lo_example,
    MAX(hi) AS hi_example
  FROM c
  GROUP BY
    example_id
), f AS (
  SELECT
    c.example_id,
    SUM(
      c.m2_all + c.n_all * (
        c.mean_all - e.mean_example
      ) * (
        c.mean_all - e.mean_example
      )
    ) AS m2_example
  FROM c
  JOIN e
    ON e.example_id = c.example_id
  GROUP BY
    c.example_id
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
  CASE WHEN c.n1 < 2 THEN NULL ELSE SQRT(c.q1) END AS stddev1,
  CASE WHEN c.n2 < 2 THEN NULL ELSE SQRT(c.q2) END AS stddev2,
  CASE WHEN c.n3 < 2 THEN NULL ELSE SQRT(c.q3) END AS stddev3,
  CASE WHEN c.n4 < 2 THEN NULL ELSE SQRT(c.q4) END AS stddev4,
  CASE WHEN c.n5 < 2 THEN NULL ELSE SQRT(c.q5) END AS stddev5,
  CASE WHEN c.n6 < 2 THEN NULL ELSE SQRT(c.q6) END AS stddev6,
  CASE WHEN c.n7 < 2 THEN NULL ELSE SQRT(c.q7) END AS stddev7,
  CASE WHEN c.n8 < 2 THEN NULL ELSE SQRT(c.q8) END AS stddev8,
  e.n_example,
  e.mean_example,
  CASE
    WHEN e.n_example < 2
    THEN NULL
    WHEN e.lo_example = e.hi_example
    THEN CAST(0.0 AS DOUBLE)
    ELSE SQRT(f.m2_example / (
      e.n_example - 1
    ))
  END AS stddev_example
FROM c
JOIN e
  ON e.example_id = c.example_id
JOIN f
  ON f.example_id = c.example_id;
