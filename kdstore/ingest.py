"""Validated ingest: labels, examples, gold, weak labels, teachers, outputs, embeddings, features.

Every public function here is one transaction: it either applies completely or raises (usually a
:class:`~kdstore.errors.SchemaError` naming the source, column and first offending row) and leaves
the store exactly as it was. Values and identifiers never go into SQL text unquoted.

Outputs are stored wide (``kd.scores``: one FLOAT[] per teacher x example, aligned with the
teacher's ``output_index``); ``kd.outputs`` is the long view. Wide inputs stream batch by batch;
long inputs are pivoted per teacher, so their memory is bounded by that teacher's output size.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kdstore._progress import Progress
from kdstore.errors import SchemaError
from kdstore.sources import Query, Source, open_source

if TYPE_CHECKING:
    from kdstore.store.core import Store

OUTPUT_TYPES = ("binary", "multiclass", "multilabel", "vote", "regression", "embedding")
TEACHER_KINDS = ("onnx", "http", "stored")
PROBABILITY_TYPES = ("binary", "multiclass", "multilabel")
SPLITS = ("train", "valid", "test")
_INSERT_ROWS = 1 << 18


# ---------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------
def _first(mask: np.ndarray) -> int | None:
    idx = np.flatnonzero(mask)
    return int(idx[0]) if idx.size else None


def _column(batch: pa.RecordBatch, name: str, src: Source) -> pa.Array:
    i = batch.schema.get_field_index(name)
    if i < 0:
        raise SchemaError(
            f"missing column (columns are: {', '.join(batch.schema.names)})", source=src.name, column=name
        )
    return batch.column(i)


def _require_columns(src: Source, names: Sequence[str]) -> None:
    for name in names:
        if src.schema.get_field_index(name) < 0:
            raise SchemaError(
                f"missing column (columns are: {', '.join(src.schema.names)})", source=src.name, column=name
            )


def _no_nulls(arr: pa.Array, src: Source, column: str, offset: int) -> None:
    if arr.null_count:
        mask = np.asarray(pc.is_null(arr).to_numpy(zero_copy_only=False))
        raise SchemaError("null value", source=src.name, column=column, row=offset + (_first(mask) or 0))


def _int_ids(arr: pa.Array, src: Source, column: str, offset: int) -> np.ndarray:
    """An integer id column as int64, rejecting nulls, floats and strings."""
    _no_nulls(arr, src, column, offset)
    if not pa.types.is_integer(arr.type):
        raise SchemaError(f"must be an integer id column, got {arr.type}", source=src.name, column=column)
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.int64)


def _floats(arr: pa.Array, src: Source, column: str) -> np.ndarray:
    """A numeric column as float64 with NaN for nulls (nulls are decided by the caller)."""
    if not (pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type) or pa.types.is_decimal(arr.type)):
        raise SchemaError(f"must be numeric, got {arr.type}", source=src.name, column=column)
    return np.asarray(arr.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def _check_finite(values: np.ndarray, present: np.ndarray, src: Source, column: str, rows: np.ndarray) -> None:
    bad = present & ~np.isfinite(values)
    if bad.any():
        i = np.argwhere(bad)[0]
        raise SchemaError("NaN or infinite score", source=src.name, column=column, row=int(rows[i[0]]))


def _check_duplicates(keys: np.ndarray, rows: np.ndarray, src: Source, column: str, what: str) -> None:
    """``keys`` are int64 codes; raise naming the later of the first duplicated pair."""
    if keys.size < 2:
        return
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    dup = np.flatnonzero(sk[1:] == sk[:-1])
    if dup.size:
        second = order[dup + 1]
        i = int(second[np.argmin(rows[second])])
        raise SchemaError(f"duplicate {what}", source=src.name, column=column, row=int(rows[i]))


class _Examples:
    """The store's example ids, sorted, for vectorised membership tests."""

    def __init__(self, store: Store):
        tbl = store.query("SELECT example_id FROM kd.examples ORDER BY example_id")
        self.ids = np.asarray(tbl.column(0).to_numpy(), dtype=np.int64)

    def positions(self, ids: np.ndarray, src: Source, column: str, offset: int) -> np.ndarray:
        pos = np.searchsorted(self.ids, ids)
        pos_c = np.minimum(pos, max(self.ids.size - 1, 0))
        unknown = (pos >= self.ids.size) | (self.ids[pos_c] != ids) if self.ids.size else np.ones(ids.shape, bool)
        if unknown.any():
            i = _first(unknown) or 0
            raise SchemaError(
                f"unknown example {int(ids[i])} (add it with add_examples first)", source=src.name, column=column, row=offset + i
            )
        return pos_c


def _labels(store: Store) -> dict[str, int]:
    return {str(n): int(i) for i, n in store.execute("SELECT label_id, name FROM kd.labels").fetchall()}


