"""Export a trained student as one self-contained ONNX graph, checked against the NumPy forward pass.

The graph (opset 17, built with ``onnx.helper``)::

    features [N, D] float32 -> Sub(mean) -> Mul(1/std) -> (Gemm -> Relu)* -> Gemm -> Softmax|Sigmoid -> scores [N, K]
                                                                          \\-> Gemm -> embedding [N, E]

Standardisation is part of the graph, so the model takes raw features. ``metadata_props`` carry
what a reader needs without the store: ``kdstore.task``, ``kdstore.labels`` (JSON names, aligned
with the ``scores`` columns), ``kdstore.label_ids``, ``kdstore.features`` (JSON
:class:`~kdstore.student.features.FeatureSpec`), ``kdstore.outputs``, ``kdstore.model_name``.

Parity: :func:`export_onnx` runs the graph in ONNX Runtime on random inputs and compares it with
:meth:`MLP.predict <kdstore.student.train.MLP.predict>`; any difference above ``1e-5 · (1 + |y|)``
raises :class:`~kdstore.errors.ExportError`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from kdstore.errors import ExportError
from kdstore.student.train import MLP

OPSET = 17
INPUT = "features"
PARITY_TOLERANCE = 1e-5


@dataclass(frozen=True, slots=True)
class ParityReport:
    """Worst difference between ONNX Runtime and NumPy per output, on ``rows`` random inputs."""

    rows: int
    max_abs_diff: dict[str, float]
    max_scaled_diff: float


def build_graph(model: MLP, metadata: Mapping[str, str] | None = None) -> Any:
    """The ONNX ``ModelProto`` of ``model`` (float32), with ``metadata`` in ``metadata_props``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    f32 = np.float32
    inits = [numpy_helper.from_array(np.asarray(model.mean, f32), "mean"),
             numpy_helper.from_array(np.asarray(model.scale, f32), "scale")]
    nodes = [helper.make_node("Sub", [INPUT, "mean"], ["centred"]),
             helper.make_node("Mul", ["centred", "scale"], ["h0"])]
    h = "h0"
    for i, (w, b) in enumerate(model.layers):
        inits += [numpy_helper.from_array(np.asarray(w, f32), f"W{i}"), numpy_helper.from_array(np.asarray(b, f32), f"b{i}")]
        nodes.append(helper.make_node("Gemm", [h, f"W{i}", f"b{i}"], [f"z{i}"]))
        nodes.append(helper.make_node("Relu", [f"z{i}"], [f"h{i + 1}"]))
        h = f"h{i + 1}"
    outputs = []
    if model.label_head is not None:
        w, b = model.label_head
        inits += [numpy_helper.from_array(np.asarray(w, f32), "W_label"), numpy_helper.from_array(np.asarray(b, f32), "b_label")]
        nodes.append(helper.make_node("Gemm", [h, "W_label", "b_label"], ["logits"]))
        if model.task == "multiclass":
            nodes.append(helper.make_node("Softmax", ["logits"], ["scores"], axis=1))
        else:
            nodes.append(helper.make_node("Sigmoid", ["logits"], ["scores"]))
        outputs.append(helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", int(b.shape[0])]))
    if model.emb_head is not None:
        w, b = model.emb_head
        inits += [numpy_helper.from_array(np.asarray(w, f32), "W_emb"), numpy_helper.from_array(np.asarray(b, f32), "b_emb")]
        nodes.append(helper.make_node("Gemm", [h, "W_emb", "b_emb"], ["embedding"]))
        outputs.append(helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", int(b.shape[0])]))
    graph = helper.make_graph(
        nodes, "kdstore_student",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", model.n_features])],
        outputs, inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="kdstore")
    proto.ir_version = 8  # readable by every ONNX Runtime since 1.10
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    try:
        onnx.checker.check_model(proto)
    except Exception as e:  # onnx raises its own ValidationError
        raise ExportError(f"the exported graph is not valid ONNX: {e}") from e
    return proto


def metadata(model: MLP, *, name: str, labels: list[str], label_ids: list[int], features: dict[str, Any]) -> dict[str, str]:
    """The ``metadata_props`` kdstore writes (all values are strings, JSON where structured)."""
    from kdstore import __version__

    return {
        "kdstore.model_name": name,
        "kdstore.task": model.task or "embedding",
        "kdstore.labels": json.dumps(labels),
        "kdstore.label_ids": json.dumps(label_ids),
        "kdstore.features": json.dumps(features),
        "kdstore.outputs": json.dumps(model.outputs),
        "kdstore.version": __version__,
    }


def check_parity(model: MLP, onnx_bytes: bytes, *, rows: int = 512, seed: int = 0) -> ParityReport:
    """Run the graph in a fresh ONNX Runtime session and compare with the NumPy forward pass.

    Inputs are random around the training distribution (``mean ± 3/scale``), plus an all-zero row.
    Raises :class:`ExportError` when any output differs by more than ``1e-5 · (1 + |numpy|)``.
    """
    import onnxruntime as ort

    rng = np.random.default_rng(seed)
    std = 1.0 / np.asarray(model.scale, np.float64)
    X = (np.asarray(model.mean, np.float64) + rng.standard_normal((rows, model.n_features)) * 3 * std).astype(np.float32)
    X[0] = 0.0
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    try:
        sess = ort.InferenceSession(onnx_bytes, so, providers=["CPUExecutionProvider"])
        got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {INPUT: X}), strict=True))
    except Exception as e:
        raise ExportError(f"ONNX Runtime cannot run the exported graph: {e}") from e
    want = model.predict(X)
    if set(want) != set(got):
        raise ExportError(f"the graph's outputs {sorted(got)} differ from the model's {sorted(want)}")
    diffs: dict[str, float] = {}
    worst = 0.0
    for key, ref in want.items():
        ref = np.asarray(ref, np.float64)
        out = np.asarray(got[key], np.float64)
        if out.shape != ref.shape:
            raise ExportError(f"output {key!r} has shape {out.shape} in ONNX Runtime, {ref.shape} in NumPy")
        d = np.abs(out - ref)
        diffs[key] = float(d.max()) if d.size else 0.0
        scaled = d / (1.0 + np.abs(ref))
        worst = max(worst, float(np.nan_to_num(scaled, nan=np.inf).max()) if scaled.size else 0.0)
    if not worst <= PARITY_TOLERANCE:
        raise ExportError(f"ONNX export disagrees with the NumPy model: max |diff| {diffs} "
                          f"(scaled {worst:.3g} > {PARITY_TOLERANCE:g})")
    return ParityReport(rows, diffs, worst)


def export_onnx(model: MLP, meta: Mapping[str, str] | None = None, *, parity_rows: int = 512) -> tuple[bytes, ParityReport]:
    """Serialised ONNX bytes of ``model`` and the parity report (raises :class:`ExportError`)."""
    proto = build_graph(model, meta)
    data: bytes = proto.SerializeToString()
    return data, check_parity(model, data, rows=parity_rows)


def read_metadata(onnx_bytes: bytes) -> dict[str, str]:
    """The ``metadata_props`` of a serialised ONNX model."""
    import onnx

    proto = onnx.load_from_string(onnx_bytes)
    return {p.key: p.value for p in proto.metadata_props}
