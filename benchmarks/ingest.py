"""Ingest benchmark: 100M teacher outputs (20 teachers x 1M examples x 5 labels, float32) into an on-disk store.

Each variant runs in its own child process (so its peak RSS is its own) and writes its own file:

* ``kdstore_wide_list``: ``store.ingest_outputs(teacher, table, form="wide")`` with one FLOAT list
  column per example (the common case: a model's probability vector) — validated, one transaction
  per teacher.
* ``kdstore_wide_columns``: the same with one float32 column per label.
* ``raw_insert_wide``: ``INSERT INTO kd.scores SELECT * FROM arrow_table`` of the same FLOAT[] rows,
  no validation: the floor for kdstore's own layout.
* ``duckdb_ctas_long``: ``CREATE TABLE AS SELECT * FROM arrow_table`` (then INSERT per teacher) of
  the long form (teacher_id, example_id, label_id, score): the floor DuckDB sets for a plain table.
* ``parquet_long`` / ``parquet_wide``: pyarrow writing the same data to one Parquet file.

Data generation (per teacher, in Arrow, outside the timed region) is excluded from every timing.
Times include each teacher's COMMIT; ``total_s`` also includes the final CHECKPOINT and close.

Run: ``PYTHONPATH=$PWD python benchmarks/ingest.py`` (``--examples 100000`` for a quick run).
"""

from __future__ import annotations

import argparse
import json
import os
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
    """Teacher k's [examples, labels] float32 probabilities: sigmoid of a noisy logit, like a classifier's."""
    rng = np.random.default_rng(1000 + k)
    logits = rng.normal(0.0, 2.0, size=(n_examples, n_labels)).astype(np.float32)
    return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)


def wide_list(ids: pa.Array, scores: np.ndarray) -> pa.Table:
    n, width = scores.shape
    lists = pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32) * width), pa.array(scores.reshape(-1)))
    return pa.table({"example_id": ids, "score": lists})


def run_variant(variant: str, path: Path, n_teachers: int, n_examples: int, n_labels: int) -> dict[str, Any]:
    """Ingest everything with one method; returns per-teacher seconds, total seconds and file size."""
    import duckdb

    import kdstore

    labels = [f"label{j}" for j in range(n_labels)]
    ids = pa.array(np.arange(n_examples, dtype=np.int64))
    per_teacher: list[float] = []
    store = con = writer = None
    setup_s = 0.0
    t_setup = time.perf_counter()
    if variant.startswith("kdstore") or variant == "raw_insert_wide":
        store = kdstore.connect(path)
        store.add_labels(labels)
        store.add_examples(pa.table({"example_id": ids}), split="train")
        for k in range(n_teachers):
            store.add_teacher(f"teacher{k:02d}", labels=labels, output_type="multilabel")
        store.run("CHECKPOINT")
    elif variant == "duckdb_ctas_long":
        con = duckdb.connect(str(path))
    setup_s = time.perf_counter() - t_setup
    threads = None
    if store is not None:
        threads = store.one("SELECT current_setting('threads')")
    elif con is not None:
        threads = con.execute("SELECT current_setting('threads')").fetchall()[0]
    for k in range(n_teachers):
        scores = teacher_scores(k, n_examples, n_labels)  # generation: not timed
        if variant == "kdstore_wide_list":
            data: Any = wide_list(ids, scores)
        elif variant == "kdstore_wide_columns":
            data = pa.table({"example_id": ids, **{lab: scores[:, j] for j, lab in enumerate(labels)}})
        elif variant == "raw_insert_wide":
            data = wide_list(ids, scores).rename_columns(["example_id", "scores"])
            data = data.add_column(0, "teacher_id", pa.array(np.full(n_examples, k, dtype=np.int32)))
        elif variant in ("duckdb_ctas_long", "parquet_long"):
            data = pa.table({
                "teacher_id": pa.array(np.full(n_examples * n_labels, k, dtype=np.int32)),
                "example_id": pa.array(np.repeat(np.arange(n_examples, dtype=np.int64), n_labels)),
                "label_id": pa.array(np.tile(np.arange(n_labels, dtype=np.int32), n_examples)),
                "score": pa.array(scores.reshape(-1)),
            })
        else:  # parquet_wide
            data = wide_list(ids, scores).add_column(0, "teacher_id", pa.array(np.full(n_examples, k, dtype=np.int32)))
        del scores
        t0 = time.perf_counter()
        if variant.startswith("kdstore"):
            assert store is not None
            store.ingest_outputs(f"teacher{k:02d}", data, form="wide", progress=False)
        elif variant == "raw_insert_wide":
            assert store is not None
            store.con.register("arrow_table", data)
            store.run("BEGIN TRANSACTION")
            store.run("INSERT INTO kd.scores SELECT * FROM arrow_table")
            store.run("COMMIT")
            store.con.unregister("arrow_table")
        elif variant == "duckdb_ctas_long":
            assert con is not None
            con.register("arrow_table", data)
            verb = "CREATE TABLE outputs AS" if k == 0 else "INSERT INTO outputs"
            con.execute(f"{verb} SELECT * FROM arrow_table").fetchall()
            con.unregister("arrow_table")
        else:
            import pyarrow.parquet as pq

            if writer is None:
                writer = pq.ParquetWriter(path, data.schema)
            writer.write_table(data)
        per_teacher.append(time.perf_counter() - t0)
        del data
    t0 = time.perf_counter()
    if store is not None:
        store.run("CHECKPOINT")
        store.close()
    if con is not None:
        con.execute("CHECKPOINT").fetchall()
        con.close()
    if writer is not None:
        writer.close()
    close_s = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    outputs = n_teachers * n_examples * n_labels
    ingest_s = sum(per_teacher)
    per_teacher_rate = [n_examples * n_labels / s for s in per_teacher]
    return {
        "variant": variant,
        "outputs": outputs,
        "per_teacher_s": [round(s, 4) for s in per_teacher],
        "ingest_s": round(ingest_s, 3),
        "close_s": round(close_s, 3),
        "total_s": round(ingest_s + close_s, 3),
        "setup_s": round(setup_s, 3),
        "outputs_per_s": outputs / (ingest_s + close_s),
        "median_teacher_outputs_per_s": statistics.median(per_teacher_rate),
        "file_bytes": size,
        "bytes_per_output": size / outputs,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "threads": threads[0] if threads else None,
    }


