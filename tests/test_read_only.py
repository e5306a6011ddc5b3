"""The read paths of the label model, selection and trust work on a store opened read-only.

The views are installed by ``connect`` on a read-write open; nothing that only reads may (re)install
them, so a read-only store gives the same answers as the writable one and its file is untouched.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import kdstore
from kdstore import labelmodel, trust
from kdstore import select as ksel
from kdstore.errors import KdstoreError

from . import smallstore


def _reads() -> dict[str, Callable[[kdstore.Store], Any]]:
    return {
        "teacher_accuracy": lambda s: labelmodel.teacher_accuracy(s),
        "teacher_accuracy_run": lambda s: labelmodel.teacher_accuracy(s, run_id=2),
        "posteriors": lambda s: labelmodel.posteriors(s),
        "posteriors_train": lambda s: labelmodel.posteriors(s, splits=["train"]),
        "infer_task": lambda s: ksel.infer_task(s),
        "list_runs": lambda s: ksel.list_runs(s),
        **{
            f"preview_{p.value}_{split}": (lambda s, p=p, split=split: ksel.preview(s, p, split=split))
            for p in ksel.Policy
            for split in ("train", "test")
        },
        "trust_load": lambda s: trust.load(
            s, feature_source="pixels", label_scores=["kd.label_model_posteriors"]
        ),
    }


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _close(x: np.ndarray, y: np.ndarray) -> None:
    # DuckDB's parallel float sums differ in the last bits from run to run (writable or not)
    if x.dtype.kind == "f":
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-15)
    else:
        np.testing.assert_array_equal(x, y)


def _same(a: Any, b: Any) -> None:
    if isinstance(a, pa.Table):  # preview orders by example and label only: ties come in any order
        assert a.schema == b.schema
        keys = [(c, "ascending") for c in a.column_names if not pa.types.is_floating(a.schema.field(c).type)]
        a, b = a.sort_by(keys), b.sort_by(keys)
        for c in a.column_names:
            _close(a[c].to_numpy(zero_copy_only=False), b[c].to_numpy(zero_copy_only=False))
    elif isinstance(a, trust.TrustData):
        for name in a.__slots__:
            x, y = getattr(a, name), getattr(b, name)
            if isinstance(x, np.ndarray):
                _close(x, y)
            else:
                assert x == y
    else:
        assert a == b


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A populated store file with a label-model fit, and every read's answer on the writable store."""
    path = tmp_path_factory.mktemp("ro") / "s.duckdb"
    with kdstore.connect(path) as store:
        smallstore.build(store)
        store.fit_label_model(max_iter=5)
        store.select("experts")
    with kdstore.connect(path) as store:
        want = {name: read(store) for name, read in _reads().items()}
    return path, want


def test_reads_work_read_only_and_leave_the_file_as_it_was(written: tuple[Path, dict[str, Any]]) -> None:
    path, want = written
    before = _digest(path)
    with kdstore.connect(path, read_only=True) as store:
        for name, read in _reads().items():
            got = read(store)
            if isinstance(got, pa.Table):
                assert got.num_rows > 0 or name.startswith("preview_"), name
            _same(got, want[name])
    assert _digest(path) == before
    assert want["teacher_accuracy"].equals(want["teacher_accuracy_run"])  # run 2 is the fit (run 1 came with the store)
    assert want["posteriors"].num_rows > want["posteriors_train"].num_rows > 0


def test_writes_on_a_read_only_store_fail_and_leave_the_file_as_it_was(written: tuple[Path, dict[str, Any]]) -> None:
    path, _ = written
    before = _digest(path)
    with kdstore.connect(path, read_only=True) as store:
        with pytest.raises(KdstoreError, match="read-only"):
            ksel.select(store, "experts")
        with pytest.raises(KdstoreError, match="read-only"):
            store.fit_label_model(max_iter=5)
    assert _digest(path) == before
