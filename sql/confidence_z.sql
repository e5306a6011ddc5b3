-- confidence_z: the normal quantile behind the Wilson bounds of kd.label_metrics.
-- grain: exactly one row.
-- empty: z is NULL unless 0 < confidence < 1 (the 'confidence' setting).
-- rule: z = Phi^-1(1 - (1 - confidence) / 2), the two-sided quantile (1.959964 at 0.95), by
--   Wichura's algorithm AS241 (Applied Statistics 37:477-484, 1988): three rational
--   approximations of degree 7, relative error below 1e-16, the algorithm of Python's
--   statistics.NormalDist.inv_cdf. Plain arithmetic, so it runs in any SQL engine. A view of its
--   own because binding the polynomials costs the planner ~15 ms, paid only where z is used.
-- oracle: tests/oracles.py::confidence_z
CREATE OR REPLACE VIEW kd.confidence_z AS
WITH q AS (
    -- q = p - 1/2 for p = 1 - (1 - confidence) / 2; t = sqrt(-ln(1 - p)), the tail variable
    SELECT
        p.confidence,
        0.5 - (1.0 - p.confidence) / 2.0 AS q,
        sqrt(-ln(greatest((1.0 - p.confidence) / 2.0, 1e-300))) AS t
    FROM kd.params AS p
),
v AS (
    SELECT q.*, 0.180625 - q.q * q.q AS r, q.t - 1.6 AS t1, q.t - 5.0 AS t2 FROM q
)
SELECT
    confidence,
    CASE
        WHEN confidence IS NULL OR confidence <= 0.0 OR confidence >= 1.0 THEN NULL
        WHEN abs(q) <= 0.425 THEN
            q * (((((((2509.0809287301226727 * r
                + 33430.575583588128105) * r
                + 67265.770927008700853) * r
                + 45921.953931549871457) * r
                + 13731.693765509461125) * r
                + 1971.5909503065514427) * r
                + 133.14166789178437745) * r
                + 3.387132872796366608)
            / (((((((5226.495278852545925 * r
                + 28729.085735721942674) * r
                + 39307.89580009271061) * r
                + 21213.794301586595867) * r
                + 5394.1960214247511077) * r
                + 687.1870074920579083) * r
                + 42.313330701600911252) * r
                + 1.0)
        WHEN t <= 5.0 THEN
            (((((((0.00077454501427834140764 * t1
                + 0.0227238449892691845833) * t1
                + 0.24178072517745061177) * t1
                + 1.27045825245236838258) * t1
                + 3.64784832476320460504) * t1
                + 5.7694972214606914055) * t1
                + 4.6303378461565452959) * t1
                + 1.42343711074968357734)
            / (((((((0.00000000105075007164441684324 * t1
                + 0.000547593808499534494600) * t1
                + 0.0151986665636164571966) * t1
                + 0.148103976427480074590) * t1
                + 0.689767334985100004550) * t1
                + 1.67638483018380384940) * t1
                + 2.05319162663775882187) * t1
                + 1.0)
        ELSE
            (((((((0.000000201033439929228813265 * t2
                + 0.0000271155556874348757815) * t2
                + 0.00124266094738807843860) * t2
                + 0.0265321895265761230930) * t2
                + 0.296560571828504891230) * t2
                + 1.78482653991729133580) * t2
                + 5.46378491116411436990) * t2
                + 6.65790464350110377720)
            / (((((((0.00000000000000204426310338993978564 * t2
                + 0.000000142151175831644588870) * t2
                + 0.0000184631831751005468180) * t2
                + 0.000786869131145613259100) * t2
                + 0.0148753612908506148525) * t2
                + 0.136929880922735805310) * t2
                + 0.599832206555887937690) * t2
                + 1.0)
    END AS z
FROM v;
