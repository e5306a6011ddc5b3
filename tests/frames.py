"""Compare two query results as multisets of rows, floats within a tolerance (DuckDB vs Spark)."""

from __future__ import annotations

import decimal
import math
from typing import Any

import pyarrow as pa


def _norm(v: Any) -> Any:
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, list):
        return tuple(_norm(x) for x in v)
    return v


def _key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """Sort key: NULLs first, floats rounded so float noise does not reorder rows."""
    out: list[Any] = []
    for v in row:
        if v is None:
            out.append((0, ""))
        elif isinstance(v, float):
            out.append((1, "nan") if math.isnan(v) else (1, round(v, 6)))
        elif isinstance(v, tuple):
            out.append((2, repr(_key(v))))
        else:
            out.append((1, v) if isinstance(v, (int, bool)) else (3, repr(v)))
    return tuple(out)


def _close(a: Any, b: Any, tol: float) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None or isinstance(a, bool) or isinstance(b, bool):
            return False
        a, b = float(a), float(b)
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return abs(a - b) <= tol * max(1.0, abs(a), abs(b))
    return bool(a == b)


def assert_same_rows(expected: pa.Table, got: pa.Table, *, tol: float = 1e-9, what: str = "") -> None:
    """Same column names, same number of rows, and the same rows in some order (floats within ``tol``)."""
    assert got.schema.names == expected.schema.names, f"{what}: columns {got.schema.names} != {expected.schema.names}"
    assert got.num_rows == expected.num_rows, f"{what}: {got.num_rows} rows != {expected.num_rows}"
    names = expected.schema.names
    exp_rows = sorted((tuple(_norm(r[c]) for c in names) for r in expected.to_pylist()), key=_key)
    got_rows = sorted((tuple(_norm(r[c]) for c in names) for r in got.to_pylist()), key=_key)
    for i, (e, g) in enumerate(zip(exp_rows, got_rows, strict=True)):
        if not all(_close(x, y, tol) for x, y in zip(e, g, strict=True)):
            diff = [(c, x, y) for c, x, y in zip(names, e, g, strict=True) if not _close(x, y, tol)]
            raise AssertionError(f"{what}: sorted row {i} differs: {diff}\n expected {e}\n got      {g}")
