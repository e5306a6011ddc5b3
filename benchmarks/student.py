"""Student benchmark: training throughput against NumPy GEMM, serving throughput against ONNX Runtime.

Training: an MLP 64 -> 256 -> 256 -> 10 on 1M x 64 float32 features with soft 10-class targets
(50k rows held out for the validation loss). Throughput (examples/s per epoch) is converted to
FLOP/s with 6 x parameters per example (forward + backward) and compared with NumPy's float32 GEMM
FLOP/s measured in the same process before and after every epoch: 2048³ and the mini-batch shape,
each with 2 BLAS threads and with 1. Target: >= 40 % of the 2-thread GEMM 2048³ (both cores: the
machine's GEMM bound). Several trainer configurations (BLAS threads, data-parallel workers, batch).

Serving: the same 64 -> 256 -> 256 -> 10 student (trained through ``store.train_student``, so the
whole store path runs: targets -> student -> ONNX -> kd.models) scored over the 1M-row feature
source in the store file, three ways, interleaved over several rounds (medians reported):

* floor: ONNX Runtime on an in-memory float32 array, batch 1024, 2 intra-op threads, no spinning;
* ``store.predict``: features read from the store (DuckDB -> Arrow -> float32 -> ORT -> Arrow),
  target >= 70 % of the floor;
* SQL: ``SELECT example_id, kd_predict('student_N', f0, ..., f63) FROM features.bench`` read to
  Arrow, target >= 50 % of the floor.

Run: ``PYTHONPATH=$PWD python benchmarks/student.py`` (``--rows`` to shrink it). Writes
benchmarks/results/student.{json,md}; the training-only run of issue 6 is
``--skip-serving --name student_training``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mb, write_results

import kdstore
from kdstore.student import serve
from kdstore.student.train import Targets, TrainConfig, fit

D, K, HIDDEN = 64, 10, (256, 256)


def blas_info() -> dict[str, Any]:
    try:
        from threadpoolctl import threadpool_info

        info = [{k: v for k, v in i.items() if k in ("internal_api", "architecture", "num_threads", "version")}
                for i in threadpool_info() if i.get("user_api") == "blas"]
    except ImportError:  # pragma: no cover
        info = []
    return {"blas": info, "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
            "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE")}


def gemm_flops(m: int, k: int, n: int, seconds: float = 0.4) -> float:
    """Median float32 GEMM FLOP/s of ``[m, k] @ [k, n]`` over repeated single products (wall clock)."""
    return gemm_rates(m, k, n, seconds)["median_call"]


def gemm_rates(m: int, k: int, n: int, seconds: float = 0.4) -> dict[str, float]:
    """GEMM FLOP/s three ways: median single call, whole window per wall second, per CPU second.

    On a shared machine the median call leaves out the moments the process is preempted, which an
    epoch's wall time includes; FLOP per CPU second leaves preemption out of both sides.
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    out = np.empty((m, n), np.float32)
    np.matmul(a, b, out=out)
    times = []
    w0, c0 = time.perf_counter(), time.process_time()
    end = w0 + seconds
    while time.perf_counter() < end or len(times) < 5:
        t0 = time.perf_counter()
        np.matmul(a, b, out=out)
        times.append(time.perf_counter() - t0)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    flop = 2.0 * m * k * n
    return {"median_call": flop / statistics.median(times), "best_call": flop / min(times),
            "per_wall_second": flop * len(times) / wall,
            "per_cpu_second": flop * len(times) / max(cpu, 1e-9)}


def make_data(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, D), dtype=np.float32)
    X *= rng.uniform(0.5, 3.0, D).astype(np.float32)
    X += rng.uniform(-2, 2, D).astype(np.float32)
    W = rng.standard_normal((D, K)).astype(np.float32) / 4
    Z = X @ W
    Z -= Z.max(axis=1, keepdims=True)
    P = np.exp(Z)
    P /= P.sum(axis=1, keepdims=True)
    return X, P


