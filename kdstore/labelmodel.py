"""Label-free teacher accuracy: a Dawid–Skene EM whose every iteration is SQL over the stored outputs.

Every teacher's output on an example is one *observation*: the symbol it output (a label, ``-2`` =
"none of my labels" for a binary/multilabel teacher whose decision is negative, ``-1`` = abstain)
with a weight (1 for hard decisions; ``votes="soft"`` uses the scores as fractional votes). The
model says the true label ``k`` of an example is drawn from a class prior, and each teacher outputs
symbol ``v`` with probability ``theta[t, k, v]``, independently of the other teachers:

* ``model="class_conditional"``: a full confusion row ``theta[t, k, :]`` per teacher × true label.
* ``model="one_coin"``: one accuracy ``a[t]`` per teacher; the correct symbol (the label, or -2
  for a label outside a binary teacher's own) has probability ``a``, each wrong one ``(1 - a) / (|symbols| - 1)``.

Abstains (``abstain=``): ``"ignore"`` treats them as missing at random; ``"observe"`` makes
"abstained" an output whose probability depends on the true label (Dawid–Skene as WRENCH runs it:
a keyword rule that fires for one class is evidence even when silent); ``"propensity"`` fits those
rates but, like Snorkel's ``LabelModel.predict_proba``, lets only the actual outputs be evidence.
The one-coin model needs ``"ignore"`` (its abstain rate would not depend on the label).

EM alternates an M-step (counts of symbols weighted by the posteriors, plus Dirichlet pseudo-counts
``smoothing`` per symbol and ``prior_smoothing`` per class, so no probability is 0) and an E-step
(posteriors from the parameters); each step is a few SQL statements from ``sql/labelmodel/*.sql``
over temporary tables, with parameters bound — no Python loop over rows. Posteriors are kept
sparse: only the labels some output gives evidence for have a row; the others stay at the base
distribution times a per-example factor. It stops when no parameter moves more than ``tol``, or
after ``max_iter`` iterations (defaults from ``kd.settings``). The one-coin model on hard votes of
teachers that have every label runs grouped steps (``sql/labelmodel/*_oc_*.sql``): one row per
example x voted label holding the mask of its voters, and per-(mask, label) sums; same fit. The
class-conditional model on hard votes of at most 32 teachers and 64 classes runs wide steps
(:mod:`kdstore.labelmodel_wide`): the votes pivoted to one row per example, the EM over the
distinct vote patterns, one generated statement per E-step (with the M-step's counts); same fit.

An example no teacher covers gets the *base* distribution: the class prior (``"ignore"``,
``"propensity"``), or the prior times P(every teacher abstains | label), normalised (``"observe"``).

Results go to ``kd.label_model_runs`` / ``_priors`` / ``_accuracy`` / ``_fit_posteriors`` under one
run id (also a ``kd.runs`` row); the ``label_model_posteriors`` view applies the latest fit to
every example of every split.

>>> import kdstore, pyarrow as pa
>>> with kdstore.connect() as store:
...     _ = store.add_labels(["neg", "pos"])
...     _ = store.add_examples(pa.table({"example_id": [1, 2, 3, 4], "split": ["train"] * 4}))
...     _ = store.ingest_votes(pa.table({"example_id": [1, 2, 3, 4], "a": [0, 1, 1, -1],
...                                      "b": [0, 1, 0, 1], "c": [0, 1, 1, 1]}))
...     result = fit_label_model(store, model="one_coin")
...     result.converged
True
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from kdstore.errors import KdstoreError, SchemaError
from kdstore.labelmodel_wide import _e_step_wide, _m_step_wide, _wide_ok, _wide_setup

if TYPE_CHECKING:
    import pyarrow as pa

    from kdstore.store.core import Store

MODELS = ("one_coin", "class_conditional")
ABSTAIN_MODES = ("ignore", "observe", "propensity")
VOTE_MODES = ("hard", "soft")
INITS = ("majority", "valid")
CLASS_PRIORS = ("fit", "valid", "uniform")
#: Teacher output types the label model reads (regression and embedding teachers have no votes).
VOTING_TYPES = ("vote", "multiclass", "binary", "multilabel")
#: Symbols besides label ids in ``kd.label_model_accuracy.voted_label_id``.
ABSTAIN, NONE = -1, -2

_PARAM = re.compile(r"\$([a-z_]+)")
#: ``perfect_ht_threshold`` (bits) during a fit: per-example aggregates over up to 2^20 dense ids use an array.
_PERFECT_HT_BITS = 20


@dataclass(frozen=True, slots=True)
class LabelModelResult:
    """One label-model fit (its parameters and posteriors are in the store under ``run_id``).

    Attributes:
        run_id: the fit's id in ``kd.label_model_runs`` (and ``kd.runs``).
        model, abstain, votes, init, class_prior: the options used.
        iterations: EM iterations run (one M-step + one E-step each).
        converged: True when the largest parameter change fell below ``tol`` within ``max_iter``.
        log_likelihood: the log-likelihood of the fit examples' outputs after each iteration
            (without the smoothing terms; with ``abstain="propensity"`` a pseudo-likelihood).
        n_examples: examples fitted; n_teachers: teachers used.
        seconds: wall time of the fit.
    """

    run_id: int
    model: str
    abstain: str
    votes: str
    init: str
    class_prior: str
    iterations: int
    converged: bool
    log_likelihood: tuple[float, ...]
    n_examples: int
    n_teachers: int
    seconds: float


def _params_of(text: str) -> tuple[str, ...]:
    """The names of the ``$name`` parameters of a statement (outside ``--`` comments)."""
    code = "\n".join(line.split("--", 1)[0] for line in text.splitlines())
    return tuple(dict.fromkeys(_PARAM.findall(code)))


@cache
def _template(name: str) -> tuple[str, tuple[str, ...]]:
    """The text of ``sql/labelmodel/<name>.sql`` and the names of its bound parameters."""
    from kdstore.store.schema import sql_dir

    text = (Path(sql_dir()) / "labelmodel" / f"{name}.sql").read_text()
    return text, _params_of(text)


def statement(name: str) -> str:
    """The SQL text of one EM statement (``sql/labelmodel/<name>.sql``), as it is run."""
    return _template(name)[0]


class Executor(Protocol):
    """What the EM driver needs from an engine: the seam between :func:`fit_em` and DuckDB or Spark.

    SQL given to ``rows`` / ``execute`` is DuckDB SQL with ``$name`` parameters over ``kd.*``
    tables and ``kd_lm_*`` temporary tables; an engine other than DuckDB transpiles it (sqlglot).
    ``kdstore.spark`` has the Spark executor.
    """

    params: dict[str, Any]

    def run(self, name: str) -> None:
        """Run statement ``sql/labelmodel/<name>.sql`` with its parameters from ``params``."""

    def run_sql(self, name: str, sql: str) -> None:
        """Run generated statement ``sql`` (DuckDB SQL, ``$name`` parameters from ``params``) like a
        ``sql/labelmodel`` file; ``name`` says which in errors and traces (the wide steps' statements,
        whose columns depend on the problem's size)."""

    def scalar(self, name: str) -> float:
        """The value of query ``sql/labelmodel/<name>.sql`` (0.0 when NULL or no row)."""

    def execute(self, sql: str) -> None:
        """Run one statement (a temporary table from a query)."""

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """All rows of a (small) query."""

    def temp_table(self, name: str, column: str, sql_type: str, values: Sequence[Any]) -> None:
        """(Re)create one-column temporary table ``name`` holding ``values``."""

    def insert(self, table: str, row: dict[str, Any]) -> None:
        """Add one row to ``kd.<table>`` (the columns not given take their defaults)."""

    def transaction(self) -> AbstractContextManager[Any]:
        """All or nothing for the fit's writes (where the engine has transactions)."""


class _Runner:
    """The DuckDB executor: runs the EM statements on one store with the fit's bound parameters."""

    def __init__(self, store: Store, params: dict[str, Any] | None = None):
        self.store = store
        self.params = params if params is not None else {}

    def run(self, name: str) -> None:
        text, names = _template(name)
        self.store.run(text, {n: self.params[n] for n in names} if names else None)

    def run_sql(self, name: str, sql: str) -> None:
        names = _params_of(sql)
        self.store.run(sql, {n: self.params[n] for n in names} if names else None)

    def scalar(self, name: str) -> float:
        text, names = _template(name)
        row = self.store.one(text, {n: self.params[n] for n in names} if names else None)
        return float(row[0]) if row is not None and row[0] is not None else 0.0

    def execute(self, sql: str) -> None:
        self.store.run(sql)

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.store.execute(sql, params).fetchall()]

    def temp_table(self, name: str, column: str, sql_type: str, values: Sequence[Any]) -> None:
        self.store.run(f"CREATE OR REPLACE TEMP TABLE {name} ({column} {sql_type})")
        self.store.run_many(f"INSERT INTO {name} VALUES (?)", [(v,) for v in values])

    def insert(self, table: str, row: dict[str, Any]) -> None:
        self.store.run(
            f"INSERT INTO kd.{table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values())
        )

    def transaction(self) -> AbstractContextManager[Any]:
        return self.store.transaction()


