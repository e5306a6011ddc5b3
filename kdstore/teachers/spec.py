"""Input signatures, feature-column binding and output conversion shared by every teacher kind.

A teacher declares its inputs as :class:`TensorSpec` (name, dtype, shape). A feature source is a
relation ``features."<name>"`` whose columns have DuckDB types. :func:`bind_inputs` decides how
each model input is fed from those columns — or raises a :class:`~kdstore.errors.TeacherError`
saying which input does not match and how to fix it. :func:`convert_scores` turns a raw output
tensor into the ``[n, labels]`` scores the store keeps (softmax / sigmoid of logits, the positive
column of a two-class output), checking shape and finiteness first.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kdstore.errors import TeacherError

#: Output types a teacher that runs (ONNX, HTTP) can have. ``vote`` teachers are only ingested.
RUNNABLE_OUTPUT_TYPES = ("binary", "multiclass", "multilabel", "regression", "embedding")
#: How a model's output is to be read: already probabilities, or logits to squash.
SCORE_MODES = ("probabilities", "logits")

_INT_TYPES = {
    "TINYINT": "int8", "SMALLINT": "int16", "INTEGER": "int32", "BIGINT": "int64", "HUGEINT": "int64",
    "UTINYINT": "uint8", "USMALLINT": "uint16", "UINTEGER": "uint32", "UBIGINT": "uint64",
}
_FLOAT_TYPES = {"FLOAT": "float32", "REAL": "float32", "DOUBLE": "float64"}
_LIST = re.compile(r"^(?P<elem>[A-Z]+(?:\(\d+,\s*\d+\))?)\[(?P<len>\d*)\]$")


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One model input or output: name, NumPy dtype name, shape (None = any size).

    >>> TensorSpec("x", "float32", (None, 64)).describe()
    'x:float32[?,64]'
    """

    name: str
    dtype: str
    shape: tuple[int | None, ...]

    def describe(self) -> str:
        dims = ",".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}:{self.dtype}[{dims}]"

    @property
    def width(self) -> int | None:
        """Values per example (product of the non-batch dims), None when a dim is free."""
        rest = self.shape[1:]
        if any(d is None for d in rest):
            return None
        return int(math.prod(d for d in rest if d is not None))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> TensorSpec:
        try:
            shape = tuple(None if d is None or (isinstance(d, int) and d < 0) else int(d) for d in obj["shape"])
            dtype = str(obj["dtype"])
            return cls(str(obj["name"]), dtype if dtype == "str" else np.dtype(dtype).name, shape)
        except (KeyError, TypeError, ValueError) as e:
            raise TeacherError(f"bad tensor description {obj!r}: expected name, dtype and shape ({e})") from e


def describe_signature(specs: Sequence[TensorSpec]) -> str:
    """The ``kd.teachers.input_type`` text of a signature, e.g. ``x:float32[?,64]``."""
    return "; ".join(s.describe() for s in specs)


# ---------------------------------------------------------------------------------------------
# feature columns
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FeatureColumn:
    """A feature-source column: ``kind`` is number, bool, text, list (numbers) or other."""

    name: str
    type: str
    kind: str
    dtype: str | None = None
    length: int | None = None  # fixed length of an ARRAY column (FLOAT[64]); None for LIST / scalars


def feature_column(name: str, duckdb_type: str) -> FeatureColumn:
    """Classify a column by its DuckDB type name.

    >>> feature_column("v", "FLOAT[64]")
    FeatureColumn(name='v', type='FLOAT[64]', kind='list', dtype='float32', length=64)
    """
    t = duckdb_type.upper()
    m = _LIST.match(t)
    if m:
        elem = feature_column(name, m.group("elem"))
        if elem.kind != "number":
            return FeatureColumn(name, duckdb_type, "other")
        return FeatureColumn(name, duckdb_type, "list", elem.dtype, int(m.group("len")) if m.group("len") else None)
    if t in _FLOAT_TYPES:
        return FeatureColumn(name, duckdb_type, "number", _FLOAT_TYPES[t])
    if t in _INT_TYPES:
        return FeatureColumn(name, duckdb_type, "number", _INT_TYPES[t])
    if t.startswith("DECIMAL"):
        return FeatureColumn(name, duckdb_type, "number", "float64")
    if t == "BOOLEAN":
        return FeatureColumn(name, duckdb_type, "bool", "bool")
    if t == "VARCHAR":
        return FeatureColumn(name, duckdb_type, "text", "str")
    return FeatureColumn(name, duckdb_type, "other")


