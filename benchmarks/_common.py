"""Small helpers shared by the benchmark scripts: environment info, peak memory, result files."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def env_info() -> dict[str, Any]:
    """Git commit, package versions and machine of this run."""
    from importlib import metadata

    def version(pkg: str) -> str | None:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                                cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "commit": commit,
        "python": sys.version.split()[0],
        "packages": {p: version(p) for p in ("duckdb", "numpy", "pyarrow", "lightgbm", "sqlglot", "onnxruntime")},
        "machine": {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform()},
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process, in MB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_results(name: str, data: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    """Write benchmarks/results/<name>.json (with env info) and <name>.md."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"env": env_info(), **data}
    jpath, mpath = RESULTS / f"{name}.json", RESULTS / f"{name}.md"
    jpath.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    mpath.write_text(markdown.rstrip() + "\n")
    return jpath, mpath
