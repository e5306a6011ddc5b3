"""Run the evaluation views of ``sql/`` and return their rows as Arrow tables.

Every judgement about a teacher is a view in the store file (``kd.label_metrics``,
``kd.label_experts``, ``kd.consensus_z``, ...), so an analyst gets the same rows from any DuckDB
client; this module is the Python door to them. Filters are bound parameters, never formatted
into SQL. ``store.evaluate`` offers the same functions as methods.

>>> import kdstore, pyarrow as pa
>>> with kdstore.connect() as store:
...     _ = store.add_labels(["cat", "dog"])
...     _ = store.add_examples(pa.table({"example_id": [0, 1, 2], "split": ["valid"] * 3}))
...     _ = store.add_gold(pa.table({"example_id": [0, 1], "label": ["cat", "dog"]}))
...     _ = store.add_teacher("t", labels=["cat", "dog"], output_type="multiclass")
...     _ = store.ingest_outputs("t", pa.table({"example_id": [0, 1, 2], "cat": [0.9, 0.6, 0.2],
...                                            "dog": [0.1, 0.4, 0.8]}), form="wide")
...     m = store.evaluate.label_metrics(label="cat")
...     (m["tp"][0].as_py(), m["fp"][0].as_py(), m["precision"][0].as_py())
(1, 1, 0.5)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kdstore.errors import KdstoreError, ViewExecutionError

if TYPE_CHECKING:
    import pyarrow as pa

    from kdstore.store.core import Store

#: kdstore's evaluation views, in the order a reader meets them (docs/views.md describes each).
VIEWS: tuple[str, ...] = (
    "params",
    "confidence_z",
    "decisions",
    "label_metrics",
    "label_experts",
    "labels_without_expert",
    "teacher_slots",
    "consensus_pages",
    "consensus",
    "consensus_example",
    "consensus_z",
    "consensus_experts",
    "consensus_expertise",
    "teacher_summary",
    "teacher_label_summary",
)


@dataclass(frozen=True, slots=True)
class LabelExperts:
    """The experts of one label, as :func:`experts` reads them from ``kd.label_experts``.

    Attributes:
        label_id: the label.
        label: its name.
        best: the best qualifying teacher, or None when no teacher qualifies.
        experts: every qualifying teacher within ``expert_margin`` of the best, best first.
        metric: the ranking metric's name (the ``expert_metric`` setting).
        best_metric: the best teacher's metric value (None without a best).
        reason: why no teacher qualifies (from ``kd.labels_without_expert``), else None.
    """

    label_id: int
    label: str
    best: str | None
    experts: tuple[str, ...]
    metric: str | None
    best_metric: float | None
    reason: str | None


def installed_views(store: Store) -> tuple[str, ...]:
    """The names of the views in the store's ``kd`` schema (kdstore's and the analyst's)."""
    rows = store.execute(
        "SELECT view_name FROM duckdb_views() WHERE schema_name = 'kd' AND NOT internal ORDER BY view_name"
    ).fetchall()
    return tuple(str(r[0]) for r in rows)


def view(
    store: Store,
    name: str,
    *,
    where: dict[str, Any] | None = None,
    columns: Sequence[str] | None = None,
    order_by: Sequence[str] | None = None,
) -> pa.Table:
    """Rows of the view ``kd.<name>`` as a ``pyarrow.Table``.

    Args:
        name: a view of the store (see :func:`installed_views`).
        where: ``{column: value}`` equality filters (a list/tuple value means "one of"); values are
            bound parameters.
        columns: the columns to return (default all).
        order_by: columns to sort by (default: the view's own order, which is not guaranteed).

    Raises:
        KdstoreError: unknown view or column.
        ViewExecutionError: the engine failed running the view (``.sql()`` shows the statement).
    """
    from sqlglot import exp

    views = installed_views(store)
    if name not in views:
        raise KdstoreError(f"no view kd.{name} in {store.path} (views: {', '.join(views) or 'none'})")
    have = _columns(store, name)
    wanted = list(columns) if columns is not None else None
    for c in [*(wanted or []), *(where or {}), *(order_by or [])]:
        if c not in have:
            raise KdstoreError(f"view kd.{name} has no column {c!r} (columns: {', '.join(have)})")
    select = exp.select(*[exp.column(c, quoted=True) for c in wanted] if wanted else [exp.Star()]).from_(
        exp.table_(name, db="kd", quoted=True)
    )
    params: list[Any] = []
    for c, value in (where or {}).items():
        if isinstance(value, (list, tuple)):
            select = select.where(
                exp.column(c, quoted=True).isin(*[exp.Placeholder() for _ in value]) if value else exp.false()
            )
            params.extend(value)
        elif value is None:
            select = select.where(exp.column(c, quoted=True).is_(exp.null()))
        else:
            select = select.where(exp.column(c, quoted=True).eq(exp.Placeholder()))
            params.append(value)
    if order_by:
        select = select.order_by(*[exp.column(c, quoted=True) for c in order_by])
    sql = select.sql(dialect="duckdb")
    try:
        return store.query(sql, params or None)
    except Exception as e:  # duckdb.Error and friends: keep the statement for the user
        if isinstance(e, KdstoreError):
            raise
        raise ViewExecutionError(str(e).replace("\n", " "), view=name, sql=sql) from e