def _setting(r: Executor, name: str, value: float | None) -> float:
    if value is not None:
        return float(value)
    rows = r.rows("SELECT value FROM kd.settings WHERE name = $name", {"name": name})
    if not rows:
        raise SchemaError(f"unknown setting {name!r}", source="settings")
    return float(rows[0][0])


def _resolve_teachers(r: Executor, teachers: Sequence[str] | None) -> list[int]:
    if teachers is None:
        rows = r.rows(
            "SELECT teacher_id FROM kd.teachers WHERE output_type IN ('vote', 'multiclass', 'binary', 'multilabel') "
            "AND teacher_id IN (SELECT teacher_id FROM kd.teacher_labels) ORDER BY teacher_id"
        )
        return [int(row[0]) for row in rows]
    ids = []
    for name in teachers:
        found = r.rows("SELECT teacher_id, output_type FROM kd.teachers WHERE name = $name", {"name": name})
        if not found:
            raise SchemaError(f"unknown teacher {name!r}", source="label model teachers")
        row = found[0]
        if row[1] not in VOTING_TYPES:
            raise SchemaError(
                f"teacher {name!r} has output type {row[1]!r}; the label model reads {', '.join(VOTING_TYPES)}",
                source="label model teachers",
            )
        ids.append(int(row[0]))
    return sorted(set(ids))


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise SchemaError(f"{name} must be one of {', '.join(choices)}; got {value!r}", source="fit_label_model")


