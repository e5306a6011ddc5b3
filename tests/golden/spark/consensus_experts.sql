CREATE OR REPLACE VIEW kd.consensus_experts AS
SELECT
  z.example_id,
  z.label_id,
  z.teacher_id,
  z.score,
  z.z,
  z.z_example,
  COALESCE(z.z >= p.z_threshold, FALSE) AS by_label,
  COALESCE(z.z_example >= p.z_threshold, FALSE) AS by_example
FROM kd.consensus_z AS z
CROSS JOIN kd.params AS p
WHERE
  z.z >= p.z_threshold OR z.z_example >= p.z_threshold;
