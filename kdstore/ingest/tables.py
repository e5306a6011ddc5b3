"""Labels, examples (with their split), gold labels and weak labels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kdstore.errors import SchemaError
from kdstore.ingest._common import (
    SPLITS,
    Examples,
    as_text,
    batches,
    column,
    first,
    first_duplicate,
    floats,
    int_ids,
    is_text,
    label_ids,
    labels,
    next_id,
    no_nulls,
    null_mask,
    registered,
    require_columns,
)
from kdstore.sources import Source, open_source

if TYPE_CHECKING:
    from kdstore.store.core import Store


def add_labels(store: Store, names: Sequence[str]) -> dict[str, int]:
    """Add label names to the global vocabulary (existing names keep their ids).

    Returns ``{name: label_id}`` for the names given, in order.

    >>> import kdstore
    >>> with kdstore.connect() as store:
    ...     _ = store.add_labels(["cat", "dog"])
    ...     store.add_labels(["dog", "it's"])
    {'dog': 1, "it's": 2}
    """
    if isinstance(names, str):
        raise SchemaError("labels must be a sequence of names, got one string", source="labels")
    names = list(names)
    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        if not isinstance(n, str) or not n.strip():
            raise SchemaError(f"label names must be non-empty strings, got {n!r}", source="labels", row=i)
        if n in seen:
            raise SchemaError(f"duplicate label {n!r} (first at row {seen[n]})", source="labels", row=i)
        seen[n] = i
    with store.transaction():
        have = labels(store)
        start = next_id(store, "labels", "label_id")
        rows = [(start + j, n) for j, n in enumerate(n for n in names if n not in have)]
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
    same split is allowed (its slice is updated when the input has a slice column, else kept); with
    another split it is an error: an example is in one split only. Returns the number of rows read.
    """
    if split is not None and split not in SPLITS:
        raise SchemaError(f"split must be one of {SPLITS}, got {split!r}", source="examples")
    src = open_source(source, store.con)
    require_columns(src, [id_column] + ([] if split is not None else [split_column]))
    has_slice = slice_column is not None and src.schema.get_field_index(slice_column) >= 0
    allowed = pa.array(SPLITS)
    ids_all: list[np.ndarray] = []
    splits_all: list[pa.Array] = []
    slices_all: list[pa.Array] = []
    for offset, batch in batches(src, "examples", progress):
        ids = int_ids(column(batch, id_column, src), src, id_column, offset)
        if split is None:
            sp = column(batch, split_column, src)
            no_nulls(sp, src, split_column, offset)
            if not (is_text(sp.type) or pa.types.is_dictionary(sp.type)):
                raise SchemaError(f"split must be text, got {sp.type}", source=src.name, column=split_column)
            sp = as_text(sp)
            bad = ~np.asarray(pc.is_in(sp, value_set=allowed).to_numpy(zero_copy_only=False), dtype=bool)
            if bad.any():
                i = first(bad)
                raise SchemaError(f"split must be one of {SPLITS}, got {sp[i].as_py()!r}",
                                  source=src.name, column=split_column, row=offset + i)
            splits_all.append(sp)
        ids_all.append(ids)
        if has_slice:
            assert slice_column is not None
            sl = column(batch, slice_column, src)
            if not (is_text(sl.type) or pa.types.is_integer(sl.type) or pa.types.is_null(sl.type) or pa.types.is_dictionary(sl.type)):
                raise SchemaError(f"slice must be text, got {sl.type}", source=src.name, column=slice_column)
            slices_all.append(as_text(sl))
    ids = np.concatenate(ids_all) if ids_all else np.empty(0, np.int64)
    dup = first_duplicate([ids])
    if dup is not None:
        raise SchemaError(f"duplicate example id {int(ids[dup[0]])} (first at row {dup[1]})",
                          source=src.name, column=id_column, row=dup[0])
    splits = pa.concat_arrays(splits_all) if split is None and splits_all else pa.array(
        np.full(ids.size, split or "train", dtype=object), pa.string())
    slices = pa.concat_arrays(slices_all) if has_slice and slices_all else pa.nulls(ids.size, pa.string())
    data = pa.table({"example_id": ids, "split": splits, "slice": slices, "row": np.arange(ids.size)})
    with registered(store, data) as new, store.transaction():
        clash = store.one(
            f"""
            SELECT n.example_id, n.split, e.split, n.row FROM {new} n
            JOIN kd.examples e USING (example_id) WHERE e.split <> n.split ORDER BY n.row LIMIT 1
            """
        )
        if clash:
            raise SchemaError(
                f"example {clash[0]} is already in split {clash[2]!r}; an example is in one split only (got {clash[1]!r})",
                source=src.name, column=split_column if split is None else id_column, row=int(clash[3]),
            )
        if has_slice:
            store.run(f"DELETE FROM kd.examples WHERE example_id IN (SELECT example_id FROM {new})")
            store.run(f"INSERT INTO kd.examples SELECT example_id, split, slice FROM {new}")
        else:
            store.run(
                f"INSERT INTO kd.examples SELECT example_id, split, slice FROM {new} "
                "WHERE example_id NOT IN (SELECT example_id FROM kd.examples)"
            )
    return int(ids.size)


