"""Teacher registration: name, kind, uri, input/output type and the label alignment."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from kdstore.errors import SchemaError
from kdstore.ingest._common import insert_arrow, registered
from kdstore.ingest._common import labels as _labels
from kdstore.ingest._common import next_id as _next_id

if TYPE_CHECKING:
    from kdstore.store.core import Store

OUTPUT_TYPES = ("binary", "multiclass", "multilabel", "vote", "regression", "embedding")
TEACHER_KINDS = ("onnx", "http", "stored")
PROBABILITY_TYPES = ("binary", "multiclass", "multilabel")


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


def _resolve_labels(store: Store, name: str, labels: Sequence[str | int]) -> list[int]:
    """A teacher's alignment (label names or ids, in output order) -> label ids, checked."""
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
    return label_ids


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
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
            raise SchemaError(f"threshold must be a finite number, got {threshold!r}", source=f"teacher {name!r}")
        if output_type != "regression" and not 0.0 <= float(threshold) <= 1.0:
            raise SchemaError(f"threshold must be in [0, 1], got {threshold!r}", source=f"teacher {name!r}")
    if isinstance(labels, str):
        raise SchemaError("labels must be a sequence of label names or ids, got one string", source=f"teacher {name!r}")
    labels = list(labels)
    if not labels and output_type != "embedding":
        raise SchemaError("a teacher needs at least one label", source=f"teacher {name!r}")
    label_ids = _resolve_labels(store, name, labels)
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
                store.run("DELETE FROM kd.embeddings WHERE teacher_id = ?", [tid])
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
            _insert_alignment(store, [tid], label_ids)
    return tid


def _insert_alignment(store: Store, teacher_ids: Sequence[int], label_ids: Sequence[int]) -> None:
    """kd.teacher_labels rows: every teacher in ``teacher_ids`` gets the same ``label_ids``."""
    n, width = len(teacher_ids), len(label_ids)
    insert_arrow(store, "teacher_labels", pa.table({
        "teacher_id": pa.array(np.repeat(np.asarray(teacher_ids, dtype=np.int32), width)),
        "output_index": pa.array(np.tile(np.arange(width, dtype=np.int32), n)),
        "label_id": pa.array(np.tile(np.asarray(label_ids, dtype=np.int32), n)),
    }))


def add_vote_teachers(store: Store, names: Sequence[str], labels: Sequence[str | int]) -> list[TeacherDef]:
    """Register many ``vote`` teachers (kind ``stored``) with one alignment, in a few statements.

    Existing teachers with the same alignment are kept (their outputs too: the caller replaces
    them); an existing teacher with another alignment or type is a :class:`SchemaError`.
    """
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise SchemaError(f"teacher name must be a non-empty string, got {name!r}", source="teachers")
    if len(set(names)) != len(names):
        dup = next(n for i, n in enumerate(names) if names.index(n) != i)
        raise SchemaError(f"teacher {dup!r} appears twice", source="teachers")
    if not labels:
        raise SchemaError("vote teachers need at least one class", source="teachers")
    label_ids = _resolve_labels(store, names[0] if names else "", labels)
    with store.transaction():
        rows = store.execute(
            "SELECT t.name, t.teacher_id, t.output_type, list(tl.label_id ORDER BY tl.output_index) "
            "FROM kd.teachers t LEFT JOIN kd.teacher_labels tl USING (teacher_id) "
            "WHERE t.name IN (SELECT unnest(?)) GROUP BY ALL", [list(names)],
        ).fetchall()
        existing = {str(r[0]): int(r[1]) for r in rows}
        for name, _, typ, labs in rows:
            if typ != "vote" or [x for x in (labs or []) if x is not None] != label_ids:
                raise SchemaError(
                    "already registered with other labels or output type; re-register it with "
                    "add_teacher(..., replace=True) first", source=f"teacher {name!r}",
                )
        new = [n for n in names if n not in existing]
        start = _next_id(store, "teachers", "teacher_id")
        new_ids = list(range(start, start + len(new)))
        if new:
            rows_new = pa.table({"teacher_id": pa.array(new_ids, pa.int32()), "name": pa.array(new, pa.string())})
            with registered(store, rows_new) as tmp:  # one object per call (created_at: the column default)
                store.run(f"INSERT INTO kd.teachers (teacher_id, name, kind, output_type) SELECT teacher_id, name, 'stored', 'vote' FROM {tmp}")
            _insert_alignment(store, new_ids, label_ids)
    ids = {**existing, **dict(zip(new, new_ids, strict=True))}
    return [TeacherDef(teacher_id=ids[n], name=n, kind="stored", output_type="vote", label_ids=tuple(label_ids)) for n in names]
