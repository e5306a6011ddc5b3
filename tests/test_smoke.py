from __future__ import annotations

import numpy as np
import pyarrow as pa

import kdstore


def test_round_trip_small(store: kdstore.Store) -> None:
    store.add_labels(["a", "b"])
    store.add_examples(pa.table({"example_id": np.arange(4), "split": ["train", "train", "valid", "test"]}))
    store.add_teacher("t", labels=["a", "b"], output_type="multilabel")
    n = store.ingest_outputs("t", pa.table({"example_id": [0, 1, 1], "label": ["a", "a", "b"], "score": [0.25, 0.5, 0.75]}))
    assert n == 2
    got = store.query("SELECT example_id, label_id, score FROM kd.outputs ORDER BY 1, 2").to_pylist()
    assert got == [
        {"example_id": 0, "label_id": 0, "score": 0.25},
        {"example_id": 1, "label_id": 0, "score": 0.5},
        {"example_id": 1, "label_id": 1, "score": 0.75},
    ]