@dataclass(frozen=True, slots=True)
class InputBinding:
    """How one model input is fed: from one list column, or from scalar columns in order."""

    spec: TensorSpec
    columns: tuple[str, ...]
    from_list: bool

    @property
    def key(self) -> tuple[Any, ...]:
        """Bindings with equal keys build the same array (shared by teachers within a batch)."""
        return (self.columns, self.from_list, self.spec.dtype, self.spec.shape[1:])


def _accepts(spec: TensorSpec, col_dtype: str | None, kind: str) -> bool:
    want = spec.dtype
    if want == "str":
        return kind == "text"
    if kind == "text" or kind == "other" or col_dtype is None:
        return False
    if want.startswith("float"):
        return True  # any number or bool is read as a float
    if want == "bool":
        return kind == "bool"
    if want.startswith(("int", "uint")):
        return kind == "bool" or col_dtype.startswith(("int", "uint"))
    return False


def bind_inputs(
    teacher: str,
    specs: Sequence[TensorSpec],
    columns: Sequence[FeatureColumn],
    source: str,
    mapping: Mapping[str, str | Sequence[str]] | None = None,
    list_length: Callable[[str], int | None] | None = None,
) -> list[InputBinding]:
    """Decide how each input of ``teacher`` is fed from the feature source's columns.

    Rules, per input: an explicit ``mapping[input]`` (one column, or a list of scalar columns);
    else a column named like the input; else, for a single-input model, the source's only list
    column or all its numeric columns in order. ``list_length(column)`` gives the common length of
    a variable-length list column (None if rows differ). Raises :class:`TeacherError` naming the
    input, what it expects and what the source has.

    >>> cols = [feature_column("a", "FLOAT"), feature_column("b", "DOUBLE")]
    >>> bind_inputs("t", [TensorSpec("x", "float32", (None, 2))], cols, "f")[0].columns
    ('a', 'b')
    """
    by_name = {c.name: c for c in columns if c.name != "example_id"}
    usable = [c for c in columns if c.name != "example_id"]
    mapping = dict(mapping or {})
    unknown = [k for k in mapping if k not in {s.name for s in specs}]
    if unknown:
        raise TeacherError(
            f"teacher {teacher!r}: input mapping names {unknown} but the model's inputs are "
            f"{[s.name for s in specs]}"
        )
    where = f"teacher {teacher!r} on feature source {source!r}"
    out: list[InputBinding] = []
    for spec in specs:
        need = spec.width
        rank = len(spec.shape)
        if rank == 0:
            raise TeacherError(f"{where}: input {spec.describe()} is a scalar; kdstore feeds one row per example")
        if sum(d is None for d in spec.shape[1:]) > 1:
            raise TeacherError(f"{where}: input {spec.describe()} has more than one free non-batch dimension")

        def check_list(col: FeatureColumn, spec: TensorSpec = spec, need: int | None = need) -> InputBinding:
            if col.kind != "list" or not _accepts(spec, col.dtype, "number"):
                raise TeacherError(
                    f"{where}: input {spec.describe()} cannot be fed from column {col.name!r} ({col.type}): "
                    f"expected a list of numbers readable as {spec.dtype}"
                )
            length = col.length if col.length is not None else (list_length(col.name) if list_length else None)
            if length is None:
                raise TeacherError(
                    f"{where}: list column {col.name!r} ({col.type}) has rows of different lengths; "
                    f"input {spec.describe()} needs {need if need is not None else 'one fixed number of'} values per row"
                )
            if need is not None and length != need:
                raise TeacherError(
                    f"{where}: input {spec.describe()} needs {need} values per example but list column "
                    f"{col.name!r} has {length}"
                )
            if need is None and len(spec.shape) > 2 and length % math.prod(d for d in spec.shape[1:] if d is not None):
                raise TeacherError(f"{where}: list column {col.name!r} length {length} does not fit input {spec.describe()}")
            return InputBinding(spec, (col.name,), True)

        def check_scalars(cols: Sequence[FeatureColumn], how: str, spec: TensorSpec = spec, need: int | None = need) -> InputBinding:
            bad = [c for c in cols if c.kind == "list" or not _accepts(spec, c.dtype, c.kind)]
            if bad:
                raise TeacherError(
                    f"{where}: input {spec.describe()} cannot be fed from column {bad[0].name!r} ({bad[0].type}); "
                    f"{spec.dtype} inputs take " + ("text" if spec.dtype == "str" else "numeric") + " columns"
                )
            if need is not None and len(cols) != need:
                names = ", ".join(c.name for c in cols[:8]) + (", ..." if len(cols) > 8 else "")
                raise TeacherError(
                    f"{where}: input {spec.describe()} needs {need} values per example but {how} gives "
                    f"{len(cols)} column(s) ({names}); map columns explicitly with inputs={{{spec.name!r}: [...]}} "
                    "or register a source with a list column of that length"
                )
            if not cols:
                raise TeacherError(f"{where}: no feature columns for input {spec.describe()}")
            return InputBinding(spec, tuple(c.name for c in cols), False)

        if spec.name in mapping:
            target = mapping[spec.name]
            names = [target] if isinstance(target, str) else list(target)
            missing = [n for n in names if n not in by_name]
            if missing:
                raise TeacherError(
                    f"{where}: input {spec.name!r} is mapped to column(s) {missing} that the source does not have "
                    f"(columns: {', '.join(by_name)})"
                )
            cols = [by_name[n] for n in names]
            if len(cols) == 1 and cols[0].kind == "list":
                out.append(check_list(cols[0]))
            else:
                out.append(check_scalars(cols, f"the mapping of {spec.name!r}"))
            continue
        if spec.name in by_name:
            col = by_name[spec.name]
            out.append(check_list(col) if col.kind == "list" else check_scalars([col], f"column {col.name!r}"))
            continue
        if len(specs) > 1:
            raise TeacherError(
                f"{where}: the model has several inputs and the source has no column named {spec.name!r}; "
                f"map it with inputs={{{spec.name!r}: ...}}"
            )
        lists = [c for c in usable if c.kind == "list"]
        if spec.dtype == "str":
            texts = [c for c in usable if c.kind == "text"]
            if len(texts) != 1:
                raise TeacherError(
                    f"{where}: text input {spec.describe()} needs one text column; the source has "
                    f"{len(texts)} ({', '.join(c.name for c in texts) or 'none'}); map one with inputs="
                )
            out.append(check_scalars(texts, "the text column"))
            continue
        numbers = [c for c in usable if c.kind in ("number", "bool")]
        if len(lists) == 1 and not numbers:
            out.append(check_list(lists[0]))
            continue
        if not numbers and not lists:
            kinds = ", ".join(f"{c.name} {c.type}" for c in usable[:6]) or "no columns"
            raise TeacherError(f"{where}: input {spec.describe()} needs numbers; the source has {kinds}")
        if need is not None and len(numbers) != need and len(lists) == 1:
            out.append(check_list(lists[0]))
            continue
        out.append(check_scalars(numbers, "the source's numeric columns"))
    return out


