"""Serving students: cached ONNX Runtime sessions, predictions as Arrow, and SQL functions.

* One ONNX Runtime session per model graph (keyed by the graph's SHA-256 and the thread count),
  created on first use and kept for the life of the process. Sessions use ``intra_op`` threads =
  ``min(2, cores)`` (``KDSTORE_ORT_THREADS`` overrides), one inter-op thread, and no spinning
  (``session.intra_op.allow_spinning = 0``), which matters on a small shared machine.
* :func:`predict_store` streams a feature source out of DuckDB in Arrow batches, reading the next
  batch in a background thread while ONNX Runtime scores the current one.
* :func:`register_sql_functions` adds DuckDB scalar functions (vectorised over Arrow chunks):

  ``kd_predict(model, x1, x2, ...)`` or ``kd_predict(model, xs)`` → ``FLOAT[]``
      the label head's probabilities (aligned with the model's labels), or the embedding when the
      model has no label head;
  ``kd_predict_label(model, ...)`` → ``VARCHAR``: the label with the highest score;
  ``kd_embed(model, ...)`` → ``FLOAT[]``: the embedding head's output.

  ``model`` is a name (``'student_3'``) or an id (``'3'``); the inputs are the model's feature
  columns, in the model's order, as separate numeric arguments, or one list/array of them.
  A row with a NULL input gets NULL.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kdstore.errors import SchemaError
from kdstore.student.features import Embeddings, FeatureSpec, arrays_matrix, relation_sql, resolve, table_matrix

if TYPE_CHECKING:
    from kdstore.store.core import Store
    from kdstore.student.registry import StudentModel

INPUT = "features"
BATCH_ROWS = 1 << 16
#: Rows per ONNX Runtime call (see :func:`run`).
ORT_BATCH = 2048
_SESSIONS: dict[tuple[str, int], Any] = {}
_LOCK = threading.Lock()


def default_threads() -> int:
    """ONNX Runtime intra-op threads: ``KDSTORE_ORT_THREADS`` or ``min(2, cores)``."""
    env = os.environ.get("KDSTORE_ORT_THREADS")
    if env:
        return max(1, int(env))
    return max(1, min(2, os.cpu_count() or 1))


def session(model: StudentModel, threads: int | None = None) -> Any:
    """The cached ``onnxruntime.InferenceSession`` of ``model`` for ``threads`` intra-op threads."""
    n = threads or default_threads()
    key = (model.sha256, n)
    sess = _SESSIONS.get(key)
    if sess is not None:
        return sess
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = n
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.onnx, so, providers=["CPUExecutionProvider"])
    with _LOCK:
        return _SESSIONS.setdefault(key, sess)


def run(model: StudentModel, X: np.ndarray, *, threads: int | None = None, batch: int | None = None) -> dict[str, np.ndarray]:
    """Run the model on a checked float32 matrix; returns ``{output name: array}``.

    Large inputs go to ONNX Runtime in slices of ``batch`` rows (default :data:`ORT_BATCH`): the
    hidden activations of a slice stay in cache, which is faster than one huge call.
    """
    sess = session(model, threads)
    names = [o.name for o in sess.get_outputs()]
    step = batch or ORT_BATCH
    if X.shape[0] <= step:
        return dict(zip(names, sess.run(None, {INPUT: X}), strict=True))
    outs = {name: np.empty((X.shape[0], width), np.float32) for name, width in model.outputs.items()}
    for start in range(0, X.shape[0], step):
        part = sess.run(None, {INPUT: X[start:start + step]})
        for name, value in zip(names, part, strict=True):
            outs[name][start:start + step] = value
    return outs


def _lists(m: np.ndarray) -> pa.Array:
    flat = pa.array(np.ascontiguousarray(m, np.float32).reshape(-1))
    offsets = pa.array(np.arange(0, m.shape[0] * m.shape[1] + 1, m.shape[1], dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, flat)


def output_columns(model: StudentModel, outs: dict[str, np.ndarray]) -> dict[str, pa.Array]:
    """``scores`` (list of floats, aligned with ``model.labels``), ``label`` (multiclass argmax) and
    ``embedding`` columns from raw outputs."""
    cols: dict[str, pa.Array] = {}
    if "scores" in outs:
        s = outs["scores"]
        cols["scores"] = _lists(s)
        if model.task == "multiclass":
            cols["label"] = pa.DictionaryArray.from_arrays(pa.array(s.argmax(axis=1).astype(np.int32)), pa.array(model.labels))
    if "embedding" in outs:
        cols["embedding"] = _lists(outs["embedding"])
    return cols


def long_scores(model: StudentModel, table: pa.Table) -> pa.Table:
    """A prediction table in the long shape of ``kd.outputs``: ``example_id, label_id, score``.

    This is what trust models take as the student's feedback (``kdstore.trust``).
    """
    if "scores" not in table.column_names:
        raise SchemaError(f"model {model.name} has no label head: no scores to put in long form", source="predict")
    k = len(model.label_ids)
    n = table.num_rows
    scores = np.asarray(pc.list_flatten(table.column("scores")).to_numpy(zero_copy_only=False), np.float32)
    cols: dict[str, Any] = {}
    if "example_id" in table.column_names:
        cols["example_id"] = np.repeat(np.asarray(table.column("example_id").to_numpy(), np.int64), k)
    else:
        cols["row"] = np.repeat(np.arange(n, dtype=np.int64), k)
    cols["label_id"] = pa.array(np.tile(np.asarray(model.label_ids, np.int32), n))
    cols["score"] = scores
    return pa.table(cols)


def predict_table(model: StudentModel, features: Any, *, threads: int | None = None, long: bool = False) -> pa.Table:
    """Predict for in-memory features.

    Args:
        model: the student.
        features: a NumPy matrix ``[rows, dim]``, or anything :func:`kdstore.sources.open_source`
            reads (Arrow, pandas, polars, Parquet path) that holds the model's feature columns; its
            ``example_id`` column, if any, is carried to the result.

    Returns:
        ``pa.Table`` with ``example_id`` (when given), ``scores``, ``label`` (multiclass), ``embedding``;
        with ``long=True`` the scores in the long shape ``example_id, label_id, score`` (:func:`long_scores`).
    """
    spec = model.features
    if isinstance(features, np.ndarray):
        from kdstore.student.features import ndarray_matrix

        X = ndarray_matrix(features, spec.dim, source=f"input of model {model.name}")
        out = pa.table(output_columns(model, run(model, X, threads=threads)))
    else:
        from kdstore.sources import open_source

        src = open_source(features)
        out = pa.Table.from_batches(list(_score_batches(model, src.reader, spec, src.name, threads)))
    return long_scores(model, out) if long else out


def _score_batches(model: StudentModel, batches: Iterator[pa.RecordBatch] | pa.RecordBatchReader, spec: FeatureSpec,
                   source: str, threads: int | None) -> Iterator[pa.RecordBatch]:
    offset = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        X = table_matrix(batch, spec, source=source, offset=offset)
        cols = output_columns(model, run(model, X, threads=threads))
        if "example_id" in batch.schema.names:
            cols = {"example_id": batch.column("example_id"), **cols}
        yield pa.RecordBatch.from_pydict(cols)
        offset += batch.num_rows


def _prefetch(reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
    """Read the next batch in a background thread while the caller works on the current one."""

    def next_batch() -> pa.RecordBatch | None:
        try:
            return reader.read_next_batch()
        except StopIteration:
            return None

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kdstore-read") as pool:
        fut = pool.submit(next_batch)
        while True:
            batch = fut.result()
            if batch is None:
                return
            fut = pool.submit(next_batch)
            yield batch


def serving_spec(store: Store, model: StudentModel, features: str | Embeddings | None) -> FeatureSpec:
    """The model's own input, or another source with the same columns (checked)."""
    spec = model.features
    if features is None:
        return spec
    if isinstance(features, Embeddings) or spec.kind == "embeddings" or spec.list_column:
        other = resolve(store, features, None if isinstance(features, Embeddings) else list(spec.columns))
    else:
        other = resolve(store, features, list(spec.columns))
    if other.dim != spec.dim:
        raise SchemaError(f"model {model.name} reads {spec.dim} values per example, {other.describe()} has {other.dim}",
                          source=other.describe())
    return other


