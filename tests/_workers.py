"""Child-process bodies for the reliability tests (run as ``python -c "from tests._workers import ..."``)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pyarrow as pa

import kdstore

SCHEMA = pa.schema([("example_id", pa.int64()), ("score", pa.list_(pa.float32()))])


def batches(n_batches: int, rows: int, value: float | None, marker_after: int | None = None, pause: float = 0.0) -> Iterator[pa.RecordBatch]:
    """Wide batches of one teacher's outputs (3 labels, every score = value, or random if None)."""
    rng = np.random.default_rng(0)
    for k in range(n_batches):
        ids = np.arange(k * rows, (k + 1) * rows, dtype=np.int64)
        flat = pa.array(rng.random(rows * 3, dtype=np.float32) if value is None else np.full(rows * 3, value, dtype=np.float32))
        yield pa.RecordBatch.from_arrays([pa.array(ids), pa.ListArray.from_arrays(pa.array(np.arange(rows + 1, dtype=np.int32) * 3), flat)], schema=SCHEMA)
        if marker_after is not None and k + 1 == marker_after:
            print("MARK", flush=True)  # the batches so far have been handed to the ingest
        if marker_after is not None and k + 1 >= marker_after:
            time.sleep(pause)


def killed_ingest(path: str, n_batches: int, rows: int, marker_after: int) -> None:
    """Re-ingest teacher 't' from a slow stream; the parent SIGKILLs us after the marker."""
    from kdstore.ingest import outputs

    # INSERTs of several row groups: DuckDB writes them to the file before the commit (optimistic
    # writes), so the kill finds uncommitted blocks in the file, not only in memory
    outputs.INSERT_ROWS = 5 * rows
    with kdstore.connect(path) as store:
        reader = pa.RecordBatchReader.from_batches(SCHEMA, batches(n_batches, rows, None, marker_after, pause=0.5))
        store.ingest_outputs("t", reader, form="wide")
    print("FINISHED", flush=True)  # must never be reached


def alternate_writer(path: str, rounds: int, rows: int) -> None:
    """Re-ingest teacher 't' as version A (every score 0.25, all examples) or B (0.75, the first half)."""
    for r in range(rounds):
        with kdstore.connect(path, lock_timeout=60) as store:
            if r % 2 == 0:
                src = pa.RecordBatchReader.from_batches(SCHEMA, batches(4, rows // 4, 0.25))
            else:
                src = pa.RecordBatchReader.from_batches(SCHEMA, batches(2, rows // 4, 0.75))
            store.ingest_outputs("t", src, form="wide")
        print(f"wrote {'AB'[r % 2]}", flush=True)
        time.sleep(0.3)


def reader(path: str, stop_file: str) -> None:
    """Open read-only again and again until ``stop_file`` exists; print what teacher 't' looks like."""
    from pathlib import Path

    while True:
        stop = Path(stop_file).exists()  # checked before the read, so one read follows the last write
        with kdstore.connect(path, read_only=True, lock_timeout=60) as store:
            row = store.one(
                "SELECT count(*), count(DISTINCT example_id), min(score), max(score), min(example_id), max(example_id) "
                "FROM kd.outputs o JOIN kd.teachers t USING (teacher_id) WHERE t.name = 't'"
            )
        print("SEEN", *(row or ()), flush=True)
        if stop:
            return
        time.sleep(0.05)
