"""Evaluation-view benchmark: ``kd.label_metrics`` and ``kd.consensus_z`` on 100M outputs.

The issue-3 setting: a file store of 20 teachers x 1M examples x 5 labels (100M float32 outputs),
100k valid examples (and 100k test, 800k train); half the teachers multiclass (softmax rows), half
multilabel (sigmoids), every teacher with its own label order. Measured in one process, rounds
interleaved so the shared machine's load hits both sides alike:

* ``label_metrics``: ``SELECT * FROM kd.label_metrics`` (100 rows to Arrow) against a NumPy dense
  oracle on a ``[teachers, examples, labels]`` float32 array: decisions (argmax / threshold), gold
  one-hot, confusion counts, precision/recall/F1/Wilson bounds, valid examples picked by a mask.
* ``consensus_z``: every output's z against its example x label and its example (90M rows over
  train + valid), (a) computed to the end (``count``/``sum`` over every row and column) and
  (b) materialised into a temporary table; NumPy: mean/std over the teacher axis and over each
  example, then both z arrays in float64 (``consensus aggregate`` and ``z-scores`` timed apart).

Split layouts: ``blocks`` (each split a contiguous id range, as when examples are added split by
split: DuckDB's zone maps skip most row groups for the valid split) and ``random`` (splits
scattered over the ids). Peak RSS of the DuckDB side is measured in a child process that only runs
the queries (``--rss-only``). Stores are cached in ``benchmarks/.cache``.

Run: ``PYTHONPATH=$PWD python benchmarks/evaluate.py`` (``--examples 100000`` for a quick run).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mb, write_results

CACHE = Path(__file__).resolve().parent / ".cache"
TARGETS = {"label_metrics_s": 1.0, "consensus_z_s": 3.0, "ratio_vs_numpy": 3.0, "peak_rss_mb": 8 * 1024}
SEED = 0


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# ---------------------------------------------------------------------------------------------
# data: deterministic, so the NumPy side regenerates exactly what the store holds
# ---------------------------------------------------------------------------------------------
def world(n_teachers: int, n_examples: int, n_labels: int, n_valid: int, layout: str) -> dict[str, Any]:
    rng = np.random.default_rng(SEED)
    split = np.zeros(n_examples, np.int8)  # 0 train, 1 valid, 2 test
    ids = np.arange(n_examples) if layout == "blocks" else rng.permutation(n_examples)
    split[ids[n_examples - 2 * n_valid: n_examples - n_valid]] = 1
    split[ids[n_examples - n_valid:]] = 2
    truth = rng.integers(0, n_labels, n_examples)
    orders = [rng.permutation(n_labels) for _ in range(n_teachers)]
    return {"split": split, "truth": truth, "orders": orders, "multiclass": [t % 2 == 0 for t in range(n_teachers)]}


def teacher_scores(t: int, w: dict[str, Any], n_labels: int) -> np.ndarray:
    """Teacher t's [examples, labels] float32 scores in *global* label order."""
    rng = np.random.default_rng(1000 + t)
    n = w["truth"].size
    skill = rng.uniform(0.5, 3.0, n_labels).astype(np.float32)
    logits = rng.standard_normal((n, n_labels), dtype=np.float32)
    logits[np.arange(n), w["truth"]] += skill[w["truth"]]
    if w["multiclass"][t]:
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
    else:
        p = 1.0 / (1.0 + np.exp(-logits + 1.0))
    return p.astype(np.float32)