def _label_ids(
    arr: pa.Array, src: Source, column: str, offset: int, by_name: Mapping[str, int]
) -> np.ndarray:
    """A label column given as names (strings) or label ids (integers) -> label ids."""
    _no_nulls(arr, src, column, offset)
    if pa.types.is_integer(arr.type):
        ids = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.int64)
        known = np.asarray(sorted(by_name.values()), dtype=np.int64)
        ok = np.isin(ids, known)
        if not ok.all():
            i = _first(~ok) or 0
            raise SchemaError(f"unknown label id {int(ids[i])}", source=src.name, column=column, row=offset + i)
        return ids
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type) or pa.types.is_dictionary(arr.type):
        names = arr.cast(pa.string()) if not pa.types.is_dictionary(arr.type) else arr.dictionary_decode()
        enc = pc.dictionary_encode(names)
        uniq = enc.dictionary.to_pylist()
        lookup = np.empty(len(uniq), dtype=np.int64)
        for j, name in enumerate(uniq):
            if name not in by_name:
                codes = np.asarray(enc.indices.to_numpy(zero_copy_only=False))
                raise SchemaError(f"unknown label {name!r}", source=src.name, column=column, row=offset + int(np.argmax(codes == j)))
            lookup[j] = by_name[name]
        result: np.ndarray = lookup[np.asarray(enc.indices.to_numpy(zero_copy_only=False))]
        return result
    raise SchemaError(f"labels must be names (strings) or label ids (integers), got {arr.type}", source=src.name, column=column)


def _batches(src: Source, desc: str, progress: bool | None) -> Iterator[tuple[int, pa.RecordBatch]]:
    """(row offset, batch) over a source, with a progress bar; empty batches are skipped."""
    offset = 0
    with Progress(desc, src.rows, enabled=progress) as bar:
        for batch in src.reader:
            if batch.num_rows == 0:
                continue
            yield offset, batch
            offset += batch.num_rows
            bar.update(batch.num_rows)


@contextlib.contextmanager
def _registered(store: Store, name: str, data: pa.Table) -> Iterator[None]:
    """Expose an Arrow table to SQL as ``name`` (a kdstore constant) for the duration of a block.

    Use it outside ``store.transaction()`` so a rollback happens before the unregister.
    """
    store.con.register(name, data)
    try:
        yield
    finally:
        with contextlib.suppress(duckdb.Error):  # an aborted transaction refuses; register replaces
            store.con.unregister(name)


def _insert_arrow(store: Store, table: str, data: pa.Table) -> None:
    """Append an Arrow table to ``kd.<table>`` (``table`` is a kdstore constant, never user text)."""
    with _registered(store, "__kdstore_insert", data):
        store.run(f"INSERT INTO kd.{table} SELECT * FROM __kdstore_insert")


def _next_id(store: Store, table: str, column: str) -> int:
    row = store.one(f"SELECT coalesce(max({column}) + 1, 0) FROM kd.{table}")
    return int(row[0]) if row else 0


# ---------------------------------------------------------------------------------------------
# labels, examples, gold, weak
# ---------------------------------------------------------------------------------------------
def add_labels(store: Store, names: Sequence[str]) -> dict[str, int]:
    """Add label names to the global vocabulary (existing names keep their ids).

    Returns ``{name: label_id}`` for the names given, in order.
    """
    names = list(names)
    for i, n in enumerate(names):
        if not isinstance(n, str) or not n.strip():
            raise SchemaError(f"label names must be non-empty strings, got {n!r}", source="labels", row=i)
    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        if n in seen:
            raise SchemaError(f"duplicate label {n!r} (first at row {seen[n]})", source="labels", row=i)
        seen[n] = i
    with store.transaction():
        have = _labels(store)
        next_id = _next_id(store, "labels", "label_id")
        new = [n for n in names if n not in have]
        rows = [(next_id + j, n) for j, n in enumerate(new)]
        if rows:
            store.run_many("INSERT INTO kd.labels VALUES (?, ?)", rows)
        have.update({n: i for i, n in rows})
    return {n: have[n] for n in names}


def add_examples(
    store: Store,
    source: Any,
    *,
    split: str | None = None,
    id_column: str = "example_id",
    split_column: str = "split",
    slice_column: str | None = "slice",
    progress: bool | None = None,
) -> int:
    """Add examples with their split (``train``/``valid``/``test``) and optional slice.

    ``split=`` gives one split to every row instead of a split column. Re-adding an example with the
    same split is allowed (its slice is updated); with another split it is an error.
    Returns the number of rows read.
    """
    if split is not None and split not in SPLITS:
        raise SchemaError(f"split must be one of {SPLITS}, got {split!r}", source="examples")
    src = open_source(source, store.con)
    _require_columns(src, [id_column] + ([] if split is not None else [split_column]))
    has_slice = slice_column is not None and src.schema.get_field_index(slice_column) >= 0
    ids_all, splits_all, slices_all = [], [], []
    for offset, batch in _batches(src, "examples", progress):
        ids = _int_ids(_column(batch, id_column, src), src, id_column, offset)
        if split is None:
            sp = _column(batch, split_column, src)
            _no_nulls(sp, src, split_column, offset)
            sp_np = np.asarray(sp.cast(pa.string()).to_numpy(zero_copy_only=False), dtype=object)
            bad = ~np.isin(sp_np, np.array(SPLITS, dtype=object))
            if bad.any():
                i = _first(bad) or 0
                raise SchemaError(f"split must be one of {SPLITS}, got {sp_np[i]!r}", source=src.name, column=split_column, row=offset + i)
        else:
            sp_np = np.full(ids.size, split, dtype=object)
        ids_all.append(ids)
        splits_all.append(sp_np)
        if has_slice:
            assert slice_column is not None
            slices_all.append(_column(batch, slice_column, src).cast(pa.string()))
    ids = np.concatenate(ids_all) if ids_all else np.empty(0, np.int64)
    splits = np.concatenate(splits_all) if splits_all else np.empty(0, object)
    rows = np.arange(ids.size)
    _check_duplicates(ids, rows, src, id_column, "example id")
    slices = pa.concat_arrays(slices_all) if has_slice and slices_all else pa.nulls(ids.size, pa.string())
    data = pa.table({"example_id": ids, "split": pa.array(splits, pa.string()), "slice": slices, "row": rows})
    with _registered(store, "__kdstore_new_examples", data), store.transaction():
        clash = store.one(
            """
            SELECT n.example_id, n.split, e.split, n.row FROM __kdstore_new_examples n
            JOIN kd.examples e USING (example_id) WHERE e.split <> n.split ORDER BY n.row LIMIT 1
            """
        )
        if clash:
            raise SchemaError(
                f"example {clash[0]} is already in split {clash[2]!r}; an example is in one split only (got {clash[1]!r})",
                source=src.name, column=split_column, row=int(clash[3]),
            )
        store.run("DELETE FROM kd.examples WHERE example_id IN (SELECT example_id FROM __kdstore_new_examples)")
        store.run("INSERT INTO kd.examples SELECT example_id, split, slice FROM __kdstore_new_examples")
    return int(ids.size)


