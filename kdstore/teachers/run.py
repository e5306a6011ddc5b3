"""``run_teachers``: run many teachers over a feature source and store their outputs.

How a run goes:

1. Every teacher is checked before any output is written: its model is read and passes the safety
   checks, its inputs bind to the feature source's columns (else a :class:`TeacherError` says which
   input does not match and how). These errors abort the call; only teacher objects passed in
   have been registered by then.
2. Incremental: a teacher whose outputs for every selected example are already stored with the
   same fingerprint is skipped; otherwise it computes only the examples it lacks. A teacher whose
   fingerprint changed (new model file, other URL) recomputes everything.
3. The feature rows (joined with ``kd.examples``, restricted to ``split``) are read in Arrow record
   batches straight from DuckDB, once per group of teachers, and each batch is fed to every
   teacher of the group: ONNX sessions run concurrently on a thread pool (ONNX Runtime releases
   the GIL; ``workers`` sessions at a time with ``threads`` intra-op threads each, no spinning),
   HTTP teachers on their own pool. Groups exist so that one group's commits (where DuckDB
   compresses and writes the outputs, single-threaded) overlap the next group's inference.
4. Each teacher writes through its own DuckDB cursor in its own transaction, from the worker
   thread that computed the batch. A teacher that fails (NaN/inf or wrong-shaped output, an
   endpoint failure) is rolled back — it writes nothing — while the others commit; then one
   :class:`TeacherError` lists every failure.

Outputs are checked where they are converted (:func:`~kdstore.teachers.spec.convert_scores`: batch
size, width, NaN/inf, probability range, multiclass sums; errors name the example id). The example
keys need no per-row check: rows come from a join with ``kd.examples`` and one query per run
checks the feature source has no duplicate ids. This keeps the write path to building Arrow arrays
and one INSERT per batch (the row-level checks of ``ingest.ScoreWriter`` cost ~1.4 µs/row here,
as much as the inference itself for a small MLP).
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from kdstore import ingest
from kdstore._progress import Progress
from kdstore.errors import KdstoreError, TeacherError
from kdstore.ingest._common import insert_arrow, make_lists
from kdstore.teachers.registry import _ListLengths, _quote, feature_columns
from kdstore.teachers.spec import InputBinding, as_rows, bind_inputs, build_feed, convert_scores

if TYPE_CHECKING:
    from kdstore.store.core import Store
    from kdstore.teachers import Teacher, TeacherSession

#: Rows per feature batch read from DuckDB (each batch goes to every teacher).
BATCH_ROWS = 1 << 16


@dataclass(frozen=True, slots=True)
class TeacherRun:
    """What one teacher did in a run.

    ``status`` is ``ran``, ``skipped`` (everything already stored with this fingerprint),
    ``incompatible`` (only when ``teachers=None``: its inputs do not bind to the features) or
    ``failed`` (rolled back; ``error`` says why).
    """

    name: str
    status: str
    rows: int = 0
    already_stored: int = 0
    seconds: float = 0.0
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RunReport:
    """The result of :func:`run_teachers`: one :class:`TeacherRun` per teacher, in order."""

    features: str
    split: str | None
    runs: tuple[TeacherRun, ...]
    rows_read: int  # feature rows read, summed over the passes (teacher groups)
    seconds: float
    workers: int
    threads: int

    def __getitem__(self, name: str) -> TeacherRun:
        for r in self.runs:
            if r.name == name:
                return r
        raise KeyError(name)


class _Appender:
    """Appends one teacher's rows (scores or embedding vectors) to ``kd.scores`` / ``kd.embeddings``."""

    def __init__(self, store: Store, table: str, column: str, teacher_id: int, teacher: str):
        self.store, self.table, self.column, self.teacher_id, self.teacher = store, table, column, teacher_id, teacher
        self.width: int | None = None

    def add(self, ids: np.ndarray, values: np.ndarray) -> None:
        n, width = values.shape
        if self.width is None:
            self.width = width
        if width != self.width or width == 0:
            raise TeacherError(
                f"teacher {self.teacher!r}: {width} values per example in {self.table}, earlier batches had {self.width}"
            )
        lists = make_lists(np.ascontiguousarray(values, dtype=np.float32))
        # from_arrow + insert_into: a registered Arrow table would stay alive until COMMIT
        insert_arrow(self.store, self.table, pa.table({
            "teacher_id": pa.array(np.full(n, self.teacher_id, np.int32)), "example_id": pa.array(ids), self.column: lists,
        }))