def fit_label_model(
    store: Store,
    *,
    model: str = "class_conditional",
    abstain: str | None = None,
    votes: str = "hard",
    init: str = "majority",
    class_prior: str = "fit",
    fit_splits: Sequence[str] = ("train",),
    teachers: Sequence[str] | None = None,
    max_iter: int | None = None,
    tol: float | None = None,
    smoothing: float | None = None,
    prior_smoothing: float | None = None,
    seed: int = 0,
    store_posteriors: bool = True,
) -> LabelModelResult:
    """Fit a Dawid–Skene label model to the stored outputs by EM in SQL; no gold label is needed.

    Args:
        store: a writable store.
        model: ``"class_conditional"`` (a confusion row per teacher × true label) or ``"one_coin"``
            (one accuracy per teacher).
        abstain: ``"ignore"``, ``"observe"`` or ``"propensity"`` (see the module docstring); default
            ``"observe"`` for the class-conditional model, ``"ignore"`` for the one-coin model.
        votes: ``"hard"`` (each output's decision: the top label; binary/multilabel below the
            threshold = -2) or ``"soft"`` (scores as fractional votes; see ``sql/labelmodel/setup_obs_soft.sql``).
        init: ``"majority"`` (start from each example's share of label votes; uniform without votes)
            or ``"valid"`` (start from parameters counted on the valid split's gold labels).
        class_prior: ``"fit"`` (re-estimated every iteration), ``"valid"`` (fixed: the valid split's
            gold label frequencies) or ``"uniform"`` (fixed).
        fit_splits: the splits whose examples are fitted (never include ``"test"`` in evaluation code).
        teachers: teacher names to use (default: every vote/multiclass/binary/multilabel teacher).
        max_iter, tol, smoothing, prior_smoothing: default from ``kd.settings``
            (``label_model_max_iter``, ``label_model_tol``, ``label_model_smoothing``,
            ``label_model_prior_smoothing``).
        seed: recorded with the run; the EM itself uses no randomness (same inputs, same result).
        store_posteriors: also write the dense posteriors of the fit examples (``kd.label_model_fit_posteriors``).

    Returns:
        A :class:`LabelModelResult`; everything else is in the store under its ``run_id``.

    Raises:
        SchemaError: a bad option, or nothing to fit (no examples, no teachers, no valid gold for
            ``init="valid"`` / ``class_prior="valid"``). The store is then unchanged.
    """
    saved = store.one("SELECT current_setting('perfect_ht_threshold'), current_setting('disabled_optimizers')")
    perfect, disabled = (int(saved[0]), str(saved[1] or "")) if saved else (12, "")
    # DuckDB settings during the fit (restored after; they change plans, not results):
    # GROUP BY example_id uses a perfect hash table (an array) when the ids span < 2^20 values (the
    # default 2^12 makes every per-example sum a hash aggregation), and the partial-aggregate
    # pushdown is off (it pre-aggregated the 2.4M (example, label) rows below the join: 2 s of 2.3 s).
    store.run(f"SET perfect_ht_threshold = {max(perfect, _PERFECT_HT_BITS)}")
    store.run("SET disabled_optimizers = ?", [",".join(x for x in (disabled, "partial_aggregate_pushdown") if x)])
    try:
        with store.transaction():
            result = fit_em(
                _Runner(store), model=model, abstain=abstain, votes=votes, init=init, class_prior=class_prior,
                fit_splits=fit_splits, teachers=teachers, max_iter=max_iter, tol=tol, smoothing=smoothing,
                prior_smoothing=prior_smoothing, seed=seed, store_posteriors=store_posteriors,
            )
        return result
    finally:
        store.run(f"SET perfect_ht_threshold = {perfect}")
        store.run("SET disabled_optimizers = ?", [disabled])


