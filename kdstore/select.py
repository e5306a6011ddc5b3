"""Selection policies: which teacher outputs become distillation targets (``kd.targets``).

Each policy is a SQL view in ``sql/`` (``kd.select_<policy>``) parameterised from ``kd.settings``;
:func:`select` materialises one into ``kd.targets`` under a new ``run_id`` and records its
parameters and a summary in ``kd.runs`` (``kind = 'select'``). Only TRAIN examples get inferred
targets: valid examples judged the teachers, so they enter only as gold rows (``teacher_id`` NULL,
``rule = 'gold'``) when ``gold_weight > 0``; the test split never gets targets.

Target shape (``kd.runs.params->>'task'``):

* ``multiclass``: every covered train example has one row per label of ``kd.labels`` and the
  targets sum to 1 (the policy's evidence normalised per example); all rows of an example carry the
  same ``weight``. Uncovered examples have no rows.
* ``multilabel``: one row per (example, label) a selected teacher covers; a missing row is the
  mask (no selected teacher has an opinion).

Provenance per row: ``teacher_id`` = the contributing teacher with the most weight (ties: the
smallest id), ``rule`` = the policy name. The views hold the full per-teacher detail.

>>> Policy("trust").view
'kd.select_trust'
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from kdstore.errors import SchemaError

if TYPE_CHECKING:
    import pyarrow as pa

    from kdstore.store.core import Store

#: The view files of this module, in dependency order (installed by :func:`install_views`).
VIEW_FILES: tuple[str, ...] = (
    "select_decisions",
    "select_metrics",
    "select_ranking",
    "select_candidates",
    "select_best_per_label",
    "select_experts",
    "select_until_covered",
    "select_consensus_ranking",
    "select_consensus_experts",
    "trusted_outputs",
    "select_trust",
    "trust_reliability",
    "trust_calibration",
)

TASKS = ("multiclass", "multilabel")


class Policy(StrEnum):
    """The selection policies; each value names its view ``kd.select_<value>``."""

    BEST_PER_LABEL = "best_per_label"
    EXPERTS = "experts"
    CONSENSUS_EXPERTS = "consensus_experts"
    TRUST = "trust"
    UNTIL_COVERED = "until_covered"

    @property
    def view(self) -> str:
        return f"kd.select_{self.value}"

    @property
    def needs_gold(self) -> bool:
        return self is not Policy.CONSENSUS_EXPERTS


#: Settings each policy reads (recorded in kd.runs.params).
POLICY_SETTINGS: dict[Policy, tuple[str, ...]] = {
    Policy.BEST_PER_LABEL: ("threshold", "confidence", "select_metric", "min_support", "min_recall", "slice_experts"),
    Policy.EXPERTS: ("threshold", "confidence", "select_metric", "min_support", "min_recall", "slice_experts", "expert_margin"),
    Policy.UNTIL_COVERED: ("threshold", "confidence", "select_metric", "min_support", "min_recall", "slice_experts",
                           "min_targets", "confident_threshold"),
    Policy.CONSENSUS_EXPERTS: ("threshold", "min_support", "expert_margin"),
    Policy.TRUST: ("threshold", "trust_threshold", "trust_weighting"),
}


@dataclass(frozen=True, slots=True)
class SelectResult:
    """What :func:`select` wrote: the run id and the summary stored in ``kd.runs.metrics``."""

    run_id: int
    policy: str
    task: str
    metrics: dict[str, Any]


def install_views(store: Store) -> None:
    """Create (or replace) this module's views in the store, in dependency order."""
    from kdstore.store.schema import sql_dir

    folder = sql_dir()
    with store.transaction():
        for name in VIEW_FILES:
            store.run((folder / f"{name}.sql").read_text())


def infer_task(store: Store) -> str:
    """``multiclass`` when every valid example with gold has exactly one gold label, else ``multilabel``.

    Without any valid gold: ``multiclass`` when every decision-making teacher is multiclass or vote.
    """
    row = store.one(
        """
        SELECT count(*), count(*) FILTER (WHERE n <> 1) FROM (
            SELECT g.example_id, count(DISTINCT g.label_id) AS n
            FROM kd.gold AS g JOIN kd.examples AS e ON e.example_id = g.example_id AND e.split = 'valid'
            GROUP BY g.example_id)
        """
    )
    if row is not None and int(row[0]) > 0:
        return "multiclass" if int(row[1]) == 0 else "multilabel"
    row = store.one(
        "SELECT count(*), count(*) FILTER (WHERE output_type IN ('multiclass', 'vote')) FROM kd.teachers "
        "WHERE output_type IN ('binary', 'multiclass', 'multilabel', 'vote')"
    )
    if row is not None and int(row[0]) > 0 and int(row[0]) == int(row[1]):
        return "multiclass"
    return "multilabel"


def _policy(policy: Policy | str) -> Policy:
    try:
        return Policy(policy)
    except ValueError:
        raise SchemaError(
            f"unknown selection policy {policy!r}; known: {', '.join(p.value for p in Policy)}", source="select"
        ) from None


