"""Schema DDL files (``sql/schema/NNN_name.sql``), versions and migrations."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from kdstore.errors import StoreVersionError

_DDL_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


def sql_dir() -> Path:
    """The ``sql/`` folder: inside the installed package (wheel) or beside it (source checkout)."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "sql", here.parent / "sql"):
        if (candidate / "schema").is_dir():
            return candidate
    raise FileNotFoundError(f"kdstore's sql/ folder is missing (looked in {here} and {here.parent})")


def migrations() -> list[tuple[int, Path]]:
    """All DDL files as (version, path), in version order."""
    found = []
    for path in sorted((sql_dir() / "schema").glob("*.sql")):
        m = _DDL_NAME.match(path.name)
        if not m:
            raise StoreVersionError(f"schema file {path} is not named NNN_name.sql")
        found.append((int(m.group(1)), path))
    versions = [v for v, _ in found]
    if versions != list(range(1, len(versions) + 1)):
        raise StoreVersionError(f"schema versions must run 1..N without gaps, found {versions}")
    return found


def latest_version() -> int:
    return len(migrations())


def stored_version(con: duckdb.DuckDBPyConnection) -> int | None:
    """The schema version recorded in the file, or None for a file without a kd schema."""
    has_meta = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'kd' AND table_name = 'meta'"
    ).fetchall()
    if has_meta[0][0] == 0:
        has_kd = con.execute("SELECT count(*) FROM duckdb_schemas() WHERE schema_name = 'kd'").fetchall()
        if has_kd[0][0]:
            raise StoreVersionError("this file has a 'kd' schema but no kd.meta: not a kdstore store")
        return None
    rows = con.execute("SELECT value FROM kd.meta WHERE key = 'schema_version'").fetchall()
    if not rows:
        raise StoreVersionError("kd.meta has no schema_version: not a kdstore store")
    return int(rows[0][0])


def migrate(con: duckdb.DuckDBPyConnection, path: str) -> int:
    """Bring the file to the latest schema in one transaction; return the version it had (0 = new)."""
    current = stored_version(con)
    latest = latest_version()
    if current is not None and current > latest:
        raise StoreVersionError(
            f"{path} has schema version {current}, newer than this kdstore understands ({latest}): "
            "upgrade kdstore to open it"
        )
    if current == latest:
        return latest
    con.execute("BEGIN TRANSACTION").fetchall()
    try:
        for version, ddl in migrations():
            if current is not None and version <= current:
                continue
            try:
                con.execute(ddl.read_text()).fetchall()
            except duckdb.Error as e:
                raise StoreVersionError(
                    f"{path}: migration {ddl.name} failed, the store stays at version {current or 0}: {e}"
                ) from e
        con.execute("DELETE FROM kd.meta WHERE key = 'schema_version'").fetchall()
        con.execute("INSERT INTO kd.meta VALUES ('schema_version', ?)", [str(latest)]).fetchall()
        con.execute("COMMIT").fetchall()
    except BaseException:
        con.execute("ROLLBACK").fetchall()
        raise
    return current or 0