def fit_em(
    r: Executor,
    *,
    model: str = "class_conditional",
    abstain: str | None = None,
    votes: str = "hard",
    init: str = "majority",
    class_prior: str = "fit",
    fit_splits: Sequence[str] = ("train",),
    teachers: Sequence[str] | None = None,
    max_iter: int | None = None,
    tol: float | None = None,
    smoothing: float | None = None,
    prior_smoothing: float | None = None,
    seed: int = 0,
    store_posteriors: bool = True,
    run_id: int | None = None,
) -> LabelModelResult:
    """The EM driver of :func:`fit_label_model` on any engine (an :class:`Executor`): same options;
    ``run_id`` defaults to the next free ``kd.runs`` id. Results are written with ``r.insert`` and
    the ``write_*`` statements."""
    _check_choice("model", model, MODELS)
    abstain = abstain or ("ignore" if model == "one_coin" else "observe")
    _check_choice("abstain", abstain, ABSTAIN_MODES)
    _check_choice("votes", votes, VOTE_MODES)
    _check_choice("init", init, INITS)
    _check_choice("class_prior", class_prior, CLASS_PRIORS)
    if model == "one_coin" and abstain != "ignore":
        raise SchemaError("the one-coin model needs abstain='ignore'", source="fit_label_model")
    splits = list(dict.fromkeys(fit_splits))
    if not splits or any(s not in ("train", "valid", "test") for s in splits):
        raise SchemaError(f"fit_splits must name train/valid/test splits; got {list(fit_splits)!r}", source="fit_label_model")
    n_iter = int(_setting(r, "label_model_max_iter", max_iter))
    tolerance = _setting(r, "label_model_tol", tol)
    alpha = _setting(r, "label_model_smoothing", smoothing)
    beta = _setting(r, "label_model_prior_smoothing", prior_smoothing)
    if n_iter < 1:
        raise SchemaError(f"max_iter must be >= 1; got {n_iter}", source="fit_label_model")
    if not (alpha > 0 and beta > 0):
        raise SchemaError("smoothing and prior_smoothing must be > 0 (no probability may be 0)", source="fit_label_model")
    if not tolerance >= 0:
        raise SchemaError(f"tol must be >= 0; got {tolerance}", source="fit_label_model")
    teacher_ids = _resolve_teachers(r, teachers)
    if not teacher_ids:
        raise SchemaError("no teachers with votes or class scores to fit", source="fit_label_model")

    started = time.perf_counter()
    k = int(r.rows("SELECT COUNT(*) FROM kd.labels")[0][0])
    if k < 2:
        raise SchemaError(f"the label model needs at least 2 labels; the store has {k}", source="fit_label_model")
    r.params.update({
        "abstain_rows": abstain != "ignore",
        "abstain_evidence": abstain == "observe",
        "alpha": alpha, "beta": beta, "k": k,
    })
    with r.transaction():
        r.execute("CREATE OR REPLACE TEMP TABLE kd_lm_classes AS SELECT label_id FROM kd.labels")
        r.temp_table("kd_lm_selected", "teacher_id", "INTEGER", teacher_ids)
        r.temp_table("kd_lm_splits", "split", "VARCHAR", splits)
        for name in ("setup_teachers", "setup_symbols", "setup_n_symbols", "setup_correct"):
            r.run(name)
        if class_prior == "valid" or init == "valid":
            n_gold = r.rows(
                "SELECT COUNT(DISTINCT g.example_id) FROM kd.gold g JOIN kd.examples e USING (example_id) "
                "WHERE e.split = 'valid' AND g.label_id IN (SELECT label_id FROM kd_lm_classes)"
            )
            if not n_gold or not n_gold[0][0]:
                raise SchemaError(
                    f"init={init!r}, class_prior={class_prior!r} need gold labels on the valid split; there are none",
                    source="fit_label_model",
                )
        if class_prior == "valid":
            r.run("prior_valid")
        elif class_prior == "uniform":
            r.run("prior_uniform")

        if init == "valid":
            # parameters counted on the valid gold labels, then one E-step on the fit examples
            for name in ("setup_examples_gold", f"setup_obs_{votes}", "init_gold_q", "init_gold_r", "init_uniform_base"):
                r.run(name)
            _m_step(r, model, abstain, class_prior)

        r.run("setup_examples")
        n_examples = int(r.rows("SELECT COUNT(*) FROM kd_lm_x")[0][0])
        if n_examples == 0:
            raise SchemaError(f"no examples in the fit splits {splits}", source="fit_label_model")
        grouped = _grouped_ok(r, model, votes, k, n_examples, alpha, beta)
        wide = not grouped and _wide_ok(model, votes, k, len(teacher_ids))
        wide_sql: dict[str, str] = {}
        if grouped:
            for name in ("setup_oc_bits", "setup_oc_groups", "setup_oc_patterns", "setup_oc_members", "setup_oc_wsum"):
                r.run(name)
        elif wide:
            wide_sql = _wide_setup(r, len(teacher_ids), k)
        else:
            r.run(f"setup_obs_{votes}")
            r.run("setup_wsum")
        m_step, e_step = (_m_step_grouped, _e_step_grouped) if grouped else (_m_step, _e_step)
        if wide:
            def m_step(r: Executor, model: str, abstain: str, class_prior: str) -> None:
                _m_step_wide(r, wide_sql, class_prior)

            def e_step(r: Executor) -> float:
                return _e_step_wide(r, wide_sql)
        if init == "valid":
            e_step(r)
        elif wide:
            for name in ("init_wide_onehot", "init_wide_majority"):
                r.run_sql(name, wide_sql[name])
        elif grouped:
            for name in ("init_uniform_base", "init_oc_u", "init_oc_z"):
                r.run(name)
        else:
            for name in ("init_majority_q", "init_majority_r", "init_uniform_base"):
                r.run(name)

        trace: list[float] = []
        converged = False
        have_prev = init == "valid"
        if have_prev:
            r.run("keep_prev")
            r.run("keep_prev_prior")
        iterations = 0
        for iterations in range(1, n_iter + 1):  # noqa: B007 (used after the loop)
            m_step(r, model, abstain, class_prior)
            trace.append(e_step(r))
            if have_prev and r.scalar("change") < tolerance:
                converged = True
                break
            r.run("keep_prev")
            r.run("keep_prev_prior")
            have_prev = True

        run_id = _next_run_id(r) if run_id is None else int(run_id)
        r.params["run_id"] = run_id
        params = {
            "model": model, "abstain": abstain, "votes": votes, "init": init, "class_prior": class_prior,
            "fit_splits": splits, "teachers": teacher_ids, "max_iter": n_iter, "tol": tolerance,
            "smoothing": alpha, "prior_smoothing": beta, "seed": seed,
        }
        metrics = {"iterations": iterations, "converged": converged, "log_likelihood": trace}
        r.insert("runs", {"run_id": run_id, "kind": "label_model", "params": json.dumps(params),
                          "metrics": json.dumps(metrics)})
        r.insert("label_model_runs", {
            "run_id": run_id, "model": model, "abstain": abstain, "votes": votes, "init": init,
            "class_prior": class_prior, "fit_splits": ",".join(splits), "smoothing": alpha, "prior_smoothing": beta,
            "tol": tolerance, "max_iter": n_iter, "seed": seed, "iterations": iterations, "converged": converged,
            "log_likelihood": trace, "n_examples": n_examples, "n_teachers": len(teacher_ids),
        })
        r.run("write_priors")
        r.run("write_accuracy")
        if store_posteriors and wide:
            r.run_sql("wide_posteriors", wide_sql["wide_posteriors"])
            r.run_sql("write_wide_posteriors", wide_sql["write_wide_posteriors"])
        elif store_posteriors:
            r.run("write_oc_posteriors" if grouped else "write_posteriors")
    return LabelModelResult(
        run_id=run_id, model=model, abstain=abstain, votes=votes, init=init, class_prior=class_prior,
        iterations=iterations, converged=converged, log_likelihood=tuple(trace), n_examples=n_examples,
        n_teachers=len(teacher_ids), seconds=time.perf_counter() - started,
    )


