"""``store.models``: the student registry in ``kd.models``.

One row per student: ``model_id``, ``name`` (unique; ``student_<id>`` by default), ``kind =
'student'``, the ``run_id`` of the targets that trained it, ``params`` (JSON: task, labels,
feature spec, hyper-parameters, outputs), ``metrics`` (JSON: training curve, per-label metrics on
the valid and test splits) and the ``onnx`` graph itself.

>>> import kdstore
>>> with kdstore.connect() as store:
...     store.models.list().num_rows
0
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from kdstore.errors import KdstoreError, SchemaError
from kdstore.student.features import FeatureSpec, arrow

if TYPE_CHECKING:
    import duckdb

    from kdstore.store.core import Store

KIND = "student"


@dataclass(frozen=True, slots=True)
class StudentModel:
    """A stored student: its ONNX bytes, what it reads and predicts, and how it did.

    Attributes:
        model_id, name, run_id: its identity in ``kd.models``.
        params: hyper-parameters, task, labels, feature spec, outputs.
        metrics: training curve, valid and test metrics.
        onnx: the serialised ONNX graph (self-contained: standardisation included).
    """

    model_id: int
    name: str
    run_id: int | None
    params: dict[str, Any]
    metrics: dict[str, Any]
    onnx: bytes = field(repr=False)
    sha256: str = field(repr=False, default="")

    @property
    def task(self) -> str:
        """``multiclass``, ``multilabel`` or ``embedding`` (no label head)."""
        return str(self.params["task"])

    @property
    def labels(self) -> list[str]:
        """Label names, aligned with the columns of the ``scores`` output."""
        return [str(x["name"]) for x in self.params.get("labels", [])]

    @property
    def label_ids(self) -> list[int]:
        return [int(x["label_id"]) for x in self.params.get("labels", [])]

    @property
    def features(self) -> FeatureSpec:
        """The input the model reads (columns, order, width)."""
        return FeatureSpec.from_dict(self.params["features"])

    @property
    def outputs(self) -> dict[str, int]:
        """Output name -> width (``scores`` and/or ``embedding``)."""
        return {str(k): int(v) for k, v in self.params["outputs"].items()}

    def metadata(self) -> dict[str, str]:
        """The ``metadata_props`` stored in the ONNX graph."""
        from kdstore.student.export import read_metadata

        return read_metadata(self.onnx)

    def run(self, X: Any, *, threads: int | None = None) -> dict[str, np.ndarray]:
        """Raw outputs for a feature matrix ``[rows, dim]`` (checked): ``{"scores": ..., "embedding": ...}``."""
        from kdstore.student import serve
        from kdstore.student.features import ndarray_matrix

        return serve.run(self, ndarray_matrix(X, self.features.dim, source=f"input of model {self.name}"), threads=threads)

    def predict(self, features: Any, *, threads: int | None = None, long: bool = False) -> pa.Table:
        """Predict for in-memory features: a NumPy matrix, or an Arrow table / pandas / polars frame
        holding the model's feature columns (and optionally ``example_id``). See :func:`kdstore.student.serve.predict_table`.
        """
        from kdstore.student import serve

        return serve.predict_table(self, features, threads=threads, long=long)

    def save(self, path: str | Path) -> Path:
        """Write the ONNX graph to ``path``."""
        p = Path(path)
        p.write_bytes(self.onnx)
        return p


class Models:
    """The student registry of one store (``store.models``)."""

    def __init__(self, store: Store):
        self._store = store
        self._cache: dict[str, StudentModel] = {}
        self.sql_functions = False

    def _fetch(self, key: int | str, con: duckdb.DuckDBPyConnection | None = None) -> StudentModel:
        sql = ("SELECT model_id, name, run_id, params, metrics, onnx FROM kd.models WHERE kind = ? AND "
               + ("model_id = ?" if isinstance(key, int) else "name = ?"))
        if con is None:
            rows = self._store.execute(sql, [KIND, key]).fetchall()
        else:
            rows = con.execute(sql, [KIND, key]).fetchall()
        if not rows and isinstance(key, str) and key.strip().isdigit():
            return self._fetch(int(key), con)
        if not rows:
            raise KdstoreError(f"no student model {key!r} in kd.models (see `kdstore models STORE`)")
        mid, name, run_id, params, metrics, onnx = rows[0]
        data = bytes(onnx) if onnx is not None else b""
        return StudentModel(int(mid), str(name), None if run_id is None else int(run_id), _json(params), _json(metrics),
                            data, hashlib.sha256(data).hexdigest())

    def load(self, model: int | str | StudentModel) -> StudentModel:
        """A stored student by id (``3``, ``"3"``) or name (``"student_3"``)."""
        if isinstance(model, StudentModel):
            return model
        if isinstance(model, bool) or not isinstance(model, (int, str, np.integer)):
            raise KdstoreError(f"a model is given by id or name, got {type(model).__name__}")
        return self._fetch(int(model) if isinstance(model, np.integer) else model)

    def cached(self, key: str, con: duckdb.DuckDBPyConnection | None = None) -> StudentModel:
        """Like :meth:`load`, memoised until kdstore next changes ``kd.models`` (used by the SQL functions)."""
        hit = self._cache.get(key)
        if hit is None:
            hit = self._fetch(key, con)
            self._cache[key] = hit
        return hit

    def peek(self, key: str) -> StudentModel | None:
        """The memoised model for ``key``, if any (no query)."""
        return self._cache.get(key)

    def invalidate(self) -> None:
        self._cache.clear()

    def __iter__(self) -> Iterator[StudentModel]:
        ids = [r[0] for r in self._store.execute("SELECT model_id FROM kd.models WHERE kind = ? ORDER BY model_id", [KIND]).fetchall()]
        return (self._fetch(int(i)) for i in ids)

    def list(self) -> pa.Table:
        """One row per student: id, name, run, task, created_at, best valid loss, test accuracy/f1."""
        return arrow(
            self._store,
            """
            SELECT model_id, name, run_id, params->>'task' AS task, created_at,
                   CAST(metrics->>'$.valid.loss' AS DOUBLE) AS valid_loss,
                   CAST(metrics->>'$.test.accuracy' AS DOUBLE) AS test_accuracy,
                   CAST(metrics->>'$.test.micro_f1' AS DOUBLE) AS test_micro_f1
            FROM kd.models WHERE kind = ? ORDER BY model_id
            """,
            [KIND],
        )

    def add(self, *, name: str | None, run_id: int | None, params: dict[str, Any], metrics: dict[str, Any],
            build_onnx: Any, replace: bool = False) -> int:
        """Insert a student (one transaction). ``build_onnx(model_id, name) -> bytes`` makes the graph."""
        store = self._store
        with store.transaction():
            row = store.one("SELECT coalesce(max(model_id) + 1, 1) FROM kd.models")
            model_id = int(row[0]) if row else 1
            name = name or f"student_{model_id}"
            if not name.strip() or name.strip().isdigit():
                raise SchemaError(f"a model name must be non-empty text that is not a number, got {name!r}", source="kd.models")
            clash = store.one("SELECT model_id, kind FROM kd.models WHERE name = ?", [name])
            if clash is not None:
                if not replace or clash[1] != KIND:
                    raise SchemaError(f"a model named {name!r} exists (model {clash[0]}); pass replace=True or another name",
                                      source="kd.models", column="name")
                store.run("DELETE FROM kd.models WHERE name = ?", [name])
            onnx: bytes = build_onnx(model_id, name)
            store.run(
                "INSERT INTO kd.models (model_id, name, kind, run_id, params, metrics, onnx) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [model_id, name, KIND, run_id, json.dumps(params), json.dumps(metrics), onnx],
            )
        self.invalidate()
        return model_id

    def delete(self, model: int | str) -> None:
        """Remove a student from the registry."""
        m = self.load(model)
        with self._store.transaction():
            self._store.run("DELETE FROM kd.models WHERE model_id = ? AND kind = ?", [m.model_id, KIND])
        self.invalidate()

    def export(self, model: int | str, path: str | Path) -> Path:
        """Write a stored student's ONNX graph to ``path``."""
        return self.load(model).save(path)


def _json(value: Any) -> dict[str, Any]:
    """A JSON column (``kd.runs``/``kd.models`` params and metrics) as a dict; NULL or a non-object is ``{}``."""
    if value is None:
        return {}
    out = json.loads(value) if isinstance(value, str) else value
    return out if isinstance(out, dict) else {}
