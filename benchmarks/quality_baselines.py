"""Sanity baseline for the quality benchmark: majority vote labels -> end model on MiniLM features.

Per WRENCH text set (youtube, sms, trec, semeval, chemprot_partial under the data README's
protocol), with the cached sentence embeddings of ``embed_wrench.py``:

1. majority vote (WRENCH's tie rule) on the train votes -> hard labels of the covered train
   examples (all-abstain rows dropped, as WRENCH's pipelines do);
2. an end model on those labels: a logistic regression (C picked on the valid split) and an MLP
   (one hidden layer of 256, Adam, best epoch picked on the valid split), 5 seeds;
3. the test metric (accuracy; binary F1 of spam for sms), mean ± std over the seeds.

Also reported: MV alone on test (checks the tie rule against the published numbers), and an
oracle row -- the same MLP on the gold train labels -- to separate feature quality from label
quality (compare with the published "MLP on gold train labels"). For the relation sets every end
model runs twice: on the sentence embedding alone and with the two entity-span embeddings.
This tells the team whether the features are good enough: compare "MLP <- MV" with the
published row of the same name (BERT features in WRENCH).

Run: ``PYTHONPATH=$PWD python benchmarks/quality_baselines.py`` (after embed_wrench.py).
Writes ``benchmarks/results/quality_baselines.{json,md}``.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import wrench_data as wd
from _common import peak_rss_mb, row_names, write_results

SEEDS = (0, 1, 2, 3, 4)
C_GRID = (0.01, 0.1, 1.0, 10.0)


def _standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    mu, sd = train.mean(axis=0), train.std(axis=0) + 1e-6
    return [(m - mu) / sd for m in (train, *others)]


def logreg(x_tr: np.ndarray, y_tr: np.ndarray, x_va: np.ndarray, y_va: np.ndarray, x_te: np.ndarray,
           n_classes: int, metric: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Logistic regression, C chosen on valid; deterministic (lbfgs), so one run per setting."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    best: tuple[float, float, Any] = (-1.0, 0.0, None)
    for c in C_GRID:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            m = LogisticRegression(C=c, max_iter=1000).fit(x_tr, y_tr)
        v = wd.score(metric, m.predict(x_va), y_va)
        if v > best[0]:
            best = (v, c, m)
    return best[2].predict(x_te), {"C": best[1], "valid": best[0]}


def mlp(x_tr: np.ndarray, y_tr: np.ndarray, x_va: np.ndarray, y_va: np.ndarray, x_te: np.ndarray,
        n_classes: int, metric: str, seed: int, *, epochs: int = 60, patience: int = 8) -> tuple[np.ndarray, dict[str, Any]]:
    """One-hidden-layer MLP (256, ReLU, Adam, L2 1e-4); the epoch with the best valid metric wins."""
    from sklearn.neural_network import MLPClassifier

    m = MLPClassifier(hidden_layer_sizes=(256,), alpha=1e-4, batch_size=128, learning_rate_init=1e-3, random_state=seed)
    classes = np.arange(n_classes)
    best: tuple[float, int, Any] = (-1.0, 0, None)
    for ep in range(epochs):
        m.partial_fit(x_tr, y_tr, classes=classes)
        v = wd.score(metric, m.predict(x_va), y_va)
        if v > best[0]:
            best = (v, ep + 1, copy.deepcopy(m))
        elif ep + 1 - best[1] >= patience:
            break
    return best[2].predict(x_te), {"epoch": best[1], "valid": best[0]}


def run_set(name: str, seeds: tuple[int, ...]) -> dict[str, Any]:
    ws = wd.load_set(name)
    k, metric = len(ws.classes), ws.metric
    hard_tr, _ = wd.majority_vote(ws.train.votes, k)
    covered = (ws.train.votes >= 0).any(axis=1)
    hard_te, _ = wd.majority_vote(ws.test.votes, k)
    te_cov = (ws.test.votes >= 0).any(axis=1)
    out: dict[str, Any] = {
        "metric": metric, "classes": k,
        "sizes": {"train": int(ws.train.ids.size), "train_covered": int(covered.sum()), "valid": int(ws.valid.ids.size),
                  "test": int(ws.test.ids.size)},
        "mv_train_label_accuracy_covered": 100.0 * float(np.mean(hard_tr[covered] == ws.train.gold[covered])),
        "rows": {},
    }
    rows = out["rows"]
    rows["MV (label model alone)"] = {"mean": wd.score(metric, hard_te, ws.test.gold), "std": 0.0, "runs": 1}
    rows["MV accuracy on covered test examples (always accuracy)"] = {
        "mean": wd.score("acc", hard_te[te_cov], ws.test.gold[te_cov]), "std": 0.0, "runs": 1,
        "note": f"{int(te_cov.sum())} of {te_cov.size} test examples have a vote"}
    variants: list[tuple[str, tuple[str, ...]]] = [("", ("embedding",))]
    if name in wd.RELATION_SETS:
        # (sentence + the two entity spans alone, measured once on semeval: MLP <- MV 68.50, oracle 85.10)
        variants += [(" +entities+between", ("embedding", "entity1", "entity2", "between"))]
    for suffix, parts in variants:
        f_tr = wd.features(ws.train, name, parts)
        f_va = wd.features(ws.valid, name, parts)
        f_te = wd.features(ws.test, name, parts)
        x_cov, x_va, x_te, x_all = _standardise(f_tr[covered], f_va, f_te, f_tr)
        t0 = time.perf_counter()
        pred, info = logreg(x_cov, hard_tr[covered], x_va, ws.valid.gold, x_te, k, metric)
        rows[f"LogReg <- MV{suffix}"] = {"mean": wd.score(metric, pred, ws.test.gold), "std": 0.0, "runs": 1,
                                         "chosen": info, "seconds": round(time.perf_counter() - t0, 1)}
        for label, y_train, x_train in (("MLP <- MV", hard_tr[covered], x_cov),
                                        ("MLP <- gold train labels (oracle)", ws.train.gold, x_all)):
            t0 = time.perf_counter()
            scores, chosen = [], []
            for seed in seeds:
                p, inf = mlp(x_train, y_train, x_va, ws.valid.gold, x_te, k, metric, seed)
                scores.append(wd.score(metric, p, ws.test.gold))
                chosen.append(inf)
            rows[f"{label}{suffix}"] = {"mean": float(np.mean(scores)), "std": float(np.std(scores)), "runs": len(seeds),
                                        "per_seed": scores, "chosen": chosen, "seconds": round(time.perf_counter() - t0, 1)}
        print(f"  {name}{suffix}: " + ", ".join(f"{r}={v['mean']:.2f}" for r, v in rows.items() if r.endswith(suffix) or not suffix),
              flush=True)
    return out


def markdown(results: dict[str, Any]) -> str:
    sets = list(results["sets"])
    head = "| pipeline | " + " | ".join(f"{s} ({results['sets'][s]['metric']})" for s in sets) + " |"
    lines = [
        "# Quality baselines: majority vote -> end model on MiniLM sentence embeddings",
        "",
        f"Features: {results['features']['model']} (package {results['features']['package']} "
        f"{results['features']['package_version']}, ONNX sha256 {results['features']['onnx_sha256'][:12]}…), "
        "mean-pooled + L2-normalised sentence embeddings (384); relation sets also with the two entity-span "
        "embeddings and the mean of the tokens between the entities (+entities+between, 1536). Protocol: WRENCH test split, valid picks C / the epoch, train labels "
        "from MV on the covered train examples; chemprot_partial under the data README's protocol. "
        f"End models: logistic regression (C on valid, deterministic) and MLP 256 (Adam, best valid epoch), "
        f"mean ± std over seeds {list(results['seeds'])}. Published rows: WRENCH (BERT features).",
        "",
        head,
        "|" + "---|" * (len(sets) + 1),
    ]
    names = row_names(results, sets)

    def cell(s: str, r: str) -> str:
        v = results["sets"][s]["rows"].get(r)
        if v is None:
            return "–"
        return f"{v['mean']:.2f}" if v["runs"] == 1 else f"{v['mean']:.2f} ± {v['std']:.2f}"

    for r in names:
        lines.append(f"| {r} | " + " | ".join(cell(s, r) for s in sets) + " |")
    for pub in ("MV", "MLP <- MV", "MLP <- MV soft", "MLP on gold train labels"):
        lines.append(f"| published: {pub} | " + " | ".join(f"{wd.PUBLISHED[pub][s]:.2f}" for s in sets) + " |")
    lines += ["", "MV train-label accuracy on covered train examples (gold, for reading the table only): "
              + ", ".join(f"{s} {results['sets'][s]['mv_train_label_accuracy_covered']:.1f}%" for s in sets),
              "", "Best MV-trained row minus published \"MLP <- MV\":"]
    for s in sets:
        rows = results["sets"][s]["rows"]
        best_r = max((r for r in rows if "<- MV" in r), key=lambda r: rows[r]["mean"])
        lines.append(f"- {s}: {best_r} {rows[best_r]['mean']:.2f} vs {wd.PUBLISHED['MLP <- MV'][s]:.2f} "
                     f"({rows[best_r]['mean'] - wd.PUBLISHED['MLP <- MV'][s]:+.2f})")
    lines.append(f"\nRuntime {results['seconds']:.0f} s, peak RSS {results['peak_rss_mb']:.0f} MB.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import json

    ap = argparse.ArgumentParser(description="MV -> end model sanity baseline on the cached MiniLM embeddings")
    ap.add_argument("--sets", default=",".join(wd.TEXT_SETS))
    ap.add_argument("--seeds", type=int, default=len(SEEDS))
    ap.add_argument("--update", action="store_true",
                    help="keep the other sets of an existing results file (same features and seeds) and redo only --sets")
    args = ap.parse_args(argv)
    seeds = tuple(range(args.seeds))
    manifest = json.loads((wd.EMBEDDINGS / "MANIFEST.json").read_text())
    t0 = time.perf_counter()
    results: dict[str, Any] = {
        "seeds": list(seeds),
        "features": {k: manifest[k] for k in ("model", "package", "package_version", "onnx_sha256", "dim", "pooling")},
        "published": wd.PUBLISHED,
        "sets": {},
    }
    old_path = wd.ROOT / "results" / "quality_baselines.json"
    if args.update and old_path.exists():
        old = json.loads(old_path.read_text())
        if old.get("features", {}).get("onnx_sha256") == results["features"]["onnx_sha256"] and old.get("seeds") == list(seeds):
            results["sets"] = old["sets"]
            t0 -= float(old.get("seconds", 0.0))
    for name in [s for s in args.sets.split(",") if s]:
        print(f"{name} ...", flush=True)
        results["sets"][name] = run_set(name, seeds)
    results["sets"] = {k: results["sets"][k] for k in wd.TEXT_SETS if k in results["sets"]}
    results["seconds"] = time.perf_counter() - t0
    results["peak_rss_mb"] = peak_rss_mb()
    jp, mp = write_results("quality_baselines", results, markdown(results))
    print(mp.read_text())
    print(f"wrote {jp} and {mp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
