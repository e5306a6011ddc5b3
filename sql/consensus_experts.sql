-- consensus_experts: the outputs that stand out from the crowd, label-free.
-- grain: one row per output of kd.consensus_z whose z or z_example is >= the 'z_threshold'
--   setting (a teacher x example x label).
-- empty: outputs whose z and z_example are both NULL never appear.
-- columns: by_label = z >= z_threshold (against the teachers of that label), by_example =
--   z_example >= z_threshold (against every output on the example: the binary-specialist case).
-- oracle: tests/oracles.py::consensus_experts
CREATE OR REPLACE VIEW kd.consensus_experts AS
SELECT
    z.example_id,
    z.label_id,
    z.teacher_id,
    z.score,
    z.z,
    z.z_example,
    coalesce(z.z >= p.z_threshold, FALSE) AS by_label,
    coalesce(z.z_example >= p.z_threshold, FALSE) AS by_example
FROM kd.consensus_z AS z
CROSS JOIN kd.params AS p
WHERE z.z >= p.z_threshold OR z.z_example >= p.z_threshold;
