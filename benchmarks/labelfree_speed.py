"""Label-free EM (kdstore.labelmodel, SQL in DuckDB) vs Snorkel's LabelModel.fit on the same votes.

Run: ``PYTHONPATH=$PWD python benchmarks/labelfree_speed.py [--n 1000000] [--teachers 10] [--classes 20]``
-> benchmarks/results/labelfree_speed.{json,md}

Synthetic votes from a known confusion model (seeded): true labels from a skewed class prior;
teacher t covers each example with probability cov[t] and then votes from its confusion row
``C[t, y, :]`` (accuracy acc[t, y] on the diagonal, the errors spread over 3 "confusable" classes).
The votes are stored once (a kdstore file via ``ingest_votes``, a .npy matrix for Snorkel) and every
measured fit runs in its own subprocess so that its peak RSS is its own; each system runs twice,
interleaved (Snorkel, kdstore one-coin, kdstore class-conditional, then again), and reports the mean:

* ``kdstore`` one-coin EM and class-conditional EM, both to convergence (``fit_label_model(store_posteriors=False)``,
  hard votes, train split, defaults from kd.settings; ``--cc-max-iter`` caps the class-conditional
  fit), on the file store, DuckDB ``threads=2`` and ``memory_limit=250MB`` (spills to disk); the
  one-coin fit takes the grouped steps, the class-conditional one the wide steps (kdstore/labelmodel_wide.py);
* ``snorkel`` ``LabelModel(cardinality=K).fit(L, seed=0, progress_bar=False)`` (defaults: 100 epochs,
  Snorkel 0.10.0 in /work/venv-snorkel), on the same matrix.

Targets (issue 3): kdstore >= 5x faster than Snorkel, peak RSS <= 1/4 of Snorkel's. The EM's
accuracy estimates are compared with the generating ones (per teacher accuracy on covered
examples, per teacher x class diagonal).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SNORKEL_PY = os.environ.get("SNORKEL_PYTHON", "/work/venv-snorkel/bin/python")


def _rss_now_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return float(line.split()[1]) / 1024.0
    return float("nan")


def _peak_mb() -> float:
    """VmHWM: this process's peak RSS. (ru_maxrss is inherited from the parent across fork + exec
    on Linux, so a child started by a big parent would report the parent's size.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return float(line.split()[1]) / 1024.0
    return float("nan")


def generate(n: int, m: int, k: int, seed: int) -> dict[str, Any]:
    """Votes L[n, m] (-1 = abstain), true labels y, and the generating parameters."""
    rng = np.random.default_rng(seed)
    prior = rng.dirichlet(np.full(k, 5.0))
    y = rng.choice(k, size=n, p=prior)
    cov = np.linspace(0.3, 0.9, m)
    acc = rng.uniform(0.55, 0.95, size=(m, k))
    conf = np.zeros((m, k, k))
    for t in range(m):
        for c in range(k):
            others = rng.choice([j for j in range(k) if j != c], size=3, replace=False)
            conf[t, c, c] = acc[t, c]
            conf[t, c, others] = (1.0 - acc[t, c]) * rng.dirichlet(np.ones(3))
    votes = np.full((n, m), -1, dtype=np.int64)
    for t in range(m):
        covered = rng.random(n) < cov[t]
        cdf = np.cumsum(conf[t][y], axis=1)
        u = rng.random(n)[:, None]
        v = np.minimum((u > cdf).sum(axis=1), k - 1)
        votes[covered, t] = v[covered]
    fired = votes >= 0
    true_acc = np.array([(votes[fired[:, t], t] == y[fired[:, t]]).mean() for t in range(m)])
    return {"votes": votes, "y": y, "prior": prior, "conf": conf, "cov": cov, "acc_diag": acc, "true_acc": true_acc}


def prepare(workdir: Path, n: int, m: int, k: int, seed: int) -> dict[str, Any]:
    import pyarrow as pa

    import kdstore

    g = generate(n, m, k, seed)
    np.save(workdir / "votes.npy", g["votes"])
    np.save(workdir / "y.npy", g["y"])
    t0 = time.perf_counter()
    with kdstore.connect(workdir / "store.duckdb") as store:
        store.add_labels([f"c{i:02d}" for i in range(k)])
        ids = np.arange(n, dtype=np.int64)
        store.add_examples(pa.table({"example_id": ids, "split": pa.array(["train"] * n)}), progress=False)
        store.ingest_votes(pa.table({"example_id": ids, **{f"t{j}": g["votes"][:, j] for j in range(m)}}), progress=False)
        store.run("CHECKPOINT")  # else the measured child replays the write-ahead log on open (and counts its memory)
    return {**g, "ingest_seconds": time.perf_counter() - t0}


