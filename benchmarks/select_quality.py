"""Quality of the selection policies on the six WRENCH sets, against majority vote and Snorkel.

Run: PYTHONPATH=$PWD python benchmarks/select_quality.py [--sets youtube,sms] [--no-snorkel]
Writes benchmarks/results/select_quality.{json,md}.

Protocol (data README): teachers = the labeling functions (vote teachers); they are judged on the
valid split and everything is scored on the test split; chemprot_partial and tennis_flyingsquid use
the README's deterministic splits. Every choice kdstore makes (metrics, experts, trust models,
until_covered cut-offs) reads only train/valid; the test examples are only looked up with
``kdstore.select.preview(store, policy, split='test')``. The test gold is read from the JSON files
by this script alone. A policy's label = argmax of its target distribution; uncovered examples get
the uniform distribution, and ties (uniform included) are broken by Snorkel's deterministic
``probs_to_preds`` rule (sha1 of the row index), exactly as the README's majority vote.
Snorkel (LabelModel, default lr 0.01 / 100 epochs, fit on train votes, class balance from valid,
5 seeds) runs in /work/venv-snorkel through benchmarks/_snorkel_worker.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

import wrench_data as wd
from _common import peak_rss_mb, write_results

import kdstore
from kdstore import select as ksel
from kdstore import trust as ktrust

SNORKEL_PY = Path("/work/venv-snorkel/bin/python")
EMBED_CACHE = wd.EMBEDDINGS

#: set -> (metric, positive class for F1)
SETS: dict[str, tuple[str, int | None]] = {
    "youtube": ("acc", None),
    "sms": ("f1", 1),
    "trec": ("acc", None),
    "semeval": ("acc", None),
    "chemprot_partial": ("acc", None),
    "tennis_flyingsquid": ("f1", 1),
}
POLICIES = ["best_per_label", "experts", "until_covered", "consensus_experts", "trust"]
SEEDS = [0, 1, 2, 3, 4]


@dataclass
class Part:
    keys: list[str]
    votes: np.ndarray  # [n, m] int, -1 abstain
    gold: np.ndarray  # [n] int, -1 unknown
    file: str  # the WRENCH file the rows come from (chemprot's train pool comes from valid.json)


def read_set(name: str) -> tuple[list[str], dict[str, Part]]:
    """The README protocol (``wrench_data.load_set``): class names and the train/valid/test parts, file order kept."""
    return parts_of(wd.load_set(name))


def parts_of(ws: wd.WrenchSet) -> tuple[list[str], dict[str, Part]]:
    """A set already read by ``wrench_data.load_set`` as :func:`read_set` returns it (no second read)."""
    return list(ws.classes), {s: Part([str(i) for i in sp.ids], sp.votes, sp.gold, sp.file)
                              for s, sp in (("train", ws.train), ("valid", ws.valid), ("test", ws.test))}


def build_store(classes: list[str], parts: dict[str, Part], features: np.ndarray | None = None) -> kdstore.Store:
    """A fresh in-memory store: examples numbered train, valid, test in file order; gold for valid only."""
    store = kdstore.connect()
    store.add_labels(classes)
    ids, splits, votes = [], [], []
    start = 0
    for split in ("train", "valid", "test"):
        p = parts[split]
        n = len(p.keys)
        ids.append(np.arange(start, start + n))
        splits += [split] * n
        votes.append(p.votes)
        start += n
    all_ids = np.concatenate(ids)
    store.add_examples(pa.table({"example_id": all_ids, "split": splits}))
    v0 = start - len(parts["test"].keys) - len(parts["valid"].keys)
    vg = parts["valid"].gold
    ok = vg >= 0
    store.add_gold(pa.table({"example_id": (np.arange(len(vg)) + v0)[ok], "label": [classes[g] for g in vg[ok]]}))
    mat = np.vstack(votes)
    cols = {"example_id": all_ids, **{f"lf{j:03d}": mat[:, j] for j in range(mat.shape[1])}}
    store.ingest_votes(pa.table(cols), classes=classes)
    if features is not None:
        tbl = {"example_id": all_ids, **{f"f{j:02d}": features[:, j] for j in range(features.shape[1])}}
        store.register_features("emb", pa.table(tbl))
    return store


def tie_preds(probs: np.ndarray, tol: float = 1e-5) -> np.ndarray:
    """Snorkel's probs_to_preds with its deterministic 'random' tie rule (sha1 of the row index)."""
    diffs = np.abs(probs - probs.max(axis=1, keepdims=True))
    out = np.empty(len(probs), dtype=np.int64)
    for i in range(len(probs)):
        idx = np.flatnonzero(diffs[i] < tol)
        out[i] = idx[0] if len(idx) == 1 else idx[int(hashlib.sha1(str(i).encode()).hexdigest(), 16) % len(idx)]
    return out


