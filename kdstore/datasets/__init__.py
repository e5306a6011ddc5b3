"""Loaders of public benchmark data into a store (no downloads: the caller points at the files)."""

from __future__ import annotations

from kdstore.datasets.wrench import WrenchSet, load_wrench, read_wrench

__all__ = ["WrenchSet", "load_wrench", "read_wrench"]
