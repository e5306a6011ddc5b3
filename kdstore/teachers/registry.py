"""``store.teachers``: the teachers registered in ``kd.teachers``, and which can run on which features.

A teacher row keeps its kind (onnx, http, stored), ``uri`` (model path or URL), ``input_type``
(its input signature as text, e.g. ``x:float32[?,64]``), ``output_type``, ``fingerprint`` and a
JSON ``config`` (output tensor, embedding tensor, input mapping, logits or probabilities, the
signature, HTTP settings) from which :meth:`TeacherRegistry.get` rebuilds the teacher object.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kdstore import ingest
from kdstore.errors import SchemaError, TeacherError
from kdstore.teachers.spec import FeatureColumn, InputBinding, TensorSpec, bind_inputs, feature_column

if TYPE_CHECKING:
    from kdstore.store.core import Store
    from kdstore.teachers import Teacher

#: Config keys that decide the outputs: changing one makes the stored outputs stale.
OUTPUT_KEYS = ("output", "embedding", "inputs", "scores")


@dataclass(frozen=True, slots=True)
class TeacherInfo:
    """One registered teacher as the store describes it."""

    teacher_id: int
    name: str
    kind: str
    output_type: str
    uri: str | None
    input_type: str | None
    fingerprint: str | None
    threshold: float | None
    labels: tuple[str, ...]
    config: dict[str, Any]
    rows: int  # examples with stored scores
    embeddings: int  # examples with a stored embedding


def _quote(name: str) -> str:
    from sqlglot import exp

    return str(exp.to_identifier(name, quoted=True).sql(dialect="duckdb"))


def feature_columns(store: Store, feature_source: str) -> builtins.list[FeatureColumn]:
    """The columns of a registered feature source, classified (:func:`feature_column`)."""
    if store.one("SELECT 1 FROM kd.feature_sources WHERE name = ?", [feature_source]) is None:
        have = [r[0] for r in store.execute("SELECT name FROM kd.feature_sources ORDER BY name").fetchall()]
        raise SchemaError(
            f"unknown feature source {feature_source!r} (registered: {', '.join(have) or 'none'}; "
            "add one with store.register_features)",
            source="features",
        )
    rel = ingest.feature_relation(feature_source)
    return [feature_column(str(r[0]), str(r[1])) for r in store.execute(f"DESCRIBE {rel}").fetchall()]


class _ListLengths:
    """Common length of each variable-length list column (None if rows differ), computed once."""

    def __init__(self, store: Store, feature_source: str):
        self.store, self.rel, self.cache = store, ingest.feature_relation(feature_source), {}  # type: ignore[var-annotated]

    def __call__(self, column: str) -> int | None:
        if column not in self.cache:
            c = _quote(column)
            row = self.store.one(f"SELECT min(len({c})), max(len({c})) FROM {self.rel}")
            self.cache[column] = int(row[0]) if row and row[0] is not None and row[0] == row[1] else None
        value: int | None = self.cache[column]
        return value


class TeacherRegistry:
    """The store's teachers: ``list``, ``info``, ``get``, ``add``, ``compatible``, ``remove``.

    >>> import kdstore
    >>> with kdstore.connect() as store:
    ...     _ = store.add_labels(["spam"])
    ...     _ = store.teachers.add(kdstore.teachers.StoredTeacher("old", labels=["spam"], output_type="binary"))
    ...     [t.name for t in store.teachers.list()]
    ['old']
    """

    def __init__(self, store: Store):
        self.store = store

    # -- reading ---------------------------------------------------------------------------------
    def _rows(self, name: str | None, *, counts: bool = True) -> builtins.list[TeacherInfo]:
        """Registered teachers (all, or ``name``); ``counts=False`` skips the output counts (left 0)."""
        where, params = ("WHERE t.name = ?", [name]) if name is not None else ("", [])
        rows = self.store.execute(
            f"""
            SELECT t.teacher_id, t.name, t.kind, t.output_type, t.uri, t.input_type, t.fingerprint, t.threshold,
                   CAST(t.config AS VARCHAR),
                   (SELECT list(l.name ORDER BY tl.output_index) FROM kd.teacher_labels tl
                      JOIN kd.labels l ON l.label_id = tl.label_id WHERE tl.teacher_id = t.teacher_id)
            FROM kd.teachers t {where} ORDER BY t.teacher_id
            """,
            params,
        ).fetchall()
        n_scores: dict[int, int] = {}
        n_emb: dict[int, int] = {}
        if counts and rows:
            ids = [int(r[0]) for r in rows]
            for table, into in (("scores", n_scores), ("embeddings", n_emb)):
                got = self.store.execute(
                    f"SELECT teacher_id, count(*) FROM kd.{table} WHERE teacher_id IN (SELECT unnest(?)) GROUP BY 1", [ids]
                ).fetchall()
                into.update({int(t): int(c) for t, c in got})
        return [
            TeacherInfo(
                teacher_id=int(r[0]), name=str(r[1]), kind=str(r[2]), output_type=str(r[3]), uri=r[4], input_type=r[5],
                fingerprint=r[6], threshold=r[7], config=json.loads(r[8]) if r[8] else {},
                labels=tuple(r[9] or ()), rows=n_scores.get(int(r[0]), 0), embeddings=n_emb.get(int(r[0]), 0),
            )
            for r in rows
        ]

    def list(self) -> builtins.list[TeacherInfo]:
        """Every registered teacher, in registration order."""
        return self._rows(None)

    def names(self) -> builtins.list[str]:
        return [t.name for t in self._rows(None, counts=False)]

    def info(self, name: str) -> TeacherInfo:
        """The registered teacher ``name``; :class:`TeacherError` if there is none."""
        rows = self._rows(name)
        if not rows:
            raise TeacherError(f"unknown teacher {name!r} (registered: {', '.join(self.names()) or 'none'})")
        return rows[0]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(self._rows(name, counts=False))

    def __iter__(self) -> Iterator[TeacherInfo]:
        return iter(self.list())

    def __len__(self) -> int:
        row = self.store.one("SELECT count(*) FROM kd.teachers")
        return int(row[0]) if row else 0

    def get(self, name: str) -> Teacher:
        """Rebuild the teacher object of a registered teacher (model files are read lazily)."""

        found = self._rows(name, counts=False)
        if not found:
            raise TeacherError(f"unknown teacher {name!r} (registered: {', '.join(self.names()) or 'none'})")
        return self._build(found[0])

    def _build(self, info: TeacherInfo) -> Teacher:
        from kdstore.teachers.http import HttpTeacher
        from kdstore.teachers.onnx import OnnxTeacher
        from kdstore.teachers.stored import StoredTeacher

        name = info.name
        cfg = info.config
        common: dict[str, Any] = {
            "name": info.name, "labels": info.labels, "output_type": info.output_type, "threshold": info.threshold,
        }
        if info.kind == "stored":
            return StoredTeacher(**common)
        if not cfg or not info.uri:
            raise TeacherError(
                f"teacher {name!r} ({info.kind}) has no recorded model config; register it with store.teachers.add"
            )
        common.update(output=cfg.get("output"), embedding=cfg.get("embedding"), inputs=cfg.get("inputs"),
                      scores=cfg.get("scores", "probabilities"))
        if info.kind == "onnx":
            return OnnxTeacher(info.uri, **common)
        if info.kind == "http":
            transport = {k: cfg[k] for k in ("format", "timeout", "retries", "backoff", "max_concurrency", "request_rows") if k in cfg}
            signature = [TensorSpec.from_json(s) for s in cfg.get("signature", [])] or None
            return HttpTeacher(info.uri, signature=signature, **transport, **common)
        raise TeacherError(f"teacher {name!r} has unknown kind {info.kind!r}")

    # -- writing ---------------------------------------------------------------------------------
    def add(self, teacher: Teacher, *, replace: bool = False) -> int:
        """Register (or update) a teacher; returns its ``teacher_id``.

        The model is read and checked first (an unsafe or broken model is refused before anything is
        written). Re-adding a teacher whose model fingerprint or output settings changed deletes its
        stored outputs (they are stale). Changing its labels, output type or kind needs
        ``replace=True`` (and deletes its outputs too).
        """
        store = self.store
        fingerprint = teacher.fingerprint()
        config = teacher.config()
        input_type = teacher.input_type()
        with store.transaction():
            old = self._rows(teacher.name, counts=False)
            if old and old[0].kind != teacher.kind and not replace:
                raise TeacherError(
                    f"teacher {teacher.name!r} is registered as a {old[0].kind} teacher; pass replace=True to make it "
                    f"a {teacher.kind} teacher (its stored outputs are deleted)"
                )
            try:
                tid = ingest.add_teacher(
                    store, teacher.name, labels=list(teacher.labels), output_type=teacher.output_type, kind=teacher.kind,
                    uri=teacher.uri, input_type=input_type, fingerprint=fingerprint, threshold=teacher.threshold,
                    replace=replace,
                )
            except SchemaError as e:
                raise TeacherError(f"cannot register teacher {teacher.name!r}: {e}") from e
            if old:
                o = old[0]
                stale = o.kind != teacher.kind or (teacher.kind != "stored" and (
                    o.fingerprint != fingerprint or {k: o.config.get(k) for k in OUTPUT_KEYS} != {k: config.get(k) for k in OUTPUT_KEYS}
                ))
                if stale:
                    store.run("DELETE FROM kd.scores WHERE teacher_id = ?", [tid])
                    store.run("DELETE FROM kd.embeddings WHERE teacher_id = ?", [tid])
                if o.kind != teacher.kind and teacher.kind == "stored":
                    store.run("UPDATE kd.teachers SET fingerprint = NULL WHERE teacher_id = ?", [tid])
            store.run("UPDATE kd.teachers SET config = ? WHERE teacher_id = ?", [json.dumps(config) if config else None, tid])
        return tid

    def remove(self, name: str) -> None:
        """Delete a teacher, its label alignment and all its outputs and embeddings."""
        tid = self.info(name).teacher_id
        with self.store.transaction():
            for table in ("scores", "embeddings", "teacher_labels", "trust", "teachers"):
                self.store.run(f"DELETE FROM kd.{table} WHERE teacher_id = ?", [tid])

    # -- segmentation by data type ----------------------------------------------------------------
    def bind(self, teacher: Teacher | str, feature_source: str) -> builtins.list[InputBinding]:
        """How ``teacher`` would be fed from ``feature_source``; :class:`TeacherError` says what does not match."""
        t = self.get(teacher) if isinstance(teacher, str) else teacher
        if t.kind == "stored":
            raise TeacherError(f"teacher {t.name!r} is a stored-predictions teacher: it does not run on features")
        cols = feature_columns(self.store, feature_source)
        return bind_inputs(t.name, t.signature(), cols, feature_source, t.input_map, _ListLengths(self.store, feature_source))

    def incompatible(self, feature_source: str) -> dict[str, str]:
        """Runnable teachers that cannot run on ``feature_source``, with the reason."""
        return {k: v for k, v in self._check_all(feature_source).items() if v is not None}

    def compatible(self, feature_source: str) -> builtins.list[str]:
        """Names of the runnable teachers whose recorded input signature the source can feed.

        Uses the signature recorded at registration (no model is loaded): input names, dtypes and
        shapes against the source's column names, types and list lengths.
        """
        return [k for k, v in self._check_all(feature_source).items() if v is None]

    def _check_all(self, feature_source: str) -> dict[str, str | None]:
        cols = feature_columns(self.store, feature_source)
        lengths = _ListLengths(self.store, feature_source)
        result: dict[str, str | None] = {}
        for info in self._rows(None, counts=False):
            if info.kind == "stored":
                continue
            sig = info.config.get("signature")
            if not sig:
                result[info.name] = "no input signature recorded (register it with store.teachers.add)"
                continue
            try:
                bind_inputs(info.name, [TensorSpec.from_json(s) for s in sig], cols, feature_source,
                            info.config.get("inputs"), lengths)
            except TeacherError as e:
                result[info.name] = str(e)
            else:
                result[info.name] = None
        return result


__all__ = ["OUTPUT_KEYS", "TeacherInfo", "TeacherRegistry", "feature_columns"]
