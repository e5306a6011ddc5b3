CREATE OR REPLACE VIEW kd.consensus_expertise AS
SELECT
  z.teacher_id,
  z.label_id,
  COUNT(*) AS n_outputs,
  COUNT(z.z) AS n_defined,
  COUNT(*) FILTER(WHERE
    z.z >= p.z_threshold) AS n_stand_out,
  COUNT(*) FILTER(WHERE
    z.z >= p.z_threshold) / CAST(NULLIF(COUNT(z.z), 0) AS DOUBLE) AS stand_out_rate,
  AVG(z.z) FILTER(WHERE
    z.z >= p.z_threshold) AS mean_z,
  COUNT(z.z_example) AS n_defined_example,
  COUNT(*) FILTER(WHERE
    z.z_example >= p.z_threshold) AS n_stand_out_example,
  COUNT(*) FILTER(WHERE
    z.z_example >= p.z_threshold) / CAST(NULLIF(COUNT(z.z_example), 0) AS DOUBLE) AS stand_out_rate_example,
  AVG(z.z_example) FILTER(WHERE
    z.z_example >= p.z_threshold) AS mean_z_example
FROM kd.consensus_z AS z
CROSS JOIN kd.params AS p
GROUP BY
  z.teacher_id,
  z.label_id;
