"""The DuckDB store: :func:`connect` returns a :class:`Store`."""

from __future__ import annotations

from kdstore.store.core import SCHEMA_VERSION, Settings, Store, StoreInfo, connect, sql_dir

__all__ = ["SCHEMA_VERSION", "Settings", "Store", "StoreInfo", "connect", "sql_dir"]
