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


def _wide_packing(m: int, k: int) -> tuple[int, int]:
    """(base, teachers per key): a teacher's raw vote code (0 abstain, 1 none of its labels, output
    index + 2) is a digit in base K + 2, and as many teachers as fit in 62 bits share one BIGINT key."""
    base = k + 2
    per_key = 1
    while base ** (per_key + 1) < 2**62:
        per_key += 1
    return base, min(per_key, m)


def _wide_sql(m: int, k: int) -> dict[str, str]:
    """The generated statements of the wide class-conditional path for ``m`` teachers and ``k`` classes.

    Their column count depends on M and K, so they are generated here (from the two integers only:
    no name or value from the store enters the text) rather than kept in ``sql/labelmodel/``; they
    are plain SQL that sqlglot transpiles like the files. Vote code ``v``: a label's column number
    ``k`` (``kd_lm_wrank``), -2 none of its labels, -1 abstain.

    * ``setup_wide_teachers`` -> ``kd_lm_wteach``: teacher column t (by teacher id), its key g and
      digit weight ``wgt`` (:func:`_wide_packing`);
    * ``setup_wide_votes`` -> ``kd_lm_wv``: one row per fit example, its teachers' hard votes (as
      ``setup_obs_hard.sql``; a vote teacher's one-hot row is read by the position of its 1.0, its
      top score: ingest checks that a vote row has exactly one 1.0 and 0 or nothing elsewhere) packed
      as digits into ``key<g>`` BIGINT columns (one SUM per example instead of M pivoted columns);
    * ``setup_wide_patterns`` -> ``kd_lm_wp``: the distinct vote patterns, their example counts
      ``cnt`` and the vote columns ``v<t>`` decoded from the keys (``kd_lm_wcode``);
    * ``init_wide_onehot`` -> ``kd_lm_wone``: per teacher x vote code, 1 in the voted class's column;
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

    >>> print(_wide_sql(2, 2)["init_wide_majority"].splitlines()[-1])
    FROM q GROUP BY GROUPING SETS ((v0), (v1), ())
    """
    ts, ks = range(m), range(k)
    base, per_key = _wide_packing(m, k)
    gs = range((m + per_key - 1) // per_key)
    vs = ", ".join(f"v{t}" for t in ts)
    keys = ", ".join(f"key{g}" for g in gs)

    def cols(fmt: str) -> str:
        return ", ".join(fmt.format(k=j) for j in ks)

    def pick(prefix: str, alias: str, col: str = "k") -> str:
        whens = " ".join(f"WHEN {j} THEN {alias}.{prefix}{j}" for j in ks)
        return f"CASE {col} {whens} END"

    def case_t(values: list[int], cast: str = "") -> str:
        whens = " ".join(f"WHEN {t} THEN {f'CAST({v} AS {cast})' if cast else v}" for t, v in zip(ts, values, strict=True))
        return f"CASE w.t {whens} END"

    def aggregate(q_cte: str) -> str:
        # one pass: per teacher column its counts by vote code, and the grand total (t = -1)
        sets = ", ".join(f"(v{t})" for t in ts)
        which = " ".join(f"WHEN v{t} IS NOT NULL THEN {t}" for t in ts)
        return (
            f"CREATE OR REPLACE TEMP TABLE kd_lm_wn AS\n{q_cte}\n"
            f"SELECT CASE {which} ELSE -1 END AS t, COALESCE({vs}, 0) AS v, "
            f"{cols('SUM(w{k}) AS n{k}')}, SUM(wl) AS ll\n"
            f"FROM q GROUP BY GROUPING SETS ({sets}, ())"
        )

    joins = "\n".join(f"    JOIN kd_lm_wt AS t{t} ON t{t}.t = {t} AND t{t}.v = p.v{t}" for t in ts)
    posterior_cte = (
        "WITH s AS (\n"
        f"    SELECT p.cnt, {', '.join(f'p.key{g}' for g in gs)}, {', '.join(f'p.v{t}' for t in ts)}, "
        + ", ".join(f"pr.l{j} + " + " + ".join(f"t{t}.l{j}" for t in ts) + f" AS s{j}" for j in ks)
        + "\n    FROM kd_lm_wp AS p\n    JOIN kd_lm_wt AS pr ON pr.t = -1\n" + joins + "\n),\n"
        f"m AS (SELECT s.*, GREATEST({cols('s{k}')}) AS mx FROM s),\n"
        f"e AS (SELECT cnt, {keys}, {vs}, mx, {cols('EXP(s{k} - mx) AS e{k}')} FROM m),\n"
        f"z AS (SELECT e.*, {' + '.join(f'e{j}' for j in ks)} AS z FROM e),\n"
        # w<k> = cnt x the posterior of class k; wl = cnt x the pattern's log-likelihood
        "q AS (SELECT {out} FROM z)"
    )
    # the E-step keeps only what it sums (its CTE is materialised for the grouping sets)
    estep_cte = posterior_cte.format(out=f"{vs}, {cols('cnt * e{k} / z AS w{k}')}, cnt * (mx + LN(z)) AS wl")
    posterior_cte = posterior_cte.format(out=f"{keys}, {cols('e{k} / z AS q{k}')}")
    # majority start: c<k> = the pattern's votes for class k, by the same joins with a one-hot table
    majority_cte = (
        f"WITH c AS (\n    SELECT p.cnt, {', '.join(f'p.v{t}' for t in ts)}, "
        + ", ".join(" + ".join(f"t{t}.l{j}" for t in ts) + f" AS c{j}" for j in ks)
        + "\n    FROM kd_lm_wp AS p\n" + joins.replace("kd_lm_wt", "kd_lm_wone") + "\n),\n"
        f"cv AS (SELECT c.*, {' + '.join(f'c{j}' for j in ks)} AS nv FROM c),\n"
        f"q AS (SELECT {vs}, CAST(0.0 AS DOUBLE) AS wl, "
        + cols("cnt * CASE WHEN nv > 0 THEN CAST(c{k} AS DOUBLE) / nv ELSE CAST(1.0 AS DOUBLE) / " + str(k) + " END AS w{k}")
        + " FROM cv)"
    )
    if len(gs) == 1:
        sums = "CAST(SUM(o.c) AS BIGINT) AS key0"
    else:
        sums = ", ".join(f"CAST(SUM(CASE WHEN o.g = {g} THEN o.c ELSE 0 END) AS BIGINT) AS key{g}" for g in gs)
    decode = ", ".join(f"CAST((p.key{t // per_key} // {base ** (t % per_key)}) % {base} AS INTEGER) AS c{t}" for t in ts)
    code_joins = "\n".join(f"LEFT JOIN kd_lm_wcode AS m{t} ON m{t}.t = {t} AND m{t}.c = d.c{t}" for t in ts)
    one = "CAST(1.0 AS FLOAT)"
    return {
        "setup_wide_teachers": (
            "CREATE OR REPLACE TEMP TABLE kd_lm_wteach AS\n"
            "WITH w AS (\n"
            "    SELECT teacher_id, output_type, threshold, has_none,\n"
            "           CAST(ROW_NUMBER() OVER (ORDER BY teacher_id) - 1 AS INTEGER) AS t\n"
            "    FROM kd_lm_teachers\n"
            ")\n"
            f"SELECT w.*, {case_t([t // per_key for t in ts])} AS g, "
            f"{case_t([base ** (t % per_key) for t in ts], 'BIGINT')} AS wgt\nFROM w"
        ),
        "setup_wide_votes": (
            "CREATE OR REPLACE TEMP TABLE kd_lm_wv AS\n"
            "WITH o AS (\n"
            "    SELECT s.example_id, w.g,\n"
            "           w.wgt * CASE\n"
            f"               WHEN w.output_type = 'vote' AND array_position(s.scores, {one}) > 0\n"
            f"                   THEN array_position(s.scores, {one}) + 1\n"
            "               WHEN list_max(s.scores) IS NULL THEN 0\n"
            "               WHEN w.has_none AND list_max(s.scores) < w.threshold THEN 1\n"
            "               ELSE array_position(s.scores, list_max(s.scores)) + 1 END AS c\n"
            "    FROM kd.scores AS s\n"
            "    JOIN kd_lm_wteach AS w ON w.teacher_id = s.teacher_id\n"
            "),\n"
            f"g AS (SELECT o.example_id, {sums} FROM o GROUP BY o.example_id)\n"
            f"SELECT x.example_id, {', '.join(f'COALESCE(g.key{g}, 0) AS key{g}' for g in gs)}\n"
            "FROM kd_lm_x AS x LEFT JOIN g ON g.example_id = x.example_id"
        ),
        "setup_wide_patterns": (
            "CREATE OR REPLACE TEMP TABLE kd_lm_wp AS\n"
            f"WITH p AS (SELECT {keys}, COUNT(*) AS cnt FROM kd_lm_wv GROUP BY {keys}),\n"
            f"d AS (SELECT p.*, {decode} FROM p)\n"
            f"SELECT d.cnt, {', '.join(f'd.key{g}' for g in gs)}, {', '.join(f'COALESCE(m{t}.v, -1) AS v{t}' for t in ts)}\n"
            f"FROM d\n{code_joins}"
        ),
        "init_wide_onehot": (
            "CREATE OR REPLACE TEMP TABLE kd_lm_wone AS\n"
            "WITH tv AS (SELECT t, v FROM kd_lm_wsym UNION SELECT t, -1 AS v FROM kd_lm_wteach)\n"
            f"SELECT t, v, {cols('CASE WHEN v = {k} THEN 1 ELSE 0 END AS l{k}')} FROM tv"
        ),
        "init_wide_majority": aggregate(majority_cte),
        "estep_wide_params": (
            "CREATE OR REPLACE TEMP TABLE kd_lm_wt AS\n"
            f"SELECT t, v, {cols('MAX(CASE WHEN k = {k} THEN lp END) AS l{k}')} FROM kd_lm_wlp GROUP BY t, v"
        ),
        "estep_wide": aggregate(estep_cte),
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
        "wide_posteriors": f"CREATE OR REPLACE TEMP TABLE kd_lm_wq AS\n{posterior_cte}\nSELECT {keys}, {cols('q{k}')} FROM q",
        "write_wide_posteriors": (
            "INSERT INTO kd.label_model_fit_posteriors\n"
            f"SELECT $run_id, w.example_id, r.label_id, {pick('q', 'q', 'r.k')} AS posterior\n"
            "FROM kd_lm_wv AS w\n"
            f"JOIN kd_lm_wq AS q ON {' AND '.join(f'q.key{g} = w.key{g}' for g in gs)}\n"
            "CROSS JOIN kd_lm_wrank AS r"
        ),
    }


def _wide_setup(r: Executor, m: int, k: int) -> dict[str, str]:
    sql = _wide_sql(m, k)
    r.run("setup_wide_ranks")
    r.run_sql("setup_wide_teachers", sql["setup_wide_teachers"])
    for name in ("setup_wide_symbols", "setup_wide_codes"):
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