def _example_label_rows(
    store: Store, source: Any, id_column: str, label_column: str, what: str, progress: bool | None,
    extra: Sequence[str] = (),
) -> tuple[Source, np.ndarray, np.ndarray, dict[str, list[pa.Array]]]:
    src = open_source(source, store.con)
    _require_columns(src, [id_column, label_column, *extra])
    examples = _Examples(store)
    by_name = _labels(store)
    ids_all, labels_all = [], []
    extras: dict[str, list[pa.Array]] = {c: [] for c in extra}
    for offset, batch in _batches(src, what, progress):
        ids = _int_ids(_column(batch, id_column, src), src, id_column, offset)
        examples.positions(ids, src, id_column, offset)
        labels_all.append(_label_ids(_column(batch, label_column, src), src, label_column, offset, by_name))
        ids_all.append(ids)
        for c in extra:
            extras[c].append(_column(batch, c, src))
    ids = np.concatenate(ids_all) if ids_all else np.empty(0, np.int64)
    labels = np.concatenate(labels_all) if labels_all else np.empty(0, np.int64)
    return src, ids, labels, extras


def add_gold(
    store: Store, source: Any, *, id_column: str = "example_id", label_column: str = "label",
    progress: bool | None = None,
) -> int:
    """Add gold labels: one row per (example, positive label); labels by name or id.

    Gold for an example replaces any gold it had (closed world: unlisted labels are negative).
    """
    src, ids, labels, _ = _example_label_rows(store, source, id_column, label_column, "gold", progress)
    _check_duplicates(ids * (1 << 20) + labels, np.arange(ids.size), src, label_column, "(example, label) gold row")
    data = pa.table({"example_id": ids, "label_id": labels.astype(np.int32)})
    with _registered(store, "__kdstore_new_gold", data), store.transaction():
        store.run("DELETE FROM kd.gold WHERE example_id IN (SELECT example_id FROM __kdstore_new_gold)")
        store.run("INSERT INTO kd.gold SELECT * FROM __kdstore_new_gold")
    return int(ids.size)