def bench_training(X: np.ndarray, P: np.ndarray, epochs: int, batch_size: int, dropout: float,
                   threads: int | None, workers: int | None, valid_rows: int) -> dict[str, Any]:
    """Train (fit's BLAS ``threads``, data-parallel ``workers``), measuring GEMMs before and after every epoch.

    The GEMMs are measured with 2 BLAS threads (the machine's GEMM bound: the target's denominator)
    and with 1 thread, at 2048³ and at the mini-batch shape ``batch x 256 x 256``.
    """
    from kdstore.student.train import blas_threads

    gemm: dict[str, list[dict[str, float]]] = {"2048_t2": [], "2048_t1": [], "batch_t2": [], "batch_t1": []}

    def after_epoch(_: dict[str, Any]) -> None:
        for nt in (2, 1):
            with blas_threads(nt):
                gemm[f"2048_t{nt}"].append(gemm_rates(2048, 2048, 2048, 1.0))
                gemm[f"batch_t{nt}"].append(gemm_rates(batch_size, 256, 256, 0.5))

    after_epoch({})
    n = X.shape[0] - valid_rows
    cfg = TrainConfig(hidden=HIDDEN, epochs=epochs, batch_size=batch_size, dropout=dropout, patience=0)
    res = fit(X[:n], Targets.multiclass(P[:n]), valid_X=X[n:], valid_targets=Targets.multiclass(P[n:]), config=cfg,
              on_epoch=after_epoch, threads="auto" if threads is None else threads, workers=workers)
    params = res.model.n_params()
    eps = [c["examples_per_second"] for c in res.curve]
    ex_s = statistics.median(eps)
    ex_cpu = statistics.median([n / c["cpu_seconds"] for c in res.curve])
    flops = 6.0 * params * ex_s

    def med(key: str, how: str = "median_call") -> float:
        return statistics.median(g[how] for g in gemm[key])

    p_valid = P[n:]
    entropy = float(-(p_valid * np.log(np.maximum(p_valid, 1e-30))).sum(axis=1).mean())
    return {
        "blas_threads": threads if threads is not None else "auto (1)", "workers": workers if workers is not None else "auto",
        "rows": int(n), "valid_rows": valid_rows, "epochs": epochs, "batch_size": batch_size, "dropout": dropout, "params": params,
        "examples_per_second_per_epoch": eps, "examples_per_second": ex_s, "train_gflops": flops / 1e9,
        "examples_per_cpu_second": ex_cpu,
        "gemm_gflops": {k: [g["median_call"] / 1e9 for g in v] for k, v in gemm.items()},
        "gemm_gflops_per_cpu_second": {k: [g["per_cpu_second"] / 1e9 for g in v] for k, v in gemm.items()},
        "ratio_vs_gemm_2048_2threads": flops / med("2048_t2"),
        "ratio_vs_gemm_2048_2threads_window": flops / med("2048_t2", "per_wall_second"),
        "ratio_vs_gemm_2048_2threads_best_call": flops / max(g["best_call"] for g in gemm["2048_t2"]),
        "gemm_2048_2threads_best_call_gflops": max(g["best_call"] for g in gemm["2048_t2"]) / 1e9,
        "ratio_vs_gemm_2048_1thread": flops / med("2048_t1"),
        "ratio_vs_gemm_batch_2threads": flops / med("batch_t2"),
        "ratio_vs_gemm_batch_1thread": flops / med("batch_t1"),
        "ratio_per_cpu_second_vs_gemm_2048_1thread": 6.0 * params * ex_cpu / med("2048_t1", "per_cpu_second"),
        "train_loss": [c["train_loss"] for c in res.curve], "valid_loss": [c["valid_loss"] for c in res.curve],
        "valid_target_entropy": entropy,
    }


