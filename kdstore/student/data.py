"""Read what a student learns from the store: a run's distillation set, gold, teacher embeddings.

Rules (documented in docs/student.md):

* **Task of a run**: ``kd.runs.params->>'task'`` when it is ``multiclass`` or ``multilabel``;
  otherwise inferred: multiclass when every training example's targets sum to 1 (within the
  ``multiclass_tolerance`` setting), multilabel otherwise. ``task=`` overrides both.
* **Labels**: the distinct ``label_id`` of the run's targets on the train and valid splits, in
  ``label_id`` order.
* **Multiclass**: the targets of an example (summed per label over its rows) are normalised into a
  distribution; its weight is the target-weighted mean of its rows' weights.
* **Multilabel**: per example x label, the weight-weighted mean of its rows' targets, with the sum
  of their weights as the weight; a label without any row is masked (weight 0).
* Only the ``train`` and ``valid`` splits are read here; ``read_gold(..., "test")`` exists for the
  final test metrics, read after the model is fixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from kdstore.errors import SchemaError
from kdstore.student.features import arrow
from kdstore.student.registry import _json

if TYPE_CHECKING:
    from kdstore.store.core import Store

TRAINING_SPLITS = ("train", "valid")


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A run's task and label vocabulary, as the student sees it."""

    run_id: int
    task: str
    label_ids: tuple[int, ...]
    label_names: tuple[str, ...]
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class LabelData:
    """Label targets of the examples ``ids`` (sorted), rows aligned."""

    ids: np.ndarray
    y: np.ndarray
    w: np.ndarray


def _check_split(split: str, allowed: tuple[str, ...]) -> None:
    if split not in allowed:
        raise ValueError(f"split {split!r} is not readable here (allowed: {', '.join(allowed)})")


def run_info(store: Store, run_id: int, task: str | None = None) -> RunInfo:
    """The task and labels of ``run_id`` (see the module docstring for the rules)."""
    src = f"kd.targets run {run_id}"
    row = store.one("SELECT params FROM kd.runs WHERE run_id = ?", [run_id])
    params = _json(row[0]) if row is not None else {}
    labels = store.execute(
        """
        SELECT DISTINCT t.label_id, l.name
        FROM kd.targets AS t
        JOIN kd.examples AS e ON e.example_id = t.example_id AND e.split IN ('train', 'valid')
        LEFT JOIN kd.labels AS l ON l.label_id = t.label_id
        WHERE t.run_id = ?
        ORDER BY t.label_id
        """,
        [run_id],
    ).fetchall()
    if not labels:
        raise SchemaError("the run has no targets on the train split", source=src)
    missing = [lid for lid, name in labels if name is None]
    if missing:
        raise SchemaError(f"label id {missing[0]} is not in kd.labels", source=src, column="label_id")
    if task is None:
        declared = params.get("task")
        if declared in ("multiclass", "multilabel"):
            task = str(declared)
        else:
            tol_row = store.one("SELECT value FROM kd.settings WHERE name = 'multiclass_tolerance'")
            tol = float(tol_row[0]) if tol_row else 1e-3
            worst = store.one(
                """
                SELECT max(abs(s - 1)) FROM (
                    SELECT t.example_id, sum(t.target) AS s
                    FROM kd.targets AS t
                    JOIN kd.examples AS e ON e.example_id = t.example_id AND e.split = 'train'
                    WHERE t.run_id = ?
                    GROUP BY t.example_id)
                """,
                [run_id],
            )
            task = "multiclass" if (worst and worst[0] is not None and float(worst[0]) <= tol and len(labels) > 1) else "multilabel"
    if task not in ("multiclass", "multilabel"):
        raise SchemaError(f"task must be multiclass or multilabel, got {task!r}", source=src)
    return RunInfo(run_id, task, tuple(int(r[0]) for r in labels), tuple(str(r[1]) for r in labels), params)


def read_targets(store: Store, info: RunInfo, split: str) -> LabelData:
    """The run's targets on ``split`` (train or valid) as dense arrays over ``info.label_ids``."""
    _check_split(split, TRAINING_SPLITS)
    src = f"kd.targets run {info.run_id}"
    t = arrow(
        store,
        """
        SELECT t.example_id, t.label_id, t.target, t.weight
        FROM kd.targets AS t
        JOIN kd.examples AS e ON e.example_id = t.example_id AND e.split = ?
        WHERE t.run_id = ?
        """,
        [split, info.run_id],
    )
    k = len(info.label_ids)
    ex = np.asarray(t.column("example_id").to_numpy(), np.int64)
    lab = np.asarray(t.column("label_id").to_numpy(), np.int64)
    tgt = np.asarray(t.column("target").to_numpy(), np.float64)
    wt = np.asarray(t.column("weight").to_numpy(), np.float64)
    for name, arr, lo, hi in (("target", tgt, 0.0, 1.0), ("weight", wt, 0.0, np.inf)):
        bad = ~(np.isfinite(arr) & (arr >= lo) & (arr <= hi))
        if bad.any():
            i = int(np.argmax(bad))
            raise SchemaError(f"{name} {float(arr[i])!r} of example {ex[i]}, label {lab[i]} must be finite and in [{lo:g}, {hi:g}]",
                              source=src, column=name)
    ids, pos = np.unique(ex, return_inverse=True)
    label_ids = np.asarray(info.label_ids, np.int64)
    col = np.searchsorted(label_ids, lab)
    if lab.size and (np.any(col >= k) or np.any(label_ids[np.minimum(col, k - 1)] != lab)):
        raise AssertionError("labels of the split are outside the run's label set")
    flat = pos * k + col
    size = ids.size * k
    if info.task == "multiclass":
        s = np.bincount(flat, weights=tgt, minlength=size).reshape(-1, k)
        tot = s.sum(axis=1)
        wsum = np.bincount(pos, weights=wt * tgt, minlength=ids.size)
        ok = tot > 0
        y = np.zeros_like(s)
        y[ok] = s[ok] / tot[ok, None]
        w = np.where(ok, wsum / np.where(ok, tot, 1.0), 0.0)
        return LabelData(ids, y.astype(np.float32), w.astype(np.float32))
    wsum = np.bincount(flat, weights=wt, minlength=size).reshape(-1, k)
    ysum = np.bincount(flat, weights=wt * tgt, minlength=size).reshape(-1, k)
    y = np.divide(ysum, wsum, out=np.zeros_like(ysum), where=wsum > 0)
    return LabelData(ids, y.astype(np.float32), wsum.astype(np.float32))