def _m_step(r: Executor, model: str, abstain: str, class_prior: str) -> None:
    # the one-coin model needs one number per teacher, not the teacher x class x symbol counts
    r.run("mstep_one_coin_counts" if model == "one_coin" else "mstep_counts")
    if abstain != "ignore" or class_prior == "fit":
        r.run("mstep_mass")
    if abstain != "ignore":
        r.run("mstep_abstain")
    if class_prior == "fit":
        r.run("mstep_prior_fit")
    r.run(f"mstep_theta_{model}")


def _e_step(r: Executor) -> float:
    for name in ("estep_base", "estep_delta", "estep_scores", "estep_norm", "estep_q", "estep_r"):
        r.run(name)
    return r.scalar("loglik")


def _grouped_ok(r: Executor, model: str, votes: str, k: int, n: int, alpha: float, beta: float) -> bool:
    """Whether the grouped one-coin steps (``sql/labelmodel/*_oc_*.sql``) fit this problem.

    They need the one-coin model on hard votes from teachers that all have every label and no
    "none" symbol (so a vote touches exactly the voted label), at most 62 - log2(K) teachers (one bit
    each of a BIGINT mask * K + label rank), and |log-posterior| < 700 without a per-example shift: with Dirichlet smoothing a
    teacher's accuracy lies in [alpha / (n + alpha K), (n + alpha) / (n + alpha K)] and the prior
    in [beta / (n + beta K), 1], which bounds it by m (ln((n + alpha) / alpha) + ln K) + ln((n + beta K) / beta).
    """
    if model != "one_coin" or votes != "hard":
        return False
    rows = r.rows(
        "SELECT COUNT(*), COUNT(*) FILTER (WHERE t.has_none OR (SELECT COUNT(DISTINCT tl.label_id) FROM kd.teacher_labels AS tl "
        "WHERE tl.teacher_id = t.teacher_id AND tl.label_id IN (SELECT label_id FROM kd_lm_classes)) < $k) FROM kd_lm_teachers AS t",
        {"k": k},
    )
    m, partial = (int(rows[0][0]), int(rows[0][1])) if rows else (0, 1)
    n_gold = r.rows("SELECT COUNT(*) FROM kd.gold")
    size = max(n, int(n_gold[0][0]) if n_gold else 0) + 1
    bound = m * (np.log((size + alpha) / alpha) + np.log(k)) + np.log((size + beta * k) / beta)
    return partial == 0 and m > 0 and m + int(np.ceil(np.log2(k))) <= 62 and bool(bound < 700.0)


