"""Helpers shared by the ingest modules: column checks, id lookups, batches, Arrow -> table inserts.

Nothing here formats user text into SQL: table names are kdstore constants, values are bound or
passed as registered Arrow tables.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from kdstore._progress import Progress
from kdstore.errors import SchemaError
from kdstore.sources import Source

if TYPE_CHECKING:
    from kdstore.store.core import Store

SPLITS = ("train", "valid", "test")
_names = itertools.count()


def first(mask: npt.ArrayLike) -> int:
    """Index of the first True of a boolean mask (the caller knows there is one)."""
    return int(np.argmax(np.asarray(mask)))


def require_columns(src: Source, names: Sequence[str]) -> None:
    """Every column in ``names`` exists in the source's schema."""
    for name in names:
        if src.schema.get_field_index(name) < 0:
            raise SchemaError(
                f"missing column (columns are: {', '.join(src.schema.names)})", source=src.name, column=name
            )


def column(batch: pa.RecordBatch, name: str, src: Source) -> pa.Array:
    i = batch.schema.get_field_index(name)
    if i < 0:
        raise SchemaError(f"missing column (columns are: {', '.join(batch.schema.names)})", source=src.name, column=name)
    return batch.column(i)


def null_mask(arr: pa.Array) -> np.ndarray:
    return np.asarray(pc.is_null(arr).to_numpy(zero_copy_only=False), dtype=bool)


def no_nulls(arr: pa.Array, src: Source, name: str, offset: int) -> None:
    if arr.null_count:
        raise SchemaError("null value", source=src.name, column=name, row=offset + first(null_mask(arr)))


def is_text(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t))


def as_text(arr: pa.Array) -> pa.Array:
    """A string / large_string / string_view (polars) / dictionary-of-strings column as ``string``."""
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    return arr if pa.types.is_string(arr.type) else arr.cast(pa.string())


def int_ids(arr: pa.Array, src: Source, name: str, offset: int) -> np.ndarray:
    """An integer id column as int64, rejecting nulls, floats, strings and ids beyond int64."""
    no_nulls(arr, src, name, offset)
    if not pa.types.is_integer(arr.type):
        raise SchemaError(f"must be an integer id column, got {arr.type}", source=src.name, column=name)
    if arr.type == pa.uint64() and len(arr) and pc.max(arr).as_py() > np.iinfo(np.int64).max:
        raise SchemaError("id beyond the int64 range", source=src.name, column=name, row=offset)
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.int64)


def floats(arr: pa.Array, src: Source, name: str, dtype: type = np.float64) -> np.ndarray:
    """A numeric column as ``dtype`` with NaN for nulls (nulls are decided by the caller)."""
    t = arr.type
    if not (pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_decimal(t)):
        raise SchemaError(f"must be numeric, got {t}", source=src.name, column=name)
    if (pa.types.is_float32(t) and dtype is np.float32) or (pa.types.is_float64(t) and dtype is np.float64):
        return np.asarray(arr.to_numpy(zero_copy_only=False))
    with np.errstate(over="ignore"):  # float64 -> float32 overflow becomes inf, rejected by the caller
        return np.asarray(arr.cast(pa.float64()).to_numpy(zero_copy_only=False)).astype(dtype, copy=False)


def first_duplicate(keys: Sequence[np.ndarray]) -> tuple[int, int] | None:
    """The first row (in row order) whose key tuple already occurred, and that earlier row; or None."""
    n = keys[0].size
    if n < 2:
        return None
    order = np.lexsort(tuple(reversed(keys)))  # stable: ties keep row order
    same = np.ones(n - 1, dtype=bool)
    for k in keys:
        sk = k[order]
        same &= sk[1:] == sk[:-1]
    if not same.any():
        return None
    later = order[1:][same]
    j = int(np.argmin(later))
    # stable order: the smallest later row is the second of its run, so the pair's first is the run start
    return int(later[j]), int(order[:-1][same][j])


class Examples:
    """The store's example ids, for vectorised membership tests.

    A store whose ids form one dense range (the common case) is checked by arithmetic, without
    loading the ids; otherwise the sorted ids are loaded once and searched.
    """

    def __init__(self, store: Store):
        row = store.one("SELECT count(*), min(example_id), max(example_id) FROM kd.examples")
        n, lo, hi = (int(row[0]), int(row[1] or 0), int(row[2] or 0)) if row else (0, 0, 0)
        self.size = n
        self.dense = bool(n and hi - lo + 1 == n)  # ids are unique: add_examples checks
        self.base = lo
        self._ids: np.ndarray | None = None
        if not self.dense:
            tbl = store.query("SELECT example_id FROM kd.examples ORDER BY example_id")
            self._ids = np.asarray(tbl.column(0).to_numpy(), dtype=np.int64)

    @property
    def ids(self) -> np.ndarray:
        """All example ids, sorted (position i holds id ``ids[i]``)."""
        if self._ids is None:
            self._ids = np.arange(self.base, self.base + self.size, dtype=np.int64)
        return self._ids

    def id_of(self, pos: np.ndarray) -> np.ndarray:
        """The example ids at positions ``pos``."""
        return pos + self.base if self.dense else self.ids[pos]

    def positions(self, ids: np.ndarray, src: Source, name: str, rows: int | np.ndarray) -> np.ndarray:
        """Index of each id in :attr:`ids`; an unknown id is a :class:`SchemaError` at its row."""
        if self.dense:
            pos = ids - self.base
            unknown = (pos < 0) | (pos >= self.size)
        elif self.size:
            pos = np.searchsorted(self.ids, ids)
            np.minimum(pos, self.size - 1, out=pos)
            unknown = self.ids[pos] != ids
        else:
            pos, unknown = ids, np.ones(ids.shape, dtype=bool)
        if not unknown.any():
            return np.asarray(pos, dtype=np.int64)
        i = first(unknown)
        raise SchemaError(
            f"unknown example {int(ids[i])} (add it with add_examples first)",
            source=src.name, column=name, row=row_of(rows, i),
        )


