"""Small stores for the view tests: load a :class:`~tests.oracles.World` into a store, generate
random ones with Hypothesis, and compare view rows with oracle rows."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pyarrow as pa
from hypothesis import strategies as st

import kdstore
from tests.oracles import World

Row = dict[str, Any]


class _Rollback(Exception):
    pass


@contextmanager
def rolled_back(store: kdstore.Store) -> Iterator[None]:
    """Run the block in one transaction that is always rolled back (BEGIN ... ROLLBACK)."""
    try:
        with store.transaction():
            yield
            raise _Rollback
    except _Rollback:
        pass


def load_world(store: kdstore.Store, world: World) -> None:
    """Write ``world`` into an empty store through the public ingest API."""
    if world.labels:
        store.add_labels(world.labels)
    if world.split:
        ids = sorted(world.split)
        store.add_examples(pa.table({"example_id": pa.array(ids, pa.int64()), "split": [world.split[e] for e in ids]}))
    if world.gold:
        gold = sorted(world.gold)
        store.add_gold(pa.table({"example_id": pa.array([g[0] for g in gold], pa.int64()),
                                 "label": pa.array([g[1] for g in gold], pa.int64())}))
    for t in world.teachers:
        store.add_teacher(t.name, labels=list(t.labels), output_type=t.output_type, threshold=t.threshold)
        if len(t.examples):
            lists = [[None if math.isnan(x) else float(x) for x in row] for row in np.asarray(t.scores, np.float32)]
            data = pa.table({"example_id": pa.array(t.examples, pa.int64()),
                             "scores": pa.array(lists, pa.list_(pa.float32()))})
            store.ingest_outputs(t.name, data, form="wide", score_column="scores", progress=False)
    if world.settings:
        store.settings.update(world.settings)


def view_rows(store: kdstore.Store, name: str) -> list[Row]:
    return store.query(f"SELECT * FROM kd.{name}").to_pylist()  # name: a view of sql/


def _close(a: Any, b: Any, rel: float, abs_: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a) == bool(b) and isinstance(a, bool) == isinstance(b, bool)
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=rel, abs_tol=abs_)
    return bool(a == b)


def assert_rows_match(
    got: Sequence[Row],
    want: Sequence[Row],
    key: Sequence[str],
    *,
    rel: float = 1e-9,
    abs_: float = 1e-12,
    fuzzy: Callable[[Row, str], bool] | None = None,
    where: str = "",
) -> None:
    """Same keys, same columns, equal values (floats to a tolerance); NULL only matches NULL.

    ``fuzzy(oracle_row, column)`` may excuse a column of a row (a value on a decision boundary).
    """
    def k(r: Row) -> tuple[Any, ...]:
        return tuple(r[c] for c in key)

    g = {k(r): r for r in got}
    w = {k(r): r for r in want}
    assert len(g) == len(got), f"{where}: duplicate keys {key} in the view's rows"
    assert set(g) == set(w), f"{where}: rows differ: only in view {sorted(set(g) - set(w))[:5]}, only in oracle {sorted(set(w) - set(g))[:5]}"
    for kk, wr in w.items():
        gr = g[kk]
        assert set(gr) == set(wr), f"{where}: columns differ: view {sorted(gr)} oracle {sorted(wr)}"
        for c, wv in wr.items():
            if fuzzy is not None and fuzzy(wr, c):
                continue
            assert _close(gr[c], wv, rel, abs_), f"{where}: row {dict(zip(key, kk, strict=True))} column {c}: view {gr[c]!r} != oracle {wv!r}"


# ---------------------------------------------------------------------------------------------
# Hypothesis: small random worlds
# ---------------------------------------------------------------------------------------------
GRID = (0.0, 0.25, 0.5, 0.75, 1.0)  # exact in float32: ties and threshold equalities on purpose


@st.composite
def worlds(draw: st.DrawFn, *, max_labels: int = 4, max_examples: int = 7, max_teachers: int = 4) -> World:
    n_labels = draw(st.integers(1, max_labels))
    labels = [f"l{i}" for i in range(n_labels)]
    n_examples = draw(st.integers(0, max_examples))
    split = {e * 3 + 1: draw(st.sampled_from(("train", "valid", "valid", "test"))) for e in range(n_examples)}
    gold = {(e, label) for e in split for label in range(n_labels) if draw(st.booleans()) and draw(st.booleans())}
    teachers = []
    for i in range(draw(st.integers(1, max_teachers))):
        kind = draw(st.sampled_from(("binary", "multilabel", "multiclass", "vote", "regression")))
        if kind == "binary":
            tl = [draw(st.integers(0, n_labels - 1))]
        else:
            tl = draw(st.permutations(range(n_labels)))[: draw(st.integers(1, n_labels))]
        examples = sorted(e for e in split if draw(st.integers(0, 4)) > 0)
        rows = []
        for _ in examples:
            width = len(tl)
            if draw(st.integers(0, 5)) == 0:
                rows.append([math.nan] * width)  # abstain
            elif kind == "multiclass":
                parts = draw(st.lists(st.integers(0, 4), min_size=width, max_size=width).filter(lambda p: sum(p) > 0))
                total = sum(parts)
                if total not in (1, 2, 4, 8):  # keep the row an exact float32 distribution
                    parts = [1] + [0] * (width - 1)
                    total = 1
                rows.append([p / total for p in parts])
            elif kind == "vote":
                row = [0.0] * width
                row[draw(st.integers(0, width - 1))] = 1.0
                rows.append(row)
            elif kind == "regression":
                rows.append([draw(st.sampled_from((-1.5, 0.0, 2.0, 3.25))) for _ in range(width)])
            else:
                rows.append([draw(st.sampled_from((*GRID, math.nan))) for _ in range(width)])
        threshold = draw(st.sampled_from((None, None, 0.25, 0.75))) if kind in ("binary", "multilabel") else None
        teachers.append(
            _teacher(f"t{i}", kind, list(tl), examples, rows, threshold)
        )
    settings = {
        "threshold": draw(st.sampled_from((0.25, 0.5, 0.75))),
        "confidence": draw(st.sampled_from((0.8, 0.95, 0.99))),
        "min_support": float(draw(st.integers(0, 2))),
        "min_recall": draw(st.sampled_from((0.0, 0.5))),
        "expert_margin": draw(st.sampled_from((0.0, 0.1, 0.5))),
        "expert_metric": float(draw(st.integers(0, 5))),
        "z_threshold": draw(st.sampled_from((0.5, 0.9, 1.5))),
    }
    return World(labels=labels, split=split, gold=gold, teachers=teachers, settings=settings)


def _teacher(name: str, kind: str, labels: list[int], examples: list[int], rows: list[list[float]], threshold: float | None) -> Any:
    from tests.oracles import Teacher

    scores = np.array(rows, dtype=np.float32).reshape(len(examples), len(labels))
    return Teacher(name=name, output_type=kind, labels=labels, examples=examples, scores=scores, threshold=threshold)