def _m_step_grouped(r: Executor, model: str, abstain: str, class_prior: str) -> None:
    # one pass over the (example, voted label, teacher mask) rows; the rest is per (mask, label)
    r.run("mstep_oc_stats")
    r.run("mstep_oc_counts")
    if class_prior == "fit":
        r.run("mstep_oc_mass")
        r.run("mstep_prior_fit")
    r.run("mstep_theta_one_coin")


def _e_step_grouped(r: Executor) -> float:
    for name in ("estep_base", "estep_oc_delta", "estep_oc_u", "estep_oc_z"):
        r.run(name)
    return r.scalar("loglik_oc")


def _next_run_id(r: Executor) -> int:
    return int(r.rows("SELECT COALESCE(MAX(run_id), 0) + 1 FROM kd.runs")[0][0])


def _latest_run(store: Store, run_id: int | None) -> int:
    if run_id is not None:
        row = store.one("SELECT run_id FROM kd.label_model_runs WHERE run_id = ?", [run_id])
        if row is None:
            raise KdstoreError(f"no label model run {run_id}")
        return int(row[0])
    row = store.one("SELECT MAX(run_id) FROM kd.label_model_runs")
    if row is None or row[0] is None:
        raise KdstoreError("no label model has been fitted in this store (run fit_label_model first)")
    return int(row[0])


