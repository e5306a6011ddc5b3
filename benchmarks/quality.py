"""The quality benchmark (issue 7): kdstore's pipelines vs majority vote, Snorkel and published WRENCH rows.

Run: ``PYTHONPATH=$PWD python benchmarks/quality.py [--quick] [--sets youtube,sms] [--no-digits]``
-> ``benchmarks/results/quality.{json,md}`` (``--quick``: 2 seeds, writes ``quality_quick.*``).

Protocol (the patent's and the data README's): teachers = the labeling functions, judged on the
valid split (gold); train is unlabeled; the test split is only scored (its gold is read by this
script alone, after every model is fixed). chemprot_partial uses the README's deterministic split.
Features: the cached MiniLM features of ``embed_wrench.py`` (model recorded from its MANIFEST):
the layer-mean sentence embedding (``layers_embedding``: the mean over the attention mask of the
per-token mean of the six transformer layers, 384 dims); semeval and chemprot_partial add the same
pooling over entity 1, entity 2 and the words between them (1536 dims), in EVERY row (label
models, policies, controls), for fairness. One control row, ``MV -> student [wrench], last-layer
features``, trains the same student on the same MV labels with the model's own sentence embedding
(the last layer, ``embedding`` [+ ``entity1``/``entity2``/``between``]), the features of the runs
before 2026-11-29: it shows what the layer mean changes, in valid as in test scores.

Every pipeline row = a train-split label source followed by the SAME kdstore student
(``kdstore.student.train.fit``: the trainer ``store.train_student`` calls), 5 student seeds (Snorkel's
seed = the student's seed). Each row trains both :data:`CANDIDATES` (the MLP :data:`STUDENT` and the
same with no hidden layer) and keeps the one with the better mean valid score -- the rule of
``store.train_student(candidates=...)``; the other's numbers are kept in the JSON. Label sources:

* ``MV``: majority-vote hard labels of the covered train examples (WRENCH's tie rule);
* ``Snorkel``: Snorkel LabelModel soft labels (WRENCH protocol: fit on train votes, class balance
  from valid gold), covered train examples;
* ``naive average``: the mean of the teachers' outputs over the teachers with an opinion (soft);
  for one-hot vote teachers this is MV's soft distribution;
* ``kdstore <policy>``: the targets of ``kdstore.select.preview(store, policy, split='train')``
  (target distribution and weight per example); ``trust`` with the trust configuration chosen on
  VALID by ``select_quality.py``; ``label-free EM``: the posteriors of ``fit_label_model``
  (Dawid–Skene in SQL, no gold) on the covered train examples; ``trust+em``: the trust targets
  where trust covers an example, else the EM posterior (label-free posteriors as a policy input).

Two distillation protocols, both applied to every label source:

* ``wrench``: the student trains on the train targets only; early stopping on the whole valid
  split (valid gold CE) -- what the published WRENCH rows do.
* ``+valid gold`` (the patent: the distillation set also holds the gold-labelled valid examples):
  K = 3-fold cross-fit on valid: fold f is the early-stopping set of a student trained on the train
  targets + the gold of the other two folds (weight 1; ``+valid gold x3``: 3); the test prediction is
  the mean of the 3 students' probabilities; each valid example gets an out-of-fold prediction from
  the student that never trained on it (the pipeline's VALID score). Controls: the same student on
  the valid gold alone (no teachers).

kdstore's best pipeline = the kdstore ``+valid gold`` / ``+valid gold x3`` row (policy x gold
weight) with the best mean out-of-fold VALID score, ties broken by the lower out-of-fold valid
log-loss (``wrench`` rows do not compete: valid is their early-stopping set, so their valid score is
optimistic). Nothing is ever chosen on test. Goal B compares it with MV and Snorkel followed by the
same student under the same protocol (same gold weight).
Digits corpus (``kdstore.demo``): per seed, the demo store, every policy -> ``store.train_student``
(valid gold for early stopping only), vs the best single teacher and the naive average.
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
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import select_quality as sq
import wrench_data as wd
from _common import peak_rss_mb, rerender, row_names, write_results

SEEDS = (0, 1, 2, 3, 4)
FOLDS = 3
#: protocol -> weight of the valid gold rows in the distillation set (the teachers' targets have weight <= 1)
GOLD_WEIGHTS = {"+valid gold": 1.0, "+valid gold x3": 3.0}
COMPLETE = ("youtube", "sms", "trec", "semeval")
#: the student's features per set: columns of the embed_wrench.py cache (the layer-mean poolings)
LAST_LAYER_PARTS: dict[str, tuple[str, ...]] = {s: ("embedding",) for s in wd.TEXT_SETS}
LAST_LAYER_PARTS.update({s: ("embedding", "entity1", "entity2", "between") for s in wd.RELATION_SETS})
PARTS: dict[str, tuple[str, ...]] = {s: tuple(f"layers_{c}" for c in v) for s, v in LAST_LAYER_PARTS.items()}
#: the control row: the same student on the same MV labels, with the last-layer features
FEATURES_CONTROL = "MV -> student [wrench], last-layer features"
#: the MLP student candidate (kdstore.student.train.TrainConfig fields)
STUDENT: dict[str, Any] = {"hidden": (256,), "dropout": 0.2, "weight_decay": 1e-3, "learning_rate": 1e-3,
                           "batch_size": 64, "epochs": 60, "patience": 6}
#: the student candidates of every row, one kept per row on valid (``train_student(candidates=...)``'s rule)
CANDIDATES: dict[str, dict[str, Any]] = {"mlp": STUDENT, "linear": {**STUDENT, "hidden": ()}}
#: trust configuration per set, chosen on VALID by select_quality.py (kind, features, weighting, threshold)
TRUST: dict[str, tuple[str, str | None, float, float]] = {
    "youtube": ("router", "emb", 0.0, 0.5),
    "sms": ("per_teacher", "emb", 2.0, 0.0),
    "trec": ("router", "emb", 2.0, 0.0),
    "semeval": ("per_teacher", None, 0.0, 0.5),
    "chemprot_partial": ("router", "emb", 2.0, 0.0),
}
POLICIES = ("best_per_label", "experts", "until_covered", "consensus_experts", "trust", "labelfree_em", "trust+em")
PUBLISHED_MLP = ("MLP <- MV", "MLP <- MV soft", "MLP <- MeTaL", "MLP <- MeTaL soft")
CACHE = Path(__file__).resolve().parent / ".cache_quality"


# ---------------------------------------------------------------------------------------------
# label sources
# ---------------------------------------------------------------------------------------------
def snorkel_probs(name: str, ws: wd.WrenchSet, seeds: tuple[int, ...]) -> dict[int, np.ndarray] | None:
    """Snorkel LabelModel train probabilities per seed (cached by input hash; run in /work/venv-snorkel)."""
    if not sq.SNORKEL_PY.exists():
        return None
    k = len(ws.classes)
    yv = ws.valid.gold[ws.valid.gold >= 0]
    h = hashlib.sha1()
    for a in (ws.train.votes, ws.test.votes, yv, np.asarray(seeds)):
        h.update(np.ascontiguousarray(a).tobytes())
    path = CACHE / f"snorkel_{name}_{h.hexdigest()[:12]}.npz"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.json"
            np.savez(src, k=k, l_train=ws.train.votes, l_test=ws.test.votes, y_valid=yv, seeds=np.asarray(seeds),
                     want_train_probs=1)
            env = {k_: v for k_, v in os.environ.items() if k_ != "PYTHONPATH"}
            subprocess.run([str(sq.SNORKEL_PY), str(Path(__file__).parent / "_snorkel_worker.py"), str(src), str(dst)],
                           check=True, env=env)
            out = json.loads(dst.read_text())
        np.savez(path, **{f"train_{s}": np.asarray(out["train_probs"][str(s)]) for s in seeds},
                 **{f"test_{s}": np.asarray(out["snorkel"][str(s)]) for s in seeds})
    z = np.load(path)
    return {s: z[f"train_{s}"] for s in seeds}


def _dist(tbl: Any, n: int, k: int, offset: int, value: str, weight: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A long (example_id, label_id, value[, weight]) table -> dense [n, k] distribution, weights, covered mask."""
    y = np.zeros((n, k))
    w = np.zeros(n)
    cov = np.zeros(n, bool)
    if tbl.num_rows:
        pos = np.asarray(tbl.column("example_id").to_numpy()) - offset
        lab = np.asarray(tbl.column("label_id").to_numpy())
        y[pos, lab] = np.asarray(tbl.column(value).to_numpy(), float)
        cov[pos] = True
        if weight is not None:
            w[pos] = np.asarray(tbl.column(weight).to_numpy(), float)
        else:
            w[cov] = 1.0
    tot = y.sum(axis=1)
    cov &= tot > 0
    y[cov] /= tot[cov, None]
    return y, np.where(cov, w, 0.0), cov


