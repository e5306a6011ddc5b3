"""A small progress bar on stderr (no dependency), silent when not wanted or not a terminal."""

from __future__ import annotations

import os
import sys
import time
from types import TracebackType


class Progress:
    """Counts units of work and draws ``desc  done/total  rate`` on stderr at most 10 times/s.

    ``enabled=None`` means: draw only when stderr is a terminal and ``KDSTORE_PROGRESS`` is not 0.
    """

    def __init__(self, desc: str, total: int | None = None, *, unit: str = "rows", enabled: bool | None = None):
        if enabled is None:
            enabled = sys.stderr.isatty() and os.environ.get("KDSTORE_PROGRESS", "1") != "0"
        self.desc, self.total, self.unit, self.enabled = desc, total, unit, enabled
        self.done = 0
        self._start = time.perf_counter()
        self._last = 0.0

    def update(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if self.enabled and now - self._last > 0.1:
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        rate = self.done / max(now - self._start, 1e-9)
        of = f"/{self.total:,}" if self.total else ""
        sys.stderr.write(f"\r{self.desc}  {self.done:,}{of} {self.unit}  {rate:,.0f} {self.unit}/s")
        sys.stderr.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.enabled:
            self._draw(time.perf_counter())
            sys.stderr.write("\n")
            sys.stderr.flush()