def add_weak(
    store: Store, source: Any, *, id_column: str = "example_id", label_column: str = "label",
    source_column: str = "source", value_column: str = "value", progress: bool | None = None,
) -> int:
    """Add weak labels (example, label, source, value); a (example, label, source) replaces its old value."""
    src, ids, labels, extras = _example_label_rows(
        store, source, id_column, label_column, "weak", progress, extra=(source_column, value_column)
    )
    names = pa.concat_arrays([a.cast(pa.string()) for a in extras[source_column]]) if ids.size else pa.array([], pa.string())
    if names.null_count:
        raise SchemaError("null value", source=src.name, column=source_column,
                          row=_first(np.asarray(pc.is_null(names).to_numpy(zero_copy_only=False))))
    vals = np.concatenate([_floats(a, src, value_column) for a in extras[value_column]]) if ids.size else np.empty(0)
    bad = ~np.isfinite(vals)
    if bad.any():
        raise SchemaError("NaN, infinite or null value", source=src.name, column=value_column, row=_first(bad))
    codes = np.asarray(pc.dictionary_encode(names).indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    _check_duplicates((ids * (1 << 20) + labels) * 4096 + codes, np.arange(ids.size), src, source_column,
                      "(example, label, source) weak label")
    data = pa.table({"example_id": ids, "label_id": labels.astype(np.int32), "source": names, "value": vals})
    with _registered(store, "__kdstore_new_weak", data), store.transaction():
        store.run(
            "DELETE FROM kd.weak WHERE (example_id, label_id, source) IN "
            "(SELECT (example_id, label_id, source) FROM __kdstore_new_weak)"
        )
        store.run("INSERT INTO kd.weak SELECT * FROM __kdstore_new_weak")
    return int(ids.size)


# ---------------------------------------------------------------------------------------------
# teachers
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TeacherDef:
    """A registered teacher as stored in ``kd.teachers`` + ``kd.teacher_labels``."""

    teacher_id: int
    name: str
    kind: str
    output_type: str
    label_ids: tuple[int, ...]  # label id of each output_index
    uri: str | None = None
    input_type: str | None = None
    fingerprint: str | None = None
    threshold: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def get_teacher(store: Store, name: str) -> TeacherDef:
    """The registered teacher ``name``; :class:`SchemaError` if there is none."""
    row = store.one(
        "SELECT teacher_id, name, kind, output_type, uri, input_type, fingerprint, threshold "
        "FROM kd.teachers WHERE name = ?",
        [name],
    )
    if row is None:
        raise SchemaError(f"unknown teacher {name!r} (register it with add_teacher first)", source="teachers")
    labels = store.execute(
        "SELECT label_id FROM kd.teacher_labels WHERE teacher_id = ? ORDER BY output_index", [row[0]]
    ).fetchall()
    return TeacherDef(
        teacher_id=int(row[0]), name=row[1], kind=row[2], output_type=row[3], uri=row[4], input_type=row[5],
        fingerprint=row[6], threshold=row[7], label_ids=tuple(int(r[0]) for r in labels),
    )


def add_teacher(
    store: Store,
    name: str,
    *,
    labels: Sequence[str | int],
    output_type: str,
    kind: str = "stored",
    uri: str | None = None,
    input_type: str | None = None,
    fingerprint: str | None = None,
    threshold: float | None = None,
    replace: bool = False,
) -> int:
    """Register a teacher and align its outputs with the global labels.

    Args:
        name: unique teacher name (any text; it is always bound, never formatted into SQL).
        labels: the global label (name or id) of each output index, in the teacher's output order.
        output_type: binary, multiclass, multilabel, vote, regression or embedding.
        kind: onnx, http or stored (only stored predictions).
        threshold: decision threshold for this teacher (overrides the ``threshold`` setting).
        replace: allow changing the labels or output type of an existing teacher (its outputs are
            deleted, since they no longer align).

    Re-registering with the same definition returns the existing id (uri, input type, fingerprint
    and threshold are updated).
    """
    if not isinstance(name, str) or not name.strip():
        raise SchemaError(f"teacher name must be a non-empty string, got {name!r}", source="teachers")
    if output_type not in OUTPUT_TYPES:
        raise SchemaError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}", source=f"teacher {name!r}")
    if kind not in TEACHER_KINDS:
        raise SchemaError(f"kind must be one of {TEACHER_KINDS}, got {kind!r}", source=f"teacher {name!r}")
    if threshold is not None and not (0.0 <= float(threshold) <= 1.0 or output_type == "regression"):
        raise SchemaError(f"threshold must be in [0, 1], got {threshold!r}", source=f"teacher {name!r}")
    labels = list(labels)
    if not labels and output_type != "embedding":
        raise SchemaError("a teacher needs at least one label", source=f"teacher {name!r}")
    by_name = _labels(store)
    by_id = set(by_name.values())
    label_ids: list[int] = []
    for i, lab in enumerate(labels):
        if isinstance(lab, str):
            if lab not in by_name:
                raise SchemaError(f"label alignment points at missing label {lab!r}", source=f"teacher {name!r}", column="labels", row=i)
            label_ids.append(by_name[lab])
        elif isinstance(lab, (int, np.integer)) and not isinstance(lab, bool):
            if int(lab) not in by_id:
                raise SchemaError(f"label alignment points at missing label id {lab}", source=f"teacher {name!r}", column="labels", row=i)
            label_ids.append(int(lab))
        else:
            raise SchemaError(f"labels must be names or ids, got {lab!r}", source=f"teacher {name!r}", column="labels", row=i)
    if len(set(label_ids)) != len(label_ids):
        dup = next(i for i, x in enumerate(label_ids) if label_ids.index(x) != i)
        raise SchemaError("a label appears twice in the alignment", source=f"teacher {name!r}", column="labels", row=dup)
    if output_type == "binary" and len(label_ids) != 1:
        raise SchemaError("a binary teacher has exactly one label (its positive class)", source=f"teacher {name!r}", column="labels")
    with store.transaction():
        existing = store.one("SELECT teacher_id FROM kd.teachers WHERE name = ?", [name])
        if existing is not None:
            old = get_teacher(store, name)
            tid = old.teacher_id
            changed = old.output_type != output_type or old.label_ids != tuple(label_ids)
            if changed and not replace:
                raise SchemaError(
                    "already registered with other labels or output type; pass replace=True to re-align "
                    "(its stored outputs are deleted)",
                    source=f"teacher {name!r}",
                )
            store.run(
                "UPDATE kd.teachers SET kind = ?, uri = ?, input_type = ?, output_type = ?, "
                "fingerprint = coalesce(?, fingerprint), threshold = ? WHERE teacher_id = ?",
                [kind, uri, input_type, output_type, fingerprint, threshold, tid],
            )
            if changed:
                store.run("DELETE FROM kd.scores WHERE teacher_id = ?", [tid])
                store.run("DELETE FROM kd.teacher_labels WHERE teacher_id = ?", [tid])
            else:
                return tid
        else:
            tid = _next_id(store, "teachers", "teacher_id")
            store.run(
                "INSERT INTO kd.teachers (teacher_id, name, kind, uri, input_type, output_type, fingerprint, threshold) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [tid, name, kind, uri, input_type, output_type, fingerprint, threshold],
            )
        if label_ids:
            store.run_many(
                "INSERT INTO kd.teacher_labels VALUES (?, ?, ?)", [(tid, i, lab) for i, lab in enumerate(label_ids)]
            )
    return tid


