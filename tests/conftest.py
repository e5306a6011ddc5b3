from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import kdstore

os.environ.setdefault("KDSTORE_PROGRESS", "0")

#: The real benchmark data shipped beside the repository (never copied into it).
WRENCH = Path(__file__).resolve().parents[2] / "shared" / "data" / "wrench"


@pytest.fixture
def store() -> Iterator[kdstore.Store]:
    with kdstore.connect() as s:
        yield s


@pytest.fixture
def file_store(tmp_path: Path) -> Iterator[kdstore.Store]:
    with kdstore.connect(tmp_path / "store.duckdb") as s:
        yield s
