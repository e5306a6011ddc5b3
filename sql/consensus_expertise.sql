-- consensus_expertise: how often and how strongly each teacher stands out on each label.
-- grain: one row per teacher x label of the consensus teachers (binary, multilabel, multiclass,
--   vote) with at least one output on a train or valid example.
-- empty: mean_z and mean_z_example are NULL when the teacher never stands out on that basis;
--   rates are over the outputs with a defined z (n_defined, n_defined_example), NULL when 0.
-- columns: n_outputs = outputs; n_defined = outputs with a non-NULL z; n_stand_out = outputs with
--   z >= z_threshold; stand_out_rate = n_stand_out / n_defined; mean_z = mean z of those
--   outputs (how strongly); the *_example columns are the same against kd.consensus_example.
--   A label-free expertise estimate: a teacher that often stands out on a label knows something
--   the crowd does not.
-- oracle: tests/oracles.py::consensus_expertise
CREATE OR REPLACE VIEW kd.consensus_expertise AS
SELECT
    z.teacher_id,
    z.label_id,
    count(*) AS n_outputs,
    count(z.z) AS n_defined,
    count(*) FILTER (WHERE z.z >= p.z_threshold) AS n_stand_out,
    count(*) FILTER (WHERE z.z >= p.z_threshold) / CAST(NULLIF(count(z.z), 0) AS DOUBLE) AS stand_out_rate,
    avg(z.z) FILTER (WHERE z.z >= p.z_threshold) AS mean_z,
    count(z.z_example) AS n_defined_example,
    count(*) FILTER (WHERE z.z_example >= p.z_threshold) AS n_stand_out_example,
    count(*) FILTER (WHERE z.z_example >= p.z_threshold)
        / CAST(NULLIF(count(z.z_example), 0) AS DOUBLE) AS stand_out_rate_example,
    avg(z.z_example) FILTER (WHERE z.z_example >= p.z_threshold) AS mean_z_example
FROM kd.consensus_z AS z
CROSS JOIN kd.params AS p
GROUP BY z.teacher_id, z.label_id;
