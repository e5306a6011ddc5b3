"""Teacher outputs: long, wide and vote-matrix inputs -> ``kd.scores`` (one FLOAT[] per teacher x example).

Each call replaces the teacher's outputs in one transaction. Wide inputs stream batch by batch
(memory is bounded by a batch plus the pending insert); long inputs are pivoted per teacher, so
their memory is bounded by that teacher's outputs (about 28 bytes per output row).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
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
    label_ids,
    labels,
    make_lists,
    no_nulls,
    null_mask,
    require_columns,
    row_of,
)
from kdstore.ingest.teachers import PROBABILITY_TYPES, TeacherDef, add_vote_teachers, get_teacher
from kdstore.sources import Source, open_source

if TYPE_CHECKING:
    from kdstore.store.core import Store

#: Rows gathered before one INSERT (bigger batches amortise DuckDB's per-statement cost).
INSERT_ROWS = 1 << 20
_MASK64 = (1 << 64) - 1
_K0, _K1, _SHIFT = np.uint32(0x9E3779B1), np.uint32(0x85EBCA77), np.uint32(15)
_NAN_BITS = np.uint32(0x7FC00000)


def _name(column: str | Sequence[str], index: int | None = None) -> str:
    """The column to blame: one of per-label columns (by label index), or all of them."""
    if isinstance(column, str):
        return column
    return column[index] if index is not None else ",".join(column)


def _pick(bad: npt.ArrayLike, rows: int | np.ndarray) -> int:
    """Local index of the bad element with the smallest source row."""
    if isinstance(rows, int):
        return first(bad)
    idx = np.flatnonzero(np.asarray(bad))
    return int(idx[np.argmin(rows[idx])])


class Fingerprint:
    """An order- and batching-independent digest of (example id, float32 scores) rows.

    Each row is mixed to 32 bits (multiply-xorshift over the id's two halves and the scores' bits,
    in place: about 30 ms of CPU per million 5-score rows); the digest is the row count, the 64-bit
    sum and the xor of the row hashes, so the same outputs give the same fingerprint whatever the
    input form, row order or batch split, and changing one row always changes the sum.
    """

    def __init__(self) -> None:
        self.n = 0
        self.total = 0
        self.xor = 0

    def update(self, ids: np.ndarray, values: np.ndarray, valid: np.ndarray | None) -> None:
        bits = values.view(np.uint32)
        if valid is not None:
            bits = np.where(valid, bits, _NAN_BITS)
        halves = ids.astype(np.int64, copy=False).view(np.uint32).reshape(-1, 2)
        h = halves[:, 0] * _K0
        np.bitwise_xor(h, halves[:, 1], out=h)
        tmp = np.empty_like(h)
        for j in range(bits.shape[1]):
            np.bitwise_xor(h, bits[:, j], out=h)
            np.multiply(h, _K1, out=h)
            np.right_shift(h, _SHIFT, out=tmp)
            np.bitwise_xor(h, tmp, out=h)
        self.n += int(ids.size)
        self.total = (self.total + int(np.add.reduce(h, dtype=np.uint64))) & _MASK64
        self.xor ^= int(np.bitwise_xor.reduce(h))

    def hexdigest(self) -> str:
        return f"data:{self.n}:{self.total:016x}{self.xor:08x}"


class Appender:
    """Gathers (teacher, example ids, score lists) and appends them to ``kd.scores`` in big INSERTs.

    With ``background=True`` each INSERT runs on a worker thread (DuckDB releases the GIL), so the
    next batch is read and validated while the previous one is written. Use it as a context
    manager inside the transaction: leaving the block waits for (or, on error, interrupts) the
    pending INSERT before the transaction commits or rolls back. Nothing else may use the store's
    connection while an INSERT is pending.
    """

    def __init__(self, store: Store, *, background: bool = False):
        self.store = store
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="kdstore-insert") if background else None
        self._futures: list[Future[None]] = []

    def put(self, teacher_id: int, ids: np.ndarray, lists: pa.Array) -> None:
        n = int(ids.size)
        tid = pa.array(np.full(n, teacher_id, dtype=np.int32))
        self.pending.append(pa.Table.from_arrays([tid, pa.array(ids), lists], names=["teacher_id", "example_id", "scores"]))
        self.pending_rows += n
        if self.pending_rows >= INSERT_ROWS:
            self._submit()

    def _submit(self) -> None:
        if not self.pending:
            return
        data = pa.concat_tables(self.pending, promote_options="permissive") if len(self.pending) > 1 else self.pending[0]
        self.pending, self.pending_rows = [], 0
        self.wait()  # one INSERT in flight at most: memory stays bounded
        if self._pool is None:
            insert_arrow(self.store, "scores", data)
        else:
            self._futures.append(self._pool.submit(insert_arrow, self.store, "scores", data))

    def wait(self) -> None:
        """Wait for the jobs in flight; the first error, if any, is raised here."""
        futures, self._futures = self._futures, []
        for f in futures:
            f.result()

    def flush(self) -> None:
        """Write everything gathered so far (and wait for it)."""
        self._submit()
        self.wait()

    def close(self, *, failed: bool = False) -> None:
        """Finish: flush, or on failure drop the pending rows and interrupt a running INSERT."""
        try:
            if not failed:
                self.flush()
            elif self._futures:
                self.pending = []
                if not all(f.done() for f in self._futures):
                    self.store.con.interrupt()
                for f in self._futures:
                    with contextlib.suppress(BaseException):
                        f.result()
                self._futures = []
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)

    def __enter__(self) -> Appender:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close(failed=et is not None)


class ScoreWriter:
    """Validates one teacher's outputs and writes them as wide rows; used inside a transaction.

    Rows arrive as example ids plus an [n, L] float matrix (L = the teacher's labels, in output
    order). The writer checks unknown and duplicate examples, NaN/inf, float32 range, and the rules
    of the output type (probabilities in [0, 1], complete multiclass rows summing to 1, one-hot
    votes), drops all-missing rows (abstains), and appends the rest to ``kd.scores``.
    """

    def __init__(
        self, store: Store, teacher: TeacherDef, src: Source, examples: Examples, appender: Appender | None = None
    ):
        self.store, self.teacher, self.src, self.examples = store, teacher, src, examples
        self.appender = appender or Appender(store)
        self.width = len(teacher.label_ids)
        self.seen = np.zeros(examples.size, dtype=bool)
        self.tol = store.settings["multiclass_tolerance"]
        self.digest: Fingerprint | None = Fingerprint()  # None: the caller gives its own fingerprint
        self.rows_written = 0

    def add(
        self,
        ids: np.ndarray,
        scores: np.ndarray,
        rows: int | np.ndarray,
        column: str | Sequence[str] = "score",
        id_column: str = "example_id",
        *,
        valid: np.ndarray | None = None,
        nan_is_null: bool = True,
        lists: pa.Array | None = None,
    ) -> None:
        """Validate and queue rows.

        Args:
            ids: int64 example ids, one per row.
            scores: [n, L] float32 or float64 scores.
            rows: source row of each row: an int (rows are ``rows, rows + 1, ...``) or an array.
            column: the column to name in errors about scores (or one column per label).
            id_column: the column to name in errors about example ids.
            valid: [n, L] bool, False = no opinion (null); None = derived from ``nan_is_null``.
            nan_is_null: without ``valid``: True = a NaN score means no opinion (for callers
                whose NaNs are their own missing values), False = a NaN is an error.
            lists: the same scores as an Arrow list<float32> array (nulls exactly where not
                ``valid``), inserted as is when no row is dropped (saves a copy).
        """
        src, t = self.src, self.teacher
        n = int(ids.size)
        if n == 0:
            return
        pos = self.examples.positions(ids, src, id_column, rows)
        self._check_duplicates(ids, pos, rows, id_column)
        if scores.dtype != np.float32:
            with np.errstate(over="ignore", invalid="ignore"):
                v32 = scores.astype(np.float32)
        else:
            v32 = scores
        probability = t.output_type in PROBABILITY_TYPES or t.output_type == "vote"
        clean = False  # True = every value is a finite score (and in [0, 1] for probabilities)
        if valid is None:
            if probability:  # one pass each: NaN fails both comparisons, inf is out of range
                clean = not v32.size or bool(v32.min() >= 0.0 and v32.max() <= 1.0)
            else:
                clean = bool(np.isfinite(v32).all())
            if not clean and nan_is_null:
                isnan = np.isnan(v32)
                if isnan.any():
                    valid = ~isnan
        if not clean:
            finite = np.isfinite(v32)
            bad = ~finite if valid is None else ~finite & valid
            if bad.any():
                r = _pick(bad.any(axis=1), rows)
                c = first(bad[r])
                x = float(scores[r, c])
                what = "NaN score" if x != x else "infinite score" if abs(x) == float("inf") else f"score {x!r} does not fit in float32"
                raise SchemaError(f"{what} (label index {c})", source=src.name, column=_name(column, c), row=row_of(rows, int(r)))
        keep: np.ndarray | None = None
        if valid is not None:
            any_present = np.asarray(valid.any(axis=1))
            if not any_present.all():
                keep = any_present
        self._check_type(v32, valid, rows, column, range_checked=clean and probability)
        if keep is not None:
            ids, v32 = ids[keep], v32[keep]
            valid = valid[keep] if valid is not None else None
            lists = None
            if ids.size == 0:
                return
        if valid is not None and valid.all():
            valid = None
        if lists is None or lists.type.value_type != pa.float32():
            lists = make_lists(np.ascontiguousarray(v32), valid)
        self.appender.put(t.teacher_id, ids, lists)
        if self.digest is not None:
            self.digest.update(ids, v32, valid)  # after put(): overlaps the INSERT it may have started
        self.rows_written += int(ids.size)

    def _check_duplicates(self, ids: np.ndarray, pos: np.ndarray, rows: int | np.ndarray, id_column: str) -> None:
        n = pos.size
        local: int | None = None
        if n > 1 and not (pos[1:] > pos[:-1]).all():
            d = first_duplicate([pos])
            if d is not None:
                local = d[0]
        hit = self.seen[pos]
        if hit.any():
            j = _pick(hit, rows)
            if local is None or row_of(rows, j) < row_of(rows, local):
                local = j
        if local is not None:
            raise SchemaError(
                f"duplicate output for example {int(ids[local])} of teacher {self.teacher.name!r}",
                source=self.src.name, column=id_column, row=row_of(rows, local),
            )
        self.seen[pos] = True

    def _check_type(
        self, v: np.ndarray, valid: np.ndarray | None, rows: int | np.ndarray, column: str | Sequence[str], *,
        range_checked: bool = False,
    ) -> None:
        t, src = self.teacher, self.src
        typ = t.output_type
        if (typ in PROBABILITY_TYPES or typ == "vote") and not range_checked:
            probe = v if valid is None else np.where(valid, v, np.float32(0.5))
            if probe.size and (probe.min() < 0.0 or probe.max() > 1.0):
                out = (probe < 0.0) | (probe > 1.0)
                r = _pick(out.any(axis=1), rows)
                c = first(out[r])
                raise SchemaError(
                    f"probability {float(v[r, c])!r} outside [0, 1] for {typ} teacher {t.name!r} (label index {c})",
                    source=src.name, column=_name(column, c), row=row_of(rows, r),
                )
        if typ == "multiclass" and self.width > 1:
            if valid is not None:
                partial = valid.any(axis=1) & ~valid.all(axis=1)
                if partial.any():
                    r = _pick(partial, rows)
                    raise SchemaError(
                        f"multiclass row of teacher {t.name!r} gives only some of its labels (give all or none)",
                        source=src.name, column=_name(column), row=row_of(rows, r),
                    )
            sums = np.where(valid.all(axis=1), v.sum(axis=1, dtype=np.float64), 1.0) if valid is not None else v.sum(axis=1, dtype=np.float64)
            off = np.abs(sums - 1.0) > self.tol
            if off.any():
                r = _pick(off, rows)
                raise SchemaError(
                    f"multiclass probabilities sum to {sums[r]:.6g}, not 1 (tolerance {self.tol:g}, setting multiclass_tolerance)",
                    source=src.name, column=_name(column), row=row_of(rows, r),
                )
        if typ == "vote":
            present = np.ones(v.shape, dtype=bool) if valid is None else valid
            ones = ((v == 1.0) & present).sum(axis=1)
            other = (present & (v != 0.0) & (v != 1.0)).any(axis=1)
            bad = ((ones != 1) & present.any(axis=1)) | other
            if bad.any():
                r = _pick(bad, rows)
                raise SchemaError(
                    "a vote row must give 1 to exactly one label (and 0 or nothing to the others)",
                    source=src.name, column=_name(column), row=row_of(rows, r),
                )

    def flush(self) -> None:
        self.appender.flush()

    def fingerprint(self) -> str:
        """``data:<rows>:<digest>`` of what was written (see :class:`Fingerprint`)."""
        if self.digest is None:
            raise ValueError("this writer keeps no digest (digest=None)")
        return self.digest.hexdigest()


def ingest_outputs(
    store: Store,
    teacher: str,
    source: Any,
    *,
    form: str = "long",
    id_column: str = "example_id",
    label_column: str = "label",
    score_column: str = "score",
    columns: Sequence[str] | Mapping[str, str] | None = None,
    fingerprint: str | None = None,
    progress: bool | None = None,
) -> int:
    """Replace all outputs of a registered teacher, atomically.

    Forms:
        ``long``: one row per (example, label): ``example_id``, ``label`` (name or id), ``score``.
            A missing row is no opinion; a null score is an error.
        ``wide``: one row per example; either one numeric column per label (``columns`` maps the
            teacher's label names to column names, or lists columns in output order; by default the
            teacher's label names are the column names), or one list column ``score_column``
            holding the score vector in the teacher's output order. A null cell (or null element,
            or a null list) means no opinion on that label (on every label) for that example.

    Scores are stored as float32. ``fingerprint`` is stored on the teacher (default: a digest of
    the outputs). Returns the number of (teacher, example) rows stored.

    >>> import kdstore, pyarrow as pa
    >>> with kdstore.connect() as store:
    ...     _ = store.add_labels(["cat", "dog"])
    ...     store.add_examples(pa.table({"example_id": [1, 2], "split": ["train", "valid"]}))
    ...     _ = store.add_teacher("t", labels=["cat", "dog"], output_type="multiclass")
    ...     store.ingest_outputs("t", pa.table({"example_id": [1, 2], "cat": [0.25, 1.0], "dog": [0.75, 0.0]}), form="wide")
    ...     store.query("SELECT example_id, label_id, score FROM kd.outputs ORDER BY ALL").to_pylist()[:2]
    2
    2
    [{'example_id': 1, 'label_id': 0, 'score': 0.25}, {'example_id': 1, 'label_id': 1, 'score': 0.75}]
    """
    t = get_teacher(store, teacher)
    if form not in ("long", "wide"):
        raise SchemaError(f"form must be 'long' or 'wide', got {form!r}", source=f"teacher {teacher!r}")
    if t.output_type == "embedding":
        raise SchemaError(f"teacher {t.name!r} outputs embeddings: use ingest_embeddings", source=f"teacher {teacher!r}")
    src = open_source(source, store.con)
    with store.transaction():
        store.run("DELETE FROM kd.scores WHERE teacher_id = ?", [t.teacher_id])
        examples = Examples(store)
        by_name = labels(store)
        with Appender(store, background=True) as appender:
            writer = ScoreWriter(store, t, src, examples, appender)
            if fingerprint is not None:
                writer.digest = None  # the caller's fingerprint is stored instead: skip the work
            if form == "wide":
                _ingest_wide(store, t, src, writer, id_column, score_column, columns, progress, by_name)
            else:
                _ingest_long(store, t, src, writer, id_column, label_column, score_column, progress, by_name)
        store.run("UPDATE kd.teachers SET fingerprint = ? WHERE teacher_id = ?",
                  [fingerprint if fingerprint is not None else writer.fingerprint(), t.teacher_id])
    return writer.rows_written


def _wide_columns(
    t: TeacherDef, src: Source, score_column: str, columns: Sequence[str] | Mapping[str, str] | None,
    by_name: Mapping[str, int],
) -> list[str] | None:
    """The column of each output index, or None when the scores are in one list column."""
    names_by_id = {v: k for k, v in by_name.items()}
    label_names = [names_by_id[i] for i in t.label_ids]
    if columns is None:
        if all(src.schema.get_field_index(n) >= 0 for n in label_names):
            return label_names
        if src.schema.get_field_index(score_column) >= 0:
            return None
        missing = [n for n in label_names if src.schema.get_field_index(n) < 0]
        raise SchemaError(
            f"wide input needs one column per label of teacher {t.name!r} (missing {missing}) "
            f"or a list column {score_column!r}",
            source=src.name, column=missing[0],
        )
    if isinstance(columns, Mapping):
        unknown = [k for k in columns if k not in label_names]
        if unknown:
            raise SchemaError(f"columns maps labels {unknown} that teacher {t.name!r} does not have", source=src.name)
        cols = [columns.get(n, n) for n in label_names]
    else:
        cols = list(columns)
        if len(cols) != len(label_names):
            raise SchemaError(f"{len(cols)} columns given for the {len(label_names)} labels of teacher {t.name!r}", source=src.name)
    require_columns(src, cols)
    return cols


def _ingest_wide(
    store: Store, t: TeacherDef, src: Source, writer: ScoreWriter, id_column: str, score_column: str,
    columns: Sequence[str] | Mapping[str, str] | None, progress: bool | None, by_name: Mapping[str, int],
) -> None:
    require_columns(src, [id_column])
    cols = _wide_columns(t, src, score_column, columns, by_name)
    width = len(t.label_ids)
    for offset, batch in batches(src, f"outputs {t.name}", progress):
        ids = int_ids(column(batch, id_column, src), src, id_column, offset)
        if cols is not None:
            mat = np.empty((batch.num_rows, width), dtype=np.float32)
            valid: np.ndarray | None = None
            for j, c in enumerate(cols):
                arr = column(batch, c, src)
                f32 = pa.types.is_float32(arr.type)
                v = floats(arr, src, c, np.float32 if f32 else np.float64)
                if arr.null_count:
                    if valid is None:
                        valid = np.ones(mat.shape, dtype=bool)
                    valid[:, j] = ~null_mask(arr)
                if not f32:  # before the cast to float32 (the writer checks float32 columns itself)
                    bad = ~np.isfinite(v) if valid is None else ~np.isfinite(v) & valid[:, j]
                    if bad.any():
                        i = first(bad)
                        raise SchemaError(f"{'NaN' if v[i] != v[i] else 'infinite'} score", source=src.name, column=c, row=offset + i)
                with np.errstate(over="ignore"):
                    mat[:, j] = v
            writer.add(ids, mat, offset, column=cols, id_column=id_column, valid=valid,
                       nan_is_null=False)
        else:
            arr = column(batch, score_column, src)
            if arr.null_count:  # a null list = no opinion on any label (kept for the duplicate check)
                ok = ~null_mask(arr)
                sub, valid, _ = _list_matrix(arr.filter(pa.array(ok)), width, src, score_column, offset + np.flatnonzero(ok), t.name)
                mat = np.full((len(arr), width), np.nan, dtype=sub.dtype)
                mat[ok] = sub
                full_valid = np.zeros(mat.shape, dtype=bool)
                full_valid[ok] = True if valid is None else valid
                writer.add(ids, mat, offset, column=score_column, id_column=id_column, valid=full_valid, nan_is_null=False)
            else:
                mat, valid, lists = _list_matrix(arr, width, src, score_column, offset, t.name)
                writer.add(ids, mat, offset, column=score_column, id_column=id_column, valid=valid, nan_is_null=False,
                           lists=lists)


def _list_matrix(
    arr: pa.Array, width: int, src: Source, name: str, rows: int | np.ndarray, teacher: str
) -> tuple[np.ndarray, np.ndarray | None, pa.Array | None]:
    """A list column (no null lists) -> ([n, width] scores, valid mask or None, reusable list array or None)."""
    typ = arr.type
    if not (pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ) or pa.types.is_list_view(typ)):
        raise SchemaError(f"must be a list of numbers per row, got {typ}", source=src.name, column=name)
    if pa.types.is_fixed_size_list(typ):
        if typ.list_size != width:
            raise SchemaError(f"has {typ.list_size} scores, teacher {teacher!r} has {width} labels", source=src.name, column=name, row=row_of(rows, 0))
    else:
        lens = np.asarray(pc.list_value_length(arr).to_numpy(zero_copy_only=False))
        bad = lens != width
        if bad.any():
            i = first(bad)
            raise SchemaError(f"has {int(lens[i])} scores, teacher {teacher!r} has {width} labels", source=src.name, column=name, row=row_of(rows, i))
    flat = arr.flatten()
    et = flat.type
    if not (pa.types.is_floating(et) or pa.types.is_integer(et) or pa.types.is_decimal(et)):
        raise SchemaError(f"list elements must be numeric, got {et}", source=src.name, column=name)
    mat = floats(flat, src, name, np.float32 if pa.types.is_float32(et) else np.float64).reshape(len(arr), width)
    valid = ~null_mask(flat).reshape(len(arr), width) if flat.null_count else None
    # the scores as fixed-size lists over the same buffer (zero-copy): cheaper for DuckDB to insert
    reusable = pa.FixedSizeListArray.from_arrays(flat, width) if pa.types.is_float32(et) else None
    return mat, valid, reusable


def _ingest_long(
    store: Store, t: TeacherDef, src: Source, writer: ScoreWriter, id_column: str, label_column: str,
    score_column: str, progress: bool | None, by_name: Mapping[str, int],
) -> None:
    require_columns(src, [id_column, label_column, score_column])
    lut = np.full(max(by_name.values(), default=-1) + 1, -1, dtype=np.int64)
    lut[list(t.label_ids)] = np.arange(len(t.label_ids))
    probability = t.output_type in PROBABILITY_TYPES or t.output_type == "vote"
    pos_all, idx_all, score_all = [], [], []
    for offset, batch in batches(src, f"outputs {t.name}", progress):
        ids = int_ids(column(batch, id_column, src), src, id_column, offset)
        pos_all.append(writer.examples.positions(ids, src, id_column, offset))
        labs = label_ids(column(batch, label_column, src), src, label_column, offset, by_name)
        idx = lut[labs]
        if (idx < 0).any():
            i = first(idx < 0)
            raise SchemaError(f"label id {int(labs[i])} is not one of the labels of teacher {t.name!r}",
                              source=src.name, column=label_column, row=offset + i)
        sc_arr = column(batch, score_column, src)
        if sc_arr.null_count:
            raise SchemaError("null score (leave the row out for no opinion)", source=src.name, column=score_column,
                              row=offset + first(null_mask(sc_arr)))
        sc = floats(sc_arr, src, score_column)
        with np.errstate(over="ignore"):
            sc32 = sc.astype(np.float32)
        bad = ~np.isfinite(sc32)
        if bad.any():
            i = first(bad)
            x = float(sc[i])
            what = "NaN score" if x != x else "infinite score" if abs(x) == float("inf") else f"score {x!r} does not fit in float32"
            raise SchemaError(what, source=src.name, column=score_column, row=offset + i)
        if probability:
            out = (sc < 0.0) | (sc > 1.0)
            if out.any():
                i = first(out)
                raise SchemaError(f"probability {float(sc[i])!r} outside [0, 1] for {t.output_type} teacher {t.name!r}",
                                  source=src.name, column=score_column, row=offset + i)
        idx_all.append(idx)
        score_all.append(sc32)
    if not pos_all:
        return
    pos = np.concatenate(pos_all)
    idx = np.concatenate(idx_all)
    sc = np.concatenate(score_all)
    del pos_all, idx_all, score_all
    n, width = pos.size, len(t.label_ids)
    size = writer.examples.size
    if size <= 8 * n + 4096:  # pivot through a map over the store's examples: no sort
        present = np.zeros(size, dtype=bool)
        present[pos] = True
        ex_pos = np.flatnonzero(present)
        compact = np.cumsum(present, dtype=np.int64)
        del present
        r = compact[pos] - 1
        del compact
    else:  # few outputs in a big store: sort them instead
        ex_pos, r = np.unique(pos, return_inverse=True)
    m = ex_pos.size
    valid = np.zeros((m, width), dtype=bool)
    valid[r, idx] = True
    if int(valid.sum()) != n:  # a cell written twice: find the first duplicate row (slow path)
        dup = first_duplicate([pos, idx])
        assert dup is not None
        i, j = dup
        raise SchemaError(
            f"duplicate output (teacher {t.name!r}, example {int(writer.examples.id_of(pos[i:i + 1])[0])}, "
            f"label id {t.label_ids[idx[i]]}) (first at row {j})",
            source=src.name, column=label_column, row=i,
        )
    mat = np.full((m, width), np.nan, dtype=np.float32)
    mat[r, idx] = sc
    first_row = np.full(m, n, dtype=np.int64)
    np.minimum.at(first_row, r, np.arange(n, dtype=np.int64))  # each example's first row, for errors
    del pos, idx, sc, r
    writer.add(writer.examples.id_of(ex_pos), mat, first_row, column=score_column, id_column=id_column,
               valid=None if valid.all() else valid, nan_is_null=False)


def ingest_votes(
    store: Store,
    source: Any,
    *,
    id_column: str = "example_id",
    labelers: Sequence[str] | None = None,
    classes: Sequence[str | int] | None = None,
    prefix: str = "",
    progress: bool | None = None,
) -> list[str]:
    """Ingest a vote matrix: one integer column per labeler, ``-1`` = abstain.

    Each labeler column becomes a ``vote`` teacher (kind ``stored``) named ``prefix + column``
    whose labels are ``classes`` (class index -> global label name or id; default every label, by
    id), and replaces that teacher's outputs: a vote for class ``k`` is stored one-hot (1.0 for
    label ``classes[k]``, 0.0 for the others); an abstain stores nothing. Returns the teacher names.
    """
    src = open_source(source, store.con)
    require_columns(src, [id_column])
    cols = list(labelers) if labelers is not None else [n for n in src.schema.names if n != id_column]
    if not cols:
        raise SchemaError("no labeler columns", source=src.name)
    require_columns(src, cols)
    if classes is None:
        classes = [int(r[0]) for r in store.execute("SELECT label_id FROM kd.labels ORDER BY label_id").fetchall()]
    n_classes = len(classes)
    eye = np.eye(n_classes, dtype=np.float32)
    with store.transaction():
        teachers = add_vote_teachers(store, [prefix + c for c in cols], list(classes))
        ids_sql = ",".join("?" * len(teachers))
        store.run(f"DELETE FROM kd.scores WHERE teacher_id IN ({ids_sql})", [t.teacher_id for t in teachers])
        examples = Examples(store)
        appender = Appender(store)
        writers = [ScoreWriter(store, t, src, examples, appender) for t in teachers]  # synchronous appender
        for offset, batch in batches(src, "votes", progress):
            ids = int_ids(column(batch, id_column, src), src, id_column, offset)
            examples.positions(ids, src, id_column, offset)
            for c, w in zip(cols, writers, strict=True):
                arr = column(batch, c, src)
                no_nulls(arr, src, c, offset)
                if not pa.types.is_integer(arr.type):
                    raise SchemaError(f"votes must be integers (-1 = abstain), got {arr.type}", source=src.name, column=c)
                v = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.int64)
                bad = (v < -1) | (v >= n_classes)
                if bad.any():
                    i = first(bad)
                    raise SchemaError(f"vote {int(v[i])} is not -1 (abstain) or a class index in [0, {n_classes})",
                                      source=src.name, column=c, row=offset + i)
                voted = np.flatnonzero(v >= 0)
                if voted.size:
                    w.add(ids[voted], eye[v[voted]], offset + voted, column=c, id_column=id_column, nan_is_null=False)
        appender.flush()
        for t, w in zip(teachers, writers, strict=True):
            store.run("UPDATE kd.teachers SET fingerprint = ? WHERE teacher_id = ?", [w.fingerprint(), t.teacher_id])
    return [t.name for t in teachers]