def predict_store(store: Store, model: StudentModel, features: str | Embeddings | None = None, *,
                  split: str | None = None, threads: int | None = None, batch_rows: int = BATCH_ROWS,
                  long: bool = False) -> pa.Table:
    """Predict for every example of a feature source in the store (optionally one split).

    Returns ``example_id, scores, label, embedding`` (as the model has them), or with ``long=True``
    ``example_id, label_id, score`` (:func:`long_scores`).
    """
    spec = serving_spec(store, model, features)
    if split is not None and split not in ("train", "valid", "test"):
        raise SchemaError(f"split must be train, valid or test, got {split!r}", source="predict")
    sql, params = relation_sql(spec, split, order=False, as_list=True)
    rel = store.con.sql(sql, params=params or None)
    assert rel is not None
    reader = rel.to_arrow_reader(batch_rows)
    batches = list(_score_batches(model, _prefetch(reader), spec, spec.describe(), threads))
    if not batches:
        out = pa.table({"example_id": pa.array([], pa.int64()), **output_columns(model, _empty_outputs(model))})
    else:
        out = pa.Table.from_batches(batches)
    return long_scores(model, out) if long else out


def _empty_outputs(model: StudentModel) -> dict[str, np.ndarray]:
    return {k: np.zeros((0, v), np.float32) for k, v in model.outputs.items()}


