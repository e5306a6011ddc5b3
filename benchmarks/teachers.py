"""Benchmark: a corpus of MLP teachers run over 1M feature rows stored in a DuckDB file (issue 4).

20 teachers (64 -> 256 -> 256 -> k, float32, random weights, softmax) over N feature rows. Measured
in one run, on the same machine state, so ratios are meaningful:

* feature read: a full scan of the feature source in Arrow batches + building the model input,
  for 64 FLOAT columns and for one FLOAT[64] column (the faster one is used below);
* NumPy float32 GEMM (the machine's dense-math ceiling, FLOP/s);
* pure ONNX Runtime on in-memory arrays (the floor for the end-to-end run): the same sessions,
  thread settings and chunking run_teachers uses, and a 1-session x all-threads variant;
* end-to-end ``store.run_teachers``: features read from DuckDB -> inference -> outputs validated
  and stored in kd.scores (committed);
* a per-row Python loop calling the same session (on a sample, extrapolated).

Run: ``PYTHONPATH=$PWD python benchmarks/teachers.py`` (``--rows 100000`` for a quick look).
Writes benchmarks/results/teachers.{json,md}.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, peak_rss_mb, write_results

import kdstore
from kdstore.teachers import OnnxTeacher
from kdstore.teachers.onnx import CHUNK_ROWS
from kdstore.teachers.run import _cpu_count
from kdstore.teachers.spec import InputBinding, TensorSpec, build_feed
from tests import onnx_models as om

D, H = 64, 256


def flops_per_row(k: int) -> int:
    return 2 * (D * H + H * H + H * k)


def gemm_flops(repeats: int = 7) -> float:
    """Best float32 GEMM FLOP/s of a (4096 x 256) @ (256 x 256) product, NumPy's default threads.

    The best of several repeats (not the median) approximates the machine's ceiling on a shared box.
    """
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4096, H)).astype(np.float32)
    b = rng.normal(size=(H, H)).astype(np.float32)
    a @ b
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(20):
            a @ b
        times.append(time.perf_counter() - t)
    return 20 * 2 * 4096 * H * H / min(times)


def make_store(path: Path, x: np.ndarray, k: int) -> None:
    n = len(x)
    ids = np.arange(n, dtype=np.int64)
    with kdstore.connect(path) as store:
        store.add_labels([f"class{i}" for i in range(k)])
        store.add_examples(pa.table({"example_id": ids, "split": np.where(ids % 5 == 0, "valid", "train")}), progress=False)
        store.register_features("cols", pa.table({"example_id": ids, **{f"c{j}": x[:, j] for j in range(D)}}), progress=False)
        vec = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), D)
        store.register_features("vec", pa.table({"example_id": ids, "x": vec}), progress=False)
        store.con.execute("CHECKPOINT").fetchall()


def time_read(path: Path, source: str, batch: int) -> float:
    """Seconds for the run's feature query + building the float32 [n, 64] input, whole source."""
    spec = TensorSpec("x", "float32", (None, D))
    binding = InputBinding(spec, ("x",), True) if source == "vec" else InputBinding(spec, tuple(f"c{j}" for j in range(D)), False)
    cols = ", ".join(f'f."{c}"' for c in binding.columns)
    with kdstore.connect(path, read_only=True) as store:
        q = f'SELECT f.example_id, {cols} FROM features."{source}" AS f JOIN kd.examples AS e ON e.example_id = f.example_id'
        t = time.perf_counter()
        rows = 0
        for b in store.con.sql(q).to_arrow_reader(batch):
            rows += len(build_feed(binding, b, "bench"))
        return time.perf_counter() - t


def pure_ort(teachers: list[OnnxTeacher], x: np.ndarray, batch: int, workers: int, threads: int) -> tuple[float, float]:
    """(wall, CPU) seconds to run every teacher over every in-memory row (run_teachers' sessions and chunking)."""
    sessions = [t.open(threads=threads) for t in teachers]
    for s in sessions:
        s.run({"x": x[:CHUNK_ROWS]})
    t0, c0 = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(s.run, {"x": x[lo:lo + batch]}) for lo in range(0, len(x), batch) for s in sessions]
        for f in futures:
            f.result()
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    for s in sessions:
        s.close()
    return dt, dc


