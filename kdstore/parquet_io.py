"""The whole store as a folder of Parquet files that Spark (or any engine) reads, and back.

Layout written by :func:`export_parquet` (one folder per ``kd`` table, Spark's convention)::

    <dir>/manifest.json                   format, schema version, row counts, column types
    <dir>/<table>/part-<i>.parquet        every base table of schema kd (labels, examples, scores, ...)
    <dir>/outputs/part-<i>.parquet        kd.outputs materialised (long: teacher_id, example_id, label_id, score)
    <dir>/features/<name>/part-<i>.parquet  each registered feature source (for teacher inference)

Both output shapes are written: ``scores`` (wide, ``list<float>`` per teacher x example) is the
physical table and makes the round trip lossless; ``outputs`` (long) is what the SQL views read,
materialised because the DuckDB list-unnest view has no one-to-one Spark twin and a scan of a flat
Parquet table is the fastest thing Spark does. ``outputs=False`` skips it (half the bytes) and
:func:`kdstore.spark.register_tables` then derives it from ``scores`` with ``posexplode``.
``partition_by_teacher=True`` writes ``scores``/``outputs`` Hive-partitioned
(``teacher_id=<id>/part-0.parquet``), the layout for a cluster.

:func:`import_parquet` reads such a folder back (or one Spark wrote: ``part-*.parquet`` files,
``_SUCCESS`` and ``.crc`` files ignored) in one transaction. Each table's columns must match the
store's (same names; integer widths, float widths, JSON/text and timestamp flavours may differ);
after the rows are in, the final state is checked (unique keys, every example/label/teacher id
known, score lists as long as the teacher's label alignment, no target on a test example) and any
problem rolls everything back with a :class:`~kdstore.errors.SchemaError`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdstore.errors import SchemaError
from kdstore.sqlfiles import kd_columns

if TYPE_CHECKING:
    from kdstore.store.core import Store

MANIFEST = "manifest.json"
FORMAT = "kdstore-parquet"
FORMAT_VERSION = 1
#: Tables never exported or imported: store bookkeeping.
_INTERNAL = frozenset({"meta"})
#: Tables that exist in the export only as derived data (not imported by default).
_DERIVED = frozenset({"outputs"})
#: Tables whose import replaces rows by key instead of the whole table.
_UPSERT = {"settings": ("name",)}
#: Unique keys checked after an import (other tables: none).
KEYS: dict[str, tuple[tuple[str, ...], ...]] = {
    "labels": (("label_id",), ("name",)),
    "examples": (("example_id",),),
    "gold": (("example_id", "label_id"),),
    "weak": (("example_id", "label_id", "source"),),
    "teachers": (("teacher_id",), ("name",)),
    "teacher_labels": (("teacher_id", "output_index"), ("teacher_id", "label_id")),
    "scores": (("teacher_id", "example_id"),),
    "embeddings": (("teacher_id", "example_id"),),
    "settings": (("name",),),
    "runs": (("run_id",),),
    "models": (("model_id",),),
    "feature_sources": (("name",),),
}
#: Id columns that must point at a row of their parent table, in any table that has them.
REFERENCES = {"example_id": "examples", "label_id": "labels", "teacher_id": "teachers"}
_PARTITIONABLE = frozenset({"scores", "outputs"})
_FILE_SIZE = "256MB"
_ROW_GROUP = 1 << 20


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What :func:`export_parquet` wrote: the folder and the rows of each table."""

    path: str
    rows: dict[str, int]
    features: dict[str, int]


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What :func:`import_parquet` loaded: rows read per table."""

    path: str
    rows: dict[str, int]


def _lit(text: str) -> str:
    """A SQL string literal (quoted by sqlglot, never by hand)."""
    from sqlglot import exp

    return str(exp.Literal.string(text).sql(dialect="duckdb"))


def _ident(name: str) -> str:
    from sqlglot import exp

    return str(exp.to_identifier(name, quoted=True).sql(dialect="duckdb"))


def _slug(name: str) -> str:
    """A folder name for a feature source: the name itself when it is plain, else hex."""
    return name if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*", name) else "x_" + name.encode().hex()


def kd_tables(store: Store) -> list[str]:
    """The base tables of schema ``kd`` (all migrations), bookkeeping excluded, in name order."""
    rows = store.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'kd' AND database_name = current_database() "
        "ORDER BY table_name"
    ).fetchall()
    return [str(r[0]) for r in rows if r[0] not in _INTERNAL]


def _columns(store: Store, relation_sql: str) -> list[tuple[str, str]]:
    return [(str(r[0]), str(r[1])) for r in store.execute(f"DESCRIBE {relation_sql}").fetchall()]


@contextlib.contextmanager
def _snapshot(store: Store) -> Iterator[None]:
    """One read transaction, so every file of an export comes from the same state of the store."""
    if store._tx_depth:  # already inside the caller's transaction
        yield
        return
    store.run("BEGIN TRANSACTION")
    try:
        yield
    finally:
        store.run("ROLLBACK")


def export_parquet(
    store: Store,
    path: str | Path,
    *,
    tables: Sequence[str] | None = None,
    outputs: bool = True,
    features: bool = True,
    partition_by_teacher: bool = False,
    overwrite: bool = False,
) -> ExportResult:
    """Write the store (or some tables) as Parquet, one folder per table, plus ``manifest.json``.

    Args:
        path: the folder to create. It must not exist or be empty, unless ``overwrite`` and it
            holds an earlier export (a ``manifest.json``), which is then replaced.
        tables: the ``kd`` tables to write (default all; ``"outputs"`` is the long view).
        outputs: also write ``outputs`` materialised when ``tables`` is None.
        features: also write every registered feature source when ``tables`` is None.
        partition_by_teacher: write ``scores`` and ``outputs`` Hive-partitioned by teacher_id.
        overwrite: replace an earlier export at ``path``.

    >>> import tempfile, kdstore
    >>> with kdstore.connect() as store, tempfile.TemporaryDirectory() as d:
    ...     _ = store.add_labels(["cat", "dog"])
    ...     store.export_parquet(d + "/x").rows["labels"]
    2
    """
    out = Path(path)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise SchemaError("the folder exists and is not empty (pass overwrite=True to replace an export)", source=str(out))
        if not (out / MANIFEST).is_file():
            raise SchemaError("refusing to overwrite a folder that is not a kdstore export (no manifest.json)", source=str(out))
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    known = kd_tables(store)
    if tables is None:
        chosen = known + (["outputs"] if outputs else [])
    else:
        chosen = list(dict.fromkeys(tables))
        for t in chosen:
            if t not in known and t != "outputs":
                raise SchemaError(f"unknown kd table {t!r}; known: {', '.join([*known, 'outputs'])}", source=str(out))
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "tables": {},
        "features": {},
    }
    rows: dict[str, int] = {}
    feats: dict[str, int] = {}
    with _snapshot(store):
        version = store.one("SELECT value FROM kd.meta WHERE key = 'schema_version'")
        manifest["schema_version"] = int(version[0]) if version else None
        for t in chosen:
            rel = f"kd.{_ident(t)}"
            partitioned = partition_by_teacher and t in _PARTITIONABLE
            n = _copy(store, f"SELECT * FROM {rel}", out / t, partitioned=partitioned)
            rows[t] = n
            manifest["tables"][t] = {
                "path": t,
                "rows": n,
                "partition_by": ["teacher_id"] if partitioned and n else [],
                "columns": [{"name": c, "type": ty} for c, ty in _columns(store, rel)],
            }
        if features and tables is None:
            for (name,) in store.execute("SELECT name FROM kd.feature_sources ORDER BY name").fetchall():
                from kdstore.ingest import feature_relation

                rel = feature_relation(str(name))
                sub = Path("features") / _slug(str(name))
                n = _copy(store, f"SELECT * FROM {rel}", out / sub, partitioned=False)
                feats[str(name)] = n
                manifest["features"][str(name)] = {
                    "path": sub.as_posix(),
                    "rows": n,
                    "columns": [{"name": c, "type": ty} for c, ty in _columns(store, rel)],
                }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return ExportResult(path=str(out), rows=rows, features=feats)


def _copy(store: Store, select: str, folder: Path, *, partitioned: bool) -> int:
    folder.parent.mkdir(parents=True, exist_ok=True)
    if partitioned:  # an empty result written partitioned leaves no file: write it unpartitioned
        has_rows = store.one(f"SELECT EXISTS ({select})")
        partitioned = bool(has_rows and has_rows[0])
    opts = f"FORMAT parquet, FILENAME_PATTERN 'part-{{i}}', ROW_GROUP_SIZE {_ROW_GROUP}"
    if partitioned:
        opts += ", PARTITION_BY (teacher_id)"
    else:
        opts += f", FILE_SIZE_BYTES '{_FILE_SIZE}'"
    row = store.one(f"COPY ({select}) TO {_lit(str(folder))} ({opts})")
    return int(row[0]) if row else 0


# ---------------------------------------------------------------------------------------------
# import
# ---------------------------------------------------------------------------------------------
def parquet_files(folder: Path) -> list[str]:
    """The data files of a table folder (recursive, Hive partitions included; ``_``/``.`` files skipped)."""
    files = []
    for f in sorted(folder.rglob("*.parquet")):
        rel = f.relative_to(folder).parts
        if any(p.startswith(("_", ".")) for p in rel):
            continue
        files.append(str(f))
    return files


_INT = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}
_FLOAT = {"FLOAT", "DOUBLE"}
_TEXT = {"VARCHAR", "JSON"}


def _family(t: str) -> str:
    t = t.upper()
    if t.endswith("[]"):
        return _family(t[:-2]) + "[]"
    if t in _INT:
        return "int"
    if t in _FLOAT or t.startswith("DECIMAL"):
        return "float"
    if t in _TEXT:
        return "text"
    if t.startswith("TIMESTAMP"):
        return "timestamp"
    return t


def _read_sql(files: list[str]) -> str:
    hive = any("=" in Path(f).parent.name for f in files)
    listing = "[" + ", ".join(_lit(f) for f in files) + "]"
    return f"read_parquet({listing}, hive_partitioning = {'true' if hive else 'false'}, union_by_name = true)"


def import_parquet(
    store: Store,
    path: str | Path,
    *,
    tables: Sequence[str] | None = None,
    mode: str = "replace",
    features: bool | None = None,
) -> ImportResult:
    """Load tables from a Parquet folder (an export, or one Spark wrote) into the store.

    Args:
        path: the folder with one sub-folder of Parquet files per table.
        tables: which tables to load (default: every ``kd`` table found in the folder; the derived
            ``outputs`` folder is skipped, load ``scores``).
        mode: ``"replace"`` (a loaded table's rows replace all its rows), ``"append"``, or
            ``"upsert"`` (rows whose key is in the files are replaced, e.g. the scores of the
            teachers a Spark run computed; tables without a key refuse it). ``settings`` are
            always updated by name.
        features: also load the feature sources listed in the manifest (copied into the store,
            replacing sources of the same name); default: when ``tables`` is None.

    Everything happens in one transaction: on any :class:`SchemaError` the store is unchanged.

    >>> import tempfile, kdstore
    >>> with tempfile.TemporaryDirectory() as d:
    ...     with kdstore.connect() as a:
    ...         _ = a.add_labels(["cat", "dog"])
    ...         _ = a.export_parquet(d + "/x")
    ...     with kdstore.connect() as b:
    ...         b.import_parquet(d + "/x", tables=["labels"]).rows
    {'labels': 2}
    """
    if mode not in ("replace", "append", "upsert"):
        raise SchemaError(f"mode must be 'replace', 'append' or 'upsert', got {mode!r}", source=str(path))
    root = Path(path)
    if not root.is_dir():
        raise SchemaError("no such folder", source=str(root))
    manifest: dict[str, Any] = {}
    if (root / MANIFEST).is_file():
        manifest = json.loads((root / MANIFEST).read_text())
        if manifest.get("format") != FORMAT:
            raise SchemaError(f"manifest.json is not a {FORMAT} manifest", source=str(root / MANIFEST))
        version = manifest.get("schema_version")
        mine = store.one("SELECT value FROM kd.meta WHERE key = 'schema_version'")
        if version is not None and mine is not None and int(version) > int(mine[0]):
            raise SchemaError(
                f"exported from schema version {version}, newer than this store's {mine[0]}: upgrade kdstore",
                source=str(root / MANIFEST),
            )
    known = kd_tables(store)
    if tables is None:
        chosen = [t for t in known if (root / t).is_dir() and t not in _DERIVED and t != "feature_sources"]
    else:
        chosen = list(dict.fromkeys(tables))
        for t in chosen:
            if t not in known:
                hint = " (load 'scores', the physical table)" if t == "outputs" else ""
                raise SchemaError(f"unknown kd table {t!r}{hint}", source=str(root))
            if not (root / t).is_dir():
                raise SchemaError(f"no folder for table {t!r}", source=str(root / t))
    # Parents first so an error message points at the referencing table, not the parent.
    order = {"labels": 0, "examples": 1, "teachers": 2, "teacher_labels": 3}
    chosen.sort(key=lambda t: order.get(t, 9))
    rows: dict[str, int] = {}
    with store.transaction():
        for t in chosen:
            rows[t] = _load_table(store, root / t, t, mode)
        _check_integrity(store, set(chosen))
        if features if features is not None else tables is None:
            for name, entry in sorted(manifest.get("features", {}).items()):
                rows[f"features.{name}"] = _load_features(store, root / entry["path"], name)
    return ImportResult(path=str(root), rows=rows)


def _load_table(store: Store, folder: Path, table: str, mode: str) -> int:
    files = parquet_files(folder)
    target = f"kd.{_ident(table)}"
    if not files:  # Spark writes no file for an empty result in some versions: an empty table
        if mode == "replace" and table not in _UPSERT:
            store.run(f"DELETE FROM {target}")
        return 0
    src = str(folder)
    read = _read_sql(files)
    try:
        have = dict(_columns(store, f"SELECT * FROM {read}"))
    except Exception as e:
        raise SchemaError(f"cannot read as Parquet: {e}", source=src) from e
    want = kd_columns(store, table)
    cols = []
    for name, typ, nullable, has_default in want:
        if name not in have:
            if nullable or has_default:
                continue
            raise SchemaError(f"missing column (columns are: {', '.join(have)})", source=src, column=name)
        if _family(have[name]) != _family(typ):
            raise SchemaError(f"type {have[name]} does not match the store's {typ}", source=src, column=name)
        cols.append(name)
    extra = [c for c in have if c not in {w[0] for w in want}]
    if extra:
        raise SchemaError(f"unknown column (kd.{table} has {', '.join(w[0] for w in want)})", source=src, column=extra[0])
    col_list = ", ".join(_ident(c) for c in cols)
    not_null = [w.name for w in want if not w.nullable and w.name in cols]
    if not_null:  # one scan counts the NULLs of every NOT NULL column
        counts = store.one(
            "SELECT " + ", ".join(f"count(*) FILTER (WHERE {_ident(c)} IS NULL)" for c in not_null) + f" FROM {read}"
        ) or ()
        for name, bad in zip(not_null, counts, strict=False):
            if bad:
                raise SchemaError(f"{bad} null values in a NOT NULL column", source=src, column=name)
    upsert_key = _UPSERT.get(table) or (KEYS[table][0] if mode == "upsert" and table in KEYS else None)
    if mode == "upsert" and upsert_key is None:
        raise SchemaError(f"kd.{table} has no key to upsert by; use mode='append' or 'replace'", source=src)
    try:
        if upsert_key is not None:
            key = " AND ".join(f"t.{_ident(k)} = s.{_ident(k)}" for k in upsert_key)
            store.run(f"DELETE FROM {target} t WHERE EXISTS (SELECT 1 FROM {read} s WHERE {key})")
        elif mode == "replace":
            store.run(f"DELETE FROM {target}")
        row = store.one(f"INSERT INTO {target} ({col_list}) SELECT {col_list} FROM {read}")
    except SchemaError:
        raise
    except Exception as e:  # a cast that overflows, a CHECK constraint (split), ...
        raise SchemaError(f"rows do not fit kd.{table}: {e}", source=src) from e
    return int(row[0]) if row else 0


def _load_features(store: Store, folder: Path, name: str) -> int:
    files = parquet_files(folder)
    if not files:
        raise SchemaError("no Parquet files for this feature source", source=str(folder))
    import pyarrow.parquet as pq

    table = pq.read_table(files)
    store.register_features(name, table, replace=True)
    return int(table.num_rows)


def _check_integrity(store: Store, changed: set[str]) -> None:
    """Check the final state around the changed tables; raise :class:`SchemaError` on the first problem."""
    all_tables = kd_tables(store)
    cols = {t: [c.name for c in kd_columns(store, t)] for t in all_tables}
    for t in sorted(changed):
        for key in KEYS.get(t, ()):
            k = ", ".join(_ident(c) for c in key)
            dup = store.one(f"SELECT {k} FROM kd.{_ident(t)} GROUP BY {k} HAVING count(*) > 1 LIMIT 1")
            if dup is not None:
                shown = ", ".join(f"{c}={v!r}" for c, v in zip(key, dup, strict=True))
                raise SchemaError(f"duplicate key ({shown})", source=f"kd.{t}", column=key[-1])
    # References: from a changed table to any parent, and to a changed parent from any table.
    for t in all_tables:
        for col, parent in REFERENCES.items():
            if t == parent or col not in cols[t] or not ({t, parent} & changed):
                continue
            bad = store.one(
                f"SELECT c.{_ident(col)} FROM kd.{_ident(t)} c WHERE c.{_ident(col)} IS NOT NULL AND NOT EXISTS "
                f"(SELECT 1 FROM kd.{_ident(parent)} p WHERE p.{_ident(col)} = c.{_ident(col)}) LIMIT 1"
            )
            if bad is not None:
                what = {"example_id": "example", "label_id": "label", "teacher_id": "teacher"}[col]
                raise SchemaError(f"unknown {what} {bad[0]} (not in kd.{parent})", source=f"kd.{t}", column=col)
    if {"scores", "teacher_labels"} & changed:
        bad = store.one(
            """
            SELECT s.teacher_id, s.example_id, len(s.scores), coalesce(w.width, 0)
            FROM kd.scores s LEFT JOIN (SELECT teacher_id, count(*) AS width FROM kd.teacher_labels GROUP BY 1) w
              USING (teacher_id)
            WHERE len(s.scores) <> coalesce(w.width, 0) LIMIT 1
            """
        )
        if bad is not None:
            raise SchemaError(
                f"teacher {bad[0]}, example {bad[1]}: {bad[2]} scores but the teacher has {bad[3]} labels",
                source="kd.scores", column="scores",
            )
        bad = store.one(
            "SELECT teacher_id, example_id FROM kd.scores "
            "WHERE len(list_filter(scores, lambda x: isnan(x) OR isinf(x))) > 0 LIMIT 1"
        )
        if bad is not None:
            raise SchemaError(
                f"teacher {bad[0]}, example {bad[1]}: NaN or infinite score (NULL means no opinion)",
                source="kd.scores", column="scores",
            )
    if {"targets", "examples"} & changed:
        bad = store.one(
            "SELECT t.example_id FROM kd.targets t JOIN kd.examples e USING (example_id) WHERE e.split = 'test' LIMIT 1"
        )
        if bad is not None:
            raise SchemaError(
                f"a target on test example {bad[0]}: the test split is never used for training",
                source="kd.targets", column="example_id",
            )


__all__ = ["ExportResult", "ImportResult", "export_parquet", "import_parquet", "kd_tables", "parquet_files"]