# ---------------------------------------------------------------------------------------------
# SQL functions
# ---------------------------------------------------------------------------------------------
SQL_FUNCTIONS = ("kd_predict", "kd_predict_label", "kd_embed")


def _sql_inputs(model: StudentModel, args: Sequence[pa.ChunkedArray | pa.Array], fn: str) -> np.ndarray:
    spec = model.features
    arrays = [a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a for a in args]
    where = f"{fn}({model.name!r}, ...)"
    if len(arrays) == 1 and (pa.types.is_list(arrays[0].type) or pa.types.is_large_list(arrays[0].type)
                             or pa.types.is_fixed_size_list(arrays[0].type)):
        return arrays_matrix(arrays, ["argument 2"], spec.dim, True, source=where)
    if len(arrays) != spec.dim:
        names = ", ".join(spec.columns[:6]) + (", ..." if len(spec.columns) > 6 else "")
        raise SchemaError(f"model {model.name} expects {spec.dim} feature arguments ({names}) or one list of {spec.dim} "
                          f"values, got {len(arrays)} arguments", source=fn)
    cols = list(spec.columns) if not spec.list_column else [f"value {i}" for i in range(spec.dim)]
    for j, arr in enumerate(arrays):
        t = arr.type
        if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)):
            raise SchemaError(f"argument {j + 2} (feature {cols[j]!r}) must be numeric, got {t}", source=where, column=cols[j])
    return arrays_matrix(arrays, cols, spec.dim, False, source=where)


def register_sql_functions(store: Store, *, threads: int | None = None) -> None:
    """Add ``kd_predict``, ``kd_predict_label`` and ``kd_embed`` to the store's DuckDB connection.

    Models are looked up in ``kd.models`` through a separate cursor (so only committed models are
    visible) and memoised until kdstore next writes ``kd.models``.
    """
    models = store.models
    if models.sql_functions:
        return
    con = store.con

    def resolve_model(arg: pa.ChunkedArray | pa.Array, fn: str) -> list[tuple[StudentModel, np.ndarray | None]]:
        keys = pc.unique(arg)
        out = []
        for key in keys.to_pylist():
            model = models.peek(str(key))
            if model is None:  # the query holds the connection: look the model up through a cursor
                cur = con.cursor()
                try:
                    model = models.cached(str(key), cur)
                finally:
                    cur.close()
            mask = None if len(keys) == 1 else np.asarray(pc.equal(arg, key).to_numpy(zero_copy_only=False))
            out.append((model, mask))
        return out

    def make(fn: str, kind: str) -> Callable[..., pa.Array]:
        def udf(model_arg: pa.ChunkedArray, *args: pa.ChunkedArray) -> pa.Array:
            n = len(model_arg)
            parts = []
            for model, mask in resolve_model(model_arg, fn):
                sel = args if mask is None else [a.filter(pa.array(mask)) for a in args]
                X = _sql_inputs(model, sel, fn)
                outs = run(model, X, threads=threads)
                if kind == "label":
                    if "scores" not in outs:
                        raise SchemaError(f"model {model.name} has no label head", source=fn)
                    names = pa.array(model.labels, pa.string())
                    col: pa.Array = names.take(pa.array(outs["scores"].argmax(axis=1)))
                else:
                    key = "embedding" if kind == "embed" else ("scores" if "scores" in outs else "embedding")
                    if key not in outs:
                        raise SchemaError(f"model {model.name} has no embedding head", source=fn)
                    col = _lists(outs[key])
                parts.append((mask, col))
            if len(parts) == 1:
                return parts[0][1]
            order = np.empty(n, np.int64)
            pieces = []
            start = 0
            for mask, col in parts:
                assert mask is not None
                idx = np.flatnonzero(mask)
                order[idx] = np.arange(start, start + idx.size)
                start += idx.size
                pieces.append(col)
            return pa.concat_arrays(pieces).take(pa.array(order))

        return udf

    from duckdb.func import ARROW

    con.create_function("kd_predict", make("kd_predict", "predict"), None, "FLOAT[]", type=ARROW)
    con.create_function("kd_predict_label", make("kd_predict_label", "label"), None, "VARCHAR", type=ARROW)
    con.create_function("kd_embed", make("kd_embed", "embed"), None, "FLOAT[]", type=ARROW)
    models.sql_functions = True
