"""connect(): schema creation, versions, migrations, read-only, settings, trace, transactions."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import kdstore
from kdstore.errors import KdstoreError, SchemaError, StoreVersionError
from kdstore.store import core, schema
from tests._helpers import snapshot


def test_new_store_has_schema_and_version(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    with kdstore.connect(path) as store:
        assert store.one("SELECT value FROM kd.meta WHERE key = 'schema_version'") == (str(core.SCHEMA_VERSION),)
        tables = {r[0] for r in store.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'kd'").fetchall()}
        assert {"labels", "examples", "gold", "weak", "teachers", "teacher_labels", "scores", "embeddings",
                "settings", "feature_sources", "runs", "models", "trust", "targets", "meta"} <= tables
        assert store.one("SELECT count(*) FROM duckdb_views() WHERE schema_name = 'kd' AND view_name = 'outputs'") == (1,)
        store.add_labels(["x"])
    with kdstore.connect(path) as store:  # reopen: same data, no second migration
        assert store.one("SELECT name FROM kd.labels") == ("x",)
        # one schema_version row (the other kd.meta rows record the installed views, see sqlfiles)
        assert store.one("SELECT count(*) FROM kd.meta WHERE key = 'schema_version'") == (1,)
        assert store.info().schema_version == core.SCHEMA_VERSION


def _bump_version(path: Path, version: int) -> None:
    with kdstore.connect(path) as store:
        store.run("UPDATE kd.meta SET value = ? WHERE key = 'schema_version'", [str(version)])


def test_newer_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    _bump_version(path, core.SCHEMA_VERSION + 1)
    with pytest.raises(StoreVersionError, match=r"newer than this kdstore.*upgrade kdstore"):
        kdstore.connect(path)
    with pytest.raises(StoreVersionError, match=rf"schema version {core.SCHEMA_VERSION + 1}.*upgrade kdstore"):
        kdstore.connect(path, read_only=True)


NEXT = core.SCHEMA_VERSION + 1  # the version a fake extra migration gets
MORE = f"{NEXT:03d}_more.sql"


def _fake_sql_dir(tmp_path: Path, migration: str) -> Path:
    """The real migrations plus one more, ``MORE``."""
    root = tmp_path / "sql"
    (root / "schema").mkdir(parents=True)
    for _, ddl in schema.migrations():
        shutil.copy(ddl, root / "schema" / ddl.name)
    (root / "schema" / MORE).write_text(migration)
    return root


def test_older_store_is_migrated_in_one_transaction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.duckdb"
    with kdstore.connect(path) as store:
        store.add_labels(["kept"])
    root = _fake_sql_dir(tmp_path, "CREATE TABLE kd.extra (x INTEGER);\nALTER TABLE kd.labels ADD COLUMN color VARCHAR;\n")
    monkeypatch.setattr(schema, "sql_dir", lambda: root)
    assert schema.latest_version() == NEXT
    with pytest.raises(StoreVersionError, match="open it once read-write to migrate"):
        kdstore.connect(path, read_only=True)  # read-only never migrates
    with kdstore.connect(path) as store:
        assert store.one("SELECT value FROM kd.meta WHERE key = 'schema_version'") == (str(NEXT),)
        assert store.one("SELECT count(*) FROM kd.extra") == (0,)
        assert store.one("SELECT name, color FROM kd.labels") == ("kept", None)


def test_failed_migration_leaves_the_old_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.duckdb"
    with kdstore.connect(path) as store:
        store.add_labels(["kept"])
        before = snapshot(store)
    root = _fake_sql_dir(tmp_path, "CREATE TABLE kd.extra (x INTEGER);\nSELECT * FROM kd.no_such_table;\n")
    with monkeypatch.context() as m:
        m.setattr(schema, "sql_dir", lambda: root)
        with pytest.raises(StoreVersionError, match=rf"migration {MORE} failed, the store stays at version {core.SCHEMA_VERSION}.*no_such_table"):
            kdstore.connect(path)
    with kdstore.connect(path) as store:
        assert snapshot(store) == before
        assert store.one("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'extra'") == (0,)


def test_migration_files_must_be_numbered_without_gaps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _fake_sql_dir(tmp_path, "SELECT 1;")
    (root / "schema" / MORE).rename(root / "schema" / f"{NEXT + 1:03d}_more.sql")
    monkeypatch.setattr(schema, "sql_dir", lambda: root)
    found = ", ".join(str(v) for v in [*range(1, NEXT), NEXT + 1])
    with pytest.raises(StoreVersionError, match=rf"without gaps, found \[{found}\]"):
        schema.migrations()


def test_read_only(tmp_path: Path) -> None:
    missing = tmp_path / "nope.duckdb"
    with pytest.raises(KdstoreError, match="does not exist"):
        kdstore.connect(missing, read_only=True)
    assert not missing.exists()
    with pytest.raises(KdstoreError, match="in-memory store cannot be opened read-only"):
        kdstore.connect(":memory:", read_only=True)
    path = tmp_path / "s.duckdb"
    with kdstore.connect(path) as store:
        store.add_labels(["a"])
    with kdstore.connect(path, read_only=True) as ro:
        assert ro.one("SELECT name FROM kd.labels") == ("a",)
        with pytest.raises(KdstoreError, match="read-only"):
            ro.add_labels(["b"])


def test_plain_duckdb_file_is_not_a_store_read_only(tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "plain.duckdb"
    duckdb.connect(str(path)).close()
    with pytest.raises(StoreVersionError, match="not a kdstore store"):
        kdstore.connect(path, read_only=True)


def test_settings(store: kdstore.Store) -> None:
    defaults = {k: v for k, (v, _) in core.DEFAULT_SETTINGS.items()}
    assert store.settings.to_dict() == defaults
    store.settings.update(threshold=0.7, z_threshold=3)
    store.settings.update({"min_support": 2})
    assert store.settings["threshold"] == 0.7 and store.settings["z_threshold"] == 3.0
    assert store.settings["min_support"] == 2.0
    with pytest.raises(SchemaError, match=r"unknown setting 'thresold'; known: .*threshold"):
        store.settings.update(thresold=0.1)
    for bad in (float("nan"), float("inf"), "0.5", True):
        with pytest.raises(SchemaError, match="must be a finite number"):
            store.settings.update(threshold=bad)  # type: ignore[arg-type]
    assert store.settings["threshold"] == 0.7  # a failed update changes nothing
    with pytest.raises(KeyError):
        store.settings["nope"]
    store.settings.reset()
    assert store.settings.to_dict() == defaults


def test_missing_settings_are_added_on_open(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    with kdstore.connect(path) as store:
        store.settings.update(threshold=0.9)
        store.run("DELETE FROM kd.settings WHERE name = 'z_threshold'")
    with kdstore.connect(path) as store:
        assert store.settings["z_threshold"] == core.DEFAULT_SETTINGS["z_threshold"][0]
        assert store.settings["threshold"] == 0.9  # a changed value is kept


def test_trace_receives_sql() -> None:
    seen: list[str] = []
    with kdstore.connect(trace=seen.append) as store:
        store.add_labels(["a"])
        store.query("SELECT 42")
    assert any("INSERT INTO kd.labels" in s for s in seen)
    assert "SELECT 42" in seen
    assert "BEGIN TRANSACTION" in seen and "COMMIT" in seen


def test_transactions_nest_and_roll_back(store: kdstore.Store) -> None:
    before = snapshot(store)
    with pytest.raises(RuntimeError, match="boom"), store.transaction():
        store.add_labels(["a"])  # its own transaction joins the outer one
        with store.transaction():
            store.run("INSERT INTO kd.meta VALUES ('x', 'y')")
        raise RuntimeError("boom")
    assert snapshot(store) == before
    with store.transaction():
        store.add_labels(["a"])
    assert store.one("SELECT name FROM kd.labels") == ("a",)


def test_info(store: kdstore.Store) -> None:
    import pyarrow as pa

    store.add_labels(["a", "b"])
    store.add_examples(pa.table({"example_id": [0, 1, 2], "split": ["train", "valid", "valid"]}))
    store.add_teacher("t", labels=["a", "b"], output_type="multilabel")
    store.ingest_outputs("t", pa.table({"example_id": [0, 1], "score": [[0.5, None], [0.25, 0.75]]}), form="wide")
    info = store.info()
    assert info.splits == {"train": 1, "valid": 2}
    assert info.labels == ["a", "b"]
    assert info.counts["scores"] == 2 and info.counts["outputs"] == 3
    assert info.counts["outputs"] == store.one("SELECT count(*) FROM kd.outputs")[0]  # type: ignore[index]
    assert info.teachers == [{"name": "t", "kind": "stored", "output_type": "multilabel", "labels": 2, "rows": 2}]
