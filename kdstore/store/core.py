"""``connect()`` and the :class:`Store` object: one DuckDB file, the ``kd`` schema, transactions."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import duckdb

from kdstore.errors import KdstoreError, SchemaError, StoreVersionError
from kdstore.store.schema import latest_version, migrate, sql_dir

if TYPE_CHECKING:
    import pyarrow as pa

    from kdstore.distill import DistillReport
    from kdstore.evaluate import Evaluation
    from kdstore.parquet_io import ExportResult, ImportResult
    from kdstore.report import ReportResult
    from kdstore.student.registry import Models
    from kdstore.teachers import RunReport, Teacher, TeacherRegistry

SCHEMA_VERSION = latest_version()

#: Every parameter the SQL views read, with its default and meaning. New names are added to old
#: stores on open; values a user changed are kept.
DEFAULT_SETTINGS: dict[str, tuple[float, str]] = {
    "threshold": (0.5, "binary/multilabel decision threshold: score >= threshold is positive"),
    "confidence": (0.95, "confidence level of Wilson lower bounds"),
    "min_support": (5.0, "minimum valid positives of a label for a teacher to be judged an expert"),
    "min_recall": (0.0, "minimum recall for a teacher to qualify as an expert of a label"),
    "expert_margin": (0.05, "teachers within this margin of the best metric are experts too"),
    "expert_metric": (
        0.0,
        "metric that ranks experts in kd.label_experts: 0 precision_lb, 1 recall_lb, 2 f1, 3 precision, 4 recall, 5 accuracy",
    ),
    "z_threshold": (2.0, "consensus z-score above which an output stands out"),
    "multiclass_tolerance": (1e-3, "how far a multiclass probability row may sum from 1"),
    "label_model_max_iter": (100.0, "label model (Dawid-Skene EM): maximum EM iterations"),
    "label_model_tol": (1e-6, "label model: stop when no parameter (confusion entry, class prior) moves more than this"),
    "label_model_smoothing": (0.1, "label model: Dirichlet pseudo-count added to every symbol of every confusion row"),
    "label_model_prior_smoothing": (1.0, "label model: Dirichlet pseudo-count added to every class of the class prior"),
    # selection policies and trust (kdstore.select, kdstore.trust; views sql/select_*.sql, sql/trust_*.sql)
    "select_metric": (0.0, "metric ranking teachers per label for selection: 0 Wilson lower bound of precision, 1 f1, 2 precision, 3 recall"),
    "slice_experts": (1.0, "1 = choose experts per label x slice (kd.examples.slice) where the slice has min_support valid positives; 0 = per label only"),
    "min_targets": (100.0, "until_covered: add experts best-first until a label has this many confident train targets"),
    "confident_threshold": (0.9, "until_covered: a positive decision with score >= this is a confident target"),
    "trust_threshold": (0.5, "trust policy: outputs whose trust p_correct >= this become targets"),
    "trust_weighting": (0.0, "trust policy weight of an output: 0 = p_correct, 1 = log-odds ln(p / (1 - p)), 2 = K-class log-odds ln(p (K - 1) / (1 - p))"),
    "gold_weight": (0.0, "weight of valid-split gold rows mixed into selected targets (0 = none; store.select(gold_weight=) overrides)"),
    "calibration_bins": (10.0, "number of equal-width bins of the trust reliability curve (kd.trust_reliability)"),
}


@dataclass(frozen=True, slots=True)
class StoreInfo:
    """What ``kdstore info`` prints: row counts, splits, labels and teachers."""

    path: str
    schema_version: int
    counts: dict[str, int]
    splits: dict[str, int]
    labels: list[str]
    teachers: list[dict[str, Any]]
    feature_sources: list[str]


class Settings:
    """``store.settings``: the parameters in ``kd.settings`` that the views read.

    >>> with connect() as store:
    ...     store.settings.update(threshold=0.7)
    ...     store.settings["threshold"]
    0.7
    """

    def __init__(self, store: Store):
        self._store = store

    def __getitem__(self, name: str) -> float:
        row = self._store.one("SELECT value FROM kd.settings WHERE name = ?", [name])
        if row is None:
            raise KeyError(name)
        return float(row[0])

    def to_dict(self) -> dict[str, float]:
        rows = self._store.con.execute("SELECT name, value FROM kd.settings ORDER BY name").fetchall()
        return {str(n): float(v) for n, v in rows}

    def update(self, values: Mapping[str, float] | None = None, /, **kwargs: float) -> None:
        """Change settings; unknown names and non-finite values are a :class:`SchemaError`."""
        new = {**(values or {}), **kwargs}
        known = self.to_dict()
        for name, value in new.items():
            if name not in known:
                raise SchemaError(f"unknown setting {name!r}; known: {', '.join(sorted(known))}", source="settings")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise SchemaError(f"setting {name!r} must be a finite number, got {value!r}", source="settings")
        with self._store.transaction():
            for name, value in new.items():
                self._store.run("UPDATE kd.settings SET value = ? WHERE name = ?", [float(value), name])

    def reset(self) -> None:
        """Put every setting back to its default."""
        with self._store.transaction():
            for name, (value, _) in DEFAULT_SETTINGS.items():
                self._store.run("UPDATE kd.settings SET value = ? WHERE name = ?", [value, name])


class Store:
    """One kdstore file. Use :func:`connect` to open one; it is a context manager.

    Attributes:
        con: the raw DuckDB connection (the ``kd`` schema holds the store's tables and views).
        path: the database path (``:memory:`` for an in-memory store).
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        path: str,
        *,
        read_only: bool,
        trace: Callable[[str], object] | None,
    ):
        self.con = con
        self.path = path
        self.read_only = read_only
        self.trace = trace
        self.settings = Settings(self)
        self.sql_dirs: tuple[Path, ...] = ()
        self._tx_depth = 0
        self._models: Models | None = None

    # -- plumbing -------------------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> duckdb.DuckDBPyConnection:
        """Run one statement with bound parameters (shown to ``trace`` first)."""
        if self.trace is not None:
            self.trace(sql if not params else f"{sql}  -- params: {params!r}")
        return self.con.execute(sql, params) if params is not None else self.con.execute(sql)

    def run(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> None:
        """Run one statement to completion, discarding any result (DDL, DML, BEGIN/COMMIT)."""
        self.execute(sql, params).fetchall()

    def one(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> tuple[Any, ...] | None:
        """The first row of a query (the result is read to the end), or None."""
        rows = self.execute(sql, params).fetchall()
        return rows[0] if rows else None

    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement once per parameter row."""
        if self.trace is not None:
            self.trace(f"{sql}  -- {len(rows)} rows")
        self.con.executemany(sql, rows).fetchall()

    def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> pa.Table:
        """Run a query and return its result as a ``pyarrow.Table``."""
        if self.trace is not None:
            self.trace(sql if not params else f"{sql}  -- params: {params!r}")
        rel = self.con.sql(sql, params=params) if params is not None else self.con.sql(sql)
        if rel is None:
            raise KdstoreError("query() needs a statement that returns rows; use run() for others")
        return rel.to_arrow_table()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction; nested uses join the outer one. Any exception rolls everything back."""
        if self.read_only:
            raise KdstoreError(f"{self.path} is open read-only")
        if self._tx_depth:
            self._tx_depth += 1
            try:
                yield
            finally:
                self._tx_depth -= 1
            return
        self.run("BEGIN TRANSACTION")
        self._tx_depth = 1
        try:
            yield
        except BaseException:
            self._tx_depth = 0
            self.run("ROLLBACK")
            raise
        self._tx_depth = 0
        self.run("COMMIT")

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<kdstore.Store {self.path!r}{' read-only' if self.read_only else ''}>"

    # -- ingest (kdstore.ingest does the work) --------------------------------------------------
    def add_labels(self, names: Sequence[str]) -> dict[str, int]:
        """Add labels to the global vocabulary; returns ``{name: label_id}`` (existing kept)."""
        from kdstore import ingest

        return ingest.add_labels(self, names)

    def add_examples(self, source: Any, **kwargs: Any) -> int:
        """Add examples with their split (and slice). See :func:`kdstore.ingest.add_examples`."""
        from kdstore import ingest

        return ingest.add_examples(self, source, **kwargs)

    def add_gold(self, source: Any, **kwargs: Any) -> int:
        """Add gold (positive) labels. See :func:`kdstore.ingest.add_gold`."""
        from kdstore import ingest

        return ingest.add_gold(self, source, **kwargs)

    def add_weak(self, source: Any, **kwargs: Any) -> int:
        """Add weak labels. See :func:`kdstore.ingest.add_weak`."""
        from kdstore import ingest

        return ingest.add_weak(self, source, **kwargs)

    def add_teacher(self, name: str, **kwargs: Any) -> int:
        """Register a teacher and its label alignment. See :func:`kdstore.ingest.add_teacher`."""
        from kdstore import ingest

        return ingest.add_teacher(self, name, **kwargs)

    def ingest_outputs(self, teacher: str, source: Any, **kwargs: Any) -> int:
        """Replace a teacher's outputs. See :func:`kdstore.ingest.ingest_outputs`."""
        from kdstore import ingest

        return ingest.ingest_outputs(self, teacher, source, **kwargs)

    def ingest_votes(self, source: Any, **kwargs: Any) -> list[str]:
        """Ingest a vote matrix (one column per labeler). See :func:`kdstore.ingest.ingest_votes`."""
        from kdstore import ingest

        return ingest.ingest_votes(self, source, **kwargs)

    def ingest_embeddings(self, teacher: str, source: Any, **kwargs: Any) -> int:
        """Replace a teacher's embeddings. See :func:`kdstore.ingest.ingest_embeddings`."""
        from kdstore import ingest

        return ingest.ingest_embeddings(self, teacher, source, **kwargs)

    def register_features(self, name: str, source: Any, **kwargs: Any) -> str:
        """Register a feature source as ``features.<name>``. See :func:`kdstore.ingest.register_features`."""
        from kdstore import ingest

        return ingest.register_features(self, name, source, **kwargs)

    # -- evaluation views (kdstore.evaluate does the work) ---------------------------------------
    def view(self, name: str, **kwargs: Any) -> pa.Table:
        """Rows of the view ``kd.<name>`` as Arrow. See :func:`kdstore.evaluate.view`."""
        from kdstore import evaluate

        return evaluate.view(self, name, **kwargs)

    @property
    def evaluate(self) -> Evaluation:
        """The evaluation views as methods: ``store.evaluate.label_metrics()`` etc."""
        from kdstore.evaluate import Evaluation

        return Evaluation(self)

    # -- label-free evaluation (kdstore.labelmodel does the work) -------------------------------
    def fit_label_model(self, **kwargs: Any) -> Any:
        """Fit a Dawid–Skene label model by EM in SQL. See :func:`kdstore.labelmodel.fit_label_model`."""
        from kdstore import labelmodel

        return labelmodel.fit_label_model(self, **kwargs)

    # -- selection and trust (kdstore.select, kdstore.trust do the work) ----------------------------
    def select(self, policy: str, *, run: int | None = None, gold_weight: float | None = None,
               task: str | None = None) -> int:
        """Materialise a selection policy into ``kd.targets``; returns the run id. See :func:`kdstore.select.select`."""
        from kdstore import select

        return select.select(self, policy, run=run, gold_weight=gold_weight, task=task).run_id

    def fit_trust(self, **kwargs: Any) -> Any:
        """Fit trust models and write ``kd.trust``. See :func:`kdstore.trust.fit_trust`."""
        from kdstore import trust

        return trust.fit_trust(self, **kwargs)

    # -- the whole pipeline (kdstore.distill does the work) -------------------------------------------
    def distill(self, config: Any, **kwargs: Any) -> DistillReport:
        """Run the distill pipeline (a config mapping, TOML path or DistillConfig). See :func:`kdstore.distill.distill`."""
        from kdstore.distill import distill

        return distill(self, config, **kwargs)

    # -- Parquet round trip (kdstore.parquet_io does the work) -----------------------------------
    def export_parquet(self, path: str | Path, **kwargs: Any) -> ExportResult:
        """Write the store as Parquet, one folder per table. See :func:`kdstore.parquet_io.export_parquet`."""
        from kdstore import parquet_io

        return parquet_io.export_parquet(self, path, **kwargs)

    def import_parquet(self, path: str | Path, **kwargs: Any) -> ImportResult:
        """Load tables from a Parquet folder in one transaction. See :func:`kdstore.parquet_io.import_parquet`."""
        from kdstore import parquet_io

        return parquet_io.import_parquet(self, path, **kwargs)

    # -- teachers (kdstore.teachers does the work) ------------------------------------------------
    @property
    def teachers(self) -> TeacherRegistry:
        """The registered teachers: ``list``, ``get``, ``add``, ``compatible``. See :mod:`kdstore.teachers`."""
        from kdstore.teachers.registry import TeacherRegistry

        return TeacherRegistry(self)

    def run_teachers(self, teachers: Sequence[Teacher | str] | str | None = None, **kwargs: Any) -> RunReport:
        """Run teachers over a feature source. See :func:`kdstore.teachers.run_teachers`."""
        from kdstore.teachers.run import run_teachers

        return run_teachers(self, teachers, **kwargs)

    # -- students (kdstore.student does the work) -----------------------------------------------
    @property
    def models(self) -> Models:
        """The student registry (``kd.models``): ``store.models.load(id_or_name)``, ``.list()``, ``.export()``."""
        if self._models is None:
            from kdstore.student.registry import Models

            self._models = Models(self)
        return self._models

    def train_student(self, run_id: int | None = None, **kwargs: Any) -> int:
        """Train, export and register a student; returns its model_id. See :func:`kdstore.student.pipeline.train_student`."""
        from kdstore.student.pipeline import train_student

        return train_student(self, run_id, **kwargs)

    def predict(self, model: int | str | Any, features: Any = None, **kwargs: Any) -> pa.Table:
        """A student's predictions as Arrow: ``features`` = None (the model's own source), a feature
        source name, ``Embeddings(teacher)``, or in-memory data. See :mod:`kdstore.student.serve`."""
        from kdstore.student import serve
        from kdstore.student.features import Embeddings

        m = self.models.load(model)
        if features is None or isinstance(features, (str, Embeddings)):
            return serve.predict_store(self, m, features, **kwargs)
        return serve.predict_table(m, features, **kwargs)

    def enable_sql_functions(self) -> None:
        """Register ``kd_predict``, ``kd_predict_label`` and ``kd_embed`` on this connection (done on
        connect when the store holds a student). See :mod:`kdstore.student.serve`."""
        from kdstore.student.serve import register_sql_functions

        register_sql_functions(self)

    # -- report (kdstore.report does the work) --------------------------------------------------
    def report(self, path: str | Path, **kwargs: Any) -> ReportResult:
        """Write a self-contained HTML report of the store. See :func:`kdstore.report.write_report`."""
        from kdstore import report

        return report.write_report(self, path, **kwargs)

    # -- inspection -----------------------------------------------------------------------------
    def info(self) -> StoreInfo:
        """Counts per table, splits, labels, teachers and feature sources."""
        tables = ["labels", "examples", "gold", "weak", "teachers", "scores", "embeddings", "targets", "trust", "models", "runs"]
        counts = {}
        for t in tables:
            row = self.one(f"SELECT count(*) FROM kd.{t}")  # t is from the list above
            counts[t] = int(row[0]) if row else 0
        # non-null score elements = rows of kd.outputs (cheaper than counting the view)
        row = self.one("SELECT coalesce(sum(list_count(scores)), 0) FROM kd.scores")
        counts["outputs"] = int(row[0]) if row else 0
        splits = dict(self.execute("SELECT split, count(*) FROM kd.examples GROUP BY split ORDER BY split").fetchall())
        labels = [r[0] for r in self.execute("SELECT name FROM kd.labels ORDER BY label_id").fetchall()]
        teachers = [
            {"name": n, "kind": k, "output_type": o, "labels": int(nl), "rows": int(nr)}
            for n, k, o, nl, nr in self.execute(
                """
                SELECT t.name, t.kind, t.output_type,
                       (SELECT count(*) FROM kd.teacher_labels tl WHERE tl.teacher_id = t.teacher_id),
                       (SELECT count(*) FROM kd.scores s WHERE s.teacher_id = t.teacher_id)
                FROM kd.teachers t ORDER BY t.teacher_id
                """
            ).fetchall()
        ]
        features = [r[0] for r in self.execute("SELECT name FROM kd.feature_sources ORDER BY name").fetchall()]
        version_row = self.one("SELECT value FROM kd.meta WHERE key = 'schema_version'")
        return StoreInfo(
            path=self.path,
            schema_version=int(version_row[0]) if version_row else 0,
            counts=counts,
            splits={str(k): int(v) for k, v in splits.items()},
            labels=[str(x) for x in labels],
            teachers=teachers,
            feature_sources=[str(x) for x in features],
        )


def _open(path: str, read_only: bool, lock_timeout: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + lock_timeout
    while True:
        try:
            return duckdb.connect(path, read_only=read_only)
        except duckdb.IOException as e:
            if "lock" in str(e).lower() and time.monotonic() < deadline:
                time.sleep(0.02)
                continue
            raise KdstoreError(f"cannot open {path}: {e}") from e


def connect(
    path: str | Path = ":memory:",
    *,
    read_only: bool = False,
    trace: Callable[[str], object] | None = None,
    lock_timeout: float = 0.0,
    sql_dirs: Sequence[str | Path] = (),
) -> Store:
    """Open (creating or migrating if needed) a kdstore file.

    Args:
        path: the DuckDB file, or ``":memory:"``.
        read_only: open without write access (several read-only processes may share a file).
        trace: called with every SQL statement kdstore runs, e.g. ``trace=print``.
        lock_timeout: seconds to wait while another process holds the file's write lock.
        sql_dirs: folders of the analyst's own view files (``<view>.sql``), installed after
            kdstore's views with the same checks (see :mod:`kdstore.sqlfiles`). Views are
            (re)installed on a read-write open whenever the files changed.

    >>> with connect() as store:
    ...     store.add_labels(["cat", "dog"])
    {'cat': 0, 'dog': 1}
    """
    path = str(path)
    if read_only and path == ":memory:":
        raise KdstoreError("an in-memory store cannot be opened read-only (give a file path)")
    if read_only and not Path(path).exists():
        raise KdstoreError(f"cannot open {path} read-only: the file does not exist")
    con = _open(path, read_only, lock_timeout)
    try:
        if read_only:
            from kdstore.store.schema import stored_version

            version = stored_version(con)
            if version is None:
                raise StoreVersionError(f"{path} is not a kdstore store (no kd schema)")
            latest = latest_version()
            if version != latest:
                raise StoreVersionError(
                    f"{path} has schema version {version}, this kdstore has {latest}: "
                    + ("upgrade kdstore" if version > latest else "open it once read-write to migrate")
                )
        else:
            migrate(con, path)
            _add_missing_settings(con)
        from kdstore.sqlfiles import ensure_views

        ensure_views(con, path, sql_dirs, read_only=read_only)
    except BaseException:
        con.close()
        raise
    store = Store(con, path, read_only=read_only, trace=trace)
    store.sql_dirs = tuple(Path(d) for d in sql_dirs)
    if con.execute("SELECT count(*) FROM kd.models WHERE kind = 'student'").fetchall()[0][0]:
        store.enable_sql_functions()
    return store


def _add_missing_settings(con: duckdb.DuckDBPyConnection) -> None:
    have = {r[0] for r in con.execute("SELECT name FROM kd.settings").fetchall()}
    missing = [(n, v, d) for n, (v, d) in DEFAULT_SETTINGS.items() if n not in have]
    if missing:
        con.executemany("INSERT INTO kd.settings VALUES (?, ?, ?)", missing).fetchall()


__all__ = ["DEFAULT_SETTINGS", "SCHEMA_VERSION", "Settings", "Store", "StoreInfo", "connect", "sql_dir"]