def _task(store: Store, task: str | None) -> str:
    if task is None:
        return infer_task(store)
    if task not in TASKS:
        raise SchemaError(f"task must be one of {TASKS}, got {task!r}", source="select")
    return task


def _targets_sql(p: Policy, task: str) -> str:
    """SELECT example_id, label_id, target, weight, teacher_id, rule over one split (parameter ``?``).

    ``p.view`` comes from the enum, never from user text.
    """
    if task == "multilabel":
        return (
            f"SELECT example_id, label_id, value AS target, weight, teacher_id, rule FROM {p.view} "
            "WHERE split = ? AND value IS NOT NULL"
        )
    return f"""
        WITH p AS (SELECT * FROM {p.view} WHERE split = ? AND evidence > 0),
        tot AS (
            SELECT example_id, sum(evidence) AS total,
                   first(teacher_id ORDER BY evidence DESC, label_id) AS teacher_id,
                   first(weight ORDER BY evidence DESC, label_id) AS weight
            FROM p GROUP BY example_id
        )
        SELECT tot.example_id, l.label_id, coalesce(p.evidence, 0) / tot.total AS target, tot.weight,
               coalesce(p.teacher_id, tot.teacher_id) AS teacher_id, '{p.value}' AS rule
        FROM tot CROSS JOIN kd.labels AS l
        LEFT JOIN p ON p.example_id = tot.example_id AND p.label_id = l.label_id
    """


def _gold_sql(task: str) -> str:
    """Gold rows of the valid split, weight ``?``: multiclass one-hot (1/k if k gold labels), multilabel 1/0."""
    norm = "1.0 / count(*) OVER (PARTITION BY g.example_id)" if task == "multiclass" else "1.0"
    return f"""
        WITH g AS (
            SELECT DISTINCT g.example_id, g.label_id
            FROM kd.gold AS g JOIN kd.examples AS e ON e.example_id = g.example_id AND e.split = 'valid'
        ),
        gw AS (SELECT g.example_id, g.label_id, {norm} AS target FROM g)
        SELECT ex.example_id, l.label_id, coalesce(gw.target, 0.0) AS target, CAST(? AS DOUBLE) AS weight,
               CAST(NULL AS INTEGER) AS teacher_id, 'gold' AS rule
        FROM (SELECT DISTINCT example_id FROM g) AS ex CROSS JOIN kd.labels AS l
        LEFT JOIN gw ON gw.example_id = ex.example_id AND gw.label_id = l.label_id
    """


def preview(store: Store, policy: Policy | str, *, split: str = "train", task: str | None = None) -> pa.Table:
    """The targets a policy gives the examples of one split, without writing anything.

    This is how a benchmark scores a policy on the test split: every choice (metrics, experts, trust
    models, cut-offs) was made on valid/train data; the test examples are only looked up.
    Columns: example_id, label_id, target, weight, teacher_id, rule.
    """
    p = _policy(policy)
    if split not in ("train", "test"):
        raise SchemaError(f"preview split must be 'train' or 'test', got {split!r}", source="select")
    from kdstore.trust import _arrow

    return _arrow(store, _targets_sql(p, _task(store, task)) + " ORDER BY 1, 2", [split])


def _next_run_id(store: Store) -> int:
    row = store.one("SELECT coalesce(max(run_id), 0) + 1 FROM kd.runs")
    return int(row[0]) if row else 1


def _trust_models(store: Store) -> list[int]:
    return [int(r[0]) for r in store.execute("SELECT DISTINCT model_id FROM kd.trust ORDER BY 1").fetchall()]