def teacher_accuracy(store: Store, run_id: int | None = None) -> pa.Table:
    """Per teacher × label accuracy estimates of a fit (default: the latest).

    Columns: ``teacher_id``, ``label_id``, ``prior`` (P(label)), ``recall`` (P(teacher outputs the
    label | true label, it did not abstain)), ``precision`` (P(true label | teacher outputs it),
    Bayes' rule over the fitted confusion rows and prior), ``accuracy`` (P(correct output | it did
    not abstain), the same value on every row of a teacher). A label outside the teacher's own has
    NULL recall and precision.
    """
    rid = _latest_run(store, run_id)
    return store.query(
        """
        WITH th AS (SELECT teacher_id, true_label_id AS k, voted_label_id AS v, prob FROM kd.label_model_accuracy WHERE run_id = $run),
        pr AS (SELECT label_id AS k, prior FROM kd.label_model_priors WHERE run_id = $run),
        fired AS (SELECT teacher_id, k, 1.0 - SUM(CASE WHEN v = -1 THEN prob ELSE 0.0 END) AS f FROM th GROUP BY teacher_id, k),
        own AS (SELECT teacher_id, label_id AS k FROM kd.teacher_labels WHERE teacher_id IN (SELECT teacher_id FROM th)),
        diag AS (
            SELECT th.teacher_id, th.k, th.prob / NULLIF(fi.f, 0.0) AS recall
            FROM th JOIN fired fi ON fi.teacher_id = th.teacher_id AND fi.k = th.k
            WHERE th.v = th.k
        ),
        out_mass AS (
            SELECT th.teacher_id, th.v, SUM(th.prob * pr.prior) AS m FROM th JOIN pr ON pr.k = th.k GROUP BY th.teacher_id, th.v
        ),
        prec AS (
            SELECT th.teacher_id, th.k, th.prob * pr.prior / NULLIF(om.m, 0.0) AS precision
            FROM th JOIN pr ON pr.k = th.k JOIN out_mass om ON om.teacher_id = th.teacher_id AND om.v = th.v
            WHERE th.v = th.k
        ),
        acc AS (
            SELECT th.teacher_id,
                   SUM(CASE WHEN th.v = th.k OR (th.v = -2 AND o.k IS NULL) THEN th.prob * pr.prior ELSE 0.0 END)
                   / NULLIF(SUM(CASE WHEN th.v <> -1 THEN th.prob * pr.prior ELSE 0.0 END), 0.0) AS accuracy
            FROM th JOIN pr ON pr.k = th.k
            LEFT JOIN own o ON o.teacher_id = th.teacher_id AND o.k = th.k
            GROUP BY th.teacher_id
        )
        SELECT t.teacher_id, pr.k AS label_id, pr.prior,
               CASE WHEN o.k IS NULL THEN NULL ELSE d.recall END AS recall,
               CASE WHEN o.k IS NULL THEN NULL ELSE p.precision END AS precision,
               acc.accuracy
        FROM (SELECT DISTINCT teacher_id FROM th) t
        CROSS JOIN pr
        JOIN acc ON acc.teacher_id = t.teacher_id
        LEFT JOIN own o ON o.teacher_id = t.teacher_id AND o.k = pr.k
        LEFT JOIN diag d ON d.teacher_id = t.teacher_id AND d.k = pr.k
        LEFT JOIN prec p ON p.teacher_id = t.teacher_id AND p.k = pr.k
        ORDER BY t.teacher_id, pr.k
        """,
        {"run": rid},
    )


