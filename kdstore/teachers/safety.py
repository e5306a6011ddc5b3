"""Checks on an ONNX model file before any inference session sees it.

:func:`load_model` reads the file itself (ONNX Runtime never opens a path), and refuses:

* a file that does not parse as an ONNX model or fails ``onnx.checker`` (corrupt, truncated);
* an operator or opset from a domain ONNX Runtime does not ship (custom-op libraries);
* external data (weights in side files) whose path is absolute, leaves the model's folder (``..``
  or a symlink), is missing, or whose offset/length runs past the end of its file.

External data that passes is read into the in-memory model, so the session is built from bytes.
The fingerprint is the SHA-256 of the model file followed by its external data.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdstore.errors import TeacherError

#: Operator domains whose kernels are built into ONNX Runtime (no custom-op library needed).
ALLOWED_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "com.microsoft"})


@dataclass(frozen=True, slots=True)
class CheckedModel:
    """A model that passed every check; ``model`` is a self-contained ``onnx.ModelProto``."""

    path: str
    model: Any
    fingerprint: str


def _graphs(graph: Any) -> Iterator[Any]:
    """A graph and every subgraph (If/Loop/Scan bodies) below it."""
    import onnx

    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _graphs(g)


def _nodes(model: Any) -> Iterator[tuple[str, Any]]:
    """(where, node) for every node of the model: graphs, subgraphs and local functions."""
    for g in _graphs(model.graph):
        for node in g.node:
            yield f"graph {g.name!r}", node
    for f in model.functions:
        for node in f.node:
            yield f"function {f.domain}.{f.name}", node


def _tensors(model: Any) -> Iterator[Any]:
    """Every TensorProto that can hold external data: initializers and tensor attributes."""
    import onnx

    def in_nodes(nodes: Any) -> Iterator[Any]:
        for node in nodes:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.TENSOR:
                    yield attr.t
                elif attr.type == onnx.AttributeProto.TENSORS:
                    yield from attr.tensors
                elif attr.type == onnx.AttributeProto.SPARSE_TENSOR:
                    yield attr.sparse_tensor.values
                    yield attr.sparse_tensor.indices

    for g in _graphs(model.graph):
        yield from g.initializer
        for sp in g.sparse_initializer:
            yield sp.values
            yield sp.indices
        yield from in_nodes(g.node)
    for f in model.functions:
        yield from in_nodes(f.node)


def check_domains(model: Any, source: str, allowed: frozenset[str] = ALLOWED_DOMAINS) -> None:
    """Refuse operators and opsets from domains outside ``allowed`` (model-local functions are fine)."""
    local = {(f.domain, f.name) for f in model.functions}
    local_domains = {f.domain for f in model.functions}
    for opset in model.opset_import:
        if opset.domain not in allowed and opset.domain not in local_domains:
            raise TeacherError(
                f"model {source} imports custom operator domain {opset.domain!r}; kdstore runs only models whose "
                f"operators ONNX Runtime ships ({', '.join(repr(d) for d in sorted(allowed))}) and never loads "
                "custom-op libraries"
            )
    for where, node in _nodes(model):
        if node.domain not in allowed and (node.domain, node.op_type) not in local:
            raise TeacherError(
                f"model {source}: node {node.name or node.op_type!r} in {where} uses custom operator "
                f"{node.domain}.{node.op_type}; refused (custom-op domains are not loaded)"
            )


def _external_path(base: Path, location: str, source: str, tensor: str) -> Path:
    if not location or os.path.isabs(location) or location.startswith(("/", "\\")) or (len(location) > 1 and location[1] == ":"):
        raise TeacherError(
            f"model {source}: external data of tensor {tensor!r} has path {location!r}; only paths relative to "
            "the model's folder are allowed"
        )
    root = base.resolve()
    target = (root / location).resolve()
    if not target.is_relative_to(root):
        raise TeacherError(
            f"model {source}: external data of tensor {tensor!r} points outside the model's folder "
            f"({location!r} -> {target}); refused"
        )
    if not target.is_file():
        raise TeacherError(f"model {source}: external data file {location!r} of tensor {tensor!r} is missing")
    return target


def load_external(model: Any, base: Path | None, source: str, digest: Any) -> None:
    """Check every external-data reference and read the data into the model (in place)."""
    import onnx

    for tensor in _tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in tensor.external_data}
        if base is None:
            raise TeacherError(f"model {source}: tensor {tensor.name!r} has external data but the model has no folder")
        path = _external_path(base, info.get("location", ""), source, tensor.name)
        size = path.stat().st_size
        try:
            offset = int(info.get("offset", 0))
            length = int(info["length"]) if "length" in info else size - offset
        except ValueError as e:
            raise TeacherError(f"model {source}: bad external data offset/length for tensor {tensor.name!r}") from e
        if offset < 0 or length < 0 or offset + length > size:
            raise TeacherError(
                f"model {source}: external data of tensor {tensor.name!r} asks for bytes {offset}..{offset + length} "
                f"of {info.get('location')!r}, which has {size} (truncated?)"
            )
        with path.open("rb") as fh:
            fh.seek(offset)
            data = fh.read(length)
        digest.update(info.get("location", "").encode())
        digest.update(data)
        tensor.raw_data = data
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT


def parse_model(data: bytes, source: str) -> Any:
    """Bytes -> ModelProto, or a :class:`TeacherError` for anything that is not a model."""
    import onnx

    try:
        model = onnx.load_model_from_string(data)
    except Exception as e:  # protobuf raises DecodeError, RuntimeWarning-free
        raise TeacherError(f"model {source} is not a valid ONNX file (corrupt or truncated): {e}") from e
    if not model.ir_version or not model.HasField("graph") or not model.opset_import:
        raise TeacherError(
            f"model {source} is not a valid ONNX file (corrupt or truncated): missing "
            + ("ir_version" if not model.ir_version else "graph" if not model.HasField("graph") else "opset_import")
        )
    return model


def check_loaded(model: Any, source: str) -> None:
    """Run ``onnx.checker`` on a self-contained model."""
    import onnx

    try:
        onnx.checker.check_model(model)
    except Exception as e:
        raise TeacherError(f"model {source} fails the ONNX checker (corrupt, truncated or invalid): {e}") from e


def load_model(path: str | os.PathLike[str], *, allowed_domains: frozenset[str] = ALLOWED_DOMAINS) -> CheckedModel:
    """Read, check and fingerprint an ONNX model file; nothing is handed to ONNX Runtime here.

    Raises:
        TeacherError: the file is missing, corrupt or truncated, uses custom-op domains, or has
            external data outside its folder.
    """
    p = Path(path)
    source = str(p)
    if not p.is_file():
        raise TeacherError(f"model {source} does not exist (or is not a file)")
    data = p.read_bytes()
    digest = hashlib.sha256(data)
    model = parse_model(data, source)
    check_domains(model, source, allowed_domains)
    load_external(model, p.resolve().parent, source, digest)
    check_loaded(model, source)
    return CheckedModel(str(p.resolve()), model, "sha256:" + digest.hexdigest())


__all__ = ["ALLOWED_DOMAINS", "CheckedModel", "check_domains", "check_loaded", "load_external", "load_model", "parse_model"]