def select(
    store: Store,
    policy: Policy | str,
    *,
    run: int | None = None,
    gold_weight: float | None = None,
    task: str | None = None,
) -> SelectResult:
    """Materialise a policy into ``kd.targets`` (one transaction) and record the run in ``kd.runs``.

    Args:
        store: the store.
        policy: a :class:`Policy` or its name.
        run: an existing ``select`` run id to overwrite; None = a new run id.
        gold_weight: weight of the valid split's gold rows (0 = no gold rows); None = setting ``gold_weight``.
        task: ``multiclass`` or ``multilabel``; None = :func:`infer_task`.

    Returns:
        The run id, the task and the summary stored in ``kd.runs.metrics`` (targets, examples,
        inferred/gold example counts, ``inferred_share``, ``coverage`` of the train split).

    >>> import kdstore, pyarrow as pa
    >>> from kdstore.select import select
    >>> with kdstore.connect() as s:
    ...     _ = s.add_labels(["neg", "pos"])
    ...     _ = s.add_examples(pa.table({"example_id": [0, 1, 2, 3], "split": ["valid", "valid", "train", "train"]}))
    ...     _ = s.add_gold(pa.table({"example_id": [0, 1], "label": ["neg", "pos"]}))
    ...     _ = s.ingest_votes(pa.table({"example_id": [0, 1, 2, 3], "lf": [0, 1, 1, -1]}))
    ...     s.settings.update(min_support=1)
    ...     r = select(s, "best_per_label")  # store.select(...) does the same and returns r.run_id
    ...     (r.task, r.metrics["inferred_examples"], r.metrics["coverage"])
    ('multiclass', 1, 0.5)
    """
    p = _policy(policy)
    chosen_task = _task(store, task)
    gw = float(store.settings["gold_weight"] if gold_weight is None else gold_weight)
    if gw != gw or gw < 0 or gw in (float("inf"),):
        raise SchemaError(f"gold_weight must be a finite number >= 0, got {gold_weight!r}", source="select")
    settings = store.settings.to_dict()
    with store.transaction():
        if run is None:
            run_id = _next_run_id(store)
        else:
            row = store.one("SELECT kind FROM kd.runs WHERE run_id = ?", [run])
            if row is None or row[0] != "select":
                raise SchemaError(f"run {run} is not an existing select run", source="select")
            run_id = int(run)
            store.run("DELETE FROM kd.targets WHERE run_id = ?", [run_id])
            store.run("DELETE FROM kd.runs WHERE run_id = ?", [run_id])
        store.run(
            f"INSERT INTO kd.targets SELECT ?, example_id, label_id, target, weight, teacher_id, rule "
            f"FROM ({_targets_sql(p, chosen_task)})",
            [run_id, "train"],
        )
        if gw > 0:
            store.run(
                f"INSERT INTO kd.targets SELECT ?, example_id, label_id, target, weight, teacher_id, rule FROM ({_gold_sql(chosen_task)})",
                [run_id, gw],
            )
        row = store.one(
            """
            SELECT count(*),
                   count(DISTINCT example_id),
                   count(DISTINCT example_id) FILTER (WHERE rule <> 'gold'),
                   count(DISTINCT example_id) FILTER (WHERE rule = 'gold'),
                   count(*) FILTER (WHERE rule <> 'gold'),
                   (SELECT count(*) FROM kd.examples WHERE split = 'train')
            FROM kd.targets WHERE run_id = ?
            """,
            [run_id],
        )
        assert row is not None
        n_rows, n_ex, n_inf, n_gold, n_inf_rows, n_train = (int(x) for x in row)
        metrics: dict[str, Any] = {
            "targets": n_rows,
            "examples": n_ex,
            "inferred_examples": n_inf,
            "gold_examples": n_gold,
            "inferred_targets": n_inf_rows,
            "inferred_share": n_inf / n_ex if n_ex else None,
            "train_examples": n_train,
            "coverage": n_inf / n_train if n_train else None,
        }
        params: dict[str, Any] = {
            "policy": p.value,
            "task": chosen_task,
            "gold_weight": gw,
            "splits": ["train"] + (["valid"] if gw > 0 else []),
            "settings": {k: settings[k] for k in POLICY_SETTINGS[p] if k in settings},
        }
        if p is Policy.TRUST:
            params["trust_models"] = _trust_models(store)
        store.run(
            "INSERT INTO kd.runs (run_id, kind, params, metrics) VALUES (?, 'select', ?, ?)",
            [run_id, json.dumps(params), json.dumps(metrics)],
        )
    return SelectResult(run_id=run_id, policy=p.value, task=chosen_task, metrics=metrics)


def assign_slices(store: Store, source: str, column: str) -> int:
    """Copy a feature column into ``kd.examples.slice`` (as text) so experts can be chosen per slice.

    Returns the number of examples given a slice. Examples missing from the source keep NULL.
    """
    from sqlglot import exp

    from kdstore.ingest import feature_relation

    row = store.one("SELECT columns FROM kd.feature_sources WHERE name = ?", [source])
    if row is None:
        raise SchemaError(f"no feature source {source!r}", source="select")
    names = [c["name"] for c in json.loads(row[0])]
    if column not in names:
        raise SchemaError(f"feature source {source!r} has no column {column!r}", source=source, column=column)
    col = exp.to_identifier(column, quoted=True).sql(dialect="duckdb")
    rel = feature_relation(source)
    with store.transaction():
        store.run(
            f"UPDATE kd.examples AS e SET slice = CAST(f.{col} AS VARCHAR) FROM {rel} AS f WHERE f.example_id = e.example_id"
        )
        got = store.one("SELECT count(*) FROM kd.examples WHERE slice IS NOT NULL")
    return int(got[0]) if got else 0


def list_runs(store: Store, policies: Sequence[str] | None = None) -> pa.Table:
    """The select runs recorded in ``kd.runs`` (run_id, params, metrics, created_at)."""
    tbl = store.query("SELECT run_id, params, metrics, created_at FROM kd.runs WHERE kind = 'select' ORDER BY run_id")
    if policies is None:
        return tbl
    import pyarrow.compute as pc

    keep = [json.loads(x)["policy"] in policies for x in tbl.column("params").to_pylist()]
    return tbl.filter(pc.array(keep))


__all__ = [
    "POLICY_SETTINGS",
    "TASKS",
    "VIEW_FILES",
    "Policy",
    "SelectResult",
    "assign_slices",
    "infer_task",
    "install_views",
    "list_runs",
    "preview",
    "select",
]
