-- params: the settings every view reads (kd.settings pivoted into one row) and derived constants.
-- grain: exactly one row.
-- empty: a setting missing from kd.settings is NULL (kdstore adds the defaults on open);
--   wilson_z is NULL unless 0 < confidence < 1.
-- oracle: tests/oracles.py::params
-- wilson_z is the two-sided normal quantile of the confidence level, z = Phi^-1(1 - (1 - confidence) / 2)
-- (1.959964 at 0.95), by Wichura's algorithm AS241 (Applied Statistics 37:477-484, 1988): three
-- rational approximations of degree 7, relative error below 1e-16, the same algorithm as Python's
-- statistics.NormalDist.inv_cdf. Plain arithmetic, so it runs in any SQL engine.
CREATE OR REPLACE VIEW kd.params AS
WITH s AS (
    SELECT
        max(CASE WHEN name = 'threshold' THEN value END) AS threshold,
        max(CASE WHEN name = 'confidence' THEN value END) AS confidence,
        max(CASE WHEN name = 'min_support' THEN value END) AS min_support,
        max(CASE WHEN name = 'min_recall' THEN value END) AS min_recall,
        max(CASE WHEN name = 'expert_margin' THEN value END) AS expert_margin,
        max(CASE WHEN name = 'expert_metric' THEN value END) AS expert_metric,
        max(CASE WHEN name = 'z_threshold' THEN value END) AS z_threshold
    FROM kd.settings
),
p AS (
    SELECT
        s.*,
        1.0 - (1.0 - s.confidence) / 2.0 AS p,
        (1.0 - (1.0 - s.confidence) / 2.0) - 0.5 AS q,
        -- the tail distance used by the two outer branches (p is in (0.5, 1) for 0 < confidence < 1)
        sqrt(-ln(greatest((1.0 - s.confidence) / 2.0, 1e-300))) AS t
    FROM s
),
r AS (
    SELECT
        p.*,
        CASE
            WHEN p.confidence IS NULL OR p.confidence <= 0.0 OR p.confidence >= 1.0 THEN NULL
            WHEN abs(p.q) <= 0.425 THEN
                p.q * (((((((2509.0809287301226727 * (0.180625 - p.q * p.q)
                    + 33430.575583588128105) * (0.180625 - p.q * p.q)
                    + 67265.770927008700853) * (0.180625 - p.q * p.q)
                    + 45921.953931549871457) * (0.180625 - p.q * p.q)
                    + 13731.693765509461125) * (0.180625 - p.q * p.q)
                    + 1971.5909503065514427) * (0.180625 - p.q * p.q)
                    + 133.14166789178437745) * (0.180625 - p.q * p.q)
                    + 3.387132872796366608)
                / (((((((5226.495278852545925 * (0.180625 - p.q * p.q)
                    + 28729.085735721942674) * (0.180625 - p.q * p.q)
                    + 39307.89580009271061) * (0.180625 - p.q * p.q)
                    + 21213.794301586595867) * (0.180625 - p.q * p.q)
                    + 5394.1960214247511077) * (0.180625 - p.q * p.q)
                    + 687.1870074920579083) * (0.180625 - p.q * p.q)
                    + 42.313330701600911252) * (0.180625 - p.q * p.q)
                    + 1.0)
            WHEN p.t <= 5.0 THEN
                (((((((0.00077454501427834140764 * (p.t - 1.6)
                    + 0.0227238449892691845833) * (p.t - 1.6)
                    + 0.24178072517745061177) * (p.t - 1.6)
                    + 1.27045825245236838258) * (p.t - 1.6)
                    + 3.64784832476320460504) * (p.t - 1.6)
                    + 5.7694972214606914055) * (p.t - 1.6)
                    + 4.6303378461565452959) * (p.t - 1.6)
                    + 1.42343711074968357734)
                / (((((((0.00000000105075007164441684324 * (p.t - 1.6)
                    + 0.000547593808499534494600) * (p.t - 1.6)
                    + 0.0151986665636164571966) * (p.t - 1.6)
                    + 0.148103976427480074590) * (p.t - 1.6)
                    + 0.689767334985100004550) * (p.t - 1.6)
                    + 1.67638483018380384940) * (p.t - 1.6)
                    + 2.05319162663775882187) * (p.t - 1.6)
                    + 1.0)
            ELSE
                (((((((0.000000201033439929228813265 * (p.t - 5.0)
                    + 0.0000271155556874348757815) * (p.t - 5.0)
                    + 0.00124266094738807843860) * (p.t - 5.0)
                    + 0.0265321895265761230930) * (p.t - 5.0)
                    + 0.296560571828504891230) * (p.t - 5.0)
                    + 1.78482653991729133580) * (p.t - 5.0)
                    + 5.46378491116411436990) * (p.t - 5.0)
                    + 6.65790464350110377720)
                / (((((((0.00000000000000204426310338993978564 * (p.t - 5.0)
                    + 0.000000142151175831644588870) * (p.t - 5.0)
                    + 0.0000184631831751005468180) * (p.t - 5.0)
                    + 0.000786869131145613259100) * (p.t - 5.0)
                    + 0.0148753612908506148525) * (p.t - 5.0)
                    + 0.136929880922735805310) * (p.t - 5.0)
                    + 0.599832206555887937690) * (p.t - 5.0)
                    + 1.0)
        END AS wilson_z
    FROM p
)
SELECT
    CAST(r.threshold AS DOUBLE) AS threshold,
    CAST(r.confidence AS DOUBLE) AS confidence,
    CAST(r.wilson_z AS DOUBLE) AS wilson_z,
    CAST(r.min_support AS DOUBLE) AS min_support,
    CAST(r.min_recall AS DOUBLE) AS min_recall,
    CAST(r.expert_margin AS DOUBLE) AS expert_margin,
    CAST(r.expert_metric AS DOUBLE) AS expert_metric,
    CAST(r.z_threshold AS DOUBLE) AS z_threshold
FROM r;