def has_gold(store: Store, split: str, label_ids: tuple[int, ...]) -> bool:
    """Whether ``split`` has any gold row for one of ``label_ids``."""
    _check_split(split, ("valid", "test"))
    row = store.one(
        "SELECT count(*) FROM kd.gold AS g JOIN kd.examples AS e ON e.example_id = g.example_id AND e.split = ? "
        "WHERE list_contains(?, g.label_id)",
        [split, list(label_ids)],
    )
    return bool(row and row[0])


def read_gold(store: Store, split: str, task: str, label_ids: tuple[int, ...]) -> LabelData:
    """Gold of ``split`` (valid, or test for final metrics only) as targets, closed world.

    Multilabel: every example of the split, each label not listed is a negative. Multiclass: the
    examples with at least one gold label in ``label_ids``, the distribution uniform over them.
    """
    _check_split(split, ("valid", "test"))
    k = len(label_ids)
    all_ids = np.asarray(
        arrow(store, "SELECT example_id FROM kd.examples WHERE split = ? ORDER BY example_id", [split])
        .column("example_id").to_numpy(), np.int64)
    g = arrow(
        store,
        "SELECT g.example_id, g.label_id FROM kd.gold AS g JOIN kd.examples AS e ON e.example_id = g.example_id "
        "AND e.split = ? WHERE list_contains(?, g.label_id)",
        [split, list(label_ids)],
    )
    ex = np.asarray(g.column("example_id").to_numpy(), np.int64)
    col = np.searchsorted(np.asarray(label_ids, np.int64), np.asarray(g.column("label_id").to_numpy(), np.int64))
    y = np.zeros((all_ids.size, k), np.float32)
    y[np.searchsorted(all_ids, ex), col] = 1.0
    if task == "multilabel":
        return LabelData(all_ids, y, np.ones_like(y))
    has = y.sum(axis=1) > 0
    y = y[has]
    y /= y.sum(axis=1, keepdims=True)
    return LabelData(all_ids[has], y, np.ones(y.shape[0], np.float32))


def read_embedding_targets(store: Store, teacher: str, split: str, *, final: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A teacher's embeddings of ``split`` (train/valid; test only with ``final=True``): ids, ``[n, E]``."""
    _check_split(split, ("train", "valid", "test") if final else TRAINING_SPLITS)
    row = store.one("SELECT teacher_id FROM kd.teachers WHERE name = ?", [teacher])
    if row is None:
        raise SchemaError(f"no teacher named {teacher!r}", source="kd.embeddings")
    t = arrow(
        store,
        "SELECT m.example_id, m.vector FROM kd.embeddings AS m JOIN kd.examples AS e ON e.example_id = m.example_id "
        "AND e.split = ? WHERE m.teacher_id = ? ORDER BY m.example_id",
        [split, row[0]],
    )
    ids = np.asarray(t.column("example_id").to_numpy(), np.int64)
    if ids.size == 0:
        return ids, np.zeros((0, 0), np.float32)
    from kdstore.student.features import arrays_matrix

    vec = t.column("vector").combine_chunks()
    dim = len(vec[0])
    return ids, arrays_matrix([vec], ["vector"], dim, True, source=f"kd.embeddings of teacher {teacher!r}")


def align(target_ids: np.ndarray, feature_ids: np.ndarray, *, what: str, source: str) -> np.ndarray:
    """Row of each of ``target_ids`` in ``feature_ids`` (any order, unique); every target needs features."""
    if feature_ids.size == 0:
        ok = np.zeros(target_ids.size, bool)
        pos = np.zeros(target_ids.size, np.int64)
    else:
        order = np.argsort(feature_ids, kind="stable")
        idx = np.minimum(np.searchsorted(feature_ids, target_ids, sorter=order), feature_ids.size - 1)
        pos = order[idx]
        ok = feature_ids[pos] == target_ids
    if not ok.all():
        missing = int((~ok).sum())
        first = int(target_ids[np.argmax(~ok)])
        raise SchemaError(f"{missing} {what} examples have no features (first: example {first})", source=source)
    return pos
