"""ONNX teachers: a model file run with ONNX Runtime on CPU.

The file is checked by :mod:`kdstore.teachers.safety` before a session is created. Any tensor the
graph computes can be read out by name (``output=`` or ``embedding=``): when it is not already a
graph output it is added as one in an in-memory copy of the model, so the user never edits the file.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kdstore.errors import TeacherError
from kdstore.teachers.safety import CheckedModel, load_model
from kdstore.teachers.spec import (
    TensorSpec,
    check_output_config,
    check_static_output,
    describe_signature,
    input_map,
    session_outputs,
)

#: Rows per ONNX Runtime call: big feature batches are cut so the layer activations stay in cache.
CHUNK_ROWS = 2048


def _spec(value_info: Any, what: str, source: str) -> TensorSpec:
    from onnx import helper

    if not value_info.type.HasField("tensor_type"):
        raise TeacherError(
            f"model {source}: {what} {value_info.name!r} is not a tensor ({value_info.type.WhichOneof('value')}); "
            "kdstore reads tensors only (for a ZipMap classifier, pick its probability tensor with output=)"
        )
    tt = value_info.type.tensor_type
    np_dtype = helper.tensor_dtype_to_np_dtype(tt.elem_type)
    dtype = "str" if np_dtype == np.dtype(object) else np.dtype(np_dtype).name
    if not tt.HasField("shape"):
        return TensorSpec(value_info.name, dtype, (None, None))
    shape = tuple(int(d.dim_value) if d.HasField("dim_value") else None for d in tt.shape.dim)
    return TensorSpec(value_info.name, dtype, shape)


def model_inputs(model: Any, source: str) -> tuple[TensorSpec, ...]:
    """The inputs a caller must feed (graph inputs that are not initializers)."""
    init = {i.name for i in model.graph.initializer}
    return tuple(_spec(vi, "input", source) for vi in model.graph.input if vi.name not in init)


def _computed(model: Any) -> list[str]:
    return [o for node in model.graph.node for o in node.output if o]


class OnnxTeacher:
    """A teacher that is an ONNX model file, run on CPU with ONNX Runtime.

    Args:
        path: the ``.onnx`` file (external data must sit in the same folder or below).
        name: the teacher's name in the store (default: the file's stem).
        labels: the global label of each output column, in order (one label for a binary teacher:
            its positive class; none for an embedding teacher).
        output_type: binary, multiclass, multilabel, regression or embedding.
        output: the tensor holding the scores (default: the first float graph output). For an
            embedding teacher, the tensor to store as its embedding — any intermediate tensor.
        embedding: also store this tensor (e.g. a hidden layer) in ``kd.embeddings``.
        inputs: model input name -> feature column (a list column) or list of scalar columns.
            Default: a column named like the input, else the source's numeric columns in order.
        scores: ``probabilities`` (checked) or ``logits`` (softmax / sigmoid applied).
        threshold: this teacher's decision threshold (overrides the ``threshold`` setting).
    """

    kind = "onnx"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        name: str | None = None,
        labels: Sequence[str | int] = (),
        output_type: str = "multiclass",
        output: str | None = None,
        embedding: str | None = None,
        inputs: Mapping[str, str | Sequence[str]] | None = None,
        scores: str = "probabilities",
        threshold: float | None = None,
    ):
        self.path = str(Path(path).resolve())
        self.name = name if name is not None else Path(path).stem
        self.labels = tuple(labels)
        self.output_type = output_type
        self.scores = scores
        self.threshold = threshold
        self.input_map = input_map(inputs)
        self._output = output
        self._embedding = embedding
        self._checked: CheckedModel | None = None
        self._lock = threading.Lock()
        check_output_config(self.name, output_type, len(self.labels), scores)

    def __repr__(self) -> str:
        return f"OnnxTeacher({self.path!r}, name={self.name!r}, output_type={self.output_type!r})"

    @property
    def uri(self) -> str:
        return self.path

    def checked(self) -> CheckedModel:
        """The model, read and checked once (:func:`kdstore.teachers.safety.load_model`)."""
        with self._lock:
            if self._checked is None:
                self._checked = load_model(self.path)
            return self._checked

    def fingerprint(self) -> str:
        """SHA-256 of the model file and its external data."""
        return self.checked().fingerprint

    def signature(self) -> tuple[TensorSpec, ...]:
        return model_inputs(self.checked().model, self.path)

    @property
    def output(self) -> str:
        """The main output tensor (scores, or the embedding of an embedding teacher)."""
        if self._output is not None:
            return self._output
        model = self.checked().model
        from onnx import TensorProto

        for vi in model.graph.output:
            tt = vi.type.tensor_type
            if vi.type.HasField("tensor_type") and tt.elem_type in (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16):
                return str(vi.name)
        raise TeacherError(f"model {self.path} has no float tensor output; name the output tensor with output=")

    @property
    def embedding(self) -> str | None:
        return self._embedding

    def output_spec(self, name: str) -> TensorSpec | None:
        """The declared spec of a graph output or intermediate tensor (None when not declared)."""
        model = self.checked().model
        for vi in model.graph.output:
            if vi.name == name:
                return _spec(vi, "output", self.path)
        inferred = _inferred(model)
        return inferred.get(name)

    def config(self) -> dict[str, Any]:
        """What kdstore stores in ``kd.teachers.config`` to rebuild and run this teacher."""
        self._check_outputs()
        return {
            "output": self.output,
            "embedding": self._embedding,
            "inputs": self.input_map,
            "scores": self.scores,
            "signature": [s.to_json() for s in self.signature()],
        }

    def input_type(self) -> str:
        return describe_signature(self.signature())

    def _check_outputs(self) -> None:
        model = self.checked().model
        names = {vi.name for vi in model.graph.output} | set(_computed(model))
        for what, tensor in (("output", self.output), ("embedding", self._embedding)):
            if tensor is None:
                continue
            if tensor not in names:
                some = ", ".join(sorted(names)[:12])
                raise TeacherError(
                    f"teacher {self.name!r}: model {self.path} computes no tensor named {tensor!r} ({what}); "
                    f"tensors it computes include: {some}"
                )
        if self.output_type != "embedding":
            spec = self.output_spec(self.output)
            if spec is not None:
                check_static_output(self.name, spec, self.output_type, len(self.labels))

    def open(self, *, threads: int = 1) -> OnnxSession:
        """An ONNX Runtime session (``threads`` intra-op threads, no spinning)."""
        self._check_outputs()
        return OnnxSession(self, threads)


def _value_infos(model: Any) -> dict[str, Any]:
    """Shape-inferred ValueInfoProto of intermediate tensors (empty if inference fails)."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # inference is a nicety here; ORT types the outputs itself
        return {}
    return {vi.name: vi for vi in inferred.graph.value_info}