def kdstore_sources(name: str, k: int, data: tuple[list[str], dict[str, Any]] | None = None
                    ) -> dict[str, tuple[np.ndarray, np.ndarray, dict[str, Any]]]:
    """Train targets of every kdstore policy: {policy: (y [n_train, k], weight [n_train], info)}.

    ``data``: (classes, parts) as ``select_quality.read_set`` returns them (default: read the set).
    """
    from kdstore import select as ksel
    from kdstore import trust as ktrust
    from kdstore.labelmodel import fit_label_model, posteriors

    classes, parts = data or sq.read_set(name)
    emb = sq.load_embeddings(name, parts)
    n = len(parts["train"].keys)
    out: dict[str, tuple[np.ndarray, np.ndarray, dict[str, Any]]] = {}
    store = sq.build_store(classes, parts, emb)
    try:
        lab_ids = [int(r[0]) for r in store.con.execute("SELECT label_id FROM kd.labels ORDER BY label_id").fetchall()]
        assert lab_ids == list(range(k)), lab_ids
        for policy in POLICIES[:4]:
            t0 = time.perf_counter()
            y, w, cov = _dist(ksel.preview(store, policy, split="train", task="multiclass"), n, k, 0, "target", "weight")
            out[policy] = (y, w, {"train_coverage": float(cov.mean()), "seconds": time.perf_counter() - t0})
        kind, feats, mode, thr = TRUST[name]
        t0 = time.perf_counter()
        ktrust.fit_trust(store, kind=kind, feature_source=feats if emb is not None else None, seed=0)
        store.settings.update(trust_weighting=mode, trust_threshold=thr)
        y, w, cov = _dist(ksel.preview(store, "trust", split="train", task="multiclass"), n, k, 0, "target", "weight")
        out["trust"] = (y, w, {"train_coverage": float(cov.mean()), "seconds": time.perf_counter() - t0,
                               "config": {"kind": kind, "features": feats or "-", "trust_weighting": mode,
                                          "trust_threshold": thr}})
        t0 = time.perf_counter()
        fit_label_model(store)
        post = posteriors(store, splits=["train"])
        y, w, cov = _dist(post, n, k, 0, "posterior", None)
        voted = (parts["train"].votes >= 0).any(axis=1)
        w = np.where(voted, w, 0.0)
        out["labelfree_em"] = (y, w, {"train_coverage": float((w > 0).mean()), "seconds": time.perf_counter() - t0})
        # trust + label-free EM: the trust targets where trust covers an example, else the EM posterior
        yt, wt, _ = out["trust"]
        on = wt > 0
        y2 = np.where(on[:, None], yt, y)
        w2 = np.where(on, wt, w)
        out["trust+em"] = (y2, w2, {"train_coverage": float((w2 > 0).mean()), "seconds": 0.0,
                                    "rule": "trust targets where trust covers, else the EM posterior (covered examples)"})
    finally:
        store.close()
    return out