def _columns(store: Store, name: str) -> list[str]:
    from kdstore.sqlfiles import kd_columns

    return [c.name for c in kd_columns(store, name)]


#: How a teacher or label name is looked up (``kind`` of :func:`_ids`).
_ID_SQL = {
    "teacher": "SELECT teacher_id FROM kd.teachers WHERE name = ?",
    "label": "SELECT label_id FROM kd.labels WHERE name = ?",
}


def _ids(store: Store, kind: str, names: str | Sequence[str]) -> list[int]:
    """The ids of teacher or label ``names`` (one name or several); an unknown name is a KdstoreError."""
    ids = []
    for n in [names] if isinstance(names, str) else list(names):
        row = store.one(_ID_SQL[kind], [n])
        if row is None:
            raise KdstoreError(f"unknown {kind} {n!r}")
        ids.append(int(row[0]))
    return ids


def _filters(
    store: Store, teacher: str | Sequence[str] | None, label: str | Sequence[str] | None, **more: Any
) -> dict[str, Any]:
    where: dict[str, Any] = {}
    if teacher is not None:
        where["teacher_id"] = _ids(store, "teacher", teacher)
    if label is not None:
        where["label_id"] = _ids(store, "label", label)
    where.update({k: v for k, v in more.items() if v is not None})
    return where


def decisions(store: Store, *, teacher: str | Sequence[str] | None = None) -> pa.Table:
    """``kd.decisions``: every output as a positive/negative decision (train and valid)."""
    return view(store, "decisions", where=_filters(store, teacher, None), order_by=["teacher_id", "example_id", "label_id"])


def label_metrics(
    store: Store, *, teacher: str | Sequence[str] | None = None, label: str | Sequence[str] | None = None
) -> pa.Table:
    """``kd.label_metrics``: per teacher x label confusion counts, precision, recall, F1, Wilson bounds."""
    return view(store, "label_metrics", where=_filters(store, teacher, label), order_by=["teacher_id", "label_id"])


def label_experts(store: Store, *, label: str | Sequence[str] | None = None) -> pa.Table:
    """``kd.label_experts``: every teacher of every label, ranked by the ``expert_metric`` setting."""
    return view(store, "label_experts", where=_filters(store, None, label), order_by=["label_id", "rank", "teacher_id"])


def labels_without_expert(store: Store) -> pa.Table:
    """``kd.labels_without_expert``: labels no teacher qualifies for, with the reason."""
    return view(store, "labels_without_expert", order_by=["label_id"])


def experts(store: Store) -> list[LabelExperts]:
    """One :class:`LabelExperts` per label of the vocabulary, in label_id order."""
    rows = view(store, "label_experts", where={"qualifies": True}, order_by=["label_id", "rank"]).to_pylist()
    missing = {r["label_id"]: r["reason"] for r in labels_without_expert(store).to_pylist()}
    labels = store.execute("SELECT label_id, name FROM kd.labels ORDER BY label_id").fetchall()
    out = []
    for label_id, name in labels:
        mine = [r for r in rows if r["label_id"] == label_id]
        best = mine[0] if mine else None
        out.append(
            LabelExperts(
                label_id=int(label_id),
                label=str(name),
                best=best["teacher"] if best else None,
                experts=tuple(r["teacher"] for r in mine if r["within_margin"]),
                metric=best["metric_name"] if best else None,
                best_metric=best["metric"] if best else None,
                reason=missing.get(label_id),
            )
        )
    return out


