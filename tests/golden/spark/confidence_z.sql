CREATE OR REPLACE VIEW kd.confidence_z AS
WITH q AS (
  SELECT
    p.confidence,
    CAST(0.5 AS DOUBLE) - (
      CAST(1.0 AS DOUBLE) - p.confidence
    ) / CAST(2.0 AS DOUBLE) AS q,
    SQRT(
      -LN(GREATEST((
        CAST(1.0 AS DOUBLE) - p.confidence
      ) / CAST(2.0 AS DOUBLE), 1e-300))
    ) AS t
  FROM kd.params AS p
), v AS (
  SELECT
    q.*,
    CAST(0.180625 AS DOUBLE) - q.q * q.q AS r,
    q.t - CAST(1.6 AS DOUBLE) AS t1,
    q.t - CAST(5.0 AS DOUBLE) AS t2
  FROM q
)
SELECT
  confidence,
  CASE
    WHEN confidence IS NULL
    OR confidence <= CAST(0.0 AS DOUBLE)
    OR confidence >= CAST(1.0 AS DOUBLE)
    THEN NULL
    WHEN ABS(q) <= CAST(0.425 AS DOUBLE)
    THEN q * (
      (
        (
          (
            (
              (
                (
                  CAST(2509.0809287301226727 AS DOUBLE) * r + CAST(33430.575583588128105 AS DOUBLE)
                ) * r + CAST(67265.770927008700853 AS DOUBLE)
              ) * r + CAST(45921.953931549871457 AS DOUBLE)
            ) * r + CAST(13731.693765509461125 AS DOUBLE)
          ) * r + CAST(1971.5909503065514427 AS DOUBLE)
        ) * r + CAST(133.14166789178437745 AS DOUBLE)
      ) * r + CAST(3.387132872796366608 AS DOUBLE)
    ) / (
      (
        (
          (
            (
              (
                (
                  CAST(5226.495278852545925 AS DOUBLE) * r + CAST(28729.085735721942674 AS DOUBLE)
                ) * r + CAST(39307.89580009271061 AS DOUBLE)
              ) * r + CAST(21213.794301586595867 AS DOUBLE)
            ) * r + CAST(5394.1960214247511077 AS DOUBLE)
          ) * r + CAST(687.1870074920579083 AS DOUBLE)
        ) * r + CAST(42.313330701600911252 AS DOUBLE)
      ) * r + CAST(1.0 AS DOUBLE)
    )
    WHEN t <= CAST(5.0 AS DOUBLE)
    THEN (
      (
        (
          (
            (
              (
                (
                  CAST(0.00077454501427834140764 AS DOUBLE) * t1 + CAST(0.0227238449892691845833 AS DOUBLE)
                ) * t1 + CAST(0.24178072517745061177 AS DOUBLE)
              ) * t1 + CAST(1.27045825245236838258 AS DOUBLE)
            ) * t1 + CAST(3.64784832476320460504 AS DOUBLE)
          ) * t1 + CAST(5.7694972214606914055 AS DOUBLE)
        ) * t1 + CAST(4.6303378461565452959 AS DOUBLE)
      ) * t1 + CAST(1.42343711074968357734 AS DOUBLE)
    ) / (
      (
        (
          (
            (
              (
                (
                  CAST(0.00000000105075007164441684324 AS DOUBLE) * t1 + CAST(0.000547593808499534494600 AS DOUBLE)
                ) * t1 + CAST(0.0151986665636164571966 AS DOUBLE)
              ) * t1 + CAST(0.148103976427480074590 AS DOUBLE)
            ) * t1 + CAST(0.689767334985100004550 AS DOUBLE)
          ) * t1 + CAST(1.67638483018380384940 AS DOUBLE)
        ) * t1 + CAST(2.05319162663775882187 AS DOUBLE)
      ) * t1 + CAST(1.0 AS DOUBLE)
    )
    ELSE (
      (
        (
          (
            (
              (
                (
                  CAST(0.000000201033439929228813265 AS DOUBLE) * t2 + CAST(0.0000271155556874348757815 AS DOUBLE)
                ) * t2 + CAST(0.00124266094738807843860 AS DOUBLE)
              ) * t2 + CAST(0.0265321895265761230930 AS DOUBLE)
            ) * t2 + CAST(0.296560571828504891230 AS DOUBLE)
          ) * t2 + CAST(1.78482653991729133580 AS DOUBLE)
        ) * t2 + CAST(5.46378491116411436990 AS DOUBLE)
      ) * t2 + CAST(6.65790464350110377720 AS DOUBLE)
    ) / (
      (
        (
          (
            (
              (
                (
                  CAST(0.00000000000000204426310338993978564 AS DOUBLE) * t2 + CAST(0.000000142151175831644588870 AS DOUBLE)
                ) * t2 + CAST(0.0000184631831751005468180 AS DOUBLE)
              ) * t2 + CAST(0.000786869131145613259100 AS DOUBLE)
            ) * t2 + CAST(0.0148753612908506148525 AS DOUBLE)
          ) * t2 + CAST(0.136929880922735805310 AS DOUBLE)
        ) * t2 + CAST(0.599832206555887937690 AS DOUBLE)
      ) * t2 + CAST(1.0 AS DOUBLE)
    )
  END AS z
FROM v;
