"""The whole kdstore exception tree.

Every error a user can cause derives from :class:`KdstoreError`; the CLI catches that class only,
so anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class KdstoreError(Exception):
    """Base class of every kdstore error."""


class StoreVersionError(KdstoreError):
    """The store file was written by a newer kdstore, or is not a kdstore file."""


class SqlFileError(KdstoreError):
    """A SQL file is malformed: parse error, wrong view name, unknown column.

    Attributes:
        path: the file.
        line: 1-based line of the problem, when known.
        col: 1-based column of the problem, when known.
    """

    def __init__(self, message: str, *, path: str, line: int | None = None, col: int | None = None):
        where = path if line is None else f"{path}:{line}:{col or 0}"
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line
        self.col = col


class SqlDependencyError(SqlFileError):
    """SQL files depend on each other in a cycle, or on a view that does not exist."""


class SchemaError(KdstoreError, ValueError):
    """Bad input: names the source, the column and the first offending row.

    Attributes:
        source: a description of the input (file path, ``pyarrow.Table``, teacher name...).
        column: the offending column, when one is to blame.
        row: 0-based row number (within the source) of the first offending row, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        column: str | None = None,
        row: int | None = None,
    ):
        parts = []
        if source is not None:
            parts.append(f"source {source}")
        if column is not None:
            parts.append(f"column {column!r}")
        if row is not None:
            parts.append(f"row {row}")
        prefix = (", ".join(parts) + ": ") if parts else ""
        super().__init__(prefix + message)
        self.source = source
        self.column = column
        self.row = row


class ViewExecutionError(KdstoreError):
    """A view failed to execute in the engine."""

    def __init__(self, message: str, *, view: str, sql: str):
        super().__init__(f"view {view}: {message}")
        self.view = view
        self._sql = sql

    def sql(self, dialect: str = "duckdb") -> str:
        """The SQL that failed, in ``dialect``."""
        if dialect == "duckdb":
            return self._sql
        import sqlglot

        return ";\n".join(sqlglot.transpile(self._sql, read="duckdb", write=dialect))


class TranspileError(KdstoreError):
    """SQL cannot be carried to the target dialect without changing its meaning."""


class TeacherError(KdstoreError):
    """A teacher could not be loaded or run (bad model, signature mismatch, endpoint failure)."""


class NotFittedError(KdstoreError, ValueError):
    """A model was used before it was fitted."""


class ExportError(KdstoreError):
    """ONNX export failed, or the exported graph disagrees with the NumPy model."""


__all__ = [
    "ExportError",
    "KdstoreError",
    "NotFittedError",
    "SchemaError",
    "SqlDependencyError",
    "SqlFileError",
    "StoreVersionError",
    "TeacherError",
    "TranspileError",
    "ViewExecutionError",
]
