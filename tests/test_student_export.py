"""ONNX export of the student: parity with the NumPy forward pass, metadata, ExportError."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kdstore.errors import ExportError
from kdstore.student.export import PARITY_TOLERANCE, build_graph, check_parity, export_onnx, metadata, read_metadata
from kdstore.student.train import Targets, TrainConfig, fit


def _fitted(kind: str, hidden: tuple[int, ...]) -> tuple[object, np.ndarray]:
    rng = np.random.default_rng(len(kind) + len(hidden))
    X = (rng.standard_normal((300, 5)) * [1, 10, 0.1, 1, 3] + [0, 100, 0, -4, 2]).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 300)]
    E = rng.standard_normal((300, 4)).astype(np.float32) * 5
    t = {
        "multiclass": Targets.multiclass(y),
        "multilabel": Targets.multilabel(y, (rng.random((300, 3)) > 0.3).astype(np.float32)),
        "embedding": Targets.embedding(E),
        "embedding+labels": Targets.embedding(E, labels=Targets.multiclass(y)),
    }[kind]
    res = fit(X, t, config=TrainConfig(hidden=hidden, epochs=2, batch_size=64))
    return res.model, X


@pytest.mark.parametrize("kind", ["multiclass", "multilabel", "embedding", "embedding+labels"])
@pytest.mark.parametrize("hidden", [(), (16,), (32, 16, 8)])
def test_parity_and_a_fresh_session(kind: str, hidden: tuple[int, ...]) -> None:
    import onnxruntime as ort

    model, X = _fitted(kind, hidden)
    meta = metadata(model, name="m", labels=["a", "b", "c"], label_ids=[0, 1, 2],  # type: ignore[arg-type]
                    features={"kind": "source", "name": "px", "columns": list("vwxyz"), "list_column": False, "dim": 5})
    data, report = export_onnx(model, meta)  # type: ignore[arg-type]
    assert report.max_scaled_diff <= PARITY_TOLERANCE
    assert set(report.max_abs_diff) == set(model.outputs)  # type: ignore[attr-defined]
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["features"]
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"features": X}), strict=True))
    want = model.predict(X)  # type: ignore[attr-defined]
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-5)
    if "scores" in got and kind.endswith("multiclass"):
        np.testing.assert_allclose(got["scores"].sum(1), 1.0, atol=1e-5)
    md = read_metadata(data)
    assert json.loads(md["kdstore.labels"]) == ["a", "b", "c"]
    assert json.loads(md["kdstore.features"])["dim"] == 5
    assert md["kdstore.task"] == (model.task or "embedding")  # type: ignore[attr-defined]


def test_standardisation_is_inside_the_graph() -> None:
    import onnxruntime as ort

    model, X = _fitted("multiclass", (8,))
    data, _ = export_onnx(model)  # type: ignore[arg-type]
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in __import__("onnx").load_from_string(data).graph.node]
    assert ops[:2] == ["Sub", "Mul"] and ops[-1] == "Softmax"
    # raw features far from zero (column 1 is around 100) give the same answer as NumPy
    got = sess.run(["scores"], {"features": X[:5]})[0]
    np.testing.assert_allclose(got, model.predict(X[:5])["scores"], atol=1e-6)  # type: ignore[attr-defined]


def test_parity_failure_is_an_export_error() -> None:
    model, _ = _fitted("multiclass", (8,))
    other = model.copy()  # type: ignore[attr-defined]
    other.layers[0][0][0, 0] += 0.5  # the graph no longer matches this model
    data = build_graph(model).SerializeToString()
    with pytest.raises(ExportError, match="disagrees with the NumPy model"):
        check_parity(other, data)
    with pytest.raises(ExportError, match="cannot run"):
        check_parity(model, b"not an onnx graph")