def score(metric: str, pos: int | None, y: np.ndarray, pred: np.ndarray) -> float:
    if metric == "acc":
        return float(np.mean(pred == y)) * 100
    tp = int(np.sum((pred == pos) & (y == pos)))
    fp = int(np.sum((pred == pos) & (y != pos)))
    fn = int(np.sum((pred != pos) & (y == pos)))
    return 200.0 * tp / (2 * tp + fp + fn) if tp else 0.0


def mv_probs(votes: np.ndarray, k: int) -> np.ndarray:
    counts = np.stack([(votes == c).sum(axis=1) for c in range(k)], axis=1).astype(float)
    tot = counts.sum(axis=1, keepdims=True)
    return np.where(tot > 0, counts / np.maximum(tot, 1), 1.0 / k)


def policy_probs(store: kdstore.Store, policy: str, test_ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The test-split target distribution of a policy (uniform where uncovered) and the covered mask."""
    tbl = ksel.preview(store, policy, split="test", task="multiclass")
    probs = np.full((len(test_ids), k), 1.0 / k)
    covered = np.zeros(len(test_ids), dtype=bool)
    if tbl.num_rows:
        pos = np.asarray(tbl.column("example_id").to_numpy()) - int(test_ids[0])
        lab = np.asarray(tbl.column("label_id").to_numpy())
        tgt = np.asarray(tbl.column("target").to_numpy(), dtype=float)
        probs[np.unique(pos)] = 0.0
        probs[pos, lab] = tgt
        covered[pos] = True
    return probs, covered


def run_snorkel(parts: dict[str, Part], k: int) -> dict[str, Any] | None:
    if not SNORKEL_PY.exists():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.json"
        yv = parts["valid"].gold
        np.savez(src, k=k, l_train=parts["train"].votes, l_test=parts["test"].votes, y_valid=yv[yv >= 0],
                 seeds=np.asarray(SEEDS))
        env = {k_: v for k_, v in os.environ.items() if k_ != "PYTHONPATH"}
        subprocess.run([str(SNORKEL_PY), str(Path(__file__).parent / "_snorkel_worker.py"), str(src), str(dst)],
                       check=True, env=env)
        out: dict[str, Any] = json.loads(dst.read_text())
        return out


def load_embeddings(name: str, parts: dict[str, Part], dims: int = 16) -> np.ndarray | None:
    """MiniLM sentence embeddings cached by the demo benchmark (``<set>_<file>.parquet``: id, embedding),
    reduced to ``dims`` PCA components fitted on train + valid rows only; None when not cached."""
    import pyarrow.parquet as pq

    mats = []
    for split in ("train", "valid", "test"):
        p = parts[split]
        f = EMBED_CACHE / f"{name}_{p.file}.parquet"
        if not f.exists():
            return None
        t = pq.read_table(f, columns=["id", "embedding"])
        by_id = dict(zip(t.column("id").to_pylist(), range(t.num_rows), strict=True))
        if any(int(k) not in by_id for k in p.keys):
            return None
        emb = np.asarray(t.column("embedding").combine_chunks().flatten().to_numpy(), dtype=np.float64)
        emb = emb.reshape(t.num_rows, -1)
        mats.append(emb[[by_id[int(k)] for k in p.keys]])
    fit = np.vstack(mats[:2])
    mu = fit.mean(axis=0)
    _, _, vt = np.linalg.svd(fit - mu, full_matrices=False)
    return np.asarray((np.vstack(mats) - mu) @ vt[:dims].T)


def evaluate(name: str, *, snorkel: bool, trust_kind: str) -> dict[str, Any]:
    metric, pos = SETS[name]
    classes, parts = read_set(name)
    k = len(classes)
    y = parts["test"].gold
    emb = load_embeddings(name, parts)
    res: dict[str, Any] = {"metric": metric, "classes": k, "lfs": int(parts["train"].votes.shape[1]),
                           "sizes": {s: len(p.keys) for s, p in parts.items()}, "embeddings": emb is not None}
    test_cov = (parts["test"].votes >= 0).any(axis=1)
    mv = tie_preds(mv_probs(parts["test"].votes, k))
    rows: dict[str, dict[str, Any]] = {"majority_vote": {"score": score(metric, pos, y, mv),
                                                         "coverage": float(test_cov.mean()),
                                                         "covered_score": score(metric, pos, y[test_cov], mv[test_cov])}}
    if snorkel:
        t0 = time.perf_counter()
        sn = run_snorkel(parts, k)
        if sn is not None:
            scores = [score(metric, pos, y, np.asarray(p)) for p in sn["snorkel"].values()]
            cov_scores = [score(metric, pos, y[test_cov], np.asarray(p)[test_cov]) for p in sn["snorkel"].values()]
            rows["snorkel"] = {"score": float(np.mean(scores)), "std": float(np.std(scores)), "coverage": float(test_cov.mean()),
                               "covered_score": float(np.mean(cov_scores)), "seeds": len(scores),
                               "seconds": time.perf_counter() - t0}
            res["mv_matches_snorkel_voter"] = bool(np.array_equal(np.asarray(sn["mv"]), mv))
    test_ids = np.arange(sum(len(parts[s].keys) for s in ("train", "valid")), sum(len(p.keys) for p in parts.values()))

    def policy_row(store: kdstore.Store, policy: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        probs, cov = policy_probs(store, policy, test_ids, k)
        pred = tie_preds(probs)
        sel = ksel.select(store, policy)
        return {"score": score(metric, pos, y, pred), "coverage": float(cov.mean()),
                "covered_score": score(metric, pos, y[cov], pred[cov]) if cov.any() else None,
                "train_coverage": sel.metrics["coverage"], "seconds": time.perf_counter() - t0}

    # trust configurations: chosen by the policy's score on the VALID split (out-of-fold trust there)
    configs: list[dict[str, Any]] = []
    kinds = [trust_kind] if trust_kind != "auto" else list(ktrust.KINDS)
    feature_sets = [None, "emb"] if emb is not None else [None]
    store = build_store(classes, parts, emb)
    try:
        for policy in POLICIES[:-1]:
            rows[policy] = policy_row(store, policy)
        for kind in kinds:
            for feats in feature_sets:
                t0 = time.perf_counter()
                fit = ktrust.fit_trust(store, kind=kind, feature_source=feats, seed=0)
                fit_s = time.perf_counter() - t0
                oof = json.loads(store.one("SELECT metrics FROM kd.runs WHERE run_id = ?", [fit.run_id])[0])["oof_auc"]
                for mode, thr in WEIGHTINGS:
                    store.settings.update(trust_weighting=mode, trust_threshold=thr)
                    row = policy_row(store, "trust")
                    row.update(kind=kind, features=feats or "-", trust_weighting=mode, trust_threshold=thr,
                               fit_seconds=fit_s, oof_auc=oof,
                               valid_score=valid_trust_score(store, parts["valid"].gold, metric, pos, k, mode, thr))
                    configs.append(row)
    finally:
        store.close()
    best = max(range(len(configs)), key=lambda i: (configs[i]["valid_score"], -i))
    rows["trust"] = configs[best]
    res["trust_configs"] = configs
    res["rows"] = rows
    return res


#: trust policy weightings tried (setting trust_weighting, trust_threshold): linear p over 0.5, K-class log-odds
WEIGHTINGS = [(0.0, 0.5), (2.0, 0.0)]


def valid_trust_score(store: kdstore.Store, gold: np.ndarray, metric: str, pos: int | None, k: int, mode: float,
                      thr: float) -> float:
    """The trust policy's score on the valid split, from the out-of-fold trust there (same weights as the view)."""
    rows = store.con.sql("SELECT o.example_id, o.label_id, o.score, o.p_correct FROM kd.trusted_outputs o "
                         "WHERE o.split = 'valid' AND o.p_correct IS NOT NULL").to_arrow_table()
    v0 = int(store.one("SELECT min(example_id) FROM kd.examples WHERE split = 'valid'")[0])
    e = np.asarray(rows.column("example_id").to_numpy()) - v0
    lab = np.asarray(rows.column("label_id").to_numpy())
    sc = np.asarray(rows.column("score").to_numpy(), dtype=float)
    p = np.asarray(rows.column("p_correct").to_numpy(), dtype=float)
    pc = np.minimum(p, 1 - 1e-6)
    w = p if mode == 0 else np.log(pc * (k - 1 if mode == 2 else 1) / (1 - pc))
    keep = (p >= thr) & (w > 0)
    ev = np.zeros((len(gold), k))
    np.add.at(ev, (e[keep], lab[keep]), (w * sc)[keep])
    tot = ev.sum(axis=1, keepdims=True)
    probs = np.where(tot > 0, ev / np.where(tot > 0, tot, 1), 1.0 / k)
    ok = gold >= 0
    return score(metric, pos, gold[ok], tie_preds(probs)[ok])


def markdown(results: dict[str, Any], trust_kind: str) -> str:
    names = list(results)
    cols = ["majority_vote", "snorkel", *POLICIES]
    lines = [
        "# Selection policies on WRENCH (test split)",
        "",
        f"Teachers = labeling functions, judged on valid; trust = LightGBM trust models ({trust_kind}: kind, input "
        "features (none, or 16 PCA dims of cached MiniLM sentence embeddings, fitted on train + valid) and weighting "
        "chosen per set by the trust policy's score on the VALID split with out-of-fold trust). Score = accuracy (F1 of the positive class for sms, tennis); "
        "uncovered examples and ties use Snorkel's deterministic tie rule, like the README's majority vote. "
        "Cell: score / test coverage %. Snorkel = mean of 5 seeds.",
        "",
        "| set | " + " | ".join(cols) + " | best kdstore beats MV and Snorkel | trust > best_per_label |",
        "|---" * (len(cols) + 3) + "|",
    ]
    wins = trust_wins = artefacts = 0
    for n in names:
        r = results[n]["rows"]
        cells = []
        for c in cols:
            if c in r:
                cells.append(f"{r[c]['score']:.2f} / {100 * r[c]['coverage']:.0f}")
            else:
                cells.append("-")
        top = max(POLICIES, key=lambda p: r[p]["score"])
        best = r[top]["score"]
        beat = best > r["majority_vote"]["score"] and ("snorkel" not in r or best > r["snorkel"]["score"])
        tw = r["trust"]["score"] > r["best_per_label"]["score"]
        wins += beat
        trust_wins += tw
        hollow = beat and not r[top].get("covered_score")
        artefacts += hollow
        lines.append(f"| {n} | " + " | ".join(cells) + f" | {'yes*' if hollow else 'yes' if beat else 'no'} | {'yes' if tw else 'no'} |")
    lines += [
        "",
        f"Goal 1 (best kdstore policy beats MV and Snorkel on >= 4 of 6): {wins} of {len(names)}"
        + (f", of which {artefacts} (yes*) only through the tie rule: the winning policy's F1 on the examples it "
           "covers is 0, its score comes from uncovered examples labelled by the tie rule." if artefacts else "."),
        f"Goal 2 (trust beats best_per_label on >= half): {trust_wins} of {len(names)}.",
        "",
        "Score on covered test examples only (examples where the policy had a target):",
        "",
        "| set | " + " | ".join(cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    for n in names:
        r = results[n]["rows"]
        cells = [f"{r[c]['covered_score']:.2f}" if c in r and r[c].get("covered_score") is not None else "-" for c in cols]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines += ["", "Trust configurations (test score; the chosen one has the best valid score):", "",
              "| set | kind | features | weighting | threshold | valid score | test score | test coverage % | OOF AUC | chosen |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for n in names:
        chosen = results[n]["rows"]["trust"]
        for c in results[n]["trust_configs"]:
            lines.append(f"| {n} | {c['kind']} | {c['features']} | {['p', 'log-odds', 'K-class log-odds'][int(c['trust_weighting'])]} | "
                         f"{c['trust_threshold']} | {c['valid_score']:.2f} | {c['score']:.2f} | {100 * c['coverage']:.0f} | "
                         f"{c['oof_auc']:.3f} | {'yes' if c == chosen else ''} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--no-snorkel", action="store_true")
    ap.add_argument("--trust-kind", default="auto", choices=[*ktrust.KINDS, "auto"],
                    help="trust model kind; auto = fit both and keep the configuration best on valid")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--markdown-only", action="store_true", help="rewrite the .md from the stored .json")
    args = ap.parse_args()
    if args.markdown_only:
        from _common import RESULTS

        stored = json.loads((RESULTS / "select_quality.json").read_text())
        (RESULTS / "select_quality.md").write_text(markdown(stored["results"], stored["trust_kind"]).rstrip() + "\n")
        return
    t0 = time.perf_counter()
    results = {}
    for name in args.sets.split(","):
        results[name] = evaluate(name, snorkel=not args.no_snorkel, trust_kind=args.trust_kind)
        r = results[name]["rows"]
        print(name, {k: round(v["score"], 2) for k, v in r.items()}, flush=True)
    md = markdown(results, args.trust_kind)
    print(md)
    if not args.no_write:
        write_results("select_quality", {"trust_kind": args.trust_kind, "results": results,
                                         "seconds": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb()}, md)


if __name__ == "__main__":
    main()
