"""The wide class-conditional steps of :func:`kdstore.labelmodel.fit_em` (hard votes, few teachers and classes).

The general steps keep one row per observation and per touched example x class (95 s for one
iteration on 1M examples x 10 teachers x 20 classes). Here the votes are pivoted once to one row per
example with a column per teacher (``kd_lm_wv``), and the EM runs over the distinct vote patterns
(``kd_lm_wp``, weighted by their counts): one generated statement per E-step computes every
pattern's posterior and, in the same pass (GROUPING SETS), the M-step's counts and the
log-likelihood. Same model, same fit as the general steps (tests/test_labelmodel.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kdstore.labelmodel import Executor

#: Largest problem the wide path takes: classes, teachers, and columns x terms of its generated statements.
_WIDE_MAX_K, _WIDE_MAX_M, _WIDE_MAX_KM = 64, 32, 1024


def _wide_ok(model: str, votes: str, k: int, m: int) -> bool:
    """Whether the wide class-conditional steps (:func:`_wide_sql`) fit this problem.

    They need the class-conditional model on hard votes (one symbol per teacher and example, so an
    example is one vote pattern), at most 64 classes and 32 teachers, and K x M <= 1024 (each
    statement has a column per class and a term per teacher in each: its size grows as K x M).
    """
    return (model == "class_conditional" and votes == "hard" and 2 <= k <= _WIDE_MAX_K and 1 <= m <= _WIDE_MAX_M
            and k * m <= _WIDE_MAX_KM)


def _wide_sql(m: int, k: int) -> dict[str, str]:
    """The generated statements of the wide class-conditional path for ``m`` teachers and ``k`` classes.

    Their column count depends on M and K, so they are generated here (from the two integers only:
    no name or value from the store enters the text) rather than kept in ``sql/labelmodel/``; they
    are plain SQL that sqlglot transpiles like the files. Vote code ``v``: a label's column number
    ``k`` (``kd_lm_wrank``), -2 none of its labels, -1 abstain.

    * ``setup_wide_votes`` -> ``kd_lm_wv``: one row per fit example, ``v<t>`` = teacher t's hard
      vote (as ``setup_obs_hard.sql``) or -1;
    * ``setup_wide_patterns`` -> ``kd_lm_wp``: the distinct vote patterns and their example counts;
    * ``init_wide_majority`` / ``estep_wide`` -> ``kd_lm_wn``: per pattern the posteriors (the
      majority-vote start, or log prior + the sum of the M teachers' log confusion entries,
      normalised by a log-sum-exp), aggregated in the same pass with GROUPING SETS into the counts
      ``n<k>`` per teacher t x vote v (the M-step's n(t, k, v)) and the grand total (t = -1: class
      mass and the log-likelihood ``ll``);
    * ``estep_wide_params`` -> ``kd_lm_wt``: ``kd_lm_wlp`` pivoted, one row per teacher x vote code
      (t = -1: the log prior) with ``l<k>`` columns;
    * ``mstep_wide_counts`` / ``mstep_wide_mass`` -> ``kd_lm_n`` / ``kd_lm_mass`` (long, as the
      general path's M-step leaves them);
    * ``wide_posteriors`` / ``write_wide_posteriors``: the patterns' posteriors, joined back to the examples.

    >>> print(_wide_sql(2, 2)["setup_wide_patterns"])
    CREATE OR REPLACE TEMP TABLE kd_lm_wp AS
    SELECT v0, v1, COUNT(*) AS cnt FROM kd_lm_wv GROUP BY v0, v1
    """
    ts, ks = range(m), range(k)
    vs = ", ".join(f"v{t}" for t in ts)

    def cols(fmt: str) -> str:
        return ", ".join(fmt.format(k=j) for j in ks)

    def pick(prefix: str, alias: str, col: str = "k") -> str:
        whens = " ".join(f"WHEN {j} THEN {alias}.{prefix}{j}" for j in ks)
        return f"CASE {col} {whens} END"

    def aggregate(q_cte: str) -> str:
        # one pass: per teacher column its counts by vote code, and the grand total (t = -1)
        sets = ", ".join(f"(v{t})" for t in ts)
        which = " ".join(f"WHEN v{t} IS NOT NULL THEN {t}" for t in ts)
        return (
            f"CREATE OR REPLACE TEMP TABLE kd_lm_wn AS\n{q_cte}\n"
            f"SELECT CASE {which} ELSE -1 END AS t, COALESCE({vs}, 0) AS v, "
            f"{cols('SUM(cnt * q{k}) AS n{k}')}, SUM(cnt * lse) AS ll\n"
            f"FROM q GROUP BY GROUPING SETS ({sets}, ())"
        )

    joins = "\n".join(f"JOIN kd_lm_wt AS t{t} ON t{t}.t = {t} AND t{t}.v = p.v{t}" for t in ts)
    posterior_cte = (
        "WITH s AS (\n"
        f"    SELECT p.cnt, {', '.join(f'p.v{t}' for t in ts)}, "
        + ", ".join(f"pr.l{j} + " + " + ".join(f"t{t}.l{j}" for t in ts) + f" AS s{j}" for j in ks)
        + "\n    FROM kd_lm_wp AS p\n    JOIN kd_lm_wt AS pr ON pr.t = -1\n" + joins + "\n),\n"
        f"m AS (SELECT s.*, GREATEST({cols('s{k}')}) AS mx FROM s),\n"
        f"z AS (SELECT m.*, m.mx + LN({' + '.join(f'EXP(s{j} - m.mx)' for j in ks)}) AS lse FROM m),\n"
        f"q AS (SELECT cnt, {vs}, lse, {cols('EXP(s{k} - lse) AS q{k}')} FROM z)"
    )
    counts = " + ".join(f"CASE WHEN v{t} = {{k}} THEN 1 ELSE 0 END" for t in ts)
    majority_cte = (
        f"WITH c AS (SELECT cnt, {vs}, {', '.join(counts.format(k=j) + f' AS c{j}' for j in ks)} FROM kd_lm_wp),\n"
        f"cv AS (SELECT c.*, {' + '.join(f'c{j}' for j in ks)} AS nv FROM c),\n"
        f"q AS (SELECT cnt, {vs}, CAST(0.0 AS DOUBLE) AS lse, "
        + cols("CASE WHEN nv > 0 THEN CAST(c{k} AS DOUBLE) / nv ELSE CAST(1.0 AS DOUBLE) / " + str(k) + " END AS q{k}") + " FROM cv)"
    )
    pivots = "\n".join(f"    MAX(CASE WHEN o.t = {t} THEN o.v END) AS v{t}," for t in ts)
    return {
        "setup_wide_votes": (
            "CREATE OR REPLACE TEMP TABLE kd_lm_wv AS\n"
            "WITH top AS (\n"
            "    SELECT s.teacher_id, s.example_id,\n"
            "           array_position(s.scores, list_max(s.scores)) - 1 AS output_index,\n"
            "           list_max(s.scores) AS score\n"
            "    FROM kd.scores AS s\n"
            "    JOIN kd_lm_teachers AS t ON t.teacher_id = s.teacher_id\n"
            "    JOIN kd_lm_x AS x ON x.example_id = s.example_id\n"
            "),\n"
            "o AS (\n"
            "    SELECT top.example_id, w.t,\n"
            "           CASE WHEN t.has_none AND top.score < t.threshold THEN -2 ELSE r.k END AS v\n"
            "    FROM top\n"
            "    JOIN kd_lm_teachers AS t ON t.teacher_id = top.teacher_id\n"
            "    JOIN kd_lm_wteach AS w ON w.teacher_id = top.teacher_id\n"
            "    JOIN kd.teacher_labels AS tl ON tl.teacher_id = top.teacher_id AND tl.output_index = top.output_index\n"
            "    JOIN kd_lm_wrank AS r ON r.label_id = tl.label_id\n"
            "    WHERE top.score IS NOT NULL\n"
            "),\n"
            "g AS (\n"
            "    SELECT o.example_id,\n" + pivots.rstrip(",") + "\n"
            "    FROM o GROUP BY o.example_id\n"
            ")\n"
            f"SELECT x.example_id, {', '.join(f'COALESCE(g.v{t}, -1) AS v{t}' for t in ts)}\n"
            "FROM kd_lm_x AS x LEFT JOIN g ON g.example_id = x.example_id"
        ),
        "setup_wide_patterns": f"CREATE OR REPLACE TEMP TABLE kd_lm_wp AS\nSELECT {vs}, COUNT(*) AS cnt FROM kd_lm_wv GROUP BY {vs}",
        "init_wide_majority": aggregate(majority_cte),
        "estep_wide_params": (
            "CREATE OR REPLACE TEMP TABLE kd_lm_wt AS\n"
            f"SELECT t, v, {cols('MAX(CASE WHEN k = {k} THEN lp END) AS l{k}')} FROM kd_lm_wlp GROUP BY t, v"
        ),
        "estep_wide": aggregate(posterior_cte),
        "mstep_wide_counts": (
            "CREATE OR REPLACE TEMP TABLE kd_lm_n AS\n"
            f"SELECT s.teacher_id, r.label_id, s.voted, COALESCE({pick('n', 'n', 'r.k')}, 0.0) AS n\n"
            "FROM kd_lm_wsym AS s\nCROSS JOIN kd_lm_wrank AS r\nLEFT JOIN kd_lm_wn AS n ON n.t = s.t AND n.v = s.v"
        ),
        "mstep_wide_mass": (
            "CREATE OR REPLACE TEMP TABLE kd_lm_mass AS\n"
            f"SELECT r.label_id, {pick('n', 'n', 'r.k')} AS m\n"
            "FROM kd_lm_wrank AS r\nCROSS JOIN (SELECT * FROM kd_lm_wn WHERE t = -1) AS n"
        ),
        "wide_posteriors": f"CREATE OR REPLACE TEMP TABLE kd_lm_wq AS\n{posterior_cte}\nSELECT {vs}, {cols('q{k}')} FROM q",
        "write_wide_posteriors": (
            "INSERT INTO kd.label_model_fit_posteriors\n"
            f"SELECT $run_id, w.example_id, r.label_id, {pick('q', 'q', 'r.k')} AS posterior\n"
            "FROM kd_lm_wv AS w\n"
            f"JOIN kd_lm_wq AS q ON {' AND '.join(f'q.v{t} = w.v{t}' for t in ts)}\n"
            "CROSS JOIN kd_lm_wrank AS r"
        ),
    }


def _wide_setup(r: Executor, m: int, k: int) -> dict[str, str]:
    sql = _wide_sql(m, k)
    for name in ("setup_wide_teachers", "setup_wide_ranks", "setup_wide_symbols"):
        r.run(name)
    for name in ("setup_wide_votes", "setup_wide_patterns"):
        r.run_sql(name, sql[name])
    return sql


def _m_step_wide(r: Executor, sql: dict[str, str], class_prior: str) -> None:
    # kd_lm_wn holds the counts of the last E-step (or the start); abstain counts are direct there
    r.run_sql("mstep_wide_counts", sql["mstep_wide_counts"])
    if class_prior == "fit":
        r.run_sql("mstep_wide_mass", sql["mstep_wide_mass"])
        r.run("mstep_prior_fit")
    r.run("mstep_theta_class_conditional")


def _e_step_wide(r: Executor, sql: dict[str, str]) -> float:
    r.run("estep_wide_prior_long")
    r.run_sql("estep_wide_params", sql["estep_wide_params"])
    r.run_sql("estep_wide", sql["estep_wide"])
    return r.scalar("loglik_wide")