def child_kdstore(path: str, model: str, threads: int, memory_limit: str | None, max_iter: int | None) -> dict[str, Any]:
    import kdstore
    from kdstore import labelmodel
    from kdstore.labelmodel import fit_label_model

    # seconds per SQL step (summed over the iterations), from the statement runner
    steps: dict[str, list[float]] = {}
    run, scalar = labelmodel._Runner.run, labelmodel._Runner.scalar

    def timed(fn: Any) -> Any:
        def wrapper(self: Any, name: str) -> Any:
            t = time.perf_counter()
            out = fn(self, name)
            steps.setdefault(name, []).append(time.perf_counter() - t)
            return out
        return wrapper

    run_sql = labelmodel._Runner.run_sql

    def timed_sql(self: Any, name: str, sql: str) -> None:
        t = time.perf_counter()
        run_sql(self, name, sql)
        steps.setdefault(name, []).append(time.perf_counter() - t)

    labelmodel._Runner.run, labelmodel._Runner.scalar = timed(run), timed(scalar)  # type: ignore[method-assign]
    labelmodel._Runner.run_sql = timed_sql  # type: ignore[method-assign]
    with kdstore.connect(path) as store:
        store.run(f"SET threads = {int(threads)}")
        if memory_limit:
            store.run("SET memory_limit = ?", [memory_limit])
        before = _rss_now_mb()
        t0 = time.perf_counter()
        res = fit_label_model(store, model=model, store_posteriors=False, max_iter=max_iter)
        seconds = time.perf_counter() - t0
        acc = store.query(
            "SELECT teacher_id, true_label_id, voted_label_id, prob FROM kd.label_model_accuracy WHERE run_id = ?",
            [res.run_id],
        ).to_pydict()
        prior = store.query("SELECT label_id, prior FROM kd.label_model_priors WHERE run_id = ? ORDER BY label_id", [res.run_id])
        from kdstore.labelmodel import teacher_accuracy

        ta = teacher_accuracy(store, res.run_id).to_pydict()
        store_tol = store.settings["label_model_tol"]
        grouped = "setup_oc_groups" in steps
        wide = "setup_wide_votes" in steps
    return {
        "seconds": seconds, "iterations": res.iterations, "converged": res.converged,
        "tol": float(store_tol), "grouped_one_coin": grouped, "wide_class_conditional": wide,
        "steps": {k: {"calls": len(v), "seconds": sum(v)} for k, v in sorted(steps.items(), key=lambda kv: -sum(kv[1]))},
        "rss_before_fit_mb": before, "peak_rss_mb": _peak_mb(),
        "theta": {"teacher": acc["teacher_id"], "true": acc["true_label_id"], "voted": acc["voted_label_id"], "prob": acc["prob"]},
        "prior": prior.column("prior").to_pylist(),
        "teacher_accuracy": {"teacher": ta["teacher_id"], "label": ta["label_id"], "accuracy": ta["accuracy"], "recall": ta["recall"]},
    }


SNORKEL_CHILD = r"""
import json, sys, time, numpy as np
from pathlib import Path
def rss(key='VmRSS:'):
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith(key):
            return float(line.split()[1]) / 1024.0
L = np.load(sys.argv[1]); k = int(sys.argv[2])
from snorkel.labeling.model import LabelModel
import snorkel, torch
torch.set_num_threads(int(sys.argv[3]))
before = rss()
lm = LabelModel(cardinality=k, verbose=False)
t0 = time.perf_counter()
lm.fit(L, seed=0, progress_bar=False)
secs = time.perf_counter() - t0
peak = rss('VmHWM:')  # ru_maxrss would include the parent's size at fork
cp = lm.get_conditional_probs()  # [m, k+1, k]: P(lf = v | y), v = 0 abstain
print(json.dumps({"seconds": secs, "peak_rss_mb": peak, "rss_before_fit_mb": before,
                  "snorkel": snorkel.__version__, "torch": torch.__version__,
                  "cond_probs": cp.tolist(), "weights": lm.get_weights().tolist()}))
"""