def consensus(store: Store, *, label: str | Sequence[str] | None = None) -> pa.Table:
    """``kd.consensus``: n, mean, stddev of the scores per example x label."""
    return view(store, "consensus", where=_filters(store, None, label), order_by=["example_id", "label_id"])


def consensus_example(store: Store) -> pa.Table:
    """``kd.consensus_example``: n, mean, stddev of all scores on each example."""
    return view(store, "consensus_example", order_by=["example_id"])


def consensus_z(
    store: Store, *, teacher: str | Sequence[str] | None = None, label: str | Sequence[str] | None = None
) -> pa.Table:
    """``kd.consensus_z``: each output's z against its example x label and its example."""
    return view(store, "consensus_z", where=_filters(store, teacher, label), order_by=["teacher_id", "example_id", "label_id"])


def consensus_experts(
    store: Store, *, teacher: str | Sequence[str] | None = None, label: str | Sequence[str] | None = None
) -> pa.Table:
    """``kd.consensus_experts``: the outputs whose z or z_example reaches ``z_threshold``."""
    return view(store, "consensus_experts", where=_filters(store, teacher, label), order_by=["example_id", "label_id", "teacher_id"])


def consensus_expertise(store: Store, *, teacher: str | Sequence[str] | None = None) -> pa.Table:
    """``kd.consensus_expertise``: per teacher x label, how often and how strongly it stands out."""
    return view(store, "consensus_expertise", where=_filters(store, teacher, None), order_by=["teacher_id", "label_id"])


def teacher_summary(store: Store, *, split: str | None = None) -> pa.Table:
    """``kd.teacher_summary``: Snorkel's lf_summary columns per teacher and split."""
    return view(store, "teacher_summary", where=_filters(store, None, None, split=split), order_by=["split", "teacher_id"])


def teacher_label_summary(store: Store, *, split: str | None = None, teacher: str | Sequence[str] | None = None) -> pa.Table:
    """``kd.teacher_label_summary``: teacher_summary per label the teacher fires."""
    return view(
        store, "teacher_label_summary", where=_filters(store, teacher, None, split=split),
        order_by=["split", "teacher_id", "label_id"],
    )


class Evaluation:
    """``store.evaluate``: the functions of :mod:`kdstore.evaluate` bound to one store."""

    def __init__(self, store: Store):
        self._store = store

    def view(self, name: str, **kwargs: Any) -> pa.Table:
        return view(self._store, name, **kwargs)

    def decisions(self, **kwargs: Any) -> pa.Table:
        return decisions(self._store, **kwargs)

    def label_metrics(self, **kwargs: Any) -> pa.Table:
        return label_metrics(self._store, **kwargs)

    def label_experts(self, **kwargs: Any) -> pa.Table:
        return label_experts(self._store, **kwargs)

    def labels_without_expert(self) -> pa.Table:
        return labels_without_expert(self._store)

    def experts(self) -> list[LabelExperts]:
        return experts(self._store)

    def consensus(self, **kwargs: Any) -> pa.Table:
        return consensus(self._store, **kwargs)

    def consensus_example(self) -> pa.Table:
        return consensus_example(self._store)

    def consensus_z(self, **kwargs: Any) -> pa.Table:
        return consensus_z(self._store, **kwargs)

    def consensus_experts(self, **kwargs: Any) -> pa.Table:
        return consensus_experts(self._store, **kwargs)

    def consensus_expertise(self, **kwargs: Any) -> pa.Table:
        return consensus_expertise(self._store, **kwargs)

    def teacher_summary(self, **kwargs: Any) -> pa.Table:
        return teacher_summary(self._store, **kwargs)

    def teacher_label_summary(self, **kwargs: Any) -> pa.Table:
        return teacher_label_summary(self._store, **kwargs)


__all__ = [
    "VIEWS",
    "Evaluation",
    "LabelExperts",
    "consensus",
    "consensus_example",
    "consensus_expertise",
    "consensus_experts",
    "consensus_z",
    "decisions",
    "experts",
    "installed_views",
    "label_experts",
    "label_metrics",
    "labels_without_expert",
    "teacher_label_summary",
    "teacher_summary",
    "view",
]