# ---------------------------------------------------------------------------------------------
# the student
# ---------------------------------------------------------------------------------------------
def _onehot(y: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((y.size, k))
    out[np.arange(y.size), y] = 1.0
    return out


def student(X: np.ndarray, y: np.ndarray, w: np.ndarray, Xv: np.ndarray, yv: np.ndarray, Xt: np.ndarray, k: int,
            seed: int, protocol: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train the student on (X, y, w) [+ valid gold]; returns test probs, out-of-fold valid probs, epochs.

    ``config``: TrainConfig fields (default :data:`STUDENT`).
    """
    from kdstore.student.train import Targets, TrainConfig, fit

    cfg = TrainConfig(**{**(STUDENT if config is None else config), "seed": seed})
    keep = w > 0
    X, y, w = X[keep], y[keep], w[keep]
    if protocol == "wrench":
        r = fit(X, Targets.multiclass(y.astype(np.float32), w.astype(np.float32)), valid_X=Xv,
                valid_targets=Targets.multiclass(_onehot(yv, k).astype(np.float32)), config=cfg)
        return {"test": predict(r.model, Xt), "valid": predict(r.model, Xv), "epochs": [r.best_epoch]}
    gold_weight = GOLD_WEIGHTS[protocol]
    folds = np.random.default_rng(12345).permutation(yv.size) % FOLDS
    test = np.zeros((Xt.shape[0], k))
    oof = np.zeros((yv.size, k))
    epochs = []
    for f in range(FOLDS):
        tr, va = folds != f, folds == f
        Xf = np.vstack([X, Xv[tr]])
        yf = np.vstack([y, _onehot(yv[tr], k)]).astype(np.float32)
        wf = np.concatenate([w, np.full(int(tr.sum()), gold_weight)]).astype(np.float32)
        r = fit(Xf, Targets.multiclass(yf, wf), valid_X=Xv[va],
                valid_targets=Targets.multiclass(_onehot(yv[va], k).astype(np.float32)), config=cfg)
        test += predict(r.model, Xt) / FOLDS
        oof[va] = predict(r.model, Xv[va])
        epochs.append(r.best_epoch)
    return {"test": test, "valid": oof, "epochs": epochs}


def predict(model: Any, X: np.ndarray) -> np.ndarray:
    """Class probabilities of a trained kdstore student (its own standardisation and forward pass)."""
    return np.asarray(model.predict(X)["scores"], float)


# ---------------------------------------------------------------------------------------------
# one set
# ---------------------------------------------------------------------------------------------
def candidate_row(feats: tuple[np.ndarray, np.ndarray, np.ndarray], target: Any, yv: np.ndarray, yt: np.ndarray,
                  k: int, metric: str, seeds: tuple[int, ...], protocol: str) -> dict[str, Any]:
    """One row: every :data:`CANDIDATES` student over ``seeds`` on (train, valid, test) features ``feats`` and train
    ``target`` ((y, w), or {seed: (y, w)}); keeps the best mean valid score, ties: lower valid loss, then listed first
    (the rule of ``train_student(candidates=...)``)."""
    X, Xv, Xt = feats
    tried: dict[str, dict[str, Any]] = {}
    for cname, cfg in CANDIDATES.items():
        tests, valids, losses, epochs = [], [], [], []
        for seed in seeds:
            y, w = target[seed] if isinstance(target, dict) else target
            out = student(X, y, w, Xv, yv, Xt, k, seed, protocol, config=cfg)
            tests.append(wd.score(metric, out["test"].argmax(1), yt))
            valids.append(wd.score(metric, out["valid"].argmax(1), yv))
            losses.append(float(-np.mean(np.log(np.maximum(out["valid"][np.arange(yv.size), yv], 1e-12)))))
            epochs.append(out["epochs"])
        tried[cname] = {"mean": float(np.mean(tests)), "std": float(np.std(tests)), "valid_mean": float(np.mean(valids)),
                        "valid_loss": float(np.mean(losses)), "per_seed": tests, "valid_per_seed": valids,
                        "best_epochs": epochs}
    kept = max(tried, key=lambda c: (tried[c]["valid_mean"], -tried[c]["valid_loss"], -list(CANDIDATES).index(c)))
    return {**tried[kept], "student": kept, "candidates": tried}


def _row_line(row: dict[str, Any]) -> str:
    return (f"kept {row['student']}: test {row['mean']:.2f} ± {row['std']:.2f}, valid {row['valid_mean']:.2f}; "
            + ", ".join(f"{c} test {v['mean']:.2f} valid {v['valid_mean']:.2f}" for c, v in row["candidates"].items()))


def best_teacher(ws: wd.WrenchSet) -> dict[str, Any]:
    """The single labeling function with the best VALID score (abstain -> the tie rule over all classes)."""
    k = len(ws.classes)
    best: tuple[float, int] = (-1.0, -1)
    for j in range(ws.valid.votes.shape[1]):
        pv, _ = wd.majority_vote(ws.valid.votes[:, j:j + 1], k)
        v = wd.score(ws.metric, pv, ws.valid.gold)
        if v > best[0]:
            best = (v, j)
    pt, _ = wd.majority_vote(ws.test.votes[:, best[1]:best[1] + 1], k)
    cov = ws.test.votes[:, best[1]] >= 0
    return {"teacher": f"lf{best[1]:03d}", "valid": best[0], "test": wd.score(ws.metric, pt, ws.test.gold),
            "test_coverage": float(cov.mean()), "covered_test": wd.score("acc", pt[cov], ws.test.gold[cov]) if cov.any() else None}


def run_set(name: str, seeds: tuple[int, ...], log: Any) -> dict[str, Any]:
    t_set = time.perf_counter()
    ws = wd.load_set(name)
    k, metric = len(ws.classes), ws.metric
    X = wd.features(ws.train, name, PARTS[name]).astype(np.float64)
    Xv = wd.features(ws.valid, name, PARTS[name]).astype(np.float64)
    Xt = wd.features(ws.test, name, PARTS[name]).astype(np.float64)
    yv, yt = ws.valid.gold, ws.test.gold
    covered = (ws.train.votes >= 0).any(axis=1)
    hard, soft = wd.majority_vote(ws.train.votes, k)
    cw = covered.astype(float)
    # label sources: name -> per-seed (y, w) or a fixed one
    sources: dict[str, Any] = {"MV": (_onehot(hard, k), cw), "naive average": (soft, cw)}
    t0 = time.perf_counter()
    sn = snorkel_probs(name, ws, SEEDS)  # always all 5 seeds, so --quick shares the cache
    snorkel_s = time.perf_counter() - t0
    if sn is not None:
        sources["Snorkel"] = {s: (p, cw) for s, p in sn.items()}
    t0 = time.perf_counter()
    kd = kdstore_sources(name, k, sq.parts_of(ws))
    kd_s = time.perf_counter() - t0
    info: dict[str, Any] = {}
    for p, (y, w, inf) in kd.items():
        sources[f"kdstore {p}"] = (y, w)
        info[f"kdstore {p}"] = inf
    log(f"  {name}: label sources ready (snorkel {snorkel_s:.0f} s, kdstore {kd_s:.0f} s)")
    te_cov = (ws.test.votes >= 0).any(axis=1)
    mv_te, _ = wd.majority_vote(ws.test.votes, k)
    res: dict[str, Any] = {
        "metric": metric, "classes": k, "features": "+".join(PARTS[name]), "dims": int(X.shape[1]),
        "sizes": {"train": int(X.shape[0]), "train_covered": int(covered.sum()), "valid": int(yv.size), "test": int(yt.size)},
        "label_models_alone": {"MV": wd.score(metric, mv_te, yt),
                               "MV covered accuracy": wd.score("acc", mv_te[te_cov], yt[te_cov])},
        "best_teacher": best_teacher(ws),
        "source_info": info,
        "train_label_accuracy": {},
        "rows": {},
    }
    for src, val in sources.items():
        y, w = val[seeds[0]] if isinstance(val, dict) else val
        m = w > 0
        res["train_label_accuracy"][src] = {"coverage": float(m.mean()),
                                            "accuracy_on_covered": 100.0 * float(np.mean(y[m].argmax(1) == ws.train.gold[m])) if m.any() else None}
    protocols = ("wrench", *GOLD_WEIGHTS)
    jobs: list[tuple[str, str]] = [(s, p) for p in protocols for s in sources]
    jobs.append(("valid gold only (control)", "+valid gold"))
    done: dict[tuple[str, bytes], str] = {}
    for src, protocol in jobs:
        t0 = time.perf_counter()
        key = f"{src} -> student [{protocol}]"
        val = sources.get(src)
        if val is not None and not isinstance(val, dict):  # identical targets: same student, reuse its numbers
            digest = hashlib.sha1(np.ascontiguousarray(val[0]).tobytes() + np.ascontiguousarray(val[1]).tobytes()).digest()
            if (protocol, digest) in done:
                same = done[(protocol, digest)]
                res["rows"][key] = {**res["rows"][same], "same_targets_as": same, "seconds": 0.0}
                log(f"  {name}: {key}: same targets as {same}")
                continue
            done[(protocol, digest)] = key
        if src.startswith("valid gold only"):
            target: tuple[np.ndarray, np.ndarray] | dict[int, Any] = (np.zeros((0, k)), np.zeros(0))
            feats = (np.zeros((0, X.shape[1])), Xv, Xt)
        else:
            target, feats = sources[src], (X, Xv, Xt)
        res["rows"][key] = {"source": src, "protocol": protocol, **candidate_row(feats, target, yv, yt, k, metric, seeds,
                                                                                protocol),
                            "seconds": time.perf_counter() - t0}
        log(f"  {name}: {key}: {_row_line(res['rows'][key])} ({time.perf_counter() - t0:.0f} s)")
    # the features control: the same MV labels and student on the last-layer features
    t0 = time.perf_counter()
    feats = tuple(wd.features(getattr(ws, sp), name, LAST_LAYER_PARTS[name]).astype(np.float64)
                  for sp in ("train", "valid", "test"))
    res["rows"][FEATURES_CONTROL] = {"source": "MV", "protocol": "wrench", "features": "+".join(LAST_LAYER_PARTS[name]),
                                     **candidate_row(feats, sources["MV"], yv, yt, k, metric, seeds, "wrench"),
                                     "seconds": time.perf_counter() - t0}
    log(f"  {name}: {FEATURES_CONTROL}: {_row_line(res['rows'][FEATURES_CONTROL])}")
    # kdstore's best pipeline: best OOF valid score among the kdstore rows of the +valid gold protocol
    cands = [r for r, v in res["rows"].items() if v["source"].startswith("kdstore") and v["protocol"] in GOLD_WEIGHTS]
    res["best_kdstore"] = max(cands, key=lambda r: (res["rows"][r]["valid_mean"], -res["rows"][r]["valid_loss"]))
    res["seconds"] = time.perf_counter() - t_set
    return res


# ---------------------------------------------------------------------------------------------
# digits
# ---------------------------------------------------------------------------------------------
def run_digits(seeds: tuple[int, ...], log: Any) -> dict[str, Any]:
    """The digits demo corpus: student (every policy; the one best on valid) vs best teacher and naive average."""
    import kdstore
    from kdstore.demo import FEATURES, build_demo

    rows: dict[str, list[float]] = {}
    valid: dict[str, list[float]] = {}
    chosen: list[str] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            path = Path(tmp) / f"digits_{seed}.duckdb"
            r = build_demo(path, seed=seed, replace=True, progress=False)
            rows.setdefault("best single teacher (10-class)", []).append(
                100 * max(s.acc_10class for s in r.scores if s.acc_10class is not None))
            rows.setdefault("naive average of all teachers", []).append(100 * r.naive_average_acc)
            with kdstore.connect(path) as store:
                store.fit_trust(seed=seed)
                seed_valid = {}
                for policy in ("best_per_label", "experts", "until_covered", "consensus_experts", "trust"):
                    rid = store.select(policy, gold_weight=0.0)
                    mid = store.train_student(rid, features=FEATURES, name=f"quality_{policy}", progress=False,
                                              seed=seed)
                    met = json.loads(store.one("SELECT metrics FROM kd.models WHERE model_id = ?", [mid])[0])
                    key = f"kdstore {policy} -> student"
                    rows.setdefault(key, []).append(100 * met["test"]["accuracy"])
                    valid.setdefault(key, []).append(100 * met["valid"]["accuracy"])
                    seed_valid[key] = met["valid"]["accuracy"]
                best = max(seed_valid, key=lambda q: seed_valid[q])
                chosen.append(best)
                rows.setdefault("kdstore best on valid -> student", []).append(rows[best][-1])
            log(f"  digits seed {seed}: " + ", ".join(f"{q} {v[-1]:.1f}" for q, v in rows.items()))
    return {"rows": {q: {"mean": float(np.mean(v)), "std": float(np.std(v)), "per_seed": v,
                         "valid_mean": float(np.mean(valid[q])) if q in valid else None} for q, v in rows.items()},
            "chosen_per_seed": chosen, "seconds": time.perf_counter() - t0,
            "note": "valid gold used for early stopping only (gold_weight 0); teachers and split rebuilt per seed"}


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------
def _pm(v: dict[str, Any]) -> str:
    return f"{v['mean']:.2f} ± {v['std']:.2f}"


def _diagnosis(results: dict[str, Any], sets: list[str]) -> list[str]:
    """The lines under goal A: goal A under the wrench protocol (no gold in training), and diagnostics that are
    never results: the same labels under our features and student vs the published ones, the last-layer features
    control, and the best test score of any kdstore row and candidate (an oracle: chosen on test)."""
    gap, oracle, control, strict = [], [], [], []
    for s in sets:
        rows, pub = results["sets"][s]["rows"], results["tally"]["published"][s]
        wrench = [r for r, v in rows.items() if v["source"].startswith("kdstore") and v["protocol"] == "wrench"]
        if wrench:
            w = rows[max(wrench, key=lambda r: (rows[r]["valid_mean"], -rows[r]["valid_loss"]))]
            strict.append((s, w, w["mean"] > pub["max_published_mlp"]))
        mv = rows.get("MV -> student [wrench]")
        if mv is not None:
            gap.append(f"{s} {mv['mean'] - results['published']['MLP <- MV'][s]:+.2f}")
            last = rows.get(FEATURES_CONTROL)
            if last is not None:
                control.append(f"{s} valid {last['valid_mean']:.1f} -> {mv['valid_mean']:.1f}, test {last['mean']:.2f} -> "
                               f"{mv['mean']:.2f}")
        best = max(((c["mean"], r, k) for r, v in rows.items() if v["source"].startswith("kdstore")
                    for k, c in v.get("candidates", {"kept": v}).items()), default=None)
        if best is not None:
            oracle.append(f"{s} {best[0]:.2f} ({best[1]}, {best[2]}; published max {pub['max_published_mlp']:.2f})")
    return [] if not sets else [
        f"- Goal A under the published rows' own protocol (**wrench**: no gold in the student's training; the kdstore "
        f"wrench row with the best valid score, the early-stopping set, so optimistic but alike for every row): "
        f"**{sum(m for *_, m in strict)} of {len(strict)}**: "
        + "; ".join(f"{s} {w['source'].removeprefix('kdstore ')} {w['mean']:.2f} "
                    f"({w['mean'] - results['tally']['published'][s]['max_published_mlp']:+.2f})" for s, w, _ in strict) + ".",
        "- Diagnosis, same labels: MV -> student [wrench] minus the published MLP <- MV (same MV labels, same "
        "protocol; MiniLM layer-mean features and kdstore's student here, BERT features and WRENCH's MLP there): "
        + ", ".join(gap) + ".",
        *(["- Features control, same MV labels and student [wrench], last-layer sentence embedding -> layer mean: "
           + "; ".join(control) + "."] if control else []),
        "- Diagnosis, oracle (chosen on TEST, never a result): the best test score of any kdstore row and student "
        "candidate: " + "; ".join(oracle) + ".",
    ]


def tally(results: dict[str, Any]) -> dict[str, Any]:
    """The goal tally: kdstore's best pipeline (chosen on valid) vs published MLP rows, MV and Snorkel."""
    out: dict[str, Any] = {"published": {}, "label_models": {}}
    for s, r in results["sets"].items():
        best = r["rows"][r["best_kdstore"]]
        pub = {p: wd.PUBLISHED[p][s] for p in PUBLISHED_MLP}
        top = max(pub.values())
        out["published"][s] = {"best": r["best_kdstore"], "score": best["mean"], "max_published_mlp": top,
                               "margin_vs_max": best["mean"] - top, "met": best["mean"] > top,
                               "margin_vs_mlp_mv": best["mean"] - pub["MLP <- MV"], "met_vs_mlp_mv": best["mean"] > pub["MLP <- MV"]}
        proto = best["protocol"]
        cmp = {}
        for lm in ("MV", "Snorkel"):
            key = f"{lm} -> student [{proto}]"
            if key in r["rows"]:
                cmp[lm] = {"row": key, "score": r["rows"][key]["mean"], "margin": best["mean"] - r["rows"][key]["mean"]}
        out["label_models"][s] = {"rows": cmp, "met": all(c["margin"] > 0 for c in cmp.values()) and len(cmp) == 2}
    out["published_met"] = sum(v["met"] for k, v in out["published"].items() if k in COMPLETE)
    out["published_met_vs_mlp_mv"] = sum(v["met_vs_mlp_mv"] for k, v in out["published"].items() if k in COMPLETE)
    out["label_models_met"] = sum(v["met"] for v in out["label_models"].values())
    return out


def markdown(results: dict[str, Any]) -> str:
    sets = list(results["sets"])
    feat = results["features"]
    t = results["tally"]
    lines = [
        "# Quality benchmark: kdstore pipelines vs majority vote, Snorkel and the published WRENCH rows",
        "",
        f"Features: {feat['model']} (package {feat['package']} {feat['package_version']}, ONNX sha256 "
        f"{feat['onnx_sha256'][:12]}…), layer-mean sentence embedding (the mean over tokens of the mean of the 6 "
        "transformer layers' outputs, 384); semeval and chemprot_partial: the same pooling of the sentence + entity1 + "
        "entity2 + between (1536) in every row but the last-layer features control. Teachers = labeling functions judged on valid gold; train unlabeled; "
        "test only scored (chemprot_partial: the data README's split). Student = kdstore.student.train.fit; every row "
        f"trains both candidates {results.get('candidates', {'mlp': STUDENT})} (linear = no hidden layer) and keeps the one "
        "with the better mean valid score, ties lower valid loss (the rule of train_student(candidates=...)); the "
        "kept one is marked (L = linear, M = mlp). Score = test accuracy (sms: F1 of spam), mean ± std over student "
        f"seeds {results['seeds']} (Snorkel seed = student seed). Protocols: **wrench** = train targets only, early "
        f"stopping on valid gold (like the published rows, which never train on valid); **+valid gold** = the patent's "
        f"distillation set: train targets + the gold valid examples (weight 1, or 3 in **+valid gold x3**), {FOLDS}-fold cross-fit on "
        "valid (each fold early-stops the student trained on the other folds; test = mean of the fold students; valid "
        "score = out-of-fold). kdstore best = the kdstore +valid gold (x1 or x3) row with the best out-of-fold VALID score, "
        "ties broken by the lower out-of-fold valid log-loss (never test). Published rows: WRENCH, BERT features (data README).",
        "",
        "## Goal tally",
        "",
        "| set | kdstore best (chosen on valid) | test | max published MLP row | margin | met | vs published MLP <- MV | "
        "vs MV -> same student | vs Snorkel -> same student | met |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in sets:
        p, lm = t["published"][s], t["label_models"][s]
        cells = [f"{lm['rows'][x]['score']:.2f} ({lm['rows'][x]['margin']:+.2f})" if x in lm["rows"] else "–"
                 for x in ("MV", "Snorkel")]
        pub_met = ("yes" if p["met"] else "NO") if s in COMPLETE else "(not counted)"
        lines.append(f"| {s} | {p['best'].replace(' -> student', '')} | {p['score']:.2f} | {p['max_published_mlp']:.2f} | "
                     f"{p['margin_vs_max']:+.2f} | {pub_met} | {p['margin_vs_mlp_mv']:+.2f} | {cells[0]} | {cells[1]} | "
                     f"{'yes' if lm['met'] else 'NO'} |")
    n_sets = len(sets)
    lines += [
        "",
        f"- Goal A (beat max of the 4 published MLP <- label-model rows on >= 3 of the 4 complete sets): "
        f"**{t['published_met']} of {sum(s in COMPLETE for s in sets)}** -> {'MET' if t['published_met'] >= 3 else 'NOT MET'}"
        f" (vs published MLP <- MV alone: {t['published_met_vs_mlp_mv']} of {sum(s in COMPLETE for s in sets)}).",
        f"- Goal B (beat MV and Snorkel, each followed by the same student under the same protocol, on >= 4 of 5): "
        f"**{t['label_models_met']} of {n_sets}** -> {'MET' if t['label_models_met'] >= 4 else 'NOT MET'}.",
        "- Caveat for goal A: the +valid gold protocol trains on the gold valid examples ("
        + ", ".join(f"{s} {results['sets'][s]['sizes']['valid']}" for s in sets)
        + "); the published rows use valid only for model selection. The control row "
        "'valid gold only' shows what the gold alone gives.",
        *_diagnosis(results, [s for s in sets if s in COMPLETE]),
        "",
        "## All rows (test score; [valid score] = out-of-fold for +valid gold, early-stopping set for wrench)",
        "",
        "| pipeline | " + " | ".join(f"{s} ({results['sets'][s]['metric']})" for s in sets) + " |",
        "|" + "---|" * (n_sets + 1),
    ]
    names = row_names(results, sets)

    def cell(s: str, r: str) -> str:
        v = results["sets"][s]["rows"].get(r)
        if v is None:
            return "–"
        star = " **best**" if r == results["sets"][s]["best_kdstore"] else ""
        mark = {"mlp": " M", "linear": " L"}.get(v.get("student", ""), "")
        return f"{_pm(v)} [{v['valid_mean']:.1f}]{mark}{star}"

    lines.append("| MV (label model alone) | " + " | ".join(f"{results['sets'][s]['label_models_alone']['MV']:.2f}" for s in sets) + " |")
    lines.append("| best single teacher (chosen on valid) | " + " | ".join(
        f"{results['sets'][s]['best_teacher']['test']:.2f} ({results['sets'][s]['best_teacher']['teacher']}, "
        f"cov {100 * results['sets'][s]['best_teacher']['test_coverage']:.0f}%)" for s in sets) + " |")
    for r in names:
        lines.append(f"| {r} | " + " | ".join(cell(s, r) for s in sets) + " |")
    for pub in ("MV", "MeTaL", *PUBLISHED_MLP, "MLP on gold train labels"):
        lines.append(f"| published: {pub} | " + " | ".join(f"{wd.PUBLISHED[pub][s]:.2f}" for s in sets) + " |")
    lines += ["", "Train labels of each source (coverage of train; accuracy on the covered train examples vs the hidden "
              "train gold -- for reading only, never used):", "",
              "| source | " + " | ".join(sets) + " |", "|" + "---|" * (n_sets + 1)]
    srcs: list[str] = []
    for s in sets:
        for q in results["sets"][s]["train_label_accuracy"]:
            if q not in srcs:
                srcs.append(q)
    for q in srcs:
        cells = []
        for s in sets:
            v = results["sets"][s]["train_label_accuracy"].get(q)
            cells.append("–" if v is None else f"{100 * v['coverage']:.0f}% / "
                         + ("–" if v["accuracy_on_covered"] is None else f"{v['accuracy_on_covered']:.1f}"))
        lines.append(f"| {q} | " + " | ".join(cells) + " |")
    trust = {s: results["sets"][s]["source_info"].get("kdstore trust", {}).get("config") for s in sets}
    lines += ["", "Trust configuration per set (chosen on valid by select_quality.py): "
              + "; ".join(f"{s} {c}" for s, c in trust.items())]
    if "digits" in results:
        d = results["digits"]
        lines += ["", "## Digits corpus (kdstore.demo; store.train_student, valid gold for early stopping only)", "",
                  "| pipeline | test accuracy | valid accuracy |", "|---|---|---|"]
        for q, v in d["rows"].items():
            va = "" if v["valid_mean"] is None else f"{v['valid_mean']:.2f}"
            lines.append(f"| {q} | {_pm(v)} | {va} |")
        b = d["rows"]["kdstore best on valid -> student"]["mean"]
        bt = d["rows"]["best single teacher (10-class)"]["mean"]
        na = d["rows"]["naive average of all teachers"]["mean"]
        lines += ["", f"Chosen per seed (valid): {d['chosen_per_seed']}. Student (best on valid) vs best teacher "
                  f"{b - bt:+.2f}, vs naive average {b - na:+.2f} -> {'MET' if b > bt and b > na else 'NOT MET'}."]
    resumed = results.get("resumed", [])
    lines.append(f"\nRuntime {results['seconds']:.0f} s, peak RSS {results['peak_rss_mb']:.0f} MB"
                 + (f"; sets resumed from checkpoints of an earlier run of the same code ({', '.join(resumed)}), "
                    f"which took {sum(results['sets'][n]['seconds'] for n in resumed):.0f} s there" if resumed else "") + ".")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default=",".join(wd.TEXT_SETS))
    ap.add_argument("--quick", action="store_true", help="2 seeds, results to quality_quick.{json,md}")
    ap.add_argument("--no-digits", action="store_true")
    ap.add_argument("--seeds", type=int, default=None, help="number of seeds (default 5; --quick 2)")
    ap.add_argument("--resume", action="store_true",
                    help="reuse per-set results checkpointed by an earlier run (same seeds, candidates and ONNX model)")
    ap.add_argument("--render", action="store_true", help="only rewrite quality.md from quality.json (no run)")
    args = ap.parse_args(argv)
    if args.render:
        print(f"wrote {rerender('quality', markdown)}")
        return 0
    seeds = SEEDS[:args.seeds] if args.seeds else SEEDS[:2] if args.quick else SEEDS
    manifest = json.loads((wd.EMBEDDINGS / "MANIFEST.json").read_text())
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.0f} s] {msg}", flush=True)

    results: dict[str, Any] = {
        "seeds": list(seeds), "student": STUDENT, "candidates": CANDIDATES, "folds": FOLDS, "gold_weights": GOLD_WEIGHTS,
        "features": {k: manifest[k] for k in ("model", "package", "package_version", "onnx_sha256", "dim", "pooling")},
        "published": wd.PUBLISHED, "sets": {},
    }
    for name in [s for s in args.sets.split(",") if s]:
        ckpt = CACHE / f"set_{name}_{len(seeds)}seeds_{'_'.join(CANDIDATES)}_{manifest['onnx_sha256'][:12]}.json"
        if args.resume and ckpt.exists():
            results["sets"][name] = json.loads(ckpt.read_text())
            results.setdefault("resumed", []).append(name)
            log(f"{name}: resumed from {ckpt}")
            continue
        log(f"{name} ...")
        results["sets"][name] = run_set(name, seeds, log)
        CACHE.mkdir(parents=True, exist_ok=True)
        ckpt.write_text(json.dumps(results["sets"][name], default=float))
    if not args.no_digits:
        log("digits ...")
        results["digits"] = run_digits(seeds, log)
    results["tally"] = tally(results)
    results["seconds"] = time.perf_counter() - t0
    results["peak_rss_mb"] = peak_rss_mb()
    jp, mp = write_results("quality" if len(seeds) == len(SEEDS) else "quality_quick", results, markdown(results))
    print(mp.read_text())
    print(f"wrote {jp} and {mp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