@dataclass
class _Active:
    """A teacher being run: its session, its own cursor/transaction and writers, and its outcome."""

    teacher: Teacher
    teacher_id: int
    bindings: list[InputBinding]
    fingerprint: str | None
    stale: bool
    done: np.ndarray  # sorted example ids already stored (skip them)
    already: int
    session: TeacherSession | None = None
    cur: Store | None = None
    writer: _Appender | None = None
    emb: _Appender | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    error: BaseException | None = None
    where: str = ""
    rows: int = 0
    seconds: float = 0.0


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _resolve(store: Store, teachers: Sequence[Teacher | str] | None) -> tuple[list[Teacher], bool]:
    reg = store.teachers
    infos = {i.name: i for i in reg._rows(None, counts=False)}
    if teachers is None:
        return [reg._build(i) for i in infos.values() if i.kind in ("onnx", "http")], False
    if isinstance(teachers, str):
        teachers = [teachers]
    out: list[Teacher] = []
    for t in teachers:
        if isinstance(t, str):
            out.append(reg._build(infos[t]) if t in infos else reg.get(t))
        else:
            if t.kind == "stored":
                raise TeacherError(f"teacher {t.name!r} is a stored-predictions teacher: there is no model to run")
            reg.add(t)
            out.append(t)
    names = [t.name for t in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise TeacherError(f"teacher(s) {dup} given more than once")
    for t in out:
        if t.kind == "stored":
            raise TeacherError(
                f"teacher {t.name!r} is a stored-predictions teacher: there is no model to run; its outputs are ingested"
            )
    return out, True


def run_teachers(
    store: Store,
    teachers: Sequence[Teacher | str] | str | None = None,
    *,
    features: str,
    split: str | None = None,
    batch_size: int = BATCH_ROWS,
    workers: int | None = None,
    threads: int | None = None,
    group_size: int | None = None,
    progress: bool | None = None,
) -> RunReport:
    """Run teachers over a registered feature source and store their outputs.

    Args:
        store: the store.
        teachers: teacher names (registered) or teacher objects (registered or updated first);
            ``None`` = every registered ONNX/HTTP teacher whose inputs the source can feed.
        features: the feature source's name (``store.register_features``).
        split: only the examples of this split (default: every example in ``kd.examples``).
        batch_size: feature rows per batch read from DuckDB.
        workers: ONNX sessions running at once (default: min(cores, teachers)).
        threads: intra-op threads per session (default: cores // workers).
        group_size: teachers per pass over the features (default: max(2 x workers, a quarter of
            the teachers)). Each pass shares every feature batch among its teachers; a pass's
            commits (where DuckDB compresses and writes the outputs) overlap the next pass.
        progress: show a progress bar (default: when stderr is a terminal).

    Returns:
        a :class:`RunReport`.

    Raises:
        TeacherError: before anything runs, for an unsafe model, an incompatible feature source,
            or a stored teacher; after the others committed, when some teachers failed.
    """
    t_start = time.perf_counter()
    if store.read_only:
        raise KdstoreError(f"{store.path} is open read-only")
    if store._tx_depth:
        raise TeacherError("run_teachers commits each teacher in its own transaction: call it outside store.transaction()")
    if split is not None and split not in ingest.SPLITS:
        raise TeacherError(f"split must be one of {ingest.SPLITS}, got {split!r}")
    if batch_size < 1:
        raise TeacherError(f"batch_size must be positive, got {batch_size}")
    objs, explicit = _resolve(store, teachers)
    columns = feature_columns(store, features)
    lengths = _ListLengths(store, features)
    rel = ingest.feature_relation(features)
    runs: dict[str, TeacherRun] = {}
    planned: list[tuple[Teacher, list[InputBinding]]] = []
    for t in objs:
        try:
            bindings = bind_inputs(t.name, t.signature(), columns, features, t.input_map, lengths)
        except TeacherError as e:
            if explicit:
                raise
            runs[t.name] = TeacherRun(t.name, "incompatible", error=str(e))
            continue
        planned.append((t, bindings))

    # -- what is already stored ----------------------------------------------------------------
    where, params = ("WHERE e.split = ?", [split]) if split else ("", [])
    selection = f"SELECT f.example_id FROM {rel} AS f JOIN kd.examples AS e ON e.example_id = f.example_id {where}"
    row = store.one(f"SELECT count(*), count(*) - count(DISTINCT example_id) FROM ({selection})", params)
    total, dups = (int(row[0]), int(row[1])) if row else (0, 0)
    if dups and planned:
        dup = store.one(f"SELECT example_id FROM ({selection}) GROUP BY 1 HAVING count(*) > 1 LIMIT 1", params)
        raise TeacherError(f"feature source {features!r} has example {dup[0] if dup else '?'} more than once")
    infos = {i.name: i for i in store.teachers._rows(None, counts=False)}
    stored_counts: dict[tuple[str, int], int] = {}
    for table in ("scores", "embeddings"):
        ids = [infos[t.name].teacher_id for t, _ in planned if (t.output_type == "embedding") == (table == "embeddings")]
        if ids:  # a cheap count first: teachers with no outputs at all need no join with the selection
            got = _fetch(store, f"SELECT teacher_id FROM kd.{table} WHERE teacher_id IN (SELECT unnest(?)) GROUP BY 1", [ids])
            ids = [int(i) for i in got.column(0).to_pylist()]
        if ids:
            got = _fetch(store, f"SELECT s.teacher_id, count(*) FROM kd.{table} AS s WHERE s.teacher_id IN "
                                f"(SELECT unnest(?)) AND s.example_id IN ({selection}) GROUP BY 1", [ids, *params])
            stored_counts.update({(table, int(a)): int(b) for a, b in zip(got.column(0).to_pylist(), got.column(1).to_pylist(), strict=True)})
    active: list[_Active] = []
    for t, bindings in planned:
        info = infos[t.name]
        fp = t.fingerprint()
        stale = info.fingerprint != fp
        table = "embeddings" if t.output_type == "embedding" else "scores"
        have = 0 if stale else stored_counts.get((table, info.teacher_id), 0)
        if have >= total and not stale:
            runs[t.name] = TeacherRun(t.name, "skipped", already_stored=have)
            continue
        done = np.empty(0, np.int64)
        if have:
            got = _fetch(store, f"SELECT s.example_id FROM kd.{table} AS s WHERE s.teacher_id = ? AND s.example_id IN "
                                f"({selection}) ORDER BY 1", [info.teacher_id, *params])
            done = np.asarray(got.column(0).to_numpy(), dtype=np.int64)
        active.append(_Active(t, info.teacher_id, bindings, fp, stale, done, have))

    cores = _cpu_count()
    n_cpu = sum(1 for a in active if a.teacher.kind != "http")
    workers = max(1, workers if workers is not None else min(cores, max(n_cpu, 1)))
    threads = max(1, threads if threads is not None else max(1, cores // workers))
    rows_read = 0
    if active:
        size = group_size or max(2 * workers, -(-len(active) // 4))
        groups = [active[i : i + size] for i in range(0, len(active), size)]
        finisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kdstore-commit")
        finishing: list[Future[None]] = []
        try:
            for g in groups:
                rows_read += _execute(store, g, rel, selection, where, params, total, batch_size, workers, threads,
                                      progress, finisher, finishing)
        finally:
            for f in finishing:
                f.result()
            finisher.shutdown(wait=True)
    for a in active:
        if a.error is None:
            runs[a.teacher.name] = TeacherRun(a.teacher.name, "ran", a.rows, a.already, round(a.seconds, 6))
        else:
            runs[a.teacher.name] = TeacherRun(a.teacher.name, "failed", 0, a.already, round(a.seconds, 6), _describe(a))
    report = RunReport(
        features, split, tuple(runs[t.name] for t in objs), rows_read, time.perf_counter() - t_start, workers, threads,
    )
    failed = [a for a in active if a.error is not None]
    if failed:
        ok = [r.name for r in report.runs if r.status == "ran"]
        msg = "; ".join(_describe(a) for a in failed)
        raise TeacherError(
            f"{len(failed)} teacher(s) failed and wrote nothing: {msg}"
            + (f" (committed: {', '.join(ok)})" if ok else "")
        ) from failed[0].error
    return report


def _fetch(store: Store, sql: str, params: list[Any]) -> pa.Table:
    if store.trace is not None:
        store.trace(f"{sql}  -- params: {params!r}")
    rel = store.con.sql(sql, params=params)
    assert rel is not None
    return rel.to_arrow_table()


def _describe(a: _Active) -> str:
    e = a.error
    text = str(e) if isinstance(e, KdstoreError) else f"{type(e).__name__}: {e}"
    return f"teacher {a.teacher.name!r}{' ' + a.where if a.where else ''}: {text}"


def _execute(
    store: Store, active: list[_Active], rel: str, selection: str, where: str, params: list[Any], total: int,
    batch_size: int, workers: int, threads: int, progress: bool | None, finisher: ThreadPoolExecutor,
    finishing: list[Future[None]],
) -> int:
    """One pass over the features for a group of teachers; their commits go to ``finisher``."""
    from kdstore.store.core import Store as StoreClass

    tolerance = store.settings["multiclass_tolerance"]
    # rows every active teacher already has are not read at all
    skip_all = active[0].done
    for a in active[1:]:
        skip_all = np.intersect1d(skip_all, a.done, assume_unique=True) if skip_all.size else skip_all
    needed = list(dict.fromkeys(c for a in active for b in a.bindings for c in b.columns))
    cols = ", ".join(f"f.{_quote(c)}" for c in needed)
    anti = ""
    if skip_all.size:
        anti = ("AND" if where else "WHERE") + " f.example_id NOT IN (SELECT example_id FROM __kdstore_skip)"
    query = f"SELECT f.example_id, {cols} FROM {rel} AS f JOIN kd.examples AS e ON e.example_id = f.example_id {where} {anti}"
    to_read = total - int(skip_all.size)

    cpu_pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kdstore-teacher")
    n_http = sum(1 for a in active if a.teacher.kind == "http")
    io_pool = ThreadPoolExecutor(max_workers=n_http, thread_name_prefix="kdstore-http") if n_http else None
    reader_cur = store.con.cursor()
    rows_read = 0
    try:
        for a in active:
            a.cur = StoreClass(store.con.cursor(), store.path, read_only=False, trace=store.trace)
            a.cur.run("BEGIN TRANSACTION")
            if a.stale:
                a.cur.run("DELETE FROM kd.scores WHERE teacher_id = ?", [a.teacher_id])
                a.cur.run("DELETE FROM kd.embeddings WHERE teacher_id = ?", [a.teacher_id])
            a.session = a.teacher.open(threads=1 if a.teacher.kind == "http" else threads)
            if a.session.score_output is not None:
                a.writer = _Appender(a.cur, "scores", "scores", a.teacher_id, a.teacher.name)
            if a.session.embedding_output is not None:
                a.emb = _Appender(a.cur, "embeddings", "vector", a.teacher_id, a.teacher.name)
        if skip_all.size:
            reader_cur.register("__kdstore_skip", pa.table({"example_id": skip_all}))
        if store.trace is not None:
            store.trace(query if not params else f"{query}  -- params: {params!r}")
        relation = reader_cur.sql(query, params=params or None)
        assert relation is not None
        reader = relation.to_arrow_reader(batch_size)
        pending: deque[tuple[int, list[Future[None]]]] = deque()
        label = f"{len(active)} teacher(s): {', '.join(a.teacher.name for a in active)}"[:60]
        with Progress(label, to_read, enabled=progress) as bar:
            for batch_no, batch in enumerate(reader):
                if batch.num_rows == 0:
                    continue
                live = [a for a in active if a.error is None]
                if not live:
                    break
                ids = np.asarray(batch.column(0).to_numpy(), dtype=np.int64)
                cache: dict[Any, np.ndarray] = {}
                futures: list[Future[None]] = []
                for a in live:
                    keep = _todo(a.done, ids)
                    if keep is not None and not keep.any():
                        continue
                    try:
                        feeds = {}
                        for b in a.bindings:
                            if b.key not in cache:
                                cache[b.key] = build_feed(b, batch, a.teacher.name)
                            feeds[b.spec.name] = cache[b.key] if keep is None else cache[b.key][keep]
                    except Exception as e:
                        a.error, a.where = e, _where(batch_no, ids)
                        continue
                    a_ids = ids if keep is None else ids[keep]
                    pool = io_pool if a.teacher.kind == "http" and io_pool is not None else cpu_pool
                    futures.append(pool.submit(_task, a, batch_no, a_ids, feeds, tolerance))
                pending.append((batch.num_rows, futures))
                rows_read += batch.num_rows
                while len(pending) > 1:  # one batch computing while the next is read and prepared
                    _drain(pending.popleft(), bar)
            while pending:
                _drain(pending.popleft(), bar)
    except BaseException:
        cpu_pool.shutdown(wait=True, cancel_futures=True)  # no task may still be writing
        if io_pool is not None:
            io_pool.shutdown(wait=True, cancel_futures=True)
        for a in active:
            if a.cur is not None:
                _rollback(a.cur)
                a.cur.close()
                a.cur = None
        raise
    finally:
        cpu_pool.shutdown(wait=True, cancel_futures=True)
        if io_pool is not None:
            io_pool.shutdown(wait=True, cancel_futures=True)
        for a in active:
            if a.session is not None:
                a.session.close()
        reader_cur.close()
    # commit (or roll back) in the background: the next group's inference overlaps this write
    finishing.extend(finisher.submit(_finish, a) for a in active)
    return rows_read


def _finish(a: _Active) -> None:
    """Commit a teacher's transaction (recording the fingerprint that produced its outputs), or roll it back."""
    if a.cur is None:
        return
    try:
        if a.error is None:
            try:
                a.cur.run("UPDATE kd.teachers SET fingerprint = ? WHERE teacher_id = ?", [a.fingerprint, a.teacher_id])
                a.cur.run("COMMIT")
            except Exception as e:
                a.error, a.where = e, "while committing"
        if a.error is not None:
            _rollback(a.cur)
    finally:
        a.cur.close()
        a.cur = None


def _rollback(cur: Store) -> None:
    try:
        cur.run("ROLLBACK")
    except Exception:  # already rolled back / never begun
        return


def _where(batch_no: int, ids: np.ndarray) -> str:
    return f"on feature batch {batch_no} ({ids.size} examples, ids {int(ids.min())}..{int(ids.max())})" if ids.size else ""


def _todo(done: np.ndarray, ids: np.ndarray) -> np.ndarray | None:
    """Mask of the batch rows the teacher still lacks; None = all of them."""
    if done.size == 0:
        return None
    pos = np.minimum(np.searchsorted(done, ids), done.size - 1)
    keep: np.ndarray = done[pos] != ids
    return None if keep.all() else keep


def _drain(item: tuple[int, list[Future[None]]], bar: Progress) -> None:
    n, futures = item
    for f in futures:
        f.result()  # _task never raises; this waits
    bar.update(n)


def _task(a: _Active, batch_no: int, ids: np.ndarray, feeds: dict[str, np.ndarray], tolerance: float) -> None:
    """Run one teacher on one batch, check and convert its outputs, append them (worker thread)."""
    if a.error is not None:
        return
    t0 = time.perf_counter()
    try:
        assert a.session is not None
        out = a.session.run(feeds)
        scores = emb = None
        t = a.teacher
        if a.session.score_output is not None:
            name = a.session.score_output
            if name not in out:
                raise TeacherError(f"teacher {t.name!r}: the session returned no output {name!r}")
            scores = convert_scores(out[name], teacher=t.name, output=name, output_type=t.output_type,
                                    n_labels=len(t.labels), mode=t.scores, ids=ids, tolerance=tolerance)
        if a.session.embedding_output is not None:
            name = a.session.embedding_output
            if name not in out:
                raise TeacherError(f"teacher {t.name!r}: the session returned no output {name!r}")
            emb = as_rows(out[name], ids.size, t.name, name, ids)
        with a.lock:
            if a.error is not None:
                return
            if scores is not None and a.writer is not None:
                a.writer.add(ids, scores)
            if emb is not None and a.emb is not None:
                a.emb.add(ids, emb)
            a.rows += int(ids.size)
    except Exception as e:
        with a.lock:
            if a.error is None:
                a.error, a.where = e, _where(batch_no, ids)
    finally:
        with a.lock:
            a.seconds += time.perf_counter() - t0


__all__ = ["BATCH_ROWS", "RunReport", "TeacherRun", "run_teachers"]