def build_store(path: str, X: np.ndarray, P: np.ndarray) -> dict[str, float]:
    rows = X.shape[0]
    ids = np.arange(rows, dtype=np.int64)
    split = np.full(rows, "train", dtype=object)
    split[int(rows * 0.9): int(rows * 0.95)] = "valid"
    split[int(rows * 0.95):] = "test"
    t0 = time.perf_counter()
    with kdstore.connect(path) as s:
        s.add_labels([f"class_{k}" for k in range(K)])
        s.add_examples(pa.table({"example_id": ids, "split": pa.array(split, pa.string())}), progress=False)
        s.register_features("bench", pa.table({"example_id": ids, **{f"f{j}": X[:, j] for j in range(D)}}), progress=False)
        lab = split != "train"
        s.add_gold(pa.table({"example_id": ids[lab], "label": P[lab].argmax(1).astype(np.int32)}), progress=False)
        tr = np.flatnonzero(split == "train")
        targets = pa.table({
            "run_id": pa.array(np.ones(tr.size * K, np.int32)),
            "example_id": pa.array(np.repeat(tr, K)),
            "label_id": pa.array(np.tile(np.arange(K, dtype=np.int32), tr.size)),
            "target": pa.array(P[tr].astype(np.float64).ravel()),
            "weight": pa.array(np.ones(tr.size * K)),
            "teacher_id": pa.nulls(tr.size * K, pa.int32()),
            "rule": pa.array(np.full(tr.size * K, "bench", dtype=object), pa.string()),
        })
        s.run("INSERT INTO kd.runs (run_id, kind, params) VALUES (1, 'benchmark', '{\"task\": \"multiclass\"}')")
        s.con.register("__targets", targets)
        s.run("INSERT INTO kd.targets SELECT * FROM __targets")
        s.con.unregister("__targets")
    return {"build_seconds": time.perf_counter() - t0, "target_rows": float(tr.size * K)}


def timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_serving(path: str, X: np.ndarray, rounds: int, threads: int | str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with kdstore.connect(path) as s:
        t0 = time.perf_counter()
        mid = s.train_student(1, features="bench", hidden=HIDDEN, epochs=1, batch_size=512, progress=False, threads=threads)
        out["train_student_seconds"] = time.perf_counter() - t0
        m = s.models.load(mid)
        out["train_student_fit_seconds"] = m.metrics["train_seconds"]
        out["train_student_valid_accuracy"] = m.metrics["valid"]["accuracy"]
        out["train_student_test_accuracy"] = m.metrics["test"]["accuracy"]
    rows = X.shape[0]
    cols = ", ".join(f"f{j}" for j in range(D))
    with kdstore.connect(path, read_only=True) as s:
        m = s.models.load(mid)
        sess = serve.session(m, threads=2)

        def floor(batch: int = 1024) -> None:
            for i in range(0, rows, batch):
                sess.run(None, {"features": X[i:i + batch]})

        def store_predict() -> None:
            t = s.predict(mid)
            assert t.num_rows == rows

        def sql() -> None:
            t = s.con.sql(f"SELECT example_id, kd_predict('{m.name}', {cols}) AS p FROM features.bench").to_arrow_table()
            assert t.num_rows == rows

        def sql_list() -> None:
            t = s.con.sql(f"SELECT example_id, kd_predict('{m.name}', [{cols}]) AS p FROM features.bench").to_arrow_table()
            assert t.num_rows == rows

        def floor_2048() -> None:
            floor(2048)

        def sql_ort1() -> None:
            os.environ["KDSTORE_ORT_THREADS"] = "1"
            try:
                sql()
            finally:
                del os.environ["KDSTORE_ORT_THREADS"]

        cases = {"ort_floor_batch1024": floor, "ort_batch2048": floor_2048, "store_predict": store_predict,
                 "sql_kd_predict_varargs": sql, "sql_kd_predict_list": sql_list, "sql_kd_predict_varargs_ort1thread": sql_ort1}
        floor(); store_predict(); sql()  # warm up  # noqa: E702
        times: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(rounds):
            for name, fn in cases.items():
                times[name].append(timed(fn))
        med = {k: statistics.median(v) for k, v in times.items()}
        out["rows"] = rows
        out["seconds"] = times
        out["rows_per_second"] = {k: rows / v for k, v in med.items()}
        fl = out["rows_per_second"]["ort_floor_batch1024"]
        out["ratio_vs_floor"] = {k: v / fl for k, v in out["rows_per_second"].items()}
        out["flop_per_row"] = 2 * m.params["n_params"]
        out["floor_gflops"] = fl * 2 * m.params["n_params"] / 1e9
        out["duckdb_threads"] = s.one("SELECT current_setting('threads')")[0]  # type: ignore[index]
        out["ort_threads"] = 2
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--skip-training", action="store_true")
    ap.add_argument("--skip-serving", action="store_true")
    ap.add_argument("--name", default="student", help="results file name (benchmarks/results/NAME.{json,md})")
    ap.add_argument("--configs", default="auto:auto:512,auto:auto:2048,1:1:512",
                    help="training runs, comma-separated THREADS:WORKERS:BATCH (auto = fit's default; "
                         "THREADS also 'default' = BLAS default); serving uses the first")
    ap.add_argument("--valid-rows", type=int, default=50_000, help="rows held out (validation loss per epoch)")
    args = ap.parse_args()

    X, P = make_data(args.rows)
    result: dict[str, Any] = {"blas": blas_info(), "config": vars(args), "loadavg_start": os.getloadavg()}
    if not args.skip_training:
        result["training"] = []
        for conf in args.configs.split(","):
            th, wk, bs = conf.split(":")
            r = bench_training(X, P, args.epochs, int(bs), args.dropout, None if th == "auto" else (None if th == "default" else int(th)),
                               None if wk == "auto" else int(wk), args.valid_rows)
            if th == "default":
                r["blas_threads"] = "BLAS default"
            result["training"].append(r)
            print("training:", {k: v for k, v in r.items() if not isinstance(v, list)}, flush=True)
    if not args.skip_serving:
        with tempfile.TemporaryDirectory(prefix="kdstore-bench-") as tmp:
            path = os.path.join(tmp, "bench.duckdb")
            result["store"] = build_store(path, X, P)
            result["store"]["file_mb"] = os.path.getsize(path) / 1e6
            del P
            result["serving"] = bench_serving(path, X, args.rounds, "auto")
        print("serving:", result["serving"]["rows_per_second"], result["serving"]["ratio_vs_floor"], flush=True)
    result["peak_rss_mb"] = peak_rss_mb()
    result["loadavg_end"] = os.getloadavg()
    write_results(args.name, result, markdown(result))


def markdown(r: dict[str, Any]) -> str:
    lines = ["# Student benchmark", "",
             f"BLAS: {r['blas']['blas']}; OPENBLAS_CORETYPE={r['blas']['OPENBLAS_CORETYPE']}. "
             f"Load average (1/5/15 min) at start {tuple(round(x, 1) for x in r['loadavg_start'])}, at end "
             f"{tuple(round(x, 1) for x in r['loadavg_end'])} on {os.cpu_count()} cores (a shared machine: "
             "compare the ratios, measured in the same run, not the absolute numbers).", ""]
    if r.get("training"):
        lines += ["**Target ratio** (issue 6: ≥ 40 % of GEMM-bound): training FLOP/s (6 x parameters per example, "
                  "median epoch, wall clock) / NumPy float32 GEMM 2048³ with **2 BLAS threads** (both cores: the "
                  "machine's GEMM bound), median call, measured before and after every epoch of the same run. The "
                  "ratios against 1-thread GEMM and against the mini-batch shape are context, not the target.", ""]
    for t in r.get("training", []):
        g = t["gemm_gflops"]

        def fmt(xs: list[float]) -> str:
            return ", ".join(f"{x:.0f}" for x in xs)

        lines += [
            f"## Training: {t['rows']:,} x {D} -> {HIDDEN} -> {K}, batch {t['batch_size']}, dropout {t['dropout']}, "
            f"{t['params']:,} parameters; BLAS threads {t['blas_threads']}, data-parallel workers {t['workers']}", "",
            "| measure | value |", "|---|---|",
            f"| examples/s per epoch | {', '.join(f'{x:,.0f}' for x in t['examples_per_second_per_epoch'])} |",
            f"| training FLOP/s (median epoch) | {t['train_gflops']:.1f} GFLOP/s |",
            f"| GEMM 2048³, 2 threads (before + after each epoch) | {fmt(g['2048_t2'])} GFLOP/s |",
            f"| GEMM 2048³, 1 thread | {fmt(g['2048_t1'])} GFLOP/s |",
            f"| GEMM {t['batch_size']}x256x256, 2 threads / 1 thread | {fmt(g['batch_t2'])} / {fmt(g['batch_t1'])} GFLOP/s |",
            f"| **TARGET ratio vs GEMM 2048³ 2 threads** (≥ 40 %) | **{t['ratio_vs_gemm_2048_2threads']:.0%}** |",
            f"| same over a 1 s window (preemption on both sides) | {t['ratio_vs_gemm_2048_2threads_window']:.0%} |",
            f"| ratio vs the fastest 2-thread GEMM 2048³ call of the run ({t['gemm_2048_2threads_best_call_gflops']:.0f} GFLOP/s; "
            f"a less contended denominator) | {t['ratio_vs_gemm_2048_2threads_best_call']:.0%} |",
            f"| ratio vs GEMM 2048³ 1 thread (not the target) | {t['ratio_vs_gemm_2048_1thread']:.0%} |",
            f"| ratio vs GEMM at the batch shape, 2 threads / 1 thread | {t['ratio_vs_gemm_batch_2threads']:.0%} / "
            f"{t['ratio_vs_gemm_batch_1thread']:.0%} |",
            f"| per CPU second: {t['examples_per_cpu_second']:,.0f} examples/CPU-s vs 1-thread GEMM 2048³ per CPU-s | "
            f"{t['ratio_per_cpu_second_vs_gemm_2048_1thread']:.0%} |",
            f"| valid loss per epoch ({t['valid_rows']:,} rows; floor = target entropy {t['valid_target_entropy']:.4f}) | "
            f"{', '.join(f'{x:.4f}' for x in t['valid_loss'])} |", ""]
    s = r.get("serving")
    if not s:
        return "\n".join(lines)
    lines += [
        f"## Serving: {s['rows']:,} rows, 64 -> 256 -> 256 -> 10 ({s['flop_per_row']:,} FLOP/row), ORT {s['ort_threads']} threads, "
        f"DuckDB {s['duckdb_threads']} threads, medians of {len(next(iter(s['seconds'].values())))} interleaved rounds", "",
        "| path | rows/s | vs floor | target |", "|---|---|---|---|"]
    targets = {"store_predict": "≥ 70 %", "sql_kd_predict_varargs": "≥ 50 %", "sql_kd_predict_list": "≥ 50 %",
               "sql_kd_predict_varargs_ort1thread": "(ORT 1 thread per call)"}
    for k, v in s["rows_per_second"].items():
        lines.append(f"| {k} | {v:,.0f} | {s['ratio_vs_floor'][k]:.0%} | {targets.get(k, '')} |")
    lines += ["", f"Floor: {s['floor_gflops']:.0f} GFLOP/s. Store path: train_student (1 epoch, incl. reading "
              f"{r['store']['target_rows']:,.0f} target rows, export, metrics) {s['train_student_seconds']:.1f} s, of which "
              f"fit {s['train_student_fit_seconds']:.1f} s; store file {r['store']['file_mb']:.0f} MB. Peak RSS {r['peak_rss_mb']:.0f} MB."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
