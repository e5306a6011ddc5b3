"""Small helpers shared by the benchmark scripts: environment record, peak memory, result files."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
PACKAGES = ("kdstore", "duckdb", "numpy", "pyarrow", "onnxruntime", "onnx", "scikit-learn", "lightgbm", "tokenizers")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def env_info(packages: tuple[str, ...] = PACKAGES) -> dict[str, Any]:
    """Git commit, package versions, Python, CPU model and core count, time (UTC)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                                cwd=Path(__file__).parent).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                    text=True, check=True, cwd=Path(__file__).parent).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", False
    versions = {}
    for p in packages:
        try:
            versions[p] = version(p)
        except PackageNotFoundError:
            versions[p] = None
    return {
        "git_commit": commit + ("+dirty" if dirty else ""),
        "python": sys.version.split()[0],
        "packages": versions,
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "loadavg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process, in MB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_results(name: str, data: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    """Write ``results/<name>.json`` (data + env) and ``results/<name>.md`` (markdown + env footer)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    env = env_info()
    payload = {"benchmark": name, "env": env, **data}
    jp, mp = RESULTS / f"{name}.json", RESULTS / f"{name}.md"
    jp.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    mp.write_text(markdown.rstrip() + _footer(env))
    return jp, mp


def _footer(env: dict[str, Any]) -> str:
    pk = ", ".join(f"{k} {v}" for k, v in env["packages"].items() if v)
    return (f"\n\n---\ncommit {env['git_commit']} · {env['cpu']} · {env['cores']} cores · load {env['loadavg_1m']} · "
            f"Python {env['python']} · {pk} · {env['utc']}\n")


def rerender(name: str, markdown: Callable[[dict[str, Any]], str]) -> Path:
    """Rewrite ``results/<name>.md`` from ``results/<name>.json`` (no re-run): same numbers and run footer,
    plus the commit of the code that rendered it."""
    jp, mp = RESULTS / f"{name}.json", RESULTS / f"{name}.md"
    data = json.loads(jp.read_text())
    now = env_info()
    mp.write_text(markdown(data).rstrip() + _footer(data["env"]).rstrip("\n")
                  + f" · re-rendered from {jp.name} by commit {now['git_commit']} at {now['utc']}\n")
    return mp


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def row_names(results: dict[str, Any], sets: Sequence[str]) -> list[str]:
    """The row names of every data set's results table, in first-seen order."""
    names: list[str] = []
    for s in sets:
        for r in results["sets"][s]["rows"]:
            if r not in names:
                names.append(r)
    return names