def build_feed(binding: InputBinding, batch: pa.RecordBatch, teacher: str) -> np.ndarray:
    """The array for one input from a record batch (rows = the batch's rows)."""
    spec = binding.spec
    n = batch.num_rows
    dtype: Any = object if spec.dtype == "str" else np.dtype(spec.dtype)
    if binding.from_list:
        col = binding.columns[0]
        arr = batch.column(col)
        if arr.null_count:
            _null_error(teacher, col, arr, batch)
        values = pc.list_flatten(arr)
        if values.null_count:
            raise TeacherError(f"teacher {teacher!r}: null inside list feature {col!r}")
        flat = np.asarray(values.to_numpy(zero_copy_only=False)).astype(dtype, copy=False)
        width = flat.size // n if n else 0
        if n and flat.size != n * width:
            raise TeacherError(f"teacher {teacher!r}: list feature {col!r} has rows of different lengths")
        rest = [d if d is not None else -1 for d in spec.shape[1:]]
        result: np.ndarray = flat.reshape(n, *rest) if rest else flat.reshape(n)
        return np.ascontiguousarray(result)
    parts = []
    for c in binding.columns:
        arr = batch.column(c)
        if arr.null_count:
            _null_error(teacher, c, arr, batch)
        parts.append(np.asarray(arr.to_pylist(), dtype=object) if spec.dtype == "str" else arr.to_numpy(zero_copy_only=False))
    # stacking columns then one transposing copy is ~2x faster than filling a row-major matrix column by column
    mat = np.ascontiguousarray(np.stack(parts).astype(dtype, copy=False).T)
    rest = [d if d is not None else -1 for d in spec.shape[1:]]
    return mat.reshape(n, *rest) if rest else mat.reshape(n)