def _inferred(model: Any) -> dict[str, TensorSpec]:
    """Shape-inferred specs of intermediate tensors."""
    out: dict[str, TensorSpec] = {}
    for vi in _value_infos(model).values():
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type:
            try:
                out[vi.name] = _spec(vi, "tensor", "")
            except TeacherError:
                continue
    return out


class OnnxSession:
    """A running :class:`OnnxTeacher`: ``run(feeds)`` -> {tensor name: array}.

    ``InferenceSession.run`` releases the GIL and may be called from several threads at once.
    """

    def __init__(self, teacher: OnnxTeacher, threads: int = 1):
        import onnx
        import onnxruntime as ort

        self.teacher = teacher
        checked = teacher.checked()
        model = onnx.ModelProto()
        model.CopyFrom(checked.model)
        self.score_output, self.embedding_output, self.names = session_outputs(
            teacher.output_type, teacher.output, teacher.embedding)
        declared = {vi.name for vi in model.graph.output}
        missing = [n for n in self.names if n not in declared]
        if missing:
            inferred = _value_infos(model)
            for n in missing:  # expose an intermediate tensor as an extra graph output
                vi = onnx.ValueInfoProto()
                if n in inferred:
                    vi.CopyFrom(inferred[n])
                else:
                    vi.name = n
                model.graph.output.append(vi)
        specs = model_inputs(model, teacher.path)
        first = {s.shape[0] for s in specs if s.shape}
        self.fixed_batch: int | None = next(iter(first)) if len(first) == 1 and None not in first else None
        so = ort.SessionOptions()
        so.intra_op_num_threads = max(1, int(threads))
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise TeacherError(f"teacher {teacher.name!r}: ONNX Runtime cannot load {teacher.path}: {e}") from e

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            if self.fixed_batch is not None:
                return self._run_fixed(feeds, self.fixed_batch, pad=True)
            n = len(next(iter(feeds.values())))
            if n <= CHUNK_ROWS:
                return dict(zip(self.names, self.session.run(self.names, dict(feeds)), strict=True))
            return self._run_fixed(feeds, CHUNK_ROWS, pad=False)
        except TeacherError:
            raise
        except Exception as e:
            raise TeacherError(f"teacher {self.teacher.name!r}: inference failed: {e}") from e

    def _run_fixed(self, feeds: Mapping[str, np.ndarray], size: int, *, pad: bool) -> dict[str, np.ndarray]:
        """Run chunks of ``size`` rows; ``pad`` the last one (a model with a fixed batch dimension)."""
        n = len(next(iter(feeds.values())))
        parts: dict[str, list[np.ndarray]] = {k: [] for k in self.names}
        for s in range(0, n, size):
            chunk = {k: v[s : s + size] for k, v in feeds.items()}
            m = len(next(iter(chunk.values())))
            if pad and m < size:
                chunk = {k: np.concatenate([v, np.repeat(v[-1:], size - m, axis=0)]) for k, v in chunk.items()}
            for k, r in zip(self.names, self.session.run(self.names, chunk), strict=True):
                parts[k].append(np.asarray(r)[:m])
        return {k: np.concatenate(v) if v else np.empty((0,)) for k, v in parts.items()}

    def close(self) -> None:
        del self.session


__all__ = ["OnnxSession", "OnnxTeacher", "model_inputs"]