def _run_child(args: list[str]) -> dict[str, Any]:
    out = subprocess.run(args, capture_output=True, text=True, check=False, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if out.returncode != 0:
        raise RuntimeError(f"child {args[:3]} failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--teachers", type=int, default=10)
    ap.add_argument("--classes", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory-limit", default="250MB", help="DuckDB memory_limit of the kdstore child ('' = DuckDB's default)")
    ap.add_argument("--cc-max-iter", type=int, default=0,
                    help="max_iter of the class-conditional fit (0 = the label_model_max_iter setting: to convergence)")
    ap.add_argument("--models", default="one_coin,class_conditional")
    ap.add_argument("--name", default="labelfree_speed", help="results file name (benchmarks/results/<name>.json/.md)")
    ap.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child_kdstore(a.child[0], a.child[1], a.threads, a.memory_limit or None,
                                       int(a.child[2]) if len(a.child) > 2 else None)))
        return

    from benchmarks._common import write_results

    load_start = os.getloadavg()[0]

    with tempfile.TemporaryDirectory(prefix="kd_lm_speed_") as tmp:
        work = Path(tmp)
        g = prepare(work, a.n, a.teachers, a.classes, a.seed)
        print(f"prepared {a.n} x {a.teachers} votes, {a.classes} classes; ingest {g['ingest_seconds']:.1f} s", flush=True)
        runs: dict[str, Any] = {}
        snorkel_script = work / "snorkel_child.py"
        snorkel_script.write_text(SNORKEL_CHILD)
        runs["snorkel"] = _run_child([SNORKEL_PY, str(snorkel_script), str(work / "votes.npy"), str(a.classes), str(a.threads)])
        print(f"snorkel: {runs['snorkel']['seconds']:.1f} s, peak {runs['snorkel']['peak_rss_mb']:.0f} MB", flush=True)

        def kd_fit(model: str) -> dict[str, Any]:
            extra = [str(a.cc_max_iter)] if model == "class_conditional" and a.cc_max_iter > 0 else []
            out = _run_child([sys.executable, __file__, "--threads", str(a.threads), "--memory-limit", a.memory_limit,
                              "--child", str(work / "store.duckdb"), model, *extra])
            print(f"kdstore {model}: {out['seconds']:.1f} s ({out['iterations']} it), peak {out['peak_rss_mb']:.0f} MB", flush=True)
            return out

        # interleaved (Snorkel, kdstore, ..., Snorkel, kdstore) so that load changes hit both; medians
        models = a.models.split(",")
        fits: dict[str, list[dict[str, Any]]] = {m: [] for m in models}
        for rep in range(2):
            if rep:
                runs["snorkel_again"] = _run_child([SNORKEL_PY, str(snorkel_script), str(work / "votes.npy"), str(a.classes),
                                                    str(a.threads)])
                print(f"snorkel again: {runs['snorkel_again']['seconds']:.1f} s", flush=True)
            for model in models:
                fits[model].append(kd_fit(model))
        for model in models:
            ordered = sorted(fits[model], key=lambda f: f["seconds"])
            runs[model] = {**ordered[0], "all_seconds": [f["seconds"] for f in fits[model]],
                           "seconds": float(np.median([f["seconds"] for f in fits[model]])),
                           "peak_rss_mb": max(f["peak_rss_mb"] for f in fits[model])}

    snork_s = float(np.median([runs["snorkel"]["seconds"], runs["snorkel_again"]["seconds"]]))
    snork_mb = max(runs["snorkel"]["peak_rss_mb"], runs["snorkel_again"]["peak_rss_mb"])
    m, k = a.teachers, a.classes
    report: dict[str, Any] = {
        "load_average_start": load_start, "load_average_end": os.getloadavg()[0],
        "n": a.n, "teachers": m, "classes": k, "seed": a.seed, "threads": a.threads, "memory_limit": a.memory_limit,
        "ingest_seconds": g["ingest_seconds"], "generating": {"cov": g["cov"].tolist(), "true_accuracy": g["true_acc"].tolist()},
        "snorkel": {kk: v for kk, v in runs["snorkel"].items() if kk not in ("cond_probs", "weights")},
        "snorkel_again_seconds": runs["snorkel_again"]["seconds"], "snorkel_seconds_median": snork_s,
        "kdstore": {},
    }
    # Snorkel's per-LF accuracy on covered examples from its conditional probabilities and our prior knowledge of P(y)
    cp = np.asarray(runs["snorkel"]["cond_probs"])  # [m, k+1, k]
    fire = 1.0 - cp[:, 0, :]
    snork_acc = np.array([(np.diag(cp[t, 1:, :]) * g["prior"]).sum() / (fire[t] * g["prior"]).sum() for t in range(m)])
    report["snorkel"]["accuracy_estimates"] = snork_acc.tolist()
    report["snorkel"]["accuracy_max_abs_error"] = float(np.abs(snork_acc - g["true_acc"]).max())
    for model in a.models.split(","):
        r = runs[model]
        est = np.zeros(m)
        for t, acc in zip(r["teacher_accuracy"]["teacher"], r["teacher_accuracy"]["accuracy"], strict=True):
            est[int(t)] = acc
        diag = np.full((m, k), np.nan)
        th = r["theta"]
        for t, kk, v, p in zip(th["teacher"], th["true"], th["voted"], th["prob"], strict=True):
            if kk == v:
                diag[int(t), int(kk)] = p
        if model == "class_conditional":  # theta includes the abstain symbol: condition on firing
            fired = np.zeros((m, k))
            for t, kk, v, p in zip(th["teacher"], th["true"], th["voted"], th["prob"], strict=True):
                if v == -1:
                    fired[int(t), int(kk)] = 1.0 - p
            diag = diag / fired
        report["kdstore"][model] = {
            "seconds": r["seconds"], "all_seconds": r["all_seconds"], "iterations": r["iterations"], "converged": r["converged"],
            "tol": r["tol"],
            "grouped_one_coin": r["grouped_one_coin"], "wide_class_conditional": r["wide_class_conditional"], "steps": r["steps"],
            "peak_rss_mb": r["peak_rss_mb"], "rss_before_fit_mb": r["rss_before_fit_mb"],
            "speedup_vs_snorkel": snork_s / r["seconds"], "memory_ratio_vs_snorkel": r["peak_rss_mb"] / snork_mb,
            "meets_speed_target": snork_s / r["seconds"] >= 5.0, "meets_memory_target": r["peak_rss_mb"] <= snork_mb / 4,
            "accuracy_estimates": est.tolist(), "accuracy_max_abs_error": float(np.abs(est - g["true_acc"]).max()),
            "diag_max_abs_error": float(np.nanmax(np.abs(diag - g["acc_diag"]))) if model == "class_conditional" else None,
            "prior_max_abs_error": float(np.abs(np.asarray(r["prior"]) - g["prior"]).max()),
        }
    md = [
        f"# Label-free EM vs Snorkel LabelModel.fit: {a.n:,} examples x {m} teachers x {k} classes",
        "",
        f"Same votes, each fit in its own subprocess (peak RSS = that process), {a.threads} threads, run in the order Snorkel, "
        "kdstore one-coin, kdstore class-conditional, Snorkel, kdstore one-coin, kdstore class-conditional; seconds = the "
        f"median (mean of 2) of each, peak RSS = the max. Load average (1 min) at the start: {load_start:.1f}, at the end: "
        f"{os.getloadavg()[0]:.1f} (shared 2-core machine: above 2, other work competed for the cores).",
        "",
        "| system | fit seconds | iterations (converged?) | peak RSS MB (before fit) | speed-up vs Snorkel (target >= 5) | memory vs Snorkel (target <= 0.25) | max abs error of per-teacher accuracy |",
        "|---|---|---|---|---|---|---|",
        f"| Snorkel {runs['snorkel']['snorkel']} LabelModel (100 epochs) | {snork_s:.1f} | - | {snork_mb:.0f} ({runs['snorkel']['rss_before_fit_mb']:.0f}) | 1 | 1 | {report['snorkel']['accuracy_max_abs_error']:.4f} |",
    ]
    for model, r in report["kdstore"].items():
        md.append(
            f"| kdstore EM {model} | {r['seconds']:.2f} | {r['iterations']} ({'converged' if r['converged'] else 'NOT converged'}) | "
            f"{r['peak_rss_mb']:.0f} ({r['rss_before_fit_mb']:.0f}) | "
            f"{r['speedup_vs_snorkel']:.2f} ({'met' if r['meets_speed_target'] else 'MISSED'}) | "
            f"{r['memory_ratio_vs_snorkel']:.2f} ({'met' if r['meets_memory_target'] else 'MISSED'}) | {r['accuracy_max_abs_error']:.4f} |"
        )
    cc = report["kdstore"].get("class_conditional")
    if cc:
        md += ["", f"Class-conditional EM: max abs error of the confusion diagonal (per teacher x class, given it voted) "
                   f"{cc['diag_max_abs_error']:.4f}; class prior {cc['prior_max_abs_error']:.4f}."]
    md += ["", f"Vote ingest into the store (not timed above): {g['ingest_seconds']:.1f} s. DuckDB memory_limit of the kdstore "
           f"child: {a.memory_limit or 'default'}; convergence: no parameter moves more than tol = "
           f"{next(iter(report['kdstore'].values()))['tol']:g} (the label_model_tol default)"
           + (f"; the class-conditional fit is capped at {a.cc_max_iter} iterations." if a.cc_max_iter > 0 else
              ", max_iter = the label_model_max_iter setting (no cap in practice).")]
    for model, r in report["kdstore"].items():
        top = list(r["steps"].items())[:6]
        path = "grouped one-coin path" if r["grouped_one_coin"] else "wide path" if r["wide_class_conditional"] else "general path"
        md += ["", f"Slowest SQL steps of the {model} fit ({path}, summed over the iterations of the fastest run): "
               + ", ".join(f"{k} {v['seconds']:.2f} s / {v['calls']} calls" for k, v in top) + "."]
    write_results(a.name, report, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
