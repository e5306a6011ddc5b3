-- Grouped one-coin E-step evidence: a vote for label v by teacher t is x = ln theta(t, k, v); it is
-- ref = ln of the wrong-vote probability for every k <> v and ref + d for k = v (d may be < 0), so an
-- example's log-posterior is lb + the sum of d over the teachers that voted each label, up to a constant.
CREATE OR REPLACE TEMP TABLE kd_lm_delta AS
WITH wrong AS (
    SELECT teacher_id, voted, MAX(p) AS p FROM kd_lm_theta WHERE label_id <> voted GROUP BY teacher_id, voted
)
SELECT c.teacher_id, c.voted, c.label_id, LN(c.p) - LN(w.p) AS d, LN(w.p) AS ref
FROM kd_lm_theta AS c
JOIN wrong AS w ON w.teacher_id = c.teacher_id AND w.voted = c.voted
WHERE c.label_id = c.voted
