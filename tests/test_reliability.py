"""Crash safety and reader isolation, with real processes (DuckDB allows one writer process or many readers)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import kdstore
from tests._helpers import digest
from tests._workers import SCHEMA, batches

ROOT = Path(__file__).resolve().parents[1]


def _child(code: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KDSTORE_PROGRESS": "0"}
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _make_store(path: Path, n_examples: int, rows_per_batch: int) -> None:
    with kdstore.connect(path) as store:
        store.add_labels(["a", "b", "c"])
        store.add_examples(pa.table({"example_id": np.arange(n_examples)}), split="train")
        store.add_teacher("t", labels=["a", "b", "c"], output_type="multilabel")
        store.add_teacher("other", labels=["b"], output_type="binary")
        store.ingest_outputs("t", pa.RecordBatchReader.from_batches(SCHEMA, batches(2, rows_per_batch, 0.125)), form="wide")
        store.ingest_outputs("other", pa.table({"example_id": [1, 2], "label": ["b", "b"], "score": [0.0, 1.0]}))


@pytest.mark.slow
def test_sigkill_during_ingest_leaves_the_store_as_before(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    n_batches, rows = 20, 50_000
    _make_store(path, n_batches * rows, rows)
    with kdstore.connect(path) as store:
        before = digest(store)
    size_before = path.stat().st_size
    child = _child(f"from tests._workers import killed_ingest; killed_ingest({str(path)!r}, {n_batches}, {rows}, 11)")
    assert child.stdout is not None
    line = child.stdout.readline()  # blocks until the child has streamed 11 batches (2 INSERTs) into the ingest
    assert line.strip() == "MARK", child.stderr.read() if child.stderr else line
    time.sleep(0.3)  # let the last INSERT land
    grew = path.stat().st_size - size_before  # the INSERTs so far were written to the file, uncommitted
    child.send_signal(signal.SIGKILL)
    out, _ = child.communicate(timeout=30)  # also closes the pipes
    assert child.returncode == -signal.SIGKILL
    assert "FINISHED" not in out
    assert grew > 5 * rows * 3 * 2, f"the child wrote {grew} bytes before the kill: the test would prove little"
    with kdstore.connect(path, read_only=True) as store:  # openable read-only (recovers the WAL)
        assert digest(store) == before
    with kdstore.connect(path) as store:  # and writable, still unchanged
        assert digest(store) == before
        store.ingest_outputs("other", pa.table({"example_id": [3], "label": ["b"], "score": [0.5]}))
        assert store.one("SELECT count(*) FROM kd.outputs o JOIN kd.teachers t USING (teacher_id) WHERE t.name = 'other'") == (1,)


@pytest.mark.slow
def test_reader_sees_all_old_or_all_new(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    rows = 40_000
    _make_store(path, rows, rows // 4)
    with kdstore.connect(path) as store:  # start from version A
        store.ingest_outputs("t", pa.RecordBatchReader.from_batches(SCHEMA, batches(4, rows // 4, 0.25)), form="wide")
    stop = tmp_path / "stop"
    reader = _child(f"from tests._workers import reader; reader({str(path)!r}, {str(stop)!r})")
    writer = _child(f"from tests._workers import alternate_writer; alternate_writer({str(path)!r}, 6, {rows})")
    w_out, w_err = writer.communicate(timeout=300)
    stop.touch()
    r_out, r_err = reader.communicate(timeout=300)
    assert writer.returncode == 0, w_err
    assert reader.returncode == 0, r_err
    assert w_out.split() == ["wrote", "A", "wrote", "B"] * 3
    a = ("SEEN", str(rows * 3), str(rows), "0.25", "0.25", "0", str(rows - 1))
    b = ("SEEN", str(rows // 2 * 3), str(rows // 2), "0.75", "0.75", "0", str(rows // 2 - 1))
    seen = [tuple(line.split()) for line in r_out.splitlines()]
    assert seen, r_err
    assert all(s in (a, b) for s in seen), [s for s in seen if s not in (a, b)][:3]
    assert seen[-1] == b  # the last read follows the last write (B)
    assert a in seen  # it did see both versions


def test_second_writer_waits_then_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    code = (
        "import kdstore, sys\n"
        "try:\n"
        f"    kdstore.connect({str(path)!r}, lock_timeout=0.3)\n"
        "except kdstore.KdstoreError as e:\n"
        "    print(e); sys.exit(3)\n"
    )
    with kdstore.connect(path):
        t0 = time.monotonic()
        child = _child(code)
        out, err = child.communicate(timeout=120)
    assert child.returncode == 3, err
    assert out.startswith(f"cannot open {path}: ") and "lock" in out.lower()
    assert time.monotonic() - t0 >= 0.3
