-- Observations, soft: the scores as fractional votes whose weights sum to 1 per teacher x example.
-- vote/multiclass: each label's score over the sum of the teacher's scores (negative scores count 0;
-- an all-zero row is an abstain); binary: the label with weight score, -2 (none) with 1 - score;
-- multilabel: the hard decision (as setup_obs_hard.sql).
CREATE OR REPLACE TEMP TABLE kd_lm_obs AS
WITH o AS (
    SELECT o.teacher_id, o.example_id, o.label_id, GREATEST(CAST(o.score AS DOUBLE), 0.0) AS score
    FROM kd.outputs AS o
    JOIN kd_lm_teachers AS t ON t.teacher_id = o.teacher_id
    JOIN kd_lm_x AS x ON x.example_id = o.example_id
    WHERE t.output_type IN ('vote', 'multiclass')
),
multi AS (
    SELECT o.example_id, o.teacher_id, o.label_id AS voted,
           o.score / NULLIF(SUM(o.score) OVER (PARTITION BY o.teacher_id, o.example_id), 0.0) AS w
    FROM o
),
top AS (
    SELECT s.teacher_id,
           s.example_id,
           t.output_type,
           t.threshold,
           array_position(s.scores, list_max(s.scores)) - 1 AS output_index,
           LEAST(GREATEST(CAST(list_max(s.scores) AS DOUBLE), 0.0), 1.0) AS score
    FROM kd.scores AS s
    JOIN kd_lm_teachers AS t ON t.teacher_id = s.teacher_id
    JOIN kd_lm_x AS x ON x.example_id = s.example_id
    WHERE t.output_type IN ('binary', 'multilabel')
),
single AS (
    SELECT top.example_id, top.teacher_id, tl.label_id AS voted, top.score AS w
    FROM top
    JOIN kd.teacher_labels AS tl ON tl.teacher_id = top.teacher_id AND tl.output_index = top.output_index
    WHERE top.output_type = 'binary'
    UNION ALL
    SELECT top.example_id, top.teacher_id, -2 AS voted, 1.0 - top.score AS w
    FROM top
    WHERE top.output_type = 'binary'
    UNION ALL
    SELECT top.example_id, top.teacher_id,
           CASE WHEN top.score < top.threshold THEN -2 ELSE tl.label_id END AS voted,
           1.0 AS w
    FROM top
    JOIN kd.teacher_labels AS tl ON tl.teacher_id = top.teacher_id AND tl.output_index = top.output_index
    WHERE top.output_type = 'multilabel'
)
SELECT example_id, teacher_id, voted, w FROM multi WHERE w > 0
UNION ALL
SELECT example_id, teacher_id, voted, w FROM single WHERE w > 0
