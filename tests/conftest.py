from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import kdstore

os.environ.setdefault("KDSTORE_PROGRESS", "0")

#: The real benchmark data shipped beside the repository (never copied into it): the first
#: ``shared/data/wrench`` above the checkout (a git worktree may sit deeper), or $KDSTORE_WRENCH.
WRENCH = Path(os.environ.get("KDSTORE_WRENCH") or next(
    (p / "shared" / "data" / "wrench" for p in Path(__file__).resolve().parents if (p / "shared" / "data" / "wrench").is_dir()),
    Path(__file__).resolve().parents[2] / "shared" / "data" / "wrench",
))


@pytest.fixture
def store() -> Iterator[kdstore.Store]:
    with kdstore.connect() as s:
        yield s


@pytest.fixture
def file_store(tmp_path: Path) -> Iterator[kdstore.Store]:
    with kdstore.connect(tmp_path / "store.duckdb") as s:
        yield s