# ---------------------------------------------------------------------------------------------
# outputs
# ---------------------------------------------------------------------------------------------
class ScoreWriter:
    """Validates and writes one teacher's outputs as wide rows; used inside a transaction.

    Rows arrive as (example ids, [n, L] float64 scores with NaN = no opinion, source rows). The
    writer checks types, ranges, multiclass sums, unknown and duplicate examples, then appends to
    ``kd.scores``. It also keeps a content fingerprint of what it wrote.
    """

    def __init__(self, store: Store, teacher: TeacherDef, src: Source, examples: _Examples):
        self.store, self.teacher, self.src, self.examples = store, teacher, src, examples
        self.seen = np.zeros(examples.ids.size, dtype=bool)
        self.tol = store.settings["multiclass_tolerance"]
        self.hash = hashlib.blake2b(digest_size=16)
        self.rows_written = 0
        self.pending: list[pa.Table] = []
        self.pending_rows = 0

    def add(self, ids: np.ndarray, scores: np.ndarray, rows: np.ndarray, column: str, id_column: str) -> None:
        src, t = self.src, self.teacher
        pos = self.examples.positions(ids, src, id_column, 0) if ids.size else ids
        # positions() reports row offset 0 + index; translate to the source row for a clear message
        present = ~np.isnan(scores)
        keep = present.any(axis=1)  # an all-missing row is an abstain: nothing to store
        if not keep.all():
            ids, scores, rows, pos, present = ids[keep], scores[keep], rows[keep], pos[keep], present[keep]
        if ids.size == 0:
            return
        dup_in_batch = np.zeros(ids.size, bool)
        if ids.size > 1:
            order = np.argsort(pos, kind="stable")
            d = np.flatnonzero(pos[order][1:] == pos[order][:-1])
            dup_in_batch[order[d + 1]] = True
        dup = dup_in_batch | self.seen[pos]
        if dup.any():
            i = _first(dup) or 0
            raise SchemaError(
                f"duplicate (teacher {t.name!r}, example {int(ids[i])}) output", source=src.name, column=id_column, row=int(rows[i])
            )
        self.seen[pos] = True
        typ = t.output_type
        if typ in PROBABILITY_TYPES or typ == "vote":
            out = present & ((scores < 0.0) | (scores > 1.0))
            if out.any():
                r = np.argwhere(out)[0]
                raise SchemaError(
                    f"probability {scores[r[0], r[1]]!r} outside [0, 1] for {typ} teacher {t.name!r}",
                    source=src.name, column=column, row=int(rows[r[0]]),
                )
        if typ == "multiclass" and scores.shape[1] > 1:
            partial = ~present.all(axis=1)
            if partial.any():
                i = _first(partial) or 0
                raise SchemaError(
                    f"multiclass row of teacher {t.name!r} is missing some of its labels", source=src.name, column=column, row=int(rows[i])
                )
            off = np.abs(scores.sum(axis=1) - 1.0) > self.tol
            if off.any():
                i = _first(off) or 0
                raise SchemaError(
                    f"multiclass probabilities sum to {scores[i].sum():.6g}, not 1 (tolerance {self.tol:g})",
                    source=src.name, column=column, row=int(rows[i]),
                )
        if typ == "vote":
            ones = (scores == 1.0).sum(axis=1)
            bad = (ones != 1) | (present & (scores != 0.0) & (scores != 1.0)).any(axis=1)
            if bad.any():
                i = _first(bad) or 0
                raise SchemaError(
                    "a vote row must give 1 to exactly one label (and 0 or nothing to the others)",
                    source=src.name, column=column, row=int(rows[i]),
                )
        values32 = scores.astype(np.float32)
        flat = values32.ravel()
        mask = ~present.ravel()
        n, width = values32.shape
        offsets = pa.array(np.arange(0, n * width + 1, width, dtype=np.int32))
        lists = pa.ListArray.from_arrays(offsets, pa.array(flat, mask=mask if mask.any() else None))
        self.hash.update(ids.tobytes())
        self.hash.update(np.where(present, values32, np.float32(np.nan)).tobytes())
        self.pending.append(pa.table({"teacher_id": pa.array(np.full(n, t.teacher_id, np.int32)), "example_id": ids, "scores": lists}))
        self.pending_rows += n
        if self.pending_rows >= _INSERT_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            _insert_arrow(self.store, "scores", pa.concat_tables(self.pending))
            self.rows_written += self.pending_rows
            self.pending, self.pending_rows = [], 0

    def fingerprint(self) -> str:
        return "data:" + self.hash.hexdigest()


