"""Tiny real ONNX models for the teacher tests, built with onnx.helper (nothing downloaded).

Each builder returns the model and the weights, so tests can compute a NumPy forward pass.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import kdstore

OPSET = 17


@dataclass(frozen=True)
class Mlp:
    model: onnx.ModelProto
    weights: list[tuple[np.ndarray, np.ndarray]]  # (W, b) per layer

    def forward(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """NumPy oracle: every named tensor of the graph, in float64."""
        out: dict[str, np.ndarray] = {}
        h = x.astype(np.float64)
        for i, (w, b) in enumerate(self.weights[:-1]):
            h = np.maximum(h @ w.astype(np.float64) + b, 0.0)
            out[f"hidden{i + 1}"] = h
        w, b = self.weights[-1]
        z = h @ w.astype(np.float64) + b
        out["logits"] = z
        e = np.exp(z - z.max(axis=1, keepdims=True))
        out["probs"] = e / e.sum(axis=1, keepdims=True)
        return out


def _model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto],
           inits: list[onnx.TensorProto], name: str = "g") -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="kdstore-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def mlp(d: int = 4, hidden: tuple[int, ...] = (8, 6), k: int = 3, *, seed: int = 0, softmax: bool = True,
        input_name: str = "x", batch: int | None = None) -> Mlp:
    """x[N,d] -> (MatMul+Add+Relu -> 'hidden1', 'hidden2', ...) -> 'logits' [N,k] -> Softmax 'probs'."""
    rng = np.random.default_rng(seed)
    sizes = [d, *hidden, k]
    weights = [
        (rng.normal(0, 1 / np.sqrt(a), (a, b)).astype(np.float32), rng.normal(0, 0.1, b).astype(np.float32))
        for a, b in itertools.pairwise(sizes)
    ]
    nodes, inits = [], []
    h = input_name
    for i, (w, b) in enumerate(weights):
        last = i == len(weights) - 1
        inits += [numpy_helper.from_array(w, f"W{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes.append(helper.make_node("MatMul", [h, f"W{i}"], [f"mm{i}"], name=f"matmul{i}"))
        out = "logits" if last else f"pre{i + 1}"
        nodes.append(helper.make_node("Add", [f"mm{i}", f"b{i}"], [out], name=f"add{i}"))
        if not last:
            nodes.append(helper.make_node("Relu", [out], [f"hidden{i + 1}"], name=f"relu{i + 1}"))
            h = f"hidden{i + 1}"
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, k])]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], axis=1, name="softmax"))
        outputs = [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [batch, k])]
    x = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [batch, d])
    return Mlp(_model(nodes, [x], outputs, inits, "mlp"), weights)


def logistic_regression(d: int = 4, *, seed: int = 1, output: str = "prob") -> tuple[onnx.ModelProto, np.ndarray, float]:
    """x[N,d] -> sigmoid(x @ w + b) as 'prob' [N,1]; returns (model, w, b)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 1, (d, 1)).astype(np.float32)
    b = np.float32(rng.normal())
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["z0"]),
        helper.make_node("Add", ["z0", "b"], ["z"]),
        helper.make_node("Sigmoid", ["z"], [output]),
    ]
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array([b], np.float32), "b")]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, d])],
                   [helper.make_tensor_value_info(output, TensorProto.FLOAT, [None, 1])], inits, "logreg")
    return model, w, float(b)


def multi_output(d: int = 4, k: int = 3, *, seed: int = 2) -> tuple[onnx.ModelProto, np.ndarray]:
    """x -> 'label' (int64 argmax), 'probs' (softmax of x@W), 'score' (row sum of x), 'bad' (log of -1: NaN)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 1, (d, k)).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["z"]),
        helper.make_node("ArgMax", ["z"], ["label"], axis=1, keepdims=0),
        helper.make_node("Softmax", ["z"], ["probs"], axis=1),
        helper.make_node("ReduceSum", ["x", "axes"], ["score"], keepdims=1),
        helper.make_node("Neg", ["score"], ["negs"]),
        helper.make_node("Abs", ["negs"], ["abss"]),
        helper.make_node("Neg", ["abss"], ["neg_abs"]),
        helper.make_node("Sub", ["neg_abs", "one"], ["below"]),
        helper.make_node("Log", ["below"], ["bad"]),
    ]
    inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(np.array([1], np.int64), "axes"),
             numpy_helper.from_array(np.array(1.0, np.float32), "one")]
    outputs = [
        helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
        helper.make_tensor_value_info("probs", TensorProto.FLOAT, [None, k]),
        helper.make_tensor_value_info("score", TensorProto.FLOAT, [None, 1]),
        helper.make_tensor_value_info("bad", TensorProto.FLOAT, [None, 1]),
    ]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, d])], outputs, inits, "multi"), w


def text_model() -> onnx.ModelProto:
    """A string input 'text' [N,1] -> 'prob' [N,1] = 1.0 where text == 'spam' else 0.0."""
    node = helper.make_node("LabelEncoder", ["text"], ["prob"], domain="ai.onnx.ml",
                            keys_strings=["spam"], values_floats=[1.0], default_float=0.0)
    graph = helper.make_graph([node], "text", [helper.make_tensor_value_info("text", TensorProto.STRING, [None, 1])],
                              [helper.make_tensor_value_info("prob", TensorProto.FLOAT, [None, 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", 2)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def strip_output_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose graph outputs have symbolic dims only (so only a run can find a wrong shape)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for vi in m.graph.output:
        for i, dim in enumerate(vi.type.tensor_type.shape.dim):
            dim.dim_param = f"d{i}"
    return m


def populate(store: kdstore.Store, x: np.ndarray, *, labels: tuple[str, ...] = ("a", "b", "c"), name: str = "f",
             list_column: bool = False, start: int = 0) -> np.ndarray:
    """Labels, examples (even ids train, odd valid) and a feature source ``name`` holding ``x``.

    Features are columns c0..c{d-1}, or one FLOAT[d] column ``x`` with ``list_column=True``.
    Returns the example ids.
    """
    import pyarrow as pa

    n, d = x.shape
    ids = np.arange(start, start + n, dtype=np.int64)
    store.add_labels(list(labels))
    store.add_examples(pa.table({"example_id": ids, "split": np.where(ids % 2 == 0, "train", "valid")}))
    if list_column:
        col = pa.FixedSizeListArray.from_arrays(pa.array(x.astype(np.float32).ravel()), d)
        table = pa.table({"example_id": ids, "x": col})
    else:
        table = pa.table({"example_id": ids, **{f"c{j}": x[:, j].astype(np.float32) for j in range(d)}})
    store.register_features(name, table, replace=True)
    return ids


def stored(store: kdstore.Store, teacher: str, table: str = "scores") -> tuple[np.ndarray, np.ndarray]:
    """(example ids, [n, width] values) of a teacher's stored scores or embeddings, by example id."""
    col = "scores" if table == "scores" else "vector"
    t = store.query(
        f"SELECT s.example_id, s.{col} FROM kd.{table} s JOIN kd.teachers t USING (teacher_id) "
        f"WHERE t.name = '{teacher}' ORDER BY 1"
    )
    ids = np.asarray(t.column(0).to_numpy(), dtype=np.int64)
    vals = np.array(t.column(1).to_pylist(), dtype=np.float64).reshape(len(ids), -1) if len(ids) else np.empty((0, 0))
    return ids, vals
