CREATE OR REPLACE VIEW kd.consensus_example AS
SELECT DISTINCT
  c.example_id,
  c.n_example AS n,
  c.mean_example AS mean,
  c.stddev_example AS stddev
FROM kd.consensus_pages AS c;
