"""kdstore: knowledge distillation from a corpus of pre-trained models, in one DuckDB file."""

from __future__ import annotations

from kdstore.errors import (
    ExportError,
    KdstoreError,
    NotFittedError,
    SchemaError,
    SqlDependencyError,
    SqlFileError,
    StoreVersionError,
    TeacherError,
    TranspileError,
    ViewExecutionError,
)
from kdstore.sources import Query
from kdstore.store import Store, connect

__version__ = "0.1.0"

__all__ = [
    "ExportError",
    "KdstoreError",
    "NotFittedError",
    "Query",
    "SchemaError",
    "SqlDependencyError",
    "SqlFileError",
    "Store",
    "StoreVersionError",
    "TeacherError",
    "TranspileError",
    "ViewExecutionError",
    "__version__",
    "connect",
]
