"""Embeddings (``kd.embeddings``) and feature sources (relations in schema ``features``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kdstore.errors import SchemaError
from kdstore.ingest._common import (
    Examples,
    batches,
    column,
    first,
    first_duplicate,
    floats,
    insert_arrow,
    int_ids,
    make_lists,
    no_nulls,
    registered,
    require_columns,
)
from kdstore.ingest.teachers import get_teacher
from kdstore.sources import Query, open_source

if TYPE_CHECKING:
    from kdstore.store.core import Store

_INT_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "HUGEINT")


def ingest_embeddings(
    store: Store, teacher: str, source: Any, *, id_column: str = "example_id", vector_column: str = "vector",
    progress: bool | None = None,
) -> int:
    """Replace a teacher's embeddings: one fixed-length numeric vector per example (stored as FLOAT[])."""
    t = get_teacher(store, teacher)
    src = open_source(source, store.con)
    require_columns(src, [id_column, vector_column])
    examples = Examples(store)
    seen = np.zeros(examples.size, dtype=bool)
    dim: int | None = None
    n = 0
    with store.transaction():
        store.run("DELETE FROM kd.embeddings WHERE teacher_id = ?", [t.teacher_id])
        for offset, batch in batches(src, f"embeddings {t.name}", progress):
            ids = int_ids(column(batch, id_column, src), src, id_column, offset)
            pos = examples.positions(ids, src, id_column, offset)
            arr = column(batch, vector_column, src)
            typ = arr.type
            if not (pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ)):
                raise SchemaError(f"must be a list of numbers per row, got {typ}", source=src.name, column=vector_column)
            no_nulls(arr, src, vector_column, offset)
            lens = np.asarray(pc.list_value_length(arr).to_numpy(zero_copy_only=False))
            if dim is None:
                dim = int(lens[0])
            bad = lens != dim
            if bad.any() or dim == 0:
                i = first(bad) if bad.any() else 0
                raise SchemaError(
                    f"vector has {int(lens[i])} values, expected {dim or 'at least 1'} (all vectors of a teacher have one length)",
                    source=src.name, column=vector_column, row=offset + i,
                )
            flat = arr.flatten()
            if flat.null_count:
                raise SchemaError("null inside a vector", source=src.name, column=vector_column, row=offset)
            vals = floats(flat, src, vector_column, np.float32 if pa.types.is_float32(flat.type) else np.float64)
            with np.errstate(over="ignore"):
                v32 = vals.astype(np.float32, copy=False).reshape(-1, dim)
            bad = ~np.isfinite(v32).all(axis=1)
            if bad.any():
                raise SchemaError("NaN, infinite or beyond-float32 value in vector", source=src.name,
                                  column=vector_column, row=offset + first(bad))
            dup = seen[pos]
            d = first_duplicate([pos])
            if d is not None:
                dup[d[0]] = True
            if dup.any():
                i = first(dup)
                raise SchemaError(f"duplicate embedding for example {int(ids[i])}", source=src.name, column=id_column, row=offset + i)
            seen[pos] = True
            lists = make_lists(np.ascontiguousarray(v32))
            tid = pa.array(np.full(ids.size, t.teacher_id, np.int32))
            insert_arrow(store, "embeddings", pa.Table.from_arrays([tid, pa.array(ids), lists], names=["teacher_id", "example_id", "vector"]))
            n += ids.size
    return n


def feature_relation(name: str) -> str:
    """The quoted SQL name of a feature source: ``features."<name>"``.

    >>> feature_relation('pix"els')
    'features."pix""els"'
    """
    from sqlglot import exp

    return "features." + exp.to_identifier(name, quoted=True).sql(dialect="duckdb")


def _drop_relation(store: Store, name: str) -> None:
    """Drop ``features.<name>`` whether it is a table or a view (DuckDB's DROP needs the right type)."""
    rel = feature_relation(name)
    row = store.one(
        "SELECT 'VIEW' FROM duckdb_views() WHERE schema_name = 'features' AND view_name = ? "
        "UNION ALL SELECT 'TABLE' FROM duckdb_tables() WHERE schema_name = 'features' AND table_name = ?",
        [name, name],
    )
    if row is not None:
        store.run(f"DROP {'VIEW' if row[0] == 'VIEW' else 'TABLE'} {rel}")


