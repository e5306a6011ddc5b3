-- E-step evidence of one output: x(t, v, k) = log theta(t, k, v) (minus log theta(t, k, abstain) when
-- abstains are evidence), split into ref(t, v) = min over k, the same for every class, and
-- d = x - ref >= 0. Only d > 0 rows are joined, so a one-coin vote touches one class only.
CREATE OR REPLACE TEMP TABLE kd_lm_delta AS
WITH x AS (
    SELECT th.teacher_id, th.voted, th.label_id, LN(th.p) - COALESCE(LN(ab.p), 0.0) AS x
    FROM kd_lm_theta AS th
    LEFT JOIN kd_lm_theta AS ab
      ON $abstain_evidence AND ab.teacher_id = th.teacher_id AND ab.label_id = th.label_id AND ab.voted = -1
    WHERE th.voted <> -1
),
ref AS (SELECT teacher_id, voted, MIN(x) AS ref FROM x GROUP BY teacher_id, voted)
SELECT x.teacher_id, x.voted, x.label_id, x.x - ref.ref AS d, ref.ref
FROM x JOIN ref ON ref.teacher_id = x.teacher_id AND ref.voted = x.voted
