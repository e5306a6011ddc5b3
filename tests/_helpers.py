"""Shared test helpers: a full snapshot of a store, to prove that a failed call changed nothing."""

from __future__ import annotations

from typing import Any

import kdstore


def snapshot(store: kdstore.Store) -> dict[str, Any]:
    """Every row of every table in schemas kd and features (sorted), plus the catalog of relations."""
    rels = store.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE schema_name IN ('kd', 'features') "
        "ORDER BY ALL"
    ).fetchall()
    views = store.execute(
        "SELECT schema_name, view_name, sql FROM duckdb_views() WHERE schema_name IN ('kd', 'features') "
        "ORDER BY ALL"
    ).fetchall()
    snap: dict[str, Any] = {"__tables__": rels, "__views__": views}
    for schema, table in rels:
        q = f'SELECT * FROM "{schema}"."{table}"'  # names come from the catalog, not from users
        rows = store.execute(q).fetchall()
        snap[f"{schema}.{table}"] = sorted(rows, key=repr)
    return snap


def small_store(store: kdstore.Store, n: int = 6) -> kdstore.Store:
    """Labels a, b, c; examples 0..n-1 (train, then valid, then test)."""
    import pyarrow as pa

    store.add_labels(["a", "b", "c"])
    splits = [("train", "valid", "test")[min(i * 3 // n, 2)] for i in range(n)]
    store.add_examples(pa.table({"example_id": list(range(n)), "split": splits}))
    return store


def digest(store: kdstore.Store) -> dict[str, tuple[int, int]]:
    """(row count, xor of row hashes) of every table in kd and features: a snapshot for big stores."""
    rels = store.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE schema_name IN ('kd', 'features') ORDER BY ALL"
    ).fetchall()
    out = {}
    for schema, table in rels:
        row = store.one(f'SELECT count(*), coalesce(bit_xor(hash(t)), 0) FROM "{schema}"."{table}" AS t')
        assert row is not None
        out[f"{schema}.{table}"] = (int(row[0]), int(row[1]))
    return out