def register_features(
    store: Store, name: str, source: Any, *, id_column: str = "example_id", replace: bool = False,
    progress: bool | None = None,
) -> str:
    """Register a feature source as ``features."<name>"``, keyed by an integer ``example_id``.

    In-memory inputs (Arrow, pandas, polars) are copied into the store; a Parquet path or glob and a
    :class:`~kdstore.Query` become views (the Parquet files must stay where they are). The key
    column is renamed ``example_id`` and must be a non-null, unique integer. Returns the relation.
    """
    from sqlglot import exp

    if not isinstance(name, str) or not name.strip() or any(ord(ch) < 32 for ch in name):
        raise SchemaError(f"feature source name must be printable non-empty text, got {name!r}", source="features")
    rel = feature_relation(name)
    exists = store.one("SELECT count(*) FROM kd.feature_sources WHERE name = ?", [name])
    if exists and exists[0] and not replace:
        raise SchemaError(f"feature source {name!r} already exists (pass replace=True)", source="features")
    key = exp.to_identifier(id_column, quoted=True).sql(dialect="duckdb")
    with store.transaction():
        _drop_relation(store, name)
        if isinstance(source, (str, Query)) or hasattr(source, "__fspath__"):
            if isinstance(source, Query):
                kind, uri, body = "query", source.sql, source.sql
                label = f"query {source.sql[:60]!r}"
            else:
                import glob as _glob

                path = str(source) if any(c in str(source) for c in "*?[") else str(Path(str(source)).resolve())
                if not _glob.glob(path):
                    raise SchemaError("no Parquet file at this path", source=str(source))
                kind, uri, label = "parquet", path, str(source)
                body = f"SELECT * FROM read_parquet({exp.Literal.string(path).sql(dialect='duckdb')})"
            try:
                store.run(f"CREATE VIEW {rel} AS SELECT * RENAME ({key} AS example_id) FROM ({body})")
            except Exception as e:
                raise SchemaError(f"cannot create the feature view: {e}", source=label, column=id_column) from e
        else:
            src = open_source(source, store.con)
            kind, uri, label = "table", None, src.name
            require_columns(src, [id_column])
            names = ["example_id" if c == id_column else c for c in src.schema.names]
            created = False
            for _, batch in batches(src, f"features {name}", progress):
                tbl = pa.Table.from_batches([batch]).rename_columns(names)
                if created:
                    insert_arrow(store, rel, tbl)
                else:
                    with registered(store, tbl) as tmp:
                        store.run(f"CREATE TABLE {rel} AS SELECT * FROM {tmp}")
                created = True
            if not created:
                with registered(store, pa.Table.from_batches([], schema=src.schema).rename_columns(names)) as tmp:
                    store.run(f"CREATE TABLE {rel} AS SELECT * FROM {tmp}")
        _check_feature_key(store, rel, label, id_column)
        cols = store.execute(f"DESCRIBE {rel}").fetchall()
        store.run("DELETE FROM kd.feature_sources WHERE name = ?", [name])
        store.run(
            "INSERT INTO kd.feature_sources (name, kind, uri, columns) VALUES (?, ?, ?, ?)",
            [name, kind, uri, json.dumps([{"name": c[0], "type": c[1]} for c in cols])],
        )
    return rel


def _check_feature_key(store: Store, rel: str, label: str, id_column: str) -> None:
    typ = store.one(
        "SELECT column_type FROM (DESCRIBE SELECT example_id FROM " + rel + ")"
    )
    if typ is not None and str(typ[0]) not in _INT_TYPES:
        raise SchemaError(f"the key must be an integer example id, got {typ[0]}", source=label, column=id_column)
    null = store.one(f"SELECT rn FROM (SELECT example_id, row_number() OVER () - 1 AS rn FROM {rel}) WHERE example_id IS NULL LIMIT 1")
    if null is not None:
        raise SchemaError("null example id", source=label, column=id_column, row=int(null[0]))
    dup = store.one(f"SELECT example_id FROM {rel} GROUP BY example_id HAVING count(*) > 1 LIMIT 1")
    if dup is not None:
        raise SchemaError(f"duplicate example id {dup[0]}", source=label, column=id_column)