def row_of(rows: int | np.ndarray, i: int) -> int:
    """Source row of local index ``i``: ``rows`` is the offset of a contiguous block or a row array."""
    return rows + i if isinstance(rows, int) else int(rows[i])


def labels(store: Store) -> dict[str, int]:
    return {str(n): int(i) for i, n in store.execute("SELECT label_id, name FROM kd.labels").fetchall()}


def label_ids(arr: pa.Array, src: Source, name: str, offset: int, by_name: Mapping[str, int]) -> np.ndarray:
    """A label column given as names (strings) or label ids (integers) -> label ids."""
    no_nulls(arr, src, name, offset)
    if pa.types.is_integer(arr.type):
        ids = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.int64)
        known = np.zeros(max(by_name.values(), default=-1) + 1, dtype=bool)
        known[list(by_name.values())] = True
        ok = (ids >= 0) & (ids < known.size)
        ok[ok] = known[ids[ok]]
        if not ok.all():
            i = first(~ok)
            raise SchemaError(f"unknown label id {int(ids[i])}", source=src.name, column=name, row=offset + i)
        return ids
    if is_text(arr.type) or (pa.types.is_dictionary(arr.type) and is_text(arr.type.value_type)):
        enc = pc.dictionary_encode(as_text(arr))
        codes = np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
        lookup = np.empty(len(enc.dictionary), dtype=np.int64)
        for j, label in enumerate(enc.dictionary.to_pylist()):
            if label not in by_name:
                raise SchemaError(f"unknown label {label!r}", source=src.name, column=name, row=offset + first(codes == j))
            lookup[j] = by_name[label]
        result: np.ndarray = lookup[codes]
        return result
    raise SchemaError(f"labels must be names (strings) or label ids (integers), got {arr.type}", source=src.name, column=name)


def batches(src: Source, desc: str, progress: bool | None) -> Iterator[tuple[int, pa.RecordBatch]]:
    """(row offset, batch) over a source, with a progress bar; empty batches are skipped.

    A source that fails while being read (a corrupt Parquet file, a generator that raises an Arrow
    error) is a :class:`SchemaError` naming the source and the first row not read.
    """
    offset = 0
    it = iter(src.reader)
    with Progress(desc, src.rows, enabled=progress) as bar:
        while True:
            try:
                batch = next(it)
            except StopIteration:
                return
            except (pa.ArrowException, OSError) as e:
                raise SchemaError(f"cannot read the input: {e}", source=src.name, row=offset) from e
            if batch.num_rows == 0:
                continue
            yield offset, batch
            offset += batch.num_rows
            bar.update(batch.num_rows)


@contextlib.contextmanager
def registered(store: Store, data: pa.Table) -> Iterator[str]:
    """Expose an Arrow table to SQL under a fresh kdstore-made name for the duration of a block.

    DuckDB keeps it alive until the transaction ends: use it for one table per call, not per batch.
    """
    name = f"__kdstore_{next(_names)}"
    store.con.register(name, data)
    try:
        yield name
    finally:
        with contextlib.suppress(duckdb.Error):  # an aborted transaction may refuse
            store.con.unregister(name)


def insert_arrow(store: Store, table: str, data: pa.Table) -> None:
    """Append an Arrow table to ``table`` (``kd.scores``, or a quoted relation name kdstore made).

    Not register() + INSERT: inside a transaction DuckDB keeps every registered object alive until
    COMMIT, so a streamed ingest would hold its whole input in memory; ``from_arrow`` does not.
    """
    target = table if "." in table else f"kd.{table}"
    if store.trace is not None:
        store.trace(f"INSERT INTO {target} SELECT * FROM <Arrow, {data.num_rows} rows>")
    store.con.from_arrow(data).insert_into(target)


def next_id(store: Store, table: str, column_name: str) -> int:
    row = store.one(f"SELECT coalesce(max({column_name}) + 1, 0) FROM kd.{table}")
    return int(row[0]) if row else 0


def make_lists(values: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """A [n, width] float32 matrix -> a fixed-size list array (``valid`` False = null element).

    Fixed-size lists need no offsets, and DuckDB converts them to FLOAT[] with ~25% less CPU than
    variable lists.
    """
    width = values.shape[1]
    flat = pa.array(np.ascontiguousarray(values).reshape(-1), mask=None if valid is None else ~valid.reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, width)
