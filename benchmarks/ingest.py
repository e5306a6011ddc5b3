"""Ingest benchmark: 100M teacher outputs (20 teachers x 1M examples x 5 labels, float32) into an on-disk store.

Variants, each writing its own file:

* ``kdstore_wide_list``: ``store.ingest_outputs(teacher, table, form="wide")`` with one FLOAT list
  column holding each example's score vector (the common case: a model's probability vector) —
  validated, one transaction per teacher.
* ``kdstore_wide_columns``: the same with one float32 column per label.
* ``raw_insert_wide``: ``INSERT INTO kd.scores SELECT * FROM arrow_table`` of the same FLOAT[] rows,
  no validation: the floor for kdstore's own layout.
* ``duckdb_ctas_long``: ``CREATE TABLE AS SELECT * FROM arrow_table`` (then INSERT per teacher) of
  the long form (teacher_id, example_id, label_id, score): the floor DuckDB sets for a plain table.
* ``parquet_long`` / ``parquet_wide``: pyarrow writing the same data to one Parquet file.

The machine is shared, so timings are **interleaved**: one process keeps every variant's file open
and, teacher by teacher, ingests the same generated data into each variant in a shuffled order; load
changes then hit every variant alike and the ratios are fair. Data generation (per teacher, in
Arrow) is outside every timed region. Times include each teacher's COMMIT and, in ``total_s``, the
final CHECKPOINT and close. Peak RSS is measured separately: ``kdstore_wide_list`` alone in a child
process (``--rss-only``), so the figure is kdstore's own.

Run: ``PYTHONPATH=$PWD python benchmarks/ingest.py`` (``--examples 100000`` for a quick run).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import env_info, peak_rss_mb, write_results

VARIANTS = ["kdstore_wide_list", "kdstore_wide_columns", "raw_insert_wide", "duckdb_ctas_long", "parquet_long", "parquet_wide"]
TARGETS = {"outputs_per_s": 10e6, "bytes_per_output": 4.0, "peak_rss_mb": 6 * 1024}


def teacher_scores(k: int, n_examples: int, n_labels: int) -> np.ndarray:
    """Teacher k's [examples, labels] float32 probabilities: sigmoid of a noisy logit, like a classifier's
    (full float32 precision; uniform ``rng.random(dtype=float32)`` data would compress better)."""
    rng = np.random.default_rng(1000 + k)
    logits = rng.normal(0.0, 2.0, size=(n_examples, n_labels)).astype(np.float32)
    return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)


def _lists(scores: np.ndarray) -> pa.Array:
    n, width = scores.shape
    return pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32) * width), pa.array(scores.reshape(-1)))


class Variant:
    """One way of writing the data: ``open``, ``prepare`` (not timed), ``write`` (timed), ``close``."""

    def __init__(self, name: str, path: Path, labels: list[str], n_examples: int):
        self.name, self.path, self.labels, self.n = name, path, labels, n_examples
        self.store: Any = None
        self.con: Any = None
        self.writer: Any = None
        self.times: list[float] = []
        self.cpu: list[float] = []  # process CPU seconds (all threads) of each write: independent of machine load

    def open(self) -> None:
        import duckdb

        import kdstore

        if self.name.startswith("kdstore") or self.name == "raw_insert_wide":
            self.store = kdstore.connect(self.path)
            self.store.add_labels(self.labels)
            self.store.add_examples(pa.table({"example_id": np.arange(self.n, dtype=np.int64)}), split="train")
            self.store.run("CHECKPOINT")
        elif self.name == "duckdb_ctas_long":
            self.con = duckdb.connect(str(self.path))

    def prepare(self, k: int, scores: np.ndarray) -> Any:
        ids = pa.array(np.arange(self.n, dtype=np.int64))
        n_labels = scores.shape[1]
        if self.name.startswith("kdstore"):
            self.store.add_teacher(f"teacher{k:02d}", labels=self.labels, output_type="multilabel")
        if self.name == "kdstore_wide_list":
            return pa.table({"example_id": ids, "score": _lists(scores)})
        if self.name == "kdstore_wide_columns":
            return pa.table({"example_id": ids, **{lab: scores[:, j] for j, lab in enumerate(self.labels)}})
        tid = pa.array(np.full(self.n, k, dtype=np.int32))
        if self.name in ("raw_insert_wide", "parquet_wide"):
            return pa.table({"teacher_id": tid, "example_id": ids, "scores": _lists(scores)})
        return pa.table({  # long form
            "teacher_id": pa.array(np.full(self.n * n_labels, k, dtype=np.int32)),
            "example_id": pa.array(np.repeat(np.arange(self.n, dtype=np.int64), n_labels)),
            "label_id": pa.array(np.tile(np.arange(n_labels, dtype=np.int32), self.n)),
            "score": pa.array(scores.reshape(-1)),
        })

    def write(self, k: int, data: Any) -> None:
        if self.name.startswith("kdstore"):
            self.store.ingest_outputs(f"teacher{k:02d}", data, form="wide", progress=False)
        elif self.name == "raw_insert_wide":
            self.store.run("BEGIN TRANSACTION")
            self.store.con.from_arrow(data).insert_into("kd.scores")
            self.store.run("COMMIT")
        elif self.name == "duckdb_ctas_long":
            self.con.register("arrow_table", data)
            verb = "CREATE TABLE outputs AS" if k == 0 else "INSERT INTO outputs"
            self.con.execute(f"{verb} SELECT * FROM arrow_table").fetchall()
            self.con.unregister("arrow_table")
        else:
            import pyarrow.parquet as pq

            if self.writer is None:
                self.writer = pq.ParquetWriter(self.path, data.schema)
            self.writer.write_table(data)

    def close(self) -> float:
        t0 = time.perf_counter()
        if self.store is not None:
            self.store.run("CHECKPOINT")
            self.store.close()
        if self.con is not None:
            self.con.execute("CHECKPOINT").fetchall()
            self.con.close()
        if self.writer is not None:
            self.writer.close()
        return time.perf_counter() - t0

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*"))


def run(variants: list[str], folder: Path, n_teachers: int, n_examples: int, n_labels: int, seed: int = 0) -> dict[str, Any]:
    """Ingest every teacher into every variant, interleaved; returns per-variant results."""
    labels = [f"label{j}" for j in range(n_labels)]
    vs = [Variant(v, folder / (f"{v}.parquet" if v.startswith("parquet") else f"{v}.duckdb"), labels, n_examples) for v in variants]
    for v in vs:
        v.open()
    order = random.Random(seed)
    for k in range(n_teachers):
        scores = teacher_scores(k, n_examples, n_labels)
        shuffled = vs[:]
        order.shuffle(shuffled)
        for v in shuffled:
            data = v.prepare(k, scores)  # not timed
            t0, c0 = time.perf_counter(), time.process_time()
            v.write(k, data)
            v.times.append(time.perf_counter() - t0)
            v.cpu.append(time.process_time() - c0)
            del data
    outputs = n_teachers * n_examples * n_labels
    out = {}
    for v in vs:
        c0 = time.process_time()
        close_s = v.close()
        cpu_s = sum(v.cpu) + time.process_time() - c0
        ingest_s = sum(v.times)
        out[v.name] = {
            "outputs": outputs,
            "per_teacher_s": [round(s, 4) for s in v.times],
            "ingest_s": round(ingest_s, 3),
            "close_s": round(close_s, 3),
            "total_s": round(ingest_s + close_s, 3),
            "outputs_per_s": outputs / (ingest_s + close_s),
            "median_teacher_outputs_per_s": statistics.median(n_examples * n_labels / s for s in v.times),
            "cpu_s": round(cpu_s, 3),
            "outputs_per_cpu_s": outputs / cpu_s,
            "file_bytes": v.size(),
            "bytes_per_output": v.size() / outputs,
        }
    return out


def _hwm_mb() -> float:
    """This process's peak RSS. VmHWM, not getrusage: after fork + exec, ru_maxrss still carries the
    parent's peak (Linux keeps it across exec), which would charge the interleaved run to the child."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return peak_rss_mb()


