"""kdstore.sqlfiles: finding, parsing, checking, ordering, installing and transpiling view files."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest

import kdstore
from kdstore import cli, sqlfiles
from kdstore.errors import SqlDependencyError, SqlFileError, TranspileError

HEADER = "-- grain: one row per x.\n-- empty: none.\n-- oracle: tests/oracles.py::{name}\n"
GOLDEN = Path(__file__).parent / "golden"


def write_view(folder: Path, name: str, body: str, *, header: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / f"{name}.sql"
    p.write_text((HEADER.format(name=name) if header else "") + body)
    return p


# ---------------------------------------------------------------------------------------------
# static checks
# ---------------------------------------------------------------------------------------------
def test_builtin_views_parse_and_check() -> None:
    views = sqlfiles.load_views()
    assert "label_metrics" in views.names() and "consensus_z" in views.names()
    order = views.names()
    for v in views:  # every view after the views it reads
        for dep in views.dependencies(v.name):
            assert order.index(dep) < order.index(v.name), (dep, v.name)
    with kdstore.connect() as store:
        cols = sqlfiles.check(views, store.con)
    assert cols["label_metrics"][:4] == ("teacher_id", "teacher", "label_id", "label")


def test_parse_error_has_line_and_column(tmp_path: Path) -> None:
    p = write_view(tmp_path, "bad", "CREATE OR REPLACE VIEW kd.bad AS\nSELECT 1 +\nFROM kd.labels WHERE;\n")
    with pytest.raises(SqlFileError, match=r"bad\.sql:\d+:\d+: parse error") as info:
        sqlfiles.parse_view_file(p)
    assert info.value.path == str(p) and info.value.line is not None and info.value.line >= 4


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("CREATE OR REPLACE VIEW kd.other AS SELECT 1 AS x;\n", "must be named kd.v"),
        ("CREATE VIEW kd.v AS SELECT 1 AS x;\n", "CREATE OR REPLACE VIEW"),
        ("CREATE OR REPLACE VIEW v AS SELECT 1 AS x;\n", "must be named kd.v"),
        ("CREATE OR REPLACE VIEW kd.v AS SELECT 1 AS x;\nSELECT 2;\n", "exactly one statement, found 2"),
        ("CREATE OR REPLACE TABLE kd.v AS SELECT 1 AS x;\n", "expected CREATE OR REPLACE VIEW"),
        ("CREATE OR REPLACE VIEW kd.v AS SELECT label_id FROM labels;\n", "table 'labels' has no schema"),
        ("CREATE OR REPLACE VIEW kd.v AS SELECT * FROM kd.v;\n", "reads itself"),
    ],
)
def test_bad_statements(tmp_path: Path, body: str, message: str) -> None:
    p = write_view(tmp_path, "v", body)
    with pytest.raises(SqlFileError, match=message):
        sqlfiles.parse_view_file(p)


def test_header_is_required(tmp_path: Path) -> None:
    p = write_view(tmp_path, "v", "-- grain: one row per label.\nCREATE OR REPLACE VIEW kd.v AS SELECT 1 AS x;\n", header=False)
    with pytest.raises(SqlFileError, match=r"v\.sql:1:1: the comment header must state 'empty:', 'oracle:'"):
        sqlfiles.parse_view_file(p)


def test_misspelt_column_names_file_line_and_column(tmp_path: Path) -> None:
    body = "CREATE OR REPLACE VIEW kd.v AS\nSELECT l.label_id,\n       l.nmae\nFROM kd.labels AS l;\n"
    write_view(tmp_path, "v", body)
    views = sqlfiles.load_views([tmp_path])
    with kdstore.connect() as store, pytest.raises(SqlFileError, match="could not be resolved") as info:
        sqlfiles.check(views, store.con)
    e = info.value
    assert e.path == str(tmp_path / "v.sql")
    assert (e.line, e.col) == (6, 10)  # 3 header lines; "       l.nmae": the identifier starts at column 10
    assert f"{tmp_path / 'v.sql'}:6:10:" in str(e)


def test_cycle_names_the_files(tmp_path: Path) -> None:
    write_view(tmp_path, "a", "CREATE OR REPLACE VIEW kd.a AS SELECT x FROM kd.b;\n")
    write_view(tmp_path, "b", "CREATE OR REPLACE VIEW kd.b AS SELECT x FROM kd.a;\n")
    with pytest.raises(SqlDependencyError, match=r"cycle: kd\.(a|b) -> kd\.(a|b) -> kd\.(a|b)") as info:
        sqlfiles.load_views([tmp_path], builtin=False)
    assert "a.sql" in str(info.value) and "b.sql" in str(info.value)


def test_missing_view_is_a_dependency_error(tmp_path: Path) -> None:
    write_view(tmp_path, "v", "CREATE OR REPLACE VIEW kd.v AS\nSELECT x\nFROM kd.no_such_view;\n")
    views = sqlfiles.load_views([tmp_path], builtin=False)
    with kdstore.connect() as store, pytest.raises(SqlDependencyError, match=r"v\.sql:6:.*reads kd\.no_such_view"):
        sqlfiles.check(views, store.con)


def test_duplicate_view_names_are_rejected(tmp_path: Path) -> None:
    write_view(tmp_path, "label_metrics", "CREATE OR REPLACE VIEW kd.label_metrics AS SELECT 1 AS x;\n")
    with pytest.raises(SqlFileError, match=r"kd\.label_metrics is already defined by .*sql/label_metrics\.sql"):
        sqlfiles.load_views([tmp_path])


def test_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(SqlFileError, match="not a folder"):
        sqlfiles.load_views([tmp_path / "nope"])


# ---------------------------------------------------------------------------------------------
# installing: analyst folders, reinstall only on change, read-only opens
# ---------------------------------------------------------------------------------------------
def test_analyst_folder_installs_after_builtin_views(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    write_view(mine, "best_only", "CREATE OR REPLACE VIEW kd.best_only AS\nSELECT label, teacher FROM kd.label_experts WHERE is_best;\n")
    db = tmp_path / "s.duckdb"
    with kdstore.connect(db, sql_dirs=[mine]) as store:
        store.add_labels(["a"])
        assert store.view("best_only").column_names == ["label", "teacher"]
        meta = dict(store.execute("SELECT key, value FROM kd.meta").fetchall())
        assert meta[sqlfiles.META_EXTRA_HASH] == sqlfiles.load_views([mine]).subset(builtin=False).fingerprint()
    # unchanged: a read-write open installs nothing (no CREATE VIEW runs)
    seen: list[str] = []
    with kdstore.connect(db, sql_dirs=[mine], trace=seen.append) as store:
        pass
    # a read-only open works on the installed views, with or without the folder
    with kdstore.connect(db, read_only=True) as store:
        assert store.view("best_only").num_rows == 0
    with kdstore.connect(db, read_only=True, sql_dirs=[mine]) as store:
        assert "best_only" in kdstore.evaluate.installed_views(store)
    # a changed file is reinstalled on the next read-write open
    write_view(mine, "best_only", "CREATE OR REPLACE VIEW kd.best_only AS\nSELECT label FROM kd.label_experts WHERE is_best;\n")
    with pytest.raises(kdstore.KdstoreError, match="open it read-write once"):
        kdstore.connect(db, read_only=True, sql_dirs=[mine])
    with kdstore.connect(db, sql_dirs=[mine]) as store:
        assert store.view("best_only").column_names == ["label"]
    # opening without the folder keeps the analyst's views
    with kdstore.connect(db) as store:
        assert "best_only" in kdstore.evaluate.installed_views(store)


def test_bad_analyst_view_fails_the_open_and_leaves_the_store(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    write_view(mine, "oops", "CREATE OR REPLACE VIEW kd.oops AS\nSELECT teacher, precison FROM kd.label_metrics;\n")
    db = tmp_path / "s.duckdb"
    kdstore.connect(db).close()
    with pytest.raises(SqlFileError, match=r"oops\.sql:5:\d+: Column 'precison' could not be resolved"):
        kdstore.connect(db, sql_dirs=[mine])
    with kdstore.connect(db, read_only=True) as store:
        assert "oops" not in kdstore.evaluate.installed_views(store)


def test_stale_builtin_views_are_dropped(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    with kdstore.connect(db) as store:
        store.run("CREATE VIEW kd.retired AS SELECT 1 AS x")
        store.run("UPDATE kd.meta SET value = '[\"retired\"]' WHERE key = ?", [sqlfiles.META_BUILTIN_NAMES])
        store.run("UPDATE kd.meta SET value = 'old' WHERE key = ?", [sqlfiles.META_BUILTIN_HASH])
    with kdstore.connect(db) as store:
        assert "retired" not in kdstore.evaluate.installed_views(store)
        assert "label_metrics" in kdstore.evaluate.installed_views(store)


# ---------------------------------------------------------------------------------------------
# transpiling
# ---------------------------------------------------------------------------------------------
def test_transpile_whole_set_to_spark() -> None:
    text = sqlfiles.transpile(sqlfiles.load_views(), "spark")
    assert text.index("kd.params ") < text.index("kd.decisions ") < text.index("kd.label_metrics ")
    # DuckDB's 1-based computed subscripts become Spark's 1-based TRY_ELEMENT_AT (NULL out of
    # bounds, as in DuckDB), never a[i]; decimal literals become DOUBLE as in DuckDB
    assert "TRY_ELEMENT_AT(r.scores, tl.output_index + 1)" in text
    assert "scores[" not in text
    assert "CAST(2509.0809287301226727 AS DOUBLE)" in text


@pytest.mark.parametrize(
    ("select", "message"),
    [
        ("SELECT getvariable('t') AS x", "getvariable"),
        ("SELECT list(label_id ORDER BY name) AS x FROM kd.labels", r"loses its ORDER BY"),
        ("SELECT list_sum([1, 2]) AS x", r"list_sum\(\) is unknown to sqlglot"),
        ("SELECT unnest([1, 2]) AS a, unnest([3, 4]) AS b", "one UNNEST/EXPLODE per SELECT"),
    ],
)
def test_portability_failures(tmp_path: Path, select: str, message: str) -> None:
    write_view(tmp_path, "v", f"CREATE OR REPLACE VIEW kd.v AS\n{select};\n")
    views = sqlfiles.load_views([tmp_path], builtin=False)
    assert sqlfiles.transpile_view(views.get("v"), "duckdb").startswith("-- grain")
    with pytest.raises(TranspileError, match=message) as info:
        sqlfiles.transpile(views, "spark")
    assert "v.sql" in str(info.value)


def test_unknown_dialect() -> None:
    with pytest.raises(TranspileError, match="unknown dialect 'nosql'"):
        sqlfiles.transpile(sqlfiles.load_views(), "nosql")


def test_kd_columns(tmp_path: Path) -> None:
    """Columns of a kd table or view in order, with nullability and defaults, of the store's own database only."""
    with kdstore.connect() as store:
        ex = sqlfiles.kd_columns(store, "examples")
        assert ex == [("example_id", "BIGINT", False, False), ("split", "VARCHAR", False, False), ("slice", "VARCHAR", True, False)]
        assert sqlfiles.kd_columns(store.con, "examples") == ex
        assert [c.name for c in sqlfiles.kd_columns(store, "label_metrics")][:4] == ["teacher_id", "teacher", "label_id", "label"]
        assert any(c.has_default for c in sqlfiles.kd_columns(store, "runs"))
        assert sqlfiles.kd_columns(store, "no_such_view") == []
        other = tmp_path / "other.duckdb"
        store.run(f"ATTACH '{other}' AS other")
        store.run("CREATE SCHEMA other.kd")
        store.run("CREATE TABLE other.kd.examples (x INTEGER)")
        assert sqlfiles.kd_columns(store, "examples") == ex