def _check_output_type(t: TeacherDef, src: Source) -> None:
    if t.output_type == "embedding":
        raise SchemaError(f"teacher {t.name!r} outputs embeddings: use ingest_embeddings", source=src.name)


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
        ``wide``: one row per example; either one numeric column per label (``columns`` maps the
            teacher's label names to column names, or lists columns in output order; by default the
            teacher's label names are the column names), or one list column ``score_column``
            holding the probability vector in the teacher's output order. A null cell means no
            opinion on that label for that example.

    Returns the number of (teacher, example) rows stored.
    """
    t = get_teacher(store, teacher)
    src = open_source(source, store.con)
    _check_output_type(t, src)
    if form not in ("long", "wide"):
        raise SchemaError(f"form must be 'long' or 'wide', got {form!r}", source=src.name)
    with store.transaction():
        store.run("DELETE FROM kd.scores WHERE teacher_id = ?", [t.teacher_id])
        writer = ScoreWriter(store, t, src, _Examples(store))
        if form == "wide":
            _ingest_wide(store, t, src, writer, id_column, score_column, columns, progress)
        else:
            _ingest_long(store, t, src, writer, id_column, label_column, score_column, progress)
        writer.flush()
        store.run(
            "UPDATE kd.teachers SET fingerprint = ? WHERE teacher_id = ?",
            [fingerprint or writer.fingerprint(), t.teacher_id],
        )
    return writer.rows_written


def _wide_columns(
    store: Store, t: TeacherDef, src: Source, score_column: str, columns: Sequence[str] | Mapping[str, str] | None
) -> list[str] | None:
    """The column of each output index, or None when the scores are in one list column."""
    names_by_id = {v: k for k, v in _labels(store).items()}
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
            raise SchemaError(
                f"{len(cols)} columns given for the {len(label_names)} labels of teacher {t.name!r}", source=src.name
            )
    _require_columns(src, cols)
    return cols


def _ingest_wide(
    store: Store, t: TeacherDef, src: Source, writer: ScoreWriter, id_column: str, score_column: str,
    columns: Sequence[str] | Mapping[str, str] | None, progress: bool | None,
) -> None:
    _require_columns(src, [id_column])
    cols = _wide_columns(store, t, src, score_column, columns)
    width = len(t.label_ids)
    for offset, batch in _batches(src, f"outputs {t.name}", progress):
        ids = _int_ids(_column(batch, id_column, src), src, id_column, offset)
        rows = np.arange(offset, offset + batch.num_rows)
        if cols is not None:
            mat = np.empty((batch.num_rows, width), dtype=np.float64)
            for j, c in enumerate(cols):
                arr = _column(batch, c, src)
                v = _floats(arr, src, c)
                present = ~np.asarray(pc.is_null(arr).to_numpy(zero_copy_only=False)) if arr.null_count else np.ones(v.size, bool)
                _check_finite(v[:, None], present[:, None], src, c, rows)
                mat[:, j] = v
            _check_and_add(writer, ids, mat, rows, cols[0] if width == 1 else ",".join(cols), id_column, offset)
        else:
            arr = _column(batch, score_column, src)
            mat = _list_matrix(arr, width, src, score_column, offset, t.name)
            _check_and_add(writer, ids, mat, rows, score_column, id_column, offset)


def _list_matrix(arr: pa.Array, width: int, src: Source, column: str, offset: int, teacher: str) -> np.ndarray:
    """A list / fixed-size-list column of numbers -> [n, width] float64, NaN for null elements."""
    if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type) or pa.types.is_fixed_size_list(arr.type)):
        raise SchemaError(f"must be a list of numbers per row, got {arr.type}", source=src.name, column=column)
    _no_nulls(arr, src, column, offset)
    lens = np.asarray(pc.list_value_length(arr).to_numpy(zero_copy_only=False))
    bad = lens != width
    if bad.any():
        i = _first(bad) or 0
        raise SchemaError(f"has {int(lens[i])} scores, teacher {teacher!r} has {width} labels", source=src.name, column=column, row=offset + i)
    flat_arr = pc.list_flatten(arr)
    if not (pa.types.is_floating(flat_arr.type) or pa.types.is_integer(flat_arr.type)):
        raise SchemaError(f"list elements must be numeric, got {flat_arr.type}", source=src.name, column=column)
    flat = _floats(flat_arr, src, column).reshape(-1, width) if width else np.empty((arr.__len__(), 0))
    if flat_arr.null_count:
        return flat  # nulls are already NaN = no opinion
    return flat


def _check_and_add(
    writer: ScoreWriter, ids: np.ndarray, mat: np.ndarray, rows: np.ndarray, column: str, id_column: str, offset: int
) -> None:
    inf = np.isinf(mat)
    if inf.any():
        i = int(np.argwhere(inf)[0][0])
        raise SchemaError("NaN or infinite score", source=writer.src.name, column=column, row=int(rows[i]))
    try:
        writer.examples.positions(ids, writer.src, id_column, offset)
    except SchemaError:
        raise
    writer.add(ids, mat, rows, column, id_column)


def _ingest_long(
    store: Store, t: TeacherDef, src: Source, writer: ScoreWriter, id_column: str, label_column: str,
    score_column: str, progress: bool | None,
) -> None:
    _require_columns(src, [id_column, label_column, score_column])
    by_name = _labels(store)
    index_of = {lab: i for i, lab in enumerate(t.label_ids)}
    lut_size = max(by_name.values(), default=-1) + 1
    lut = np.full(lut_size, -1, dtype=np.int64)
    for lab, i in index_of.items():
        lut[lab] = i
    pos_all, idx_all, score_all, rows_all = [], [], [], []
    for offset, batch in _batches(src, f"outputs {t.name}", progress):
        ids = _int_ids(_column(batch, id_column, src), src, id_column, offset)
        pos = writer.examples.positions(ids, src, id_column, offset)
        labels = _label_ids(_column(batch, label_column, src), src, label_column, offset, by_name)
        idx = lut[labels]
        foreign = idx < 0
        if foreign.any():
            i = _first(foreign) or 0
            raise SchemaError(
                f"label id {int(labels[i])} is not one of teacher {t.name!r}'s labels", source=src.name, column=label_column, row=offset + i
            )
        sc_arr = _column(batch, score_column, src)
        _no_nulls(sc_arr, src, score_column, offset)
        sc = _floats(sc_arr, src, score_column)
        bad = ~np.isfinite(sc)
        if bad.any():
            raise SchemaError("NaN or infinite score", source=src.name, column=score_column, row=offset + (_first(bad) or 0))
        pos_all.append(pos)
        idx_all.append(idx)
        score_all.append(sc)
        rows_all.append(np.arange(offset, offset + batch.num_rows))
    if not pos_all:
        return
    pos = np.concatenate(pos_all)
    idx = np.concatenate(idx_all)
    sc = np.concatenate(score_all)
    rows = np.concatenate(rows_all)
    width = len(t.label_ids)
    key = pos * width + idx
    order = np.argsort(key, kind="stable")
    sk = key[order]
    dup = np.flatnonzero(sk[1:] == sk[:-1])
    if dup.size:
        i = order[dup + 1][np.argmin(rows[order[dup + 1]])]
        raise SchemaError(
            f"duplicate (teacher {t.name!r}, example {int(writer.examples.ids[pos[i]])}, label) output",
            source=src.name, column=label_column, row=int(rows[i]),
        )
    upos, inverse = np.unique(pos, return_inverse=True)
    mat = np.full((upos.size, width), np.nan)
    mat[inverse, idx] = sc
    first_row = np.full(upos.size, np.iinfo(np.int64).max)
    np.minimum.at(first_row, inverse, rows)
    ids = writer.examples.ids[upos]
    for s in range(0, upos.size, _INSERT_ROWS):
        sl = slice(s, s + _INSERT_ROWS)
        writer.add(ids[sl], mat[sl], first_row[sl], score_column, id_column)


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
    whose labels are ``classes`` (class index -> global label; default all labels by id), and
    replaces that teacher's outputs. Returns the teacher names.
    """
    src = open_source(source, store.con)
    _require_columns(src, [id_column])
    cols = list(labelers) if labelers is not None else [n for n in src.schema.names if n != id_column]
    if not cols:
        raise SchemaError("no labeler columns", source=src.name)
    _require_columns(src, cols)
    if classes is None:
        classes = [int(r[0]) for r in store.execute("SELECT label_id FROM kd.labels ORDER BY label_id").fetchall()]
    n_classes = len(classes)
    with store.transaction():
        teachers = []
        for c in cols:
            add_teacher(store, prefix + c, labels=list(classes), output_type="vote")
            t = get_teacher(store, prefix + c)
            store.run("DELETE FROM kd.scores WHERE teacher_id = ?", [t.teacher_id])
            teachers.append(t)
        examples = _Examples(store)
        writers = [ScoreWriter(store, t, src, examples) for t in teachers]
        eye = np.eye(n_classes)
        for offset, batch in _batches(src, "votes", progress):
            ids = _int_ids(_column(batch, id_column, src), src, id_column, offset)
            examples.positions(ids, src, id_column, offset)
            rows = np.arange(offset, offset + batch.num_rows)
            for c, w in zip(cols, writers, strict=True):
                arr = _column(batch, c, src)
                _no_nulls(arr, src, c, offset)
                if not pa.types.is_integer(arr.type):
                    raise SchemaError(f"votes must be integers (-1 = abstain), got {arr.type}", source=src.name, column=c)
                v = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.int64)
                bad = (v < -1) | (v >= n_classes)
                if bad.any():
                    i = _first(bad) or 0
                    raise SchemaError(
                        f"vote {int(v[i])} is not -1 (abstain) or a class index in [0, {n_classes})", source=src.name, column=c, row=offset + i
                    )
                voted = v >= 0
                if voted.any():
                    w.add(ids[voted], eye[v[voted]], rows[voted], c, id_column)
        for t, w in zip(teachers, writers, strict=True):
            w.flush()
            store.run("UPDATE kd.teachers SET fingerprint = ? WHERE teacher_id = ?", [w.fingerprint(), t.teacher_id])
    return [t.name for t in teachers]


