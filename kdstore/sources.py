"""Turn any supported input into a stream of Arrow record batches with a name for error messages.

Supported: ``pyarrow.Table`` / ``RecordBatch`` / ``RecordBatchReader``, pandas and polars data
frames (anything with ``__arrow_c_stream__``), a Parquet path or glob (``str`` / ``Path``), and a
SQL query over the store (:class:`Query`).
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from kdstore.errors import SchemaError

if TYPE_CHECKING:
    import duckdb

BATCH_ROWS = 1 << 20


@dataclass(frozen=True, slots=True)
class Query:
    """A SQL query run on the store's own connection, used as an input source.

    >>> Query("SELECT 1 AS example_id").sql
    'SELECT 1 AS example_id'
    """

    sql: str


@dataclass(frozen=True, slots=True)
class Named:
    """Any supported input with the name errors should use for it (e.g. the CSV file it was read from).

    >>> import pyarrow as pa
    >>> open_source(Named(pa.table({"x": [1]}), "data.csv")).name
    'data.csv'
    """

    data: Any
    name: str


@dataclass(frozen=True, slots=True)
class Source:
    """A named stream of record batches; ``rows`` is known for in-memory inputs and Parquet."""

    name: str
    reader: pa.RecordBatchReader
    rows: int | None

    @property
    def schema(self) -> pa.Schema:
        return self.reader.schema


def describe(obj: Any) -> str:
    """A short human name of an input for error messages."""
    if isinstance(obj, (str, Path)):
        return str(obj)
    if isinstance(obj, Query):
        return f"query {obj.sql[:60]!r}"
    return type(obj).__module__.split(".")[0] + "." + type(obj).__name__


def open_source(obj: Any, con: duckdb.DuckDBPyConnection | None = None, *, name: str | None = None) -> Source:
    """Open ``obj`` as a :class:`Source`. Raises :class:`SchemaError` for unsupported inputs."""
    if isinstance(obj, Named):
        return open_source(obj.data, con, name=name or obj.name)
    label = name or describe(obj)
    if isinstance(obj, pa.RecordBatchReader):
        return Source(label, obj, None)
    if isinstance(obj, pa.RecordBatch):
        obj = pa.Table.from_batches([obj])
    if isinstance(obj, pa.Table):
        return Source(label, pa.RecordBatchReader.from_batches(obj.schema, obj.to_batches(BATCH_ROWS)), obj.num_rows)
    if isinstance(obj, Query):
        if con is None:
            raise SchemaError("a SQL query source needs a store connection", source=label)
        try:
            # A cursor of its own: the query streams while the ingest writes on the store's
            # connection (one connection cannot do both), and it reads the committed state.
            rel = con.cursor().sql(obj.sql)
            if rel is None:
                raise SchemaError("the query returns no rows (is it a statement?)", source=label)
            return Source(label, rel.to_arrow_reader(BATCH_ROWS), None)
        except SchemaError:
            raise
        except Exception as e:
            raise SchemaError(f"query failed: {e}", source=label) from e
    if isinstance(obj, (str, Path)):
        return _open_parquet(str(obj), label)
    if type(obj).__module__.startswith("pandas"):
        try:  # not __arrow_c_stream__: it would add the index as a column
            table = pa.Table.from_pandas(obj, preserve_index=False)
        except (pa.ArrowException, TypeError, ValueError) as e:
            raise SchemaError(f"cannot convert to Arrow: {e}", source=label) from e
        return open_source(table, con, name=label)
    if hasattr(obj, "__arrow_c_stream__"):
        try:
            reader = pa.RecordBatchReader.from_stream(obj)
        except Exception as e:
            raise SchemaError(f"cannot read as Arrow: {e}", source=label) from e
        return Source(label, reader, _len(obj))
    raise SchemaError(
        f"unsupported input type {type(obj).__name__}: use a pyarrow Table/RecordBatchReader, "
        "a pandas or polars DataFrame, a Parquet path or glob, or kdstore.Query('SELECT ...')",
        source=label,
    )


def read_file(path: str | Path, *, fmt: str | None = None) -> pa.Table:
    """A Parquet, CSV, TSV or JSON-lines file as an Arrow table (``fmt`` defaults to the file's suffix).

    Raises:
        SchemaError: naming the file, when it cannot be read or its type is not one of these.
    """
    p = Path(path)
    fmt = fmt or p.suffix.lower().lstrip(".")
    try:
        if fmt in ("parquet", "pq"):
            import pyarrow.parquet as pq

            return pq.read_table(p)
        import pyarrow.csv as pcsv
        import pyarrow.json as pjson

        if fmt in ("csv", "tsv", "txt"):
            return pcsv.read_csv(p, parse_options=pcsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ","))
        if fmt in ("json", "jsonl", "ndjson"):
            return pjson.read_json(p)
    except Exception as e:
        raise SchemaError(f"cannot read as {fmt}: {e}", source=str(path)) from e
    raise SchemaError(f"unknown file type {fmt!r}: use .parquet, .csv, .tsv or .jsonl", source=str(path))


def _len(obj: Any) -> int | None:
    try:
        return len(obj)
    except TypeError:
        return None


def _open_parquet(path: str, label: str) -> Source:
    import pyarrow.dataset as ds

    files = sorted(glob.glob(path)) if any(c in path for c in "*?[") else [path]
    if not files:
        raise SchemaError("no file matches this glob", source=label)
    for f in files:
        if not Path(f).exists():
            raise SchemaError("file not found", source=f)
    try:
        dataset = ds.dataset(files, format="parquet")
        rows = dataset.count_rows()
        reader = dataset.scanner(batch_size=BATCH_ROWS).to_reader()
    except (OSError, pa.ArrowException) as e:
        raise SchemaError(f"cannot read as Parquet: {e}", source=label) from e
    return Source(label, reader, rows)
