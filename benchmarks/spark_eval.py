"""Evaluation on local Spark vs DuckDB: the same views, the same answer, up to 100M outputs.

Data: ``teachers`` x ``examples`` x 5 labels of multilabel scores (default 20 x 1M x 5 = 100M
outputs), generated deterministically in SQL straight into an on-disk store (a hash per
(teacher, example, label), so both engines see exactly the same numbers); each teacher has its own
skill, 10% of examples are valid (with gold; 100k of 1M), 10% test, 80% train.

Per size, timed separately:

* DuckDB: ``label_metrics``, ``label_experts``, ``teacher_summary`` to Arrow, and ``consensus_z``
  written to Parquet (materialised; the sink Spark uses too), on the store file (``memory_limit`` 6 GB, 2 threads). One warm-up, median of ``--repeat``.
* Spark ``local[2]`` (driver memory ``--spark-memory``, < 8 GB): the store exported with
  ``store.export_parquet`` (timed: the hand-over cost), the tables registered, the views installed
  from the same ``sql/`` files through sqlglot, then the same four queries. Spark runs once per size
  (plus one warm-up query at the smallest size); the session start is reported on its own.
* Same answer: the three small views compared row for row (row counts, floats within 1e-9
  relative, max abs difference reported); ``consensus_z`` — every
  row of Spark's Parquet joined to DuckDB's on the key in DuckDB: row counts equal, no unmatched
  row, max |z difference| reported.

Run: ``PYTHONPATH=$PWD python benchmarks/spark_eval.py`` (``--sizes 10000,100000`` for a quick run;
sizes are numbers of examples).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import peak_rss_mb, write_results

import kdstore
from kdstore import spark as ks
from tests.frames import _key, _norm, assert_same_rows

N_LABELS = 5
VIEWS = ("label_metrics", "consensus_z", "label_experts", "teacher_summary")
SMALL_VIEWS = ("label_metrics", "label_experts", "teacher_summary")


def compare_small(expected: Any, got: Any, what: str) -> dict[str, Any]:
    """Row counts and the max abs difference of the float columns (rows matched by sorting)."""
    assert_same_rows(expected, got, tol=1e-9, what=what)
    names = expected.schema.names
    e_rows = sorted((tuple(_norm(r[c]) for c in names) for r in expected.to_pylist()), key=_key)
    g_rows = sorted((tuple(_norm(r[c]) for c in names) for r in got.to_pylist()), key=_key)
    diff = max((abs(x - y) for e, g in zip(e_rows, g_rows, strict=True) for x, y in zip(e, g, strict=True)
                if isinstance(x, float) and isinstance(y, float) and x == x and y == y), default=0.0)
    return {f"{what}_rows_duckdb": expected.num_rows, f"{what}_rows_spark": got.num_rows,
            f"{what}_max_abs_diff": diff, f"{what}_equal": True}


def build_store(path: Path, n_examples: int, n_teachers: int) -> int:
    """Write the synthetic store; returns the number of outputs."""
    with kdstore.connect(path) as store:
        store.add_labels([f"l{i}" for i in range(N_LABELS)])
        con = store.con
        con.execute("SET enable_progress_bar = false").fetchall()
        con.execute(
            """
            INSERT INTO kd.examples
            SELECT range AS example_id,
                   CASE WHEN hash(range, 'split') % 10 < 1 THEN 'valid'
                        WHEN hash(range, 'split') % 10 < 2 THEN 'test' ELSE 'train' END,
                   NULL
            FROM range(?)
            """,
            [n_examples],
        ).fetchall()
        con.execute(
            "INSERT INTO kd.gold SELECT example_id, (hash(example_id, 'truth') % ?)::INTEGER FROM kd.examples "
            "WHERE split <> 'train'",
            [N_LABELS],
        ).fetchall()
        for t in range(n_teachers):
            store.add_teacher(f"t{t:02d}", labels=[f"l{i}" for i in range(N_LABELS)], output_type="multilabel")
        # Skill of teacher t on label l: how far its score on the true label is pushed up.
        con.execute(
            """
            INSERT INTO kd.scores
            SELECT t.teacher_id, e.example_id,
                   list_transform(range(?), lambda l: least(1.0, greatest(0.0,
                       (hash(t.teacher_id, e.example_id, l) % 1000003) / 1000003.0 * 0.7
                       + CASE WHEN l = hash(e.example_id, 'truth') % ? THEN
                             0.15 + 0.5 * ((t.teacher_id * 7 + l * 3) % 11) / 10.0 ELSE 0.0 END))::FLOAT)
            FROM kd.teachers t CROSS JOIN kd.examples e
            """,
            [N_LABELS, N_LABELS],
        ).fetchall()
        store.run("CHECKPOINT")
    return n_examples * n_teachers * N_LABELS


def median_time(fn: Any, repeat: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def run_size(n_examples: int, args: argparse.Namespace, spark: Any, work: Path) -> dict[str, Any]:
    n_teachers = args.teachers
    db = work / f"bench_{n_examples}.duckdb"
    t0 = time.perf_counter()
    n_outputs = build_store(db, n_examples, n_teachers)
    gen_s = time.perf_counter() - t0
    res: dict[str, Any] = {"examples": n_examples, "teachers": n_teachers, "labels": N_LABELS, "outputs": n_outputs,
                           "generate_s": round(gen_s, 2)}
    print(f"== {n_outputs:,} outputs (generated in {gen_s:.1f} s)", flush=True)
    with kdstore.connect(db) as store:
        store.run("SET memory_limit = '6GB'")
        store.run("SET threads = 2")
        store.run("SET enable_progress_bar = false")
        duck_z = work / f"duck_z_{n_examples}"

        def duck_metrics() -> Any:
            return store.query("SELECT * FROM kd.label_metrics")

        def duck_view(v: str) -> Any:
            return store.query(f"SELECT * FROM kd.{v}")

        def duck_consensus() -> None:
            shutil.rmtree(duck_z, ignore_errors=True)
            store.run(f"COPY (SELECT * FROM kd.consensus_z) TO '{duck_z}' (FORMAT parquet, FILE_SIZE_BYTES '256MB')")

        duck_metrics()  # warm-up
        res["duckdb_label_metrics_s"], res["duckdb_label_metrics_runs"] = median_time(duck_metrics, args.repeat)
        res["duckdb_consensus_z_s"], res["duckdb_consensus_z_runs"] = median_time(duck_consensus, args.repeat)
        print(f"duckdb: label_metrics {res['duckdb_label_metrics_s']:.2f} s, consensus_z {res['duckdb_consensus_z_s']:.2f} s", flush=True)
        expected = {"label_metrics": duck_metrics()}
        for v in ("label_experts", "teacher_summary"):
            res[f"duckdb_{v}_s"], _ = median_time(lambda v=v: duck_view(v), args.repeat)
            expected[v] = duck_view(v)
        print(f"duckdb: label_experts {res['duckdb_label_experts_s']:.2f} s, "
              f"teacher_summary {res['duckdb_teacher_summary_s']:.2f} s", flush=True)
        export = work / f"export_{n_examples}"
        t0 = time.perf_counter()
        store.export_parquet(export, features=False, overwrite=True)
        res["export_parquet_s"] = round(time.perf_counter() - t0, 2)
        res["export_bytes"] = sum(f.stat().st_size for f in export.rglob("*.parquet"))
        print(f"export_parquet {res['export_parquet_s']:.1f} s, {res['export_bytes'] / 1e9:.2f} GB", flush=True)

    prefix = f"b{n_examples}_"
    t0 = time.perf_counter()
    ks.register_tables(spark, export, prefix=prefix)
    ks.install_views(spark, prefix=prefix, views=list(VIEWS))
    res["spark_register_install_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    got_metrics = ks.to_arrow(spark.table(f"{prefix}label_metrics"))
    res["spark_label_metrics_s"] = round(time.perf_counter() - t0, 2)
    spark_z = work / f"spark_z_{n_examples}"
    t0 = time.perf_counter()
    spark.table(f"{prefix}consensus_z").write.mode("overwrite").parquet(str(spark_z))
    res["spark_consensus_z_s"] = round(time.perf_counter() - t0, 2)
    print(f"spark: label_metrics {res['spark_label_metrics_s']:.2f} s, consensus_z {res['spark_consensus_z_s']:.2f} s", flush=True)
    got = {"label_metrics": got_metrics}
    for v in ("label_experts", "teacher_summary"):
        t0 = time.perf_counter()
        got[v] = ks.to_arrow(spark.table(f"{prefix}{v}"))
        res[f"spark_{v}_s"] = round(time.perf_counter() - t0, 2)
    print(f"spark: label_experts {res['spark_label_experts_s']:.2f} s, teacher_summary {res['spark_teacher_summary_s']:.2f} s",
          flush=True)

    # Same answer.
    for v in SMALL_VIEWS:
        res.update(compare_small(expected[v], got[v], v))
    import duckdb

    con = duckdb.connect()
    con.execute("SET memory_limit = '6GB'")
    cols = [c for c in con.sql(f"SELECT * FROM read_parquet('{duck_z}/*.parquet') LIMIT 0").columns]
    keys = [c for c in ("teacher_id", "example_id", "label_id") if c in cols]
    zcol = "z" if "z" in cols else next(c for c in cols if c.endswith("z"))
    on = " AND ".join(f"d.{k} = s.{k}" for k in keys)
    row = con.sql(
        f"""
        SELECT (SELECT count(*) FROM read_parquet('{duck_z}/*.parquet')),
               (SELECT count(*) FROM read_parquet('{spark_z}/*.parquet')),
               count(*) FILTER (WHERE d.{keys[0]} IS NULL OR s.{keys[0]} IS NULL),
               max(abs(d.{zcol} - s.{zcol})),
               count(*) FILTER (WHERE (d.{zcol} IS NULL) <> (s.{zcol} IS NULL))
        FROM read_parquet('{duck_z}/*.parquet') d FULL JOIN read_parquet('{spark_z}/*.parquet') s ON {on}
        """
    ).fetchall()[0]
    con.close()
    res.update({"consensus_z_rows_duckdb": row[0], "consensus_z_rows_spark": row[1], "consensus_z_unmatched": row[2],
                "consensus_z_max_abs_diff": row[3], "consensus_z_null_mismatch": row[4]})
    res["consensus_z_equal"] = row[0] == row[1] and row[2] == 0 and row[4] == 0 and (row[3] or 0.0) <= 1e-9
    print(f"same answer: {[v for v in VIEWS if res[f'{v}_equal']]}, consensus_z {res['consensus_z_equal']} "
          f"(rows {row[0]:,} vs {row[1]:,}, max |dz| {row[3]})", flush=True)
    for p in (db, export, duck_z, spark_z):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000000", help="numbers of examples, comma separated")
    ap.add_argument("--teachers", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3, help="DuckDB repetitions (median)")
    ap.add_argument("--spark-memory", default="6g")
    ap.add_argument("--shuffle-partitions", type=int, default=16)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--why", default=None, help="why the run stops below 100M outputs (recorded)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(args.workdir or tempfile.mkdtemp(prefix="kd_spark_eval_"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    spark = ks.local_session(cores=2, driver_memory=args.spark_memory, shuffle_partitions=args.shuffle_partitions,
                             conf={"spark.local.dir": str(work / "spark-tmp")})
    session_s = time.perf_counter() - t0
    results = []
    try:
        for n in sizes:
            try:
                results.append(run_size(n, args, spark, work))
            except Exception as e:  # report the largest size that ran, and why the next one did not
                print(f"size {n} failed: {type(e).__name__}: {str(e)[:300]}", flush=True)
                results.append({"examples": n, "outputs": n * args.teachers * N_LABELS, "error": f"{type(e).__name__}: {str(e)[:300]}"})
                break
    finally:
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)
    ok = [r for r in results if "error" not in r]
    data: dict[str, Any] = {"spark_session_start_s": round(session_s, 2), "spark_driver_memory": args.spark_memory,
                            "shuffle_partitions": args.shuffle_partitions, "sizes": results,
                            "peak_rss_mb_python": round(peak_rss_mb(), 1)}
    if ok and ok[-1]["outputs"] < 100_000_000:
        data["not_100M_because"] = args.why or "not run at 100M"
    lines = [
        "# Evaluation on local Spark vs DuckDB",
        "",
        "Views `label_metrics`, `label_experts`, `teacher_summary` (to Arrow) and `consensus_z` (materialised to "
        "Parquet), installed from the same `sql/` files;",
        f"Spark `local[2]`, driver memory {args.spark_memory}, {args.shuffle_partitions} shuffle partitions; "
        f"DuckDB 2 threads, 6 GB. Spark session start: {session_s:.1f} s. Shared 2-core machine: compare ratios.",
        "",
        "| outputs | view | DuckDB s | Spark s | Spark / DuckDB | rows DuckDB | rows Spark | max abs diff | same |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['outputs']:,} | failed: {r['error'][:80]} | | | | | | | |")
            continue
        for v in ("label_metrics", "consensus_z", "label_experts", "teacher_summary"):
            d, sp = r[f"duckdb_{v}_s"], r[f"spark_{v}_s"]
            lines.append(
                f"| {r['outputs']:,} | {v} | {d:.2f} | {sp:.2f} | {sp / d:.1f}x | {r[f'{v}_rows_duckdb']:,} | "
                f"{r[f'{v}_rows_spark']:,} | {r[f'{v}_max_abs_diff'] or 0.0:.1e} | {'yes' if r[f'{v}_equal'] else 'NO'} |"
            )
        lines.append(f"| {r['outputs']:,} | (export_parquet, {r['export_bytes'] / 1e9:.2f} GB) | {r['export_parquet_s']:.1f} | | | | | | |")
    if "not_100M_because" in data:
        lines += ["", f"100M not run: {data['not_100M_because']}"]
    write_results("spark_eval", data, "\n".join(lines))
    print("\n".join(lines))
    if any("error" not in r and not all(r[f"{v}_equal"] for v in VIEWS) for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