# ---------------------------------------------------------------------------------------------
# embeddings and features
# ---------------------------------------------------------------------------------------------
def ingest_embeddings(
    store: Store, teacher: str, source: Any, *, id_column: str = "example_id", vector_column: str = "vector",
    progress: bool | None = None,
) -> int:
    """Replace a teacher's embeddings: one fixed-length numeric vector per example."""
    t = get_teacher(store, teacher)
    src = open_source(source, store.con)
    _require_columns(src, [id_column, vector_column])
    examples = _Examples(store)
    seen = np.zeros(examples.ids.size, bool)
    dim: int | None = None
    n = 0
    with store.transaction():
        store.run("DELETE FROM kd.embeddings WHERE teacher_id = ?", [t.teacher_id])
        for offset, batch in _batches(src, f"embeddings {t.name}", progress):
            ids = _int_ids(_column(batch, id_column, src), src, id_column, offset)
            pos = examples.positions(ids, src, id_column, offset)
            arr = _column(batch, vector_column, src)
            if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type) or pa.types.is_fixed_size_list(arr.type)):
                raise SchemaError(f"must be a list of numbers per row, got {arr.type}", source=src.name, column=vector_column)
            _no_nulls(arr, src, vector_column, offset)
            lens = np.asarray(pc.list_value_length(arr).to_numpy(zero_copy_only=False))
            if dim is None:
                dim = int(lens[0])
            bad = lens != dim
            if bad.any() or dim == 0:
                i = _first(bad) or 0
                raise SchemaError(f"vector has {int(lens[i])} values, expected {dim} (all vectors of a teacher have one length)",
                                  source=src.name, column=vector_column, row=offset + i)
            flat_arr = pc.list_flatten(arr)
            if flat_arr.null_count:
                raise SchemaError("null inside a vector", source=src.name, column=vector_column, row=offset)
            vals = _floats(flat_arr, src, vector_column).reshape(-1, dim)
            bad = ~np.isfinite(vals).all(axis=1)
            if bad.any():
                raise SchemaError("NaN or infinite value in vector", source=src.name, column=vector_column, row=offset + (_first(bad) or 0))
            order = np.argsort(pos, kind="stable")
            d = np.flatnonzero(pos[order][1:] == pos[order][:-1])
            dup = seen[pos]
            if d.size:
                dup[order[d + 1]] = True
            if dup.any():
                i = _first(dup) or 0
                raise SchemaError(f"duplicate embedding for example {int(ids[i])}", source=src.name, column=id_column, row=offset + i)
            seen[pos] = True
            v32 = vals.astype(np.float32).ravel()
            lists = pa.ListArray.from_arrays(pa.array(np.arange(0, ids.size * dim + 1, dim, dtype=np.int32)), pa.array(v32))
            _insert_arrow(store, "embeddings", pa.table({"teacher_id": pa.array(np.full(ids.size, t.teacher_id, np.int32)), "example_id": ids, "vector": lists}))
            n += ids.size
    return n