def build_store(path: Path, n_teachers: int, n_labels: int, w: dict[str, Any]) -> float:
    import kdstore

    t0 = time.perf_counter()
    path.unlink(missing_ok=True)
    n = w["truth"].size
    with kdstore.connect(path) as s:
        s.add_labels([f"l{i}" for i in range(n_labels)])
        names = np.array(["train", "valid", "test"], dtype=object)[w["split"]]
        s.add_examples(pa.table({"example_id": np.arange(n), "split": names}), progress=False)
        labeled = np.flatnonzero(w["split"] > 0)
        s.add_gold(pa.table({"example_id": labeled, "label": w["truth"][labeled]}), progress=False)
        for t in range(n_teachers):
            order = w["orders"][t]
            s.add_teacher(f"t{t}", labels=[int(x) for x in order], output_type="multiclass" if w["multiclass"][t] else "multilabel")
            x = teacher_scores(t, w, n_labels)[:, order]  # the teacher's own output order
            lists = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), n_labels)
            s.ingest_outputs(f"t{t}", pa.table({"example_id": np.arange(n), "scores": lists}), form="wide",
                             score_column="scores", progress=False)
        s.run("CHECKPOINT")
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------
# NumPy dense oracles
# ---------------------------------------------------------------------------------------------
def numpy_label_metrics(x: np.ndarray, w: dict[str, Any], threshold: float, z: float) -> dict[str, np.ndarray]:
    n_teachers, _, n_labels = x.shape
    valid = w["split"] == 1
    xv = x[:, valid, :]  # [T, Ev, L]
    gold = np.zeros((xv.shape[1], n_labels), bool)
    gold[np.arange(xv.shape[1]), w["truth"][valid]] = True
    tp = np.zeros((n_teachers, n_labels), np.int64)
    fp, fn, tn = tp.copy(), tp.copy(), tp.copy()
    for t in range(n_teachers):
        if w["multiclass"][t]:
            order = w["orders"][t]
            win = order[np.argmax(xv[t][:, order], axis=1)]  # ties -> lowest output_index
            d = np.zeros_like(gold)
            d[np.arange(d.shape[0]), win] = True
        else:
            d = xv[t] >= threshold
        tp[t] = (d & gold).sum(0)
        fp[t] = (d & ~gold).sum(0)
        fn[t] = (~d & gold).sum(0)
        tn[t] = (~d & ~gold).sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        n_pos = tp + fp
        prec = tp / n_pos
        lb = (prec + z * z / (2 * n_pos) - z * np.sqrt(prec * (1 - prec) / n_pos + z * z / (4 * n_pos * n_pos))) / (1 + z * z / n_pos)
        rec = tp / (tp + fn)
        f1 = 2 * tp / (2 * tp + fp + fn)
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "precision": prec, "precision_lb": lb, "recall": rec, "f1": f1}


def numpy_consensus(x: np.ndarray, w: dict[str, Any]) -> tuple[np.ndarray, ...]:
    """mean/std over teachers per example x label and over all outputs per example (train + valid)."""
    keep = w["split"] != 2
    xk = x[:, keep, :]
    mean = xk.mean(axis=0, dtype=np.float64)
    sd = xk.std(axis=0, ddof=1, dtype=np.float64)
    flat = xk.transpose(1, 0, 2).reshape(xk.shape[1], -1)
    mean_ex = flat.mean(axis=1, dtype=np.float64)
    sd_ex = flat.std(axis=1, ddof=1, dtype=np.float64)
    return xk, mean, sd, mean_ex, sd_ex


def numpy_z(xk: np.ndarray, mean: np.ndarray, sd: np.ndarray, mean_ex: np.ndarray, sd_ex: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = (xk - mean) / sd
    z_ex = (xk - mean_ex[None, :, None]) / sd_ex[None, :, None]
    return z, z_ex


# ---------------------------------------------------------------------------------------------
# DuckDB side
# ---------------------------------------------------------------------------------------------
QUERIES = {
    "label_metrics": ("arrow", "SELECT * FROM kd.label_metrics"),
    "consensus_pages": ("fetch", "SELECT count(*), sum(n1), sum(mean1), sum(stddev1), sum(stddev_example) FROM kd.consensus_pages"),
    "consensus_z_computed": ("fetch", "SELECT count(*), sum(score), sum(z), sum(z_example), sum(label_id), sum(teacher_id), sum(example_id) FROM kd.consensus_z"),
    "consensus_z_table": ("ddl", "CREATE OR REPLACE TEMP TABLE bench_z AS SELECT * FROM kd.consensus_z"),
}


def run_query(con: Any, kind: str, sql: str) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), cpu_s()
    if kind == "arrow":
        con.sql(sql).to_arrow_table()
    else:
        con.execute(sql).fetchall()
    wall, cpu = time.perf_counter() - w0, cpu_s() - c0
    if kind == "ddl":
        con.execute("DROP TABLE IF EXISTS bench_z").fetchall()
    return wall, cpu


def rss_only(path: Path, threads: int) -> None:
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    con.execute(f"SET threads = {threads}").fetchall()
    for kind, sql in QUERIES.values():
        run_query(con, kind, sql)
    print(json.dumps({"peak_rss_mb": peak_rss_mb()}))