def _null_error(teacher: str, col: str, arr: pa.Array, batch: pa.RecordBatch) -> None:
    i = int(np.flatnonzero(np.asarray(pc.is_null(arr).to_numpy(zero_copy_only=False)))[0])
    eid = batch.column("example_id")[i].as_py()
    raise TeacherError(f"teacher {teacher!r}: feature column {col!r} is null for example {eid}")


# ---------------------------------------------------------------------------------------------
# outputs
# ---------------------------------------------------------------------------------------------
def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


def _sigmoid(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = 0.5 * (1.0 + np.tanh(0.5 * z))  # stable for large |z|
    return out


def as_rows(raw: np.ndarray, n: int, teacher: str, output: str, ids: np.ndarray) -> np.ndarray:
    """A raw output as ``[n, width]`` numbers, after checking its batch size and finiteness."""
    arr = np.asarray(raw)
    if arr.ndim == 0 or arr.shape[0] != n:
        raise TeacherError(
            f"teacher {teacher!r}: output {output!r} has shape {list(arr.shape)} for a batch of {n} examples "
            "(wrong shape: the first dimension must be the batch)"
        )
    if arr.dtype.kind not in "fiub":
        raise TeacherError(f"teacher {teacher!r}: output {output!r} is {arr.dtype}, not numbers")
    mat = arr.reshape(n, -1)
    if mat.dtype.kind == "f" and not np.isfinite(mat).all():
        i, j = (int(v) for v in np.argwhere(~np.isfinite(mat))[0])
        raise TeacherError(
            f"teacher {teacher!r}: output {output!r} is {mat[i, j]} (NaN or infinite) for example {int(ids[i])}, "
            f"position {j}; the run writes nothing for this teacher"
        )
    return mat


def convert_scores(
    raw: np.ndarray, *, teacher: str, output: str, output_type: str, n_labels: int, mode: str, ids: np.ndarray,
    tolerance: float = 1e-3,
) -> np.ndarray:
    """Raw output tensor -> ``[n, n_labels]`` float32 scores for ``kd.scores``, checked.

    binary: one column (probability, or logit -> sigmoid) or two (class probabilities, or logits
    -> softmax) of which the second is the positive class. multiclass: probabilities (range and
    row sums checked) or logits (softmax). multilabel: probabilities or logits (sigmoid).
    regression: as is. Math runs in float32 for float32 models (float64 for double models).

    >>> convert_scores(np.array([[0.0, 0.0]], np.float32), teacher="t", output="y", output_type="binary",
    ...                n_labels=1, mode="logits", ids=np.array([7]))
    array([[0.5]], dtype=float32)
    """
    n = len(ids)
    mat = as_rows(raw, n, teacher, output, ids)
    if mat.dtype not in (np.float32, np.float64):
        mat = mat.astype(np.float32)
    width = mat.shape[1]
    hint = " (if the model outputs logits, register it with scores='logits')"
    if output_type == "binary":
        if width == 1:
            p = _sigmoid(mat) if mode == "logits" else mat
        elif width == 2:
            if mode == "logits":
                p = _softmax(mat)[:, 1:]
            else:
                _check_prob(mat, teacher, output, ids, hint)
                _check_sums(mat, teacher, output, ids, tolerance)
                p = mat[:, 1:]
        else:
            raise TeacherError(
                f"teacher {teacher!r}: a binary teacher's output {output!r} must have 1 or 2 values per example, "
                f"got {width} (wrong shape)"
            )
        _check_prob(p, teacher, output, ids, hint)
        return np.ascontiguousarray(p, dtype=np.float32)
    if width != n_labels:
        raise TeacherError(
            f"teacher {teacher!r}: output {output!r} has {width} values per example but the teacher has "
            f"{n_labels} labels (wrong shape)"
        )
    if output_type == "regression":
        out = np.ascontiguousarray(mat, dtype=np.float32)
        if not np.isfinite(out).all():
            raise TeacherError(f"teacher {teacher!r}: output {output!r} has values too large for float32 storage")
        return out
    if mode == "logits":
        return np.ascontiguousarray(_softmax(mat) if output_type == "multiclass" else _sigmoid(mat), dtype=np.float32)
    _check_prob(mat, teacher, output, ids, hint)
    if output_type == "multiclass":
        _check_sums(mat, teacher, output, ids, tolerance)
    return np.ascontiguousarray(mat, dtype=np.float32)


def _check_prob(p: np.ndarray, teacher: str, output: str, ids: np.ndarray, hint: str) -> None:
    if p.size == 0 or (p.min() >= 0.0 and p.max() <= 1.0):  # the fast path: two reductions, no mask
        return
    i, j = (int(v) for v in np.argwhere((p < 0.0) | (p > 1.0))[0])
    raise TeacherError(
        f"teacher {teacher!r}: output {output!r} value {p[i, j]:.6g} for example {int(ids[i])} is outside [0, 1]{hint}"
    )


def _check_sums(p: np.ndarray, teacher: str, output: str, ids: np.ndarray, tolerance: float) -> None:
    off = np.abs(p.sum(axis=1, dtype=np.float64) - 1.0)
    if off.size == 0 or off.max() <= tolerance:
        return
    i = int(np.argmax(off > tolerance))
    raise TeacherError(
        f"teacher {teacher!r}: output {output!r} probabilities for example {int(ids[i])} sum to "
        f"{p[i].sum(dtype=np.float64):.6g}, not 1 (if the model outputs logits, register it with scores='logits')"
    )


def input_map(inputs: Mapping[str, str | Sequence[str]] | None) -> dict[str, str | list[str]] | None:
    """A teacher's ``inputs=`` as kept and stored: tensor -> feature column(s); None = bind by name."""
    return {k: v if isinstance(v, str) else list(v) for k, v in inputs.items()} if inputs else None


def session_outputs(output_type: str, output: str, embedding: str | None) -> tuple[str | None, str | None, list[str]]:
    """The tensors a running teacher fetches: (its scores, its embedding, both names without repeats).

    An embedding teacher's main output is its embedding and it has no scores.
    """
    score = None if output_type == "embedding" else output
    emb = output if output_type == "embedding" else embedding
    return score, emb, list(dict.fromkeys(n for n in (score, emb) if n is not None))


def check_output_config(teacher: str, output_type: str, n_labels: int, mode: str) -> None:
    """Registration-time checks of a runnable teacher's output settings."""
    if output_type not in RUNNABLE_OUTPUT_TYPES:
        raise TeacherError(
            f"teacher {teacher!r}: output_type must be one of {RUNNABLE_OUTPUT_TYPES} for a model teacher, got "
            f"{output_type!r}" + (" (vote teachers are ingested with store.ingest_votes)" if output_type == "vote" else "")
        )
    if mode not in SCORE_MODES:
        raise TeacherError(f"teacher {teacher!r}: scores must be one of {SCORE_MODES}, got {mode!r}")
    if output_type == "embedding" and n_labels:
        raise TeacherError(f"teacher {teacher!r}: an embedding teacher has no labels")
    if output_type != "embedding" and not n_labels:
        raise TeacherError(f"teacher {teacher!r}: a {output_type} teacher needs labels (the global label of each output)")
    if output_type == "binary" and n_labels != 1:
        raise TeacherError(f"teacher {teacher!r}: a binary teacher has exactly one label (its positive class), got {n_labels}")


def check_static_output(teacher: str, spec: TensorSpec, output_type: str, n_labels: int) -> None:
    """Early shape check when the model declares a static output width."""
    width = spec.width
    if width is None or output_type in ("embedding",):
        return
    ok = width in (1, 2) if output_type == "binary" else width == n_labels
    if not ok:
        want = "1 or 2" if output_type == "binary" else str(n_labels)
        raise TeacherError(
            f"teacher {teacher!r}: output {spec.describe()} has {width} values per example; a {output_type} "
            f"teacher with {n_labels} label(s) needs {want}"
        )


__all__ = [
    "RUNNABLE_OUTPUT_TYPES",
    "SCORE_MODES",
    "FeatureColumn",
    "InputBinding",
    "TensorSpec",
    "bind_inputs",
    "build_feed",
    "check_output_config",
    "check_static_output",
    "convert_scores",
    "describe_signature",
    "feature_column",
    "input_map",
    "session_outputs",
]