def _example_label_rows(
    store: Store, source: Any, id_column: str, label_column: str, what: str, progress: bool | None,
    extra: Sequence[str] = (),
) -> tuple[Source, np.ndarray, np.ndarray, dict[str, list[pa.Array]]]:
    src = open_source(source, store.con)
    require_columns(src, [id_column, label_column, *extra])
    examples = Examples(store)
    by_name = labels(store)
    ids_all, labels_all = [], []
    extras: dict[str, list[pa.Array]] = {c: [] for c in extra}
    for offset, batch in batches(src, what, progress):
        ids = int_ids(column(batch, id_column, src), src, id_column, offset)
        examples.positions(ids, src, id_column, offset)
        labels_all.append(label_ids(column(batch, label_column, src), src, label_column, offset, by_name))
        ids_all.append(ids)
        for c in extra:
            extras[c].append(column(batch, c, src))
    ids = np.concatenate(ids_all) if ids_all else np.empty(0, np.int64)
    labs = np.concatenate(labels_all) if labels_all else np.empty(0, np.int64)
    return src, ids, labs, extras


def add_gold(
    store: Store, source: Any, *, id_column: str = "example_id", label_column: str = "label",
    progress: bool | None = None,
) -> int:
    """Add gold labels: one row per (example, positive label); labels by name or id.

    The gold of an example in the input replaces any gold it had (closed world: unlisted labels
    are negative).
    """
    src, ids, labs, _ = _example_label_rows(store, source, id_column, label_column, "gold", progress)
    dup = first_duplicate([ids, labs])
    if dup is not None:
        raise SchemaError(f"duplicate (example {int(ids[dup[0]])}, label) gold row (first at row {dup[1]})",
                          source=src.name, column=label_column, row=dup[0])
    data = pa.table({"example_id": ids, "label_id": labs.astype(np.int32)})
    with registered(store, data) as new, store.transaction():
        store.run(f"DELETE FROM kd.gold WHERE example_id IN (SELECT example_id FROM {new})")
        store.run(f"INSERT INTO kd.gold SELECT * FROM {new}")
    return int(ids.size)


def add_weak(
    store: Store, source: Any, *, id_column: str = "example_id", label_column: str = "label",
    source_column: str = "source", value_column: str = "value", progress: bool | None = None,
) -> int:
    """Add weak labels (example, label, source, value); a (example, label, source) replaces its old value."""
    src, ids, labs, extras = _example_label_rows(
        store, source, id_column, label_column, "weak", progress, extra=(source_column, value_column)
    )
    parts = extras[source_column]
    for a in parts:
        if not (is_text(a.type) or pa.types.is_dictionary(a.type)):
            raise SchemaError(f"must be text, got {a.type}", source=src.name, column=source_column)
    names = pa.concat_arrays([as_text(a) for a in parts]) if parts else pa.array([], pa.string())
    if names.null_count:
        raise SchemaError("null value", source=src.name, column=source_column, row=first(null_mask(names)))
    vals = np.concatenate([floats(a, src, value_column) for a in extras[value_column]]) if ids.size else np.empty(0)
    bad = ~np.isfinite(vals)
    if bad.any():
        raise SchemaError("NaN, infinite or null value", source=src.name, column=value_column, row=first(bad))
    codes = np.asarray(pc.dictionary_encode(names).indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    dup = first_duplicate([ids, labs, codes])
    if dup is not None:
        raise SchemaError(f"duplicate (example, label, source) weak label (first at row {dup[1]})",
                          source=src.name, column=source_column, row=dup[0])
    data = pa.table({"example_id": ids, "label_id": labs.astype(np.int32), "source": names, "value": vals})
    with registered(store, data) as new, store.transaction():
        store.run(
            "DELETE FROM kd.weak WHERE (example_id, label_id, source) IN "
            f"(SELECT (example_id, label_id, source) FROM {new})"
        )
        store.run(f"INSERT INTO kd.weak SELECT * FROM {new}")
    return int(ids.size)