def feature_relation(name: str) -> str:
    """The quoted SQL name of a feature source: ``features."<name>"``.

    >>> feature_relation('pix"els')
    'features."pix""els"'
    """
    from sqlglot import exp

    return "features." + exp.to_identifier(name, quoted=True).sql(dialect="duckdb")


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
        store.run(f"DROP VIEW IF EXISTS {rel}")
        store.run(f"DROP TABLE IF EXISTS {rel}")
        if isinstance(source, (str, Query)) or hasattr(source, "__fspath__"):
            if isinstance(source, Query):
                kind, uri, body = "query", source.sql, source.sql
                label = f"query {source.sql[:60]!r}"
                try:
                    store.con.sql(f"SELECT * FROM ({body}) LIMIT 0")
                except Exception as e:
                    raise SchemaError(f"query failed: {e}", source=label) from e
            else:
                import glob as _glob
                from pathlib import Path

                path = str(Path(str(source)).resolve()) if not any(c in str(source) for c in "*?[") else str(source)
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
            _require_columns(src, [id_column])
            first = True
            for _, batch in _batches(src, f"features {name}", progress):
                tbl = pa.Table.from_batches([batch]).rename_columns(
                    ["example_id" if c == id_column else c for c in batch.schema.names]
                )
                with _registered(store, "__kdstore_features", tbl):
                    verb = f"CREATE TABLE {rel} AS" if first else f"INSERT INTO {rel}"
                    store.run(f"{verb} SELECT * FROM __kdstore_features")
                first = False
            if first:
                empty = pa.Table.from_batches([], schema=src.schema).rename_columns(
                    ["example_id" if c == id_column else c for c in src.schema.names])
                with _registered(store, "__kdstore_features", empty):
                    store.run(f"CREATE TABLE {rel} AS SELECT * FROM __kdstore_features")
        _check_feature_key(store, rel, label, id_column)
        cols = store.execute(f"DESCRIBE {rel}").fetchall()
        store.run("DELETE FROM kd.feature_sources WHERE name = ?", [name])
        store.run(
            "INSERT INTO kd.feature_sources (name, kind, uri, columns) VALUES (?, ?, ?, ?)",
            [name, kind, uri, json.dumps([{"name": c[0], "type": c[1]} for c in cols])],
        )
    return rel


def _check_feature_key(store: Store, rel: str, label: str, id_column: str) -> None:
    typ = store.one(f"SELECT typeof(example_id) FROM {rel} LIMIT 1")
    if typ is not None and typ[0] not in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "HUGEINT"):
        raise SchemaError(f"the key must be an integer example id, got {typ[0]}", source=label, column=id_column)
    null = store.one(f"SELECT rn FROM (SELECT example_id, row_number() OVER () - 1 AS rn FROM {rel}) WHERE example_id IS NULL LIMIT 1")
    if null is not None:
        raise SchemaError("null example id", source=label, column=id_column, row=int(null[0]))
    dup = store.one(f"SELECT example_id FROM {rel} GROUP BY example_id HAVING count(*) > 1 LIMIT 1")
    if dup is not None:
        raise SchemaError(f"duplicate example id {dup[0]}", source=label, column=id_column)
