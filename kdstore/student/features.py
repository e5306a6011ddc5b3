"""The student's input: which columns of which feature source, and Arrow -> float32 matrix.

A student reads either a registered feature source ``features."<name>"`` (numeric columns, or one
list/array column of numbers) or another teacher's embeddings from ``kd.embeddings``
(:class:`Embeddings`). The choice is frozen in a :class:`FeatureSpec` stored with the model, so
serving knows which columns, in which order, and how many values it expects.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kdstore.errors import SchemaError

if TYPE_CHECKING:
    from kdstore.store.core import Store

_NUMERIC_SQL = re.compile(r"^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT|FLOAT|DOUBLE|DECIMAL\(\d+,\s*\d+\))$")
_LIST_SQL = re.compile(r"^(.*)\[(\d*)\]$")


@dataclass(frozen=True, slots=True)
class Embeddings:
    """Use a teacher's stored embeddings (``kd.embeddings``) as the student's input.

    >>> Embeddings("bert").teacher
    'bert'
    """

    teacher: str


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """What a student reads.

    Attributes:
        kind: ``"source"`` (a registered feature source) or ``"embeddings"`` (a teacher's embeddings).
        name: the feature source's or the teacher's name.
        columns: the numeric columns in input order, or the single list column.
        list_column: True when ``columns`` is one list/array column holding all ``dim`` values.
        dim: number of input values per example.

    >>> FeatureSpec("source", "px", ("a", "b"), False, 2).describe()
    'features."px" columns a, b'
    """

    kind: str
    name: str
    columns: tuple[str, ...]
    list_column: bool
    dim: int

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "columns": list(self.columns),
                "list_column": self.list_column, "dim": self.dim}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> FeatureSpec:
        return FeatureSpec(str(d["kind"]), str(d["name"]), tuple(str(c) for c in d["columns"]),
                           bool(d["list_column"]), int(d["dim"]))

    def describe(self) -> str:
        if self.kind == "embeddings":
            return f"embeddings of teacher {self.name!r} ({self.dim} values)"
        from kdstore.ingest import feature_relation

        if self.list_column:
            return f"{feature_relation(self.name)} column {self.columns[0]} ({self.dim} values)"
        shown = ", ".join(self.columns[:8]) + (f", ... ({len(self.columns)} columns)" if len(self.columns) > 8 else "")
        return f"{feature_relation(self.name)} columns {shown}"


def quote(name: str) -> str:
    """A quoted DuckDB identifier.

    >>> quote('a"b')
    '"a""b"'
    """
    from sqlglot import exp

    out: str = exp.to_identifier(name, quoted=True).sql(dialect="duckdb")
    return out


def _numeric_sql(typ: str) -> bool:
    return bool(_NUMERIC_SQL.match(typ.upper()))


def _list_sql(typ: str) -> bool:
    m = _LIST_SQL.match(typ.upper())
    return bool(m) and _numeric_sql(m.group(1))  # type: ignore[union-attr]


def resolve(store: Store, features: str | Embeddings, columns: Sequence[str] | None = None) -> FeatureSpec:
    """Pin down the input of a student: the source, its columns in order, and the width.

    Without ``columns`` a feature source contributes all its numeric columns (other than
    ``example_id``, in table order), or, if it has none, its one numeric list column.
    """
    if isinstance(features, Embeddings):
        row = store.one("SELECT teacher_id FROM kd.teachers WHERE name = ?", [features.teacher])
        if row is None:
            raise SchemaError(f"no teacher named {features.teacher!r}", source="kd.embeddings")
        dim = store.one("SELECT len(vector) FROM kd.embeddings WHERE teacher_id = ? LIMIT 1", [row[0]])
        if dim is None:
            raise SchemaError(f"teacher {features.teacher!r} has no stored embeddings", source="kd.embeddings")
        return FeatureSpec("embeddings", features.teacher, ("vector",), True, int(dim[0]))
    if not isinstance(features, str):
        raise SchemaError(f"features must be a feature source name or Embeddings(teacher), got {type(features).__name__}",
                          source="features")
    row = store.one("SELECT columns FROM kd.feature_sources WHERE name = ?", [features])
    if row is None:
        known = [r[0] for r in store.execute("SELECT name FROM kd.feature_sources ORDER BY name").fetchall()]
        raise SchemaError(f"no feature source named {features!r} (registered: {', '.join(known) or 'none'})",
                          source="features")
    from kdstore.ingest import feature_relation

    rel = feature_relation(features)
    types = {c["name"]: c["type"] for c in json.loads(row[0])}
    if columns is None:
        numeric = [c for c, t in types.items() if c != "example_id" and _numeric_sql(t)]
        lists = [c for c, t in types.items() if c != "example_id" and _list_sql(t)]
        if numeric:
            columns = numeric
        elif len(lists) == 1:
            columns = lists
        else:
            raise SchemaError(
                "no numeric feature columns" + (f" and {len(lists)} list columns: pick them with columns=[...]" if lists else ""),
                source=rel)
    columns = list(columns)
    if not columns:
        raise SchemaError("columns=[] selects no feature", source=rel)
    for c in columns:
        if c not in types:
            raise SchemaError(f"no such column (columns are: {', '.join(types)})", source=rel, column=c)
        if c == "example_id":
            raise SchemaError("example_id is the key, not a feature", source=rel, column=c)
    if len(set(columns)) != len(columns):
        raise SchemaError("a column is listed twice", source=rel, column=next(c for c in columns if columns.count(c) > 1))
    if len(columns) == 1 and _list_sql(types[columns[0]]):
        c = columns[0]
        stats = store.one(f"SELECT min(len({quote(c)})), max(len({quote(c)})) FROM {rel}")
        lo, hi = (None, None) if stats is None else stats
        if lo is None or hi is None or lo != hi or int(lo) == 0:
            raise SchemaError(f"a list feature column needs one fixed length in every row, found lengths {lo}..{hi}",
                              source=rel, column=c)
        return FeatureSpec("source", features, (c,), True, int(lo))
    for c in columns:
        if not _numeric_sql(types[c]):
            raise SchemaError(f"feature columns must be numeric (or one list column), got {types[c]}", source=rel, column=c)
    return FeatureSpec("source", features, tuple(columns), False, len(columns))


def arrow(store: Store, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
    """Run a read query with bound parameters into Arrow without the DB-API result's extra copy."""
    if store.trace is not None:
        store.trace(sql if not params else f"{sql}  -- params: {list(params)!r}")
    rel = store.con.sql(sql, params=list(params) if params else None)
    assert rel is not None
    return rel.to_arrow_table()


LIST_COLUMN = "__kdstore_features"


def relation_sql(spec: FeatureSpec, split: str | None = None, *, order: bool = True,
                 as_list: bool = False) -> tuple[str, list[Any]]:
    """``SELECT example_id, <inputs> FROM <source> [restricted to split] [ORDER BY example_id]``.

    With ``as_list`` the numeric columns come as one ``FLOAT[dim]`` column named
    :data:`LIST_COLUMN`: DuckDB builds the row-major matrix, which Arrow then hands over without a copy.
    """
    params: list[Any] = []
    if spec.kind == "embeddings":
        body = ("SELECT m.example_id, m.vector FROM kd.embeddings AS m "
                "JOIN kd.teachers AS t ON t.teacher_id = m.teacher_id AND t.name = ?")
        params.append(spec.name)
        src = "m"
    else:
        from kdstore.ingest import feature_relation

        if as_list and not spec.list_column:
            cols = "[" + ", ".join(f"f.{quote(c)}" for c in spec.columns) + f"]::FLOAT[{spec.dim}] AS {LIST_COLUMN}"
        else:
            cols = ", ".join(f"f.{quote(c)}" for c in spec.columns)
        body = f"SELECT f.example_id, {cols} FROM {feature_relation(spec.name)} AS f"
        src = "f"
    if split is not None:
        body += f" JOIN kd.examples AS e ON e.example_id = {src}.example_id AND e.split = ?"
        params.append(split)
    return body + (f" ORDER BY {src}.example_id" if order else ""), params


def read_split(store: Store, spec: FeatureSpec, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Example ids (in scan order, not sorted) and their feature matrix ``[n, dim]`` (float32) for one split."""
    sql, params = relation_sql(spec, split, order=False, as_list=True)
    table = arrow(store, sql, params)
    ids = np.asarray(table.column("example_id").to_numpy(), dtype=np.int64)
    return ids, table_matrix(table, spec, source=spec.describe())


def table_matrix(table: pa.Table | pa.RecordBatch, spec: FeatureSpec, *, source: str, offset: int = 0) -> np.ndarray:
    """The float32 matrix ``[rows, dim]`` of ``spec``'s columns in ``table``; clear errors otherwise."""
    names = table.schema.names
    if LIST_COLUMN in names and not spec.list_column:  # the numeric columns, gathered by DuckDB
        return _list_matrix(_array(table.column(LIST_COLUMN)), LIST_COLUMN, spec.dim, source, offset, spec.columns)
    arrays = []
    for c in spec.columns:
        if c not in names:
            raise SchemaError(f"missing feature column (the model reads {spec.describe()}; the input has: {', '.join(names)})",
                              source=source, column=c)
        arrays.append(_array(table.column(c)))
    return arrays_matrix(arrays, list(spec.columns), spec.dim, spec.list_column, source=source, offset=offset)


def _array(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def arrays_matrix(arrays: Sequence[pa.Array], names: Sequence[str], dim: int, list_column: bool, *,
                  source: str, offset: int = 0) -> np.ndarray:
    """Arrow arrays (one per numeric column, or one list column) -> C-contiguous float32 ``[rows, dim]``."""
    if list_column:
        if len(arrays) != 1:
            raise SchemaError(f"expected one list column of {dim} values, got {len(arrays)} columns", source=source)
        return _list_matrix(arrays[0], names[0], dim, source, offset)
    if len(arrays) != dim:
        raise SchemaError(f"expected {dim} feature columns, got {len(arrays)}", source=source)
    n = len(arrays[0]) if arrays else 0
    out = np.empty((n, dim), np.float32)
    for j, (arr, name) in enumerate(zip(arrays, names, strict=True)):
        out[:, j] = _numeric(arr, name, source, offset)
    return out


def _numeric(arr: pa.Array, name: str, source: str, offset: int) -> np.ndarray:
    typ = arr.type
    if not (pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_decimal(typ)):
        raise SchemaError(f"feature column must be numeric, got {typ}", source=source, column=name)
    if arr.null_count:
        first = int(np.argmax(np.asarray(pc.is_null(arr).to_numpy(zero_copy_only=False))))
        raise SchemaError("null feature value", source=source, column=name, row=offset + first)
    if pa.types.is_decimal(typ):
        arr = pc.cast(arr, pa.float64())
    return np.asarray(arr.to_numpy(zero_copy_only=False))


def _list_matrix(arr: pa.Array, name: str, dim: int, source: str, offset: int,
                 elements: Sequence[str] | None = None) -> np.ndarray:
    typ = arr.type
    if not (pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ)):
        raise SchemaError(f"feature column must be a list of {dim} numbers per row, got {typ}", source=source, column=name)
    if arr.null_count:
        first = int(np.argmax(np.asarray(pc.is_null(arr).to_numpy(zero_copy_only=False))))
        raise SchemaError("null feature list", source=source, column=name, row=offset + first)
    if pa.types.is_fixed_size_list(typ):
        if typ.list_size != dim:
            raise SchemaError(f"expected {dim} values per row, got arrays of {typ.list_size}", source=source, column=name)
    else:
        lens = np.asarray(pc.list_value_length(arr).to_numpy(zero_copy_only=False))
        bad = lens != dim
        if bad.any():
            i = int(np.argmax(bad))
            raise SchemaError(f"expected {dim} values per row, got {int(lens[i])}", source=source, column=name, row=offset + i)
    values = arr.flatten()
    vt = values.type
    if not (pa.types.is_integer(vt) or pa.types.is_floating(vt) or pa.types.is_decimal(vt)):
        raise SchemaError(f"feature list must hold numbers, got {vt}", source=source, column=name)
    if values.null_count:
        first = int(np.argmax(np.asarray(pc.is_null(values).to_numpy(zero_copy_only=False))))
        if elements is not None:
            raise SchemaError("null feature value", source=source, column=elements[first % dim], row=offset + first // dim)
        raise SchemaError("null inside a feature list", source=source, column=name, row=offset + first // dim)
    if pa.types.is_decimal(vt):
        values = pc.cast(values, pa.float64())
    flat = np.asarray(values.to_numpy(zero_copy_only=False))
    out: np.ndarray = np.ascontiguousarray(flat.reshape(-1, dim), dtype=np.float32)
    return out


def ndarray_matrix(X: Any, dim: int, *, source: str) -> np.ndarray:
    """A NumPy array given directly: must be 2-D ``[rows, dim]`` and numeric."""
    arr = np.asarray(X)
    if arr.ndim == 1 and dim == arr.shape[0]:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise SchemaError(f"expected a matrix of shape (rows, {dim}), got shape {arr.shape}", source=source)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise SchemaError(f"expected numeric features, got dtype {arr.dtype}", source=source)
    out: np.ndarray = np.ascontiguousarray(arr, dtype=np.float32)
    return out