def _child(variant: str, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    path = folder / (f"{variant}.parquet" if variant.startswith("parquet") else f"{variant}.duckdb")
    cmd = [sys.executable, __file__, "--child", variant, "--out", str(path), "--teachers", str(args.teachers),
           "--examples", str(args.examples), "--labels", str(args.labels)]
    env = {**os.environ, "KDSTORE_PROGRESS": "0"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{done.stderr}")
    for p in folder.glob(path.name + "*"):
        p.unlink()
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _markdown(res: dict[str, Any]) -> str:
    cfg = res["config"]
    lines = [
        "# Ingest benchmark",
        "",
        f"{cfg['teachers']} teachers x {cfg['examples']:,} examples x {cfg['labels']} labels = "
        f"{cfg['teachers'] * cfg['examples'] * cfg['labels']:,} float32 outputs into an on-disk store; "
        f"machine: {res['env']['machine']['cpu']}, {res['env']['machine']['cores']} cores, "
        f"load average at start {res['load_average_start']}, at end {res['load_average_end']} (shared machine). "
        "Each variant ran in its own process; data generation is not timed; times include every COMMIT "
        "and the final CHECKPOINT. Medians over repeats.",
        "",
        "| variant | outputs/s (total) | median teacher outputs/s | total s | bytes/output | peak RSS MB |",
        "|---|---|---|---|---|---|",
    ]
    for v, r in res["variants"].items():
        lines.append(f"| {v} | {r['outputs_per_s'] / 1e6:.1f}M | {r['median_teacher_outputs_per_s'] / 1e6:.1f}M | "
                     f"{r['total_s']:.1f} | {r['bytes_per_output']:.2f} | {r['peak_rss_mb']:,.0f} |")
    k = res["variants"].get("kdstore_wide_list")
    if k:
        t = res["targets_met"]
        lines += [
            "",
            "Targets (kdstore_wide_list): "
            f">= 10M outputs/s: {k['outputs_per_s'] / 1e6:.1f}M ({'met' if t['outputs_per_s'] else 'NOT met'}); "
            f"<= 4.0 bytes/output: {k['bytes_per_output']:.2f} ({'met' if t['bytes_per_output'] else 'NOT met'}); "
            f"peak RSS <= 6 GB: {k['peak_rss_mb']:,.0f} MB ({'met' if t['peak_rss_mb'] else 'NOT met'}).",
        ]
        ratios = res.get("ratios", {})
        if ratios:
            lines.append("Time relative to the raw wide INSERT of the same rows: " + ", ".join(
                f"{v} {x:.2f}x" for v, x in ratios.items()) + ".")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--teachers", type=int, default=20)
    ap.add_argument("--examples", type=int, default=1_000_000)
    ap.add_argument("--labels", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=1, help="runs per variant (medians reported)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--dir", default=None, help="folder for the store files (default: a temp folder)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--no-write", action="store_true", help="print, do not write benchmarks/results")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_variant(args.child, Path(args.out), args.teachers, args.examples, args.labels)))
        return
    variants = args.variants.split(",")
    load_start = os.getloadavg()
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for rep in range(args.repeat):
            for v in variants:  # interleaved, so load changes hit every variant alike
                r = _child(v, args, Path(tmp))
                runs[v].append(r)
                print(f"[{rep}] {v}: {r['outputs_per_s'] / 1e6:.1f}M outputs/s, {r['bytes_per_output']:.2f} B/output, "
                      f"{r['peak_rss_mb']:.0f} MB", flush=True)
    summary = {}
    for v, rs in runs.items():
        best = sorted(rs, key=lambda r: r["total_s"])[len(rs) // 2]  # the median run
        summary[v] = best
    res: dict[str, Any] = {
        "config": {"teachers": args.teachers, "examples": args.examples, "labels": args.labels, "repeat": args.repeat},
        "load_average_start": [round(x, 1) for x in load_start],
        "load_average_end": [round(x, 1) for x in os.getloadavg()],
        "variants": summary,
        "runs": runs,
    }
    if "kdstore_wide_list" in summary:
        k = summary["kdstore_wide_list"]
        res["targets"] = TARGETS
        res["targets_met"] = {
            "outputs_per_s": k["outputs_per_s"] >= TARGETS["outputs_per_s"],
            "bytes_per_output": k["bytes_per_output"] <= TARGETS["bytes_per_output"],
            "peak_rss_mb": k["peak_rss_mb"] <= TARGETS["peak_rss_mb"],
        }
    if "raw_insert_wide" in summary:
        raw = summary["raw_insert_wide"]["total_s"]
        res["ratios"] = {v: r["total_s"] / raw for v, r in summary.items()}
    md = _markdown({**res, "env": env_info()})
    print(md)
    if not args.no_write:
        write_results("ingest", res, md)


if __name__ == "__main__":
    main()