def posteriors(store: Store, *, splits: Sequence[str] | None = None) -> pa.Table:
    """Posteriors of the latest fit for every example of ``splits`` (default: all), from the
    ``label_model_posteriors`` view: columns ``example_id``, ``split``, ``label_id``, ``posterior``, ``run_id``."""
    _latest_run(store, None)
    if splits is None:
        return store.query("SELECT * FROM kd.label_model_posteriors ORDER BY example_id, label_id")
    store.run("CREATE OR REPLACE TEMP TABLE kd_lm_want (split VARCHAR)")
    store.run_many("INSERT INTO kd_lm_want VALUES (?)", [(s,) for s in splits])
    return store.query(
        "SELECT * FROM kd.label_model_posteriors WHERE split IN (SELECT split FROM kd_lm_want) ORDER BY example_id, label_id"
    )


def _hash(i: int) -> int:
    return int(hashlib.sha1(str(i).encode("utf-8")).hexdigest(), 16)


def probs_to_preds(probs: np.ndarray, *, tol: float = 1e-5, index: np.ndarray | None = None) -> np.ndarray:
    """Class index of each row of ``probs``; ties broken as Snorkel's ``probs_to_preds`` (WRENCH's rule).

    Labels within ``tol`` of the row maximum tie; a tied row ``i`` takes
    ``tied[sha1(str(index[i])) % len(tied)]`` (``index`` defaults to the row number), which is
    deterministic and what WRENCH scores its label models (and majority vote) with.

    >>> probs_to_preds(np.array([[0.2, 0.8], [0.5, 0.5], [0.5, 0.5]]))  # as snorkel 0.10.0 gives
    array([1, 1, 0])
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise SchemaError(f"probs must be a 2-d array with >= 2 columns; got shape {p.shape}", source="probs_to_preds")
    tied = np.abs(p - p.max(axis=1, keepdims=True)) < tol
    preds = np.argmax(tied, axis=1)
    idx = np.arange(len(p)) if index is None else np.asarray(index)
    for i in np.flatnonzero(tied.sum(axis=1) > 1):  # only tied rows need the hash
        choices = np.flatnonzero(tied[i])
        preds[i] = choices[_hash(int(idx[i])) % len(choices)]
    out: np.ndarray = preds.astype(np.int64)
    return out


__all__ = [
    "ABSTAIN",
    "ABSTAIN_MODES",
    "CLASS_PRIORS",
    "INITS",
    "MODELS",
    "NONE",
    "VOTE_MODES",
    "Executor",
    "LabelModelResult",
    "fit_em",
    "fit_label_model",
    "posteriors",
    "probs_to_preds",
    "statement",
    "teacher_accuracy",
]