def test_spark_goldens() -> None:
    """tests/golden/spark/<view>.sql: the reviewed Spark SQL of every view.
    Regenerate with KDSTORE_UPDATE_GOLDEN=1 and review the diff."""
    folder = GOLDEN / "spark"
    views = sqlfiles.load_views()
    if os.environ.get("KDSTORE_UPDATE_GOLDEN"):
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.sql"):
            old.unlink()
        for v in views:
            (folder / f"{v.name}.sql").write_text(sqlfiles.transpile_view(v, "spark") + ";\n")
    assert sorted(p.stem for p in folder.glob("*.sql")) == sorted(views.names()), "a golden file per view"
    for v in views:
        want = (folder / f"{v.name}.sql").read_text()
        assert sqlfiles.transpile_view(v, "spark") + ";\n" == want, f"{v.name}: Spark SQL changed; review and regenerate"


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------
def test_cli_sql_views_query(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "s.duckdb"
    with kdstore.connect(db) as store:
        store.add_labels(["cat", "dog"])
        store.add_examples(pa.table({"example_id": [1, 2], "split": ["valid", "valid"]}))
    assert cli.main(["sql", "--dialect", "spark"]) == 0
    out = capsys.readouterr().out
    assert "CREATE OR REPLACE VIEW kd.label_metrics AS" in out and "COLLECT_LIST" in out
    assert cli.main(["sql", str(db)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("-- kd.") and "-- kd.params  (sql/params.sql)\n-- params:" in out
    assert cli.main(["views", str(db)]) == 0
    out = capsys.readouterr().out
    assert "kd.label_metrics" in out and "precision_lb" in out
    assert cli.main(["query", str(db), "SELECT label_id, name FROM kd.labels ORDER BY 1"]) == 0
    assert capsys.readouterr().out.splitlines() == ["label_id  name", "--------  ----", "0         cat", "1         dog", "(2 rows)"]
    assert cli.main(["query", str(db), "SELECT * FROM kd.labels", "--format", "csv"]) == 0
    assert capsys.readouterr().out == "label_id,name\n0,cat\n1,dog\n"
    assert cli.main(["query", str(db), "SELECT nope FROM kd.labels"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: query failed:") and err.count("\n") == 1


def test_cli_sql_reports_bad_analyst_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_view(tmp_path, "v", "CREATE OR REPLACE VIEW kd.v AS\nSELECT getvariable('x') AS x;\n")
    assert cli.main(["sql", "--dialect", "spark", "--sql-dir", str(tmp_path)]) == 1
    assert "getvariable() has no spark equivalent" in capsys.readouterr().err