def measure(path: Path, args: argparse.Namespace, w: dict[str, Any]) -> dict[str, Any]:
    import duckdb

    import kdstore

    with kdstore.connect(path):  # installs / refreshes the views (a read-write open)
        pass
    con = duckdb.connect(str(path), read_only=True)
    con.execute(f"SET threads = {args.threads}").fetchall()
    settings = dict(con.execute("SELECT name, value FROM kd.settings").fetchall())
    z = con.execute("SELECT z FROM kd.confidence_z").fetchall()[0][0]

    t0 = time.perf_counter()
    x = np.stack([teacher_scores(t, w, args.labels) for t in range(args.teachers)])  # [T, E, L]
    gen_s = time.perf_counter() - t0

    # correctness first: the engine and the oracle agree
    lm = con.sql("SELECT teacher_id, label_id, tp, fp, fn, tn, precision_lb FROM kd.label_metrics").to_arrow_table().to_pylist()
    ref = numpy_label_metrics(x, w, settings["threshold"], z)
    lm_ok = all(
        (r["tp"], r["fp"], r["fn"], r["tn"]) == tuple(int(ref[k][r["teacher_id"], r["label_id"]]) for k in ("tp", "fp", "fn", "tn"))
        and abs(r["precision_lb"] - ref["precision_lb"][r["teacher_id"], r["label_id"]]) < 1e-12
        for r in lm
    )
    sample = np.flatnonzero(w["split"] != 2)[:: max(1, (w["split"] != 2).sum() // 2000)]
    zs = con.execute(
        "SELECT teacher_id, example_id, label_id, z, z_example FROM kd.consensus_z WHERE example_id IN (SELECT unnest(?::BIGINT[]))",
        [sample.tolist()],
    ).fetchall()
    xk, mean, sd, mean_ex, sd_ex = numpy_consensus(x, w)
    pos = {int(e): i for i, e in enumerate(np.flatnonzero(w["split"] != 2))}
    zerr = max(
        max(abs(zv - (float(x[t, e, lab]) - mean[pos[e], lab]) / sd[pos[e], lab]),
            abs(zex - (float(x[t, e, lab]) - mean_ex[pos[e]]) / sd_ex[pos[e]]))
        for t, e, lab, zv, zex in zs
    )
    del xk, mean, sd, mean_ex, sd_ex

    timings: dict[str, list[tuple[float, float]]] = {k: [] for k in [*QUERIES, "numpy_label_metrics", "numpy_consensus", "numpy_z"]}
    for rnd in range(args.rounds + 1):  # round 0 warms up (caches, page faults) and is dropped
        w0, c0 = time.perf_counter(), cpu_s()
        numpy_label_metrics(x, w, settings["threshold"], z)
        nl = (time.perf_counter() - w0, cpu_s() - c0)
        w0, c0 = time.perf_counter(), cpu_s()
        parts = numpy_consensus(x, w)
        nc = (time.perf_counter() - w0, cpu_s() - c0)
        w0, c0 = time.perf_counter(), cpu_s()
        zz = numpy_z(*parts)
        nz = (time.perf_counter() - w0, cpu_s() - c0)
        del parts, zz
        duck = {name: run_query(con, kind, sql) for name, (kind, sql) in QUERIES.items()}
        if rnd:
            timings["numpy_label_metrics"].append(nl)
            timings["numpy_consensus"].append(nc)
            timings["numpy_z"].append(nz)
            for k, v in duck.items():
                timings[k].append(v)
        print(f"round {rnd}: numpy lm {nl[0]:.2f}s cons {nc[0]:.2f}s z {nz[0]:.2f}s | "
              + " ".join(f"{k} {v[0]:.2f}s" for k, v in duck.items()), flush=True)
    con.close()
    med = {k: {"wall_s": statistics.median(v[0] for v in vals), "cpu_s": statistics.median(v[1] for v in vals),
               "runs_wall_s": [round(v[0], 3) for v in vals]} for k, vals in timings.items()}
    child = subprocess.run([sys.executable, __file__, "--rss-only", str(path), "--threads", str(args.threads)],
                           capture_output=True, text=True, check=True, env={**os.environ})
    rss = json.loads(child.stdout.strip().splitlines()[-1])["peak_rss_mb"]
    numpy_cz = med["numpy_consensus"]["wall_s"] + med["numpy_z"]["wall_s"]
    return {
        "timings": med,
        "checks": {"label_metrics_equal_counts_and_bounds": lm_ok, "consensus_z_max_abs_error_sample": zerr, "z_sample_rows": len(zs)},
        "ratios": {
            "label_metrics_vs_numpy": med["label_metrics"]["wall_s"] / med["numpy_label_metrics"]["wall_s"],
            "consensus_z_computed_vs_numpy": med["consensus_z_computed"]["wall_s"] / numpy_cz,
            "consensus_z_table_vs_numpy": med["consensus_z_table"]["wall_s"] / numpy_cz,
        },
        "duckdb_peak_rss_mb": rss,
        "numpy_data_gen_s": gen_s,
    }


def markdown(res: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        "# Evaluation views: label_metrics and consensus_z",
        "",
        f"{args.teachers} teachers x {args.examples:,} examples x {args.labels} labels "
        f"({args.teachers * args.examples * args.labels / 1e6:.0f}M outputs), {args.valid:,} valid, {args.valid:,} test; "
        f"DuckDB threads = {args.threads}; medians of {args.rounds} interleaved rounds after a warm-up. "
        "Wall = elapsed; CPU = user+sys of the process (the machine is shared: CPU is the steadier figure).",
        "",
    ]
    for layout, r in res.items():
        t, ra = r["timings"], r["ratios"]
        numpy_cz = t["numpy_consensus"]["wall_s"] + t["numpy_z"]["wall_s"]
        lines += [
            f"## split layout: {layout}",
            "",
            "| measure | wall s | CPU s | target | ratio to NumPy (wall) | meets |",
            "|---|---|---|---|---|---|",
            f"| kd.label_metrics (100 rows to Arrow) | {t['label_metrics']['wall_s']:.3f} | {t['label_metrics']['cpu_s']:.2f} | <= 1 s, <= 3x NumPy | {ra['label_metrics_vs_numpy']:.2f} | "
            f"{'yes' if t['label_metrics']['wall_s'] <= 1 and ra['label_metrics_vs_numpy'] <= 3 else 'no'} |",
            f"| NumPy label metrics (dense) | {t['numpy_label_metrics']['wall_s']:.3f} | {t['numpy_label_metrics']['cpu_s']:.2f} | | | |",
            f"| kd.consensus_pages (all rows) | {t['consensus_pages']['wall_s']:.3f} | {t['consensus_pages']['cpu_s']:.2f} | | {t['consensus_pages']['wall_s'] / t['numpy_consensus']['wall_s']:.2f} (vs aggregate) | |",
            f"| kd.consensus_z computed to the end (90M rows) | {t['consensus_z_computed']['wall_s']:.3f} | {t['consensus_z_computed']['cpu_s']:.2f} | <= 3 s, <= 3x NumPy | {ra['consensus_z_computed_vs_numpy']:.2f} | "
            f"{'yes' if t['consensus_z_computed']['wall_s'] <= 3 and ra['consensus_z_computed_vs_numpy'] <= 3 else 'no'} |",
            f"| kd.consensus_z into a temp table | {t['consensus_z_table']['wall_s']:.3f} | {t['consensus_z_table']['cpu_s']:.2f} | <= 3 s, <= 3x NumPy | {ra['consensus_z_table_vs_numpy']:.2f} | "
            f"{'yes' if t['consensus_z_table']['wall_s'] <= 3 and ra['consensus_z_table_vs_numpy'] <= 3 else 'no'} |",
            f"| NumPy consensus aggregate + z-scores | {numpy_cz:.3f} | {t['numpy_consensus']['cpu_s'] + t['numpy_z']['cpu_s']:.2f} | | | |",
            f"| (NumPy aggregate / z alone) | {t['numpy_consensus']['wall_s']:.3f} / {t['numpy_z']['wall_s']:.3f} | | | | |",
            f"| DuckDB peak RSS (child process, all queries) | {r['duckdb_peak_rss_mb']:.0f} MB | | <= 8 GB | | {'yes' if r['duckdb_peak_rss_mb'] <= 8192 else 'no'} |",
            "",
            f"Checks: label_metrics counts and precision_lb equal to the NumPy oracle: {r['checks']['label_metrics_equal_counts_and_bounds']}; "
            f"consensus_z max |error| on {r['checks']['z_sample_rows']:,} sampled rows: {r['checks']['consensus_z_max_abs_error_sample']:.2e}.",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teachers", type=int, default=20)
    ap.add_argument("--examples", type=int, default=1_000_000)
    ap.add_argument("--labels", type=int, default=5)
    ap.add_argument("--valid", type=int, default=100_000)
    ap.add_argument("--layouts", default="blocks,random")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--rss-only", metavar="STORE")
    ap.add_argument("--no-write", action="store_true", help="print, do not write benchmarks/results")
    args = ap.parse_args()
    if args.rss_only:
        rss_only(Path(args.rss_only), args.threads)
        return
    CACHE.mkdir(exist_ok=True)
    res: dict[str, Any] = {}
    for layout in args.layouts.split(","):
        w = world(args.teachers, args.examples, args.labels, args.valid, layout)
        path = CACHE / f"evaluate_{layout}_{args.teachers}x{args.examples}x{args.labels}_v{args.valid}.duckdb"
        build_s = None
        if not path.exists():
            build_s = build_store(path, args.teachers, args.labels, w)
            print(f"built {path.name} in {build_s:.1f}s", flush=True)
        res[layout] = {**measure(path, args, w), "store_build_s": build_s, "store_mb": path.stat().st_size / 1e6}
        print(json.dumps(res[layout]["ratios"]), flush=True)
    md = markdown(res, args)
    print(md)
    if not args.no_write:
        write_results("evaluate", {"params": vars(args), "targets": TARGETS, "results": res}, md)


if __name__ == "__main__":
    main()
