-- params: the settings every view reads, kd.settings pivoted into one row.
-- grain: exactly one row.
-- empty: a setting missing from kd.settings is NULL (kdstore adds the defaults on open).
-- oracle: tests/oracles.py::params
CREATE OR REPLACE VIEW kd.params AS
SELECT
    max(CASE WHEN name = 'threshold' THEN value END) AS threshold,
    max(CASE WHEN name = 'confidence' THEN value END) AS confidence,
    max(CASE WHEN name = 'min_support' THEN value END) AS min_support,
    max(CASE WHEN name = 'min_recall' THEN value END) AS min_recall,
    max(CASE WHEN name = 'expert_margin' THEN value END) AS expert_margin,
    max(CASE WHEN name = 'expert_metric' THEN value END) AS expert_metric,
    max(CASE WHEN name = 'z_threshold' THEN value END) AS z_threshold
FROM kd.settings;