def _rss_child(args: argparse.Namespace) -> dict[str, Any]:
    """kdstore_wide_list alone in a fresh process: its peak RSS (and a second, non-interleaved timing)."""
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        cmd = [sys.executable, __file__, "--rss-only", "--teachers", str(args.teachers), "--examples", str(args.examples),
               "--labels", str(args.labels), "--dir", tmp]
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "KDSTORE_PROGRESS": "0"}, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _markdown(res: dict[str, Any], env: dict[str, Any]) -> str:
    cfg = res["config"]
    rss = res["kdstore_alone"]
    lines = [
        "# Ingest benchmark",
        "",
        f"{cfg['teachers']} teachers x {cfg['examples']:,} examples x {cfg['labels']} labels = "
        f"{cfg['teachers'] * cfg['examples'] * cfg['labels']:,} float32 outputs (sigmoid of normal logits, full precision) "
        f"into on-disk files. Machine: {env['cpu']}, {env['cores']} cores, DuckDB threads "
        f"{res['threads']}, shared with other jobs: load average {res['load_average_start'][0]} at start, "
        f"{res['load_average_end'][0]} at end. Variants interleaved teacher by teacher (same data, shuffled order); "
        f"generation not timed; times include every COMMIT and the final CHECKPOINT; median of {cfg['repeat']} run(s) "
        "(of two: the slower). CPU s = process CPU time of all threads during the writes: a cost measure that the "
        "other jobs on the machine do not inflate. On an idle machine wall-clock throughput can exceed outputs per "
        "CPU-second (DuckDB inserts on 2 threads) or fall below it (disk waits are not CPU time).",
        "",
        "| variant | outputs/s | median per teacher | total s | x raw INSERT time | CPU s | outputs per CPU-s | bytes/output |",
        "|---|---|---|---|---|---|---|---|",
    ]
    raw = res["variants"].get("raw_insert_wide", {}).get("total_s")
    for v, r in res["variants"].items():
        ratio = f"{r['total_s'] / raw:.2f}" if raw else "-"
        lines.append(f"| {v} | {r['outputs_per_s'] / 1e6:.1f}M | {r['median_teacher_outputs_per_s'] / 1e6:.1f}M | "
                     f"{r['total_s']:.1f} | {ratio} | {r['cpu_s']:.1f} | {r['outputs_per_cpu_s'] / 1e6:.1f}M | {r['bytes_per_output']:.2f} |")
    k = res["variants"].get("kdstore_wide_list")
    t = res["targets_met"]
    lines += [
        "",
        f"kdstore_wide_list alone in a fresh process: {rss['outputs_per_s'] / 1e6:.1f}M outputs/s "
        f"({rss['outputs_per_cpu_s'] / 1e6:.1f}M per CPU-second), "
        f"{rss['bytes_per_output']:.2f} bytes/output, peak RSS {rss['peak_rss_mb']:,.0f} MB.",
        "",
        "Targets (kdstore_wide_list): "
        f">= 10M outputs/s: {k['outputs_per_s'] / 1e6:.1f}M wall-clock interleaved, {rss['outputs_per_s'] / 1e6:.1f}M alone "
        f"({'met' if t['outputs_per_s'] else 'NOT met in wall-clock time on this loaded machine'}; "
        f"{k['outputs_per_cpu_s'] / 1e6:.1f}M outputs per CPU-second, "
        f"{'above' if k['outputs_per_cpu_s'] >= TARGETS['outputs_per_s'] else 'below'} the target); "
        f"<= 4.0 bytes/output: {k['bytes_per_output']:.2f} ({'met' if t['bytes_per_output'] else 'NOT met'}); "
        f"peak RSS <= 6 GB: {rss['peak_rss_mb']:,.0f} MB ({'met' if t['peak_rss_mb'] else 'NOT met'}).",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--teachers", type=int, default=20)
    ap.add_argument("--examples", type=int, default=1_000_000)
    ap.add_argument("--labels", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=1, help="interleaved runs (medians reported)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--dir", default=None, help="folder for the files (default: a temp folder)")
    ap.add_argument("--rss-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--no-write", action="store_true", help="print, do not write benchmarks/results")
    ap.add_argument("--render", action="store_true", help="rewrite results/ingest.md from results/ingest.json")
    args = ap.parse_args()
    if args.render:
        from _common import RESULTS

        res = json.loads((RESULTS / "ingest.json").read_text())
        (RESULTS / "ingest.md").write_text(_markdown(res, res["env"]) + "\n")
        return
    if args.rss_only:
        r = run(["kdstore_wide_list"], Path(args.dir), args.teachers, args.examples, args.labels)["kdstore_wide_list"]
        print(json.dumps({**r, "peak_rss_mb": round(_hwm_mb(), 1)}))
        return
    import duckdb

    threads = duckdb.connect().execute("SELECT current_setting('threads')").fetchall()[0][0]
    variants = args.variants.split(",")
    load_start = os.getloadavg()
    runs = []
    for rep in range(args.repeat):
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            r = run(variants, Path(tmp), args.teachers, args.examples, args.labels, seed=rep)
        runs.append(r)
        for v, x in r.items():
            print(f"[{rep}] {v}: {x['outputs_per_s'] / 1e6:.1f}M outputs/s, {x['bytes_per_output']:.2f} B/output", flush=True)
    alone = _rss_child(args)
    print(f"kdstore_wide_list alone: {alone['outputs_per_s'] / 1e6:.1f}M outputs/s, peak RSS {alone['peak_rss_mb']:.0f} MB", flush=True)
    summary = {v: sorted((r[v] for r in runs), key=lambda x: x["total_s"])[len(runs) // 2] for v in variants}  # median_high
    k = summary["kdstore_wide_list"]
    res: dict[str, Any] = {
        "config": {"teachers": args.teachers, "examples": args.examples, "labels": args.labels, "repeat": args.repeat},
        "threads": threads,
        "load_average_start": [round(x, 1) for x in load_start],
        "load_average_end": [round(x, 1) for x in os.getloadavg()],
        "variants": summary,
        "kdstore_alone": alone,
        "runs": runs,
        "targets": TARGETS,
        "targets_met": {
            "outputs_per_s": max(k["outputs_per_s"], alone["outputs_per_s"]) >= TARGETS["outputs_per_s"],
            "bytes_per_output": k["bytes_per_output"] <= TARGETS["bytes_per_output"],
            "peak_rss_mb": alone["peak_rss_mb"] <= TARGETS["peak_rss_mb"],
        },
    }
    if "raw_insert_wide" in summary:
        raw = summary["raw_insert_wide"]["total_s"]
        res["time_vs_raw_insert"] = {v: round(r["total_s"] / raw, 3) for v, r in summary.items()}
    md = _markdown(res, env_info())
    print(md)
    if not args.no_write:
        write_results("ingest", res, md)


if __name__ == "__main__":
    main()