def _session(teacher: OnnxTeacher, threads: int) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(teacher.checked().model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def per_row_loop(teacher: OnnxTeacher, x: np.ndarray, sample: int) -> dict[int, float]:
    """Rows/s of a Python loop calling session.run once per in-memory row, per intra-op thread count."""
    rates = {}
    for threads in sorted({1, _cpu_count()}):
        sess = _session(teacher, threads)
        for i in range(100):
            sess.run(None, {"x": x[i : i + 1]})
        t = time.perf_counter()
        for i in range(sample):
            sess.run(None, {"x": x[i : i + 1]})
        rates[threads] = sample / (time.perf_counter() - t)
    return rates


def per_row_pipeline(teacher: OnnxTeacher, db: Path, layout: str, sample: int) -> float:
    """Rows/s of the naive per-row pipeline: fetch a row from DuckDB, run it, INSERT its scores (rolled back)."""
    sess = _session(teacher, 1)
    col = "x" if layout == "vec" else ", ".join(f"c{j}" for j in range(D))
    with kdstore.connect(db) as store:
        rows = store.con.sql(f'SELECT example_id, {col} FROM features."{layout}" LIMIT {sample}').fetchall()
        store.con.execute("BEGIN TRANSACTION").fetchall()
        t = time.perf_counter()
        for r in rows:
            vec = r[1] if layout == "vec" else r[1:]
            out = sess.run(None, {"x": np.asarray([vec], dtype=np.float32)})[0]
            store.con.execute("INSERT INTO kd.scores VALUES (?, ?, ?)", [999, r[0], out[0].tolist()]).fetchall()
        dt = time.perf_counter() - t
        store.con.execute("ROLLBACK").fetchall()
    return len(rows) / dt


def render(d: dict[str, Any]) -> str:
    """The Markdown report of one run (also re-renders a saved JSON: ``--render``)."""
    T, n, k, cores = d["teachers"], d["rows"], d["k"], d["cores"]
    work_rows, fpr = n * T, flops_per_row(k)
    pure_cfg, pure_1s = d["pure_ort_seconds"]["configured"], d["pure_ort_seconds"]["one_session_all_threads"]
    e2e, gemm = d["end_to_end_seconds"], d["gemm_gflops"]
    workers, threads = d["workers"], d["threads_per_session"]
    r, tr, cpu, read = d["ratios"], d["teacher_rows_per_s"], d["cpu_seconds"], d["read_seconds"]
    loop_rate, pipe_rate = d["per_row_loop_rows_per_s"], d["per_row_pipeline_rows_per_s"]
    quarter = d.get("pure_variant_teachers", max(1, T // 4))
    load = d.get("load_average")
    load_txt = f" Load average (1 min) {load['start']:.1f} at the start, {load['end']:.1f} at the end." if load else ""

    def met(x: float, target: float) -> str:
        return "yes" if x >= target else "NO"

    return f"""# Teachers benchmark: {T} MLP teachers x {n:,} feature rows

64 -> 256 -> 256 -> {k} float32 MLPs with softmax ({fpr:,} FLOP per row), features stored in the DuckDB file,
{cores} cores, batches of {d['batch_rows']:,} rows (ONNX Runtime calls of {d['ort_chunk_rows']:,} rows), {workers} concurrent
sessions x {threads} intra-op thread(s). One run; ratios compare numbers measured in it. The machine is shared: the
process got only a fraction of the 2 cores (see the CPU seconds), so wall-clock ratios partly measure the
scheduler; the CPU-time ratio compares the work done.{load_txt}

| what | seconds | teacher-rows/s | GFLOP/s |
|---|---:|---:|---:|
| NumPy float32 GEMM (ceiling, best of two measurements) | | | {gemm:.1f} |
| pure ONNX Runtime, in-memory arrays ({workers}x{threads}) | {pure_cfg:.1f} | {work_rows / pure_cfg:,.0f} | {work_rows * fpr / pure_cfg / 1e9:.1f} |
| pure ONNX Runtime, in-memory arrays (1x{cores}; {quarter} teachers, scaled) | {pure_1s:.1f} | {work_rows / pure_1s:,.0f} | {work_rows * fpr / pure_1s / 1e9:.1f} |
| **end-to-end run_teachers** (DuckDB -> ORT -> kd.scores) | {e2e:.1f} | {tr['end_to_end']:,.0f} | {d['achieved_gflops']['end_to_end']:.1f} |
| per-row Python loop calling session.run (sample of {d.get('loop_sample', 5000):,}, extrapolated) | {d['per_row_loop_extrapolated_seconds']:,.0f} | {loop_rate:,.0f} | {loop_rate * fpr / 1e9:.2f} |
| per-row pipeline: fetch row from DuckDB, run, INSERT (sample of {d.get('pipeline_sample', 2000):,}, extrapolated) | {d['per_row_pipeline_extrapolated_seconds']:,.0f} | {pipe_rate:,.0f} | {pipe_rate * fpr / 1e9:.2f} |
| incremental re-run (everything stored: all skipped) | {d['incremental_rerun_seconds']:.2f} | | |

| target | measured | met |
|---|---:|:---:|
| end-to-end >= 70% of pure inference (best pure config, wall clock) | {r['end_to_end_vs_pure']:.1%} | {met(r['end_to_end_vs_pure'], 0.7)} |
| same, against the pure run with run_teachers' own config ({workers}x{threads}), wall clock | {r['end_to_end_vs_same_config_pure']:.1%} | {met(r['end_to_end_vs_same_config_pure'], 0.7)} |
| same, in CPU seconds (pure {cpu['pure_ort_configured']:.1f} s / end-to-end {cpu['end_to_end']:.1f} s) | {r['cpu_time_pure_over_end_to_end']:.1%} | {met(r['cpu_time_pure_over_end_to_end'], 0.7)} |
| end-to-end >= 100x the per-row loop (session.run per row) | {r['end_to_end_vs_loop']:,.1f}x | {met(r['end_to_end_vs_loop'], 100)} |
| end-to-end >= 100x the per-row pipeline (read, run, insert per row) | {r['end_to_end_vs_pipeline']:,.0f}x | {met(r['end_to_end_vs_pipeline'], 100)} |
| achieved FLOP/s vs NumPy GEMM | pure {r['pure_vs_gemm']:.0%}, end-to-end {r['end_to_end_vs_gemm']:.0%} | (reported) |

Feature read (full scan + float32 input build): 64 FLOAT columns {read['cols']:.2f} s, one FLOAT[64] column
{read['vec']:.2f} s -> the run used `{d['feature_layout']}`. Stored {d['stored_rows']:,} score rows; parity with a direct
session max |diff| {d['parity_max_abs_diff']:.1e}. Store setup {d['setup_seconds']:.1f} s; peak RSS {d['peak_rss_mb']:,.0f} MB;
whole benchmark {d['total_seconds']:.0f} s.

Why the per-row loop target is not met: for a model this small one `session.run` call costs ~10-20 us of
overhead plus a matrix-vector product, against ~2 us per row of batched compute per core, so batching can
only win ~5-15x over that loop. Against the naive per-row pipeline (read a row, run it, INSERT it) the
end-to-end run is far more than 100x faster.
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--teachers", type=int, default=20)
    ap.add_argument("--k", type=int, default=10, help="classes per teacher")
    ap.add_argument("--batch", type=int, default=1 << 16, help="feature rows per batch")
    ap.add_argument("--sample", type=int, default=5000, help="rows for the per-row loop")
    ap.add_argument("--workdir", default=None, help="where the store and models go (default: a temp dir)")
    ap.add_argument("--render", action="store_true", help="only re-render results/teachers.md from the saved JSON")
    args = ap.parse_args()
    if args.render:
        saved = json.loads((RESULTS / "teachers.json").read_text())
        (RESULTS / "teachers.md").write_text(render(saved).rstrip() + "\n")
        return
    n, T, k = args.rows, args.teachers, args.k
    work = Path(args.workdir or tempfile.mkdtemp(prefix="kdstore-bench-teachers-"))
    work.mkdir(parents=True, exist_ok=True)
    cores = _cpu_count()
    t_all = time.perf_counter()
    load_start = os.getloadavg()[0]
    print(f"{n:,} rows x {T} teachers (64->256->256->{k}), {cores} cores, work dir {work}", flush=True)
    try:
        rng = np.random.default_rng(0)
        x = rng.normal(size=(n, D)).astype(np.float32)
        teachers = []
        for i in range(T):
            m = om.mlp(d=D, hidden=(H, H), k=k, seed=1000 + i)
            teachers.append(OnnxTeacher(om.save(m.model, work / f"mlp{i:02d}.onnx"), labels=[f"class{j}" for j in range(k)]))
        db = work / "store.duckdb"
        t = time.perf_counter()
        make_store(db, x, k)
        setup_s = time.perf_counter() - t
        print(f"store built in {setup_s:.1f} s ({db.stat().st_size / 1e6:.0f} MB)", flush=True)

        read = {src: statistics.median(time_read(db, src, args.batch) for _ in range(3)) for src in ("cols", "vec")}
        layout = min(read, key=lambda s: read[s])
        print(f"feature read: {', '.join(f'{s} {v:.2f} s' for s, v in read.items())} -> using {layout}", flush=True)

        gemm = gemm_flops()
        print(f"NumPy float32 GEMM: {gemm / 1e9:.1f} GFLOP/s", flush=True)

        workers = min(cores, T)
        threads = max(1, cores // workers)
        pure_cfg, pure_cpu = pure_ort(teachers, x, args.batch, workers, threads)
        gc.collect()
        quarter = max(1, T // 4)  # the variant runs a quarter of the teachers, scaled up (saves minutes)
        pure_1s = pure_ort(teachers[:quarter], x, args.batch, 1, cores)[0] * T / quarter
        pure = min(pure_cfg, pure_1s)
        print(f"pure ORT: {workers}x{threads} {pure_cfg:.1f} s, 1x{cores} {pure_1s:.1f} s", flush=True)

        loop_rates = per_row_loop(teachers[0], x, args.sample)
        loop_rate = max(loop_rates.values())  # the fairer baseline: the faster thread setting
        pipe_rate = per_row_pipeline(teachers[0], db, layout, min(args.sample, 2000))
        print(f"per-row loop: {loop_rate:,.0f} rows/s; per-row pipeline (read, run, insert): {pipe_rate:,.0f} rows/s", flush=True)

        gc.collect()
        with kdstore.connect(db) as store:
            t, c = time.perf_counter(), time.process_time()
            report = store.run_teachers(teachers, features=layout, batch_size=args.batch, progress=False)
            e2e, e2e_cpu = time.perf_counter() - t, time.process_time() - c
            stored_rows = int(store.one("SELECT count(*) FROM kd.scores")[0])  # type: ignore[index]
            # spot check: stored outputs equal the model's for a few rows
            probe = store.query(
                "SELECT example_id, scores FROM kd.scores WHERE teacher_id = 0 AND example_id IN (0, 1, 777) ORDER BY 1"
            )
        sess = teachers[0].open(threads=1)
        direct = sess.run({"x": x[[0, 1, 777]]})["probs"]
        parity = float(np.abs(np.array(probe.column(1).to_pylist()) - direct).max())
        assert stored_rows == n * T, stored_rows
        assert all(r.status == "ran" for r in report.runs)
        print(f"end-to-end run_teachers: {e2e:.1f} s, stored {stored_rows:,} rows, parity max |diff| {parity:.2e}", flush=True)

        with kdstore.connect(db) as store:
            t = time.perf_counter()
            again = store.run_teachers([t_.name for t_ in teachers], features=layout, progress=False)
            rerun = time.perf_counter() - t
        assert all(r.status == "skipped" for r in again.runs)

        work_rows = n * T
        fpr = flops_per_row(k)
        loop_s = work_rows / loop_rate
        pipe_s = work_rows / pipe_rate
        gemm = max(gemm, gemm_flops())  # measured again after the runs: the best of both
        data: dict[str, Any] = {
            "rows": n, "teachers": T, "k": k, "batch_rows": args.batch, "ort_chunk_rows": CHUNK_ROWS, "cores": cores,
            "workers": report.workers, "threads_per_session": report.threads, "feature_layout": layout,
            "setup_seconds": setup_s, "read_seconds": read,
            "gemm_gflops": gemm / 1e9,
            "pure_ort_seconds": {"configured": pure_cfg, "one_session_all_threads": pure_1s, "floor": pure},
            "end_to_end_seconds": e2e, "incremental_rerun_seconds": rerun,
            "cpu_seconds": {"pure_ort_configured": pure_cpu, "end_to_end": e2e_cpu},
            "per_row_loop_rows_per_s": loop_rate, "per_row_loop_rows_per_s_by_threads": loop_rates, "per_row_loop_extrapolated_seconds": loop_s,
            "per_row_pipeline_rows_per_s": pipe_rate, "per_row_pipeline_extrapolated_seconds": pipe_s,
            "teacher_rows_per_s": {"pure_ort": work_rows / pure, "end_to_end": work_rows / e2e, "per_row_loop": loop_rate,
                                   "per_row_pipeline": pipe_rate},
            "achieved_gflops": {"pure_ort": work_rows * fpr / pure / 1e9, "end_to_end": work_rows * fpr / e2e / 1e9},
            "ratios": {"end_to_end_vs_pure": pure / e2e, "end_to_end_vs_loop": loop_s / e2e,
                       "end_to_end_vs_same_config_pure": pure_cfg / e2e,
                       "cpu_time_pure_over_end_to_end": pure_cpu / e2e_cpu,
                       "end_to_end_vs_pipeline": pipe_s / e2e,
                       "pure_vs_gemm": work_rows * fpr / pure / gemm, "end_to_end_vs_gemm": work_rows * fpr / e2e / gemm},
            "targets": {"end_to_end_vs_pure": 0.70, "end_to_end_vs_loop": 100.0},
            "parity_max_abs_diff": parity, "stored_rows": stored_rows, "peak_rss_mb": peak_rss_mb(),
            "total_seconds": time.perf_counter() - t_all,
            "pure_variant_teachers": quarter, "loop_sample": args.sample, "pipeline_sample": min(args.sample, 2000),
            "load_average": {"start": load_start, "end": os.getloadavg()[0]},
        }
        md = render(data)
        write_results("teachers", data, md)
        print(md)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
