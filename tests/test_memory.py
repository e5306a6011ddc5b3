"""Wide ingest streams: memory stays bounded by a batch, not by the input."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import kdstore


@pytest.mark.slow
def test_wide_ingest_of_a_generator_does_not_materialise_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kdstore.ingest import outputs

    monkeypatch.setattr(outputs, "INSERT_ROWS", 1 << 16)  # the pending INSERT is part of the bound
    n_rows, batch, width = 2_000_000, 50_000, 5
    data_bytes = n_rows * (8 + 4 * width)  # 56 MB of ids + float32 scores
    schema = pa.schema([("example_id", pa.int64()), ("score", pa.list_(pa.float32()))])

    def gen() -> Iterator[pa.RecordBatch]:
        rng = np.random.default_rng(0)
        offsets = pa.array(np.arange(batch + 1, dtype=np.int32) * width)
        for start in range(0, n_rows, batch):
            ids = pa.array(np.arange(start, start + batch, dtype=np.int64))
            yield pa.RecordBatch.from_arrays([ids, pa.ListArray.from_arrays(offsets, pa.array(rng.random(batch * width, dtype=np.float32)))], schema=schema)

    with kdstore.connect(tmp_path / "s.duckdb") as store:
        store.add_labels([f"l{j}" for j in range(width)])
        store.add_examples(kdstore.Query(f"SELECT range AS example_id, 'train' AS split FROM range({n_rows})"))
        store.add_teacher("t", labels=[f"l{j}" for j in range(width)], output_type="multilabel")
        # The batches' buffers are NumPy arrays (pa.array of an ndarray is zero-copy), so tracemalloc
        # sees every input batch that is still referenced (by kdstore or by DuckDB) plus kdstore's own
        # work arrays. Before the fix that inserts with from_arrow(), DuckDB kept every inserted batch
        # alive until COMMIT and this peak was ~67 MB.
        tracemalloc.start()
        try:
            n = store.ingest_outputs("t", pa.RecordBatchReader.from_batches(schema, gen()), form="wide")
            _, numpy_peak = tracemalloc.get_traced_memory()  # NumPy reports its buffers to tracemalloc
        finally:
            tracemalloc.stop()
        assert n == n_rows
        assert store.one("SELECT count(*) FROM kd.scores") == (n_rows,)
    assert numpy_peak < data_bytes / 5, numpy_peak
