"""Independent NumPy/Python oracles of the selection and trust views (sql/select_*.sql, sql/trust_*.sql,
sql/trusted_outputs.sql). Each reads only base tables (through :func:`fixture`) and recomputes a view's
rows with plain loops, following the empty-group rules written in the view headers.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

import kdstore

VIEWS = (
    "select_decisions", "select_metrics", "select_ranking", "select_candidates", "select_best_per_label",
    "select_experts", "select_until_covered", "select_consensus_ranking", "select_consensus_experts",
    "trusted_outputs", "select_trust", "trust_reliability", "trust_calibration",
)


@dataclass
class Fixture:
    split: dict[int, str]
    slice: dict[int, str | None]
    labels: list[int]
    otype: dict[int, str]
    thr: dict[int, float | None]
    tlabels: set[tuple[int, int]]
    out: dict[tuple[int, int, int], float]
    gold: set[tuple[int, int]]
    trust: dict[tuple[int, int, int], tuple[float, int]]
    s: dict[str, float]


def fixture(store: kdstore.Store) -> Fixture:
    """Read the base tables (and kd.outputs, the base long contract) into Python structures."""
    ex = store.execute("SELECT example_id, split, slice FROM kd.examples").fetchall()
    te = store.execute("SELECT teacher_id, output_type, threshold FROM kd.teachers").fetchall()
    return Fixture(
        split={int(e): s for e, s, _ in ex},
        slice={int(e): sl for e, _, sl in ex},
        labels=[int(r[0]) for r in store.execute("SELECT label_id FROM kd.labels ORDER BY 1").fetchall()],
        otype={int(t): o for t, o, _ in te},
        thr={int(t): th for t, _, th in te},
        tlabels={(int(t), int(lab)) for t, lab in store.execute("SELECT teacher_id, label_id FROM kd.teacher_labels").fetchall()},
        out={(int(t), int(e), int(lab)): float(s) for t, e, lab, s in
             store.execute("SELECT teacher_id, example_id, label_id, score FROM kd.outputs").fetchall()},
        gold={(int(e), int(lab)) for e, lab in store.execute("SELECT example_id, label_id FROM kd.gold").fetchall()},
        trust={(int(t), int(e), int(lab)): (float(p), int(m)) for t, e, lab, p, m in
               store.execute("SELECT teacher_id, example_id, label_id, p_correct, model_id FROM kd.trust").fetchall()},
        s={n: float(v) for n, v in store.execute("SELECT name, value FROM kd.settings").fetchall()},
    )


DECIDING = ("binary", "multiclass", "multilabel", "vote")


def decisions(fx: Fixture) -> dict[tuple[int, int, int], bool]:
    """kd.select_decisions.positive per (teacher, example, label)."""
    res: dict[tuple[int, int, int], bool] = {}
    by_te: dict[tuple[int, int], list[tuple[int, float]]] = defaultdict(list)
    for (t, e, lab), sc in fx.out.items():
        if fx.otype[t] in DECIDING:
            by_te[(t, e)].append((lab, sc))
    for (t, e), items in by_te.items():
        if fx.otype[t] in ("multiclass", "vote"):
            best = min(items, key=lambda it: (-it[1], it[0]))[0]
            for lab, _ in items:
                res[(t, e, lab)] = lab == best
        else:
            th = fx.thr[t] if fx.thr[t] is not None else fx.s["threshold"]
            for lab, sc in items:
                res[(t, e, lab)] = sc >= th
    return res


def z_of(confidence: float) -> float:
    """Abramowitz-Stegun 26.2.23 upper quantile of (1 - confidence) / 2 (same approximation as the view)."""
    p = (1.0 - confidence) / 2.0
    t = math.sqrt(-2.0 * math.log(p))
    return t - (2.515517 + 0.802853 * t + 0.010328 * t * t) / (1.0 + 1.432788 * t + 0.189269 * t * t + 0.001308 * t**3)


def wilson_lb(tp: int, n: int, z: float) -> float | None:
    if n == 0:
        return None
    p = tp / n
    return (p + z * z / (2 * n) - z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / (1 + z * z / n)


def metrics(fx: Fixture) -> dict[tuple[int, int, str | None], dict[str, Any]]:
    dec = decisions(fx)
    z = z_of(fx.s["confidence"])
    valid = [e for e, s in fx.split.items() if s == "valid"]
    keys: dict[str | None, set[int]] = {None: set(valid)}
    for e in valid:
        if fx.slice[e] is not None:
            keys.setdefault(fx.slice[e], set()).add(e)
    res = {}
    for t, lab in fx.tlabels:
        if fx.otype[t] not in DECIDING:
            continue
        for key, exs in keys.items():
            outs = [(e, dec[(t, e, lab)]) for e in exs if (t, e, lab) in dec]
            tp = sum(1 for e, pos in outs if pos and (e, lab) in fx.gold)
            fp = sum(1 for e, pos in outs if pos and (e, lab) not in fx.gold)
            support = sum(1 for e in exs if (e, lab) in fx.gold)
            fn = support - tp
            precision = tp / (tp + fp) if tp + fp else None
            recall = tp / support if support else None
            f1 = 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else None
            lb = wilson_lb(tp, tp + fp, z)
            metric = {0: lb, 1: f1, 2: precision, 3: recall}.get(int(fx.s["select_metric"]))
            qualified = support >= fx.s["min_support"] and tp > 0 and recall is not None and recall >= fx.s["min_recall"]
            res[(t, lab, key)] = dict(n_out=len(outs), tp=tp, fp=fp, fn=fn, support=support, precision=precision,
                                      recall=recall, f1=f1, precision_lb=lb, metric=metric, qualified=qualified)
    return res


def _rank(rows: dict[tuple[int, int, Any], float], margin: float) -> dict[tuple[int, int, Any], dict[str, Any]]:
    groups: dict[tuple[int, Any], list[tuple[int, float]]] = defaultdict(list)
    for (t, lab, key), m in rows.items():
        groups[(lab, key)].append((t, m))
    res = {}
    for (lab, key), items in groups.items():
        items.sort(key=lambda it: (-it[1], it[0]))
        best = items[0][1]
        for i, (t, m) in enumerate(items):
            res[(t, lab, key)] = dict(metric=m, rank=i + 1, is_best=i == 0, is_expert=m >= best - margin)
    return res


def ranking(fx: Fixture) -> dict[tuple[int, int, str | None], dict[str, Any]]:
    q = {k: v["metric"] for k, v in metrics(fx).items()
         if v["qualified"] and v["metric"] is not None and (k[2] is None or fx.s["slice_experts"] == 1)}
    return _rank(q, fx.s["expert_margin"])


def candidates(fx: Fixture) -> dict[tuple[int, int, int], dict[str, Any]]:
    dec = decisions(fx)
    rk = ranking(fx)
    sliced = {(lab, key) for (_, lab, key) in rk if key is not None}
    res = {}
    for (t, e, lab), pos in dec.items():
        if fx.split[e] == "valid":
            continue
        key = fx.slice[e] if (lab, fx.slice[e]) in sliced else None
        r = rk.get((t, lab, key))
        if r is not None:
            res[(t, e, lab)] = dict(score=fx.out[(t, e, lab)], positive=pos, slice_key=key, **r)
    return res


def _weighted(contrib: dict[tuple[int, int], list[tuple[int, float, float]]], rule: str, fx: Fixture,
              weight_of: Any = None) -> dict[tuple[int, int], dict[str, Any]]:
    """contrib[(e, l)] = [(teacher, w, score)]: value = sum(w s) / sum(w), evidence = sum(w s)."""
    res = {}
    for (e, lab), items in contrib.items():
        sw = sum(w for _, w, _ in items)
        ev = sum(w * s for _, w, s in items)
        top = min(items, key=lambda it: (-it[1], it[0]))[0]
        res[(e, lab)] = dict(split=fx.split[e], value=ev / sw, evidence=ev,
                             weight=1.0 if weight_of is None else weight_of(items), teacher_id=top, rule=rule)
    return res


def policy(fx: Fixture, name: str) -> dict[tuple[int, int], dict[str, Any]]:
    """Rows of kd.select_<name>, keyed by (example, label)."""
    contrib: dict[tuple[int, int], list[tuple[int, float, float]]] = defaultdict(list)
    if name == "best_per_label":
        res = {}
        for (t, e, lab), c in candidates(fx).items():
            if c["is_best"]:
                res[(e, lab)] = dict(split=fx.split[e], value=c["score"], evidence=c["metric"] * c["score"], weight=1.0,
                                     teacher_id=t, rule=name)
        return res
    if name == "experts":
        for (t, e, lab), c in candidates(fx).items():
            if c["is_expert"]:
                contrib[(e, lab)].append((t, c["metric"], c["score"]))
        return _weighted(contrib, name, fx)
    if name == "until_covered":
        cands = candidates(fx)
        first: dict[tuple[int, int], tuple[Any, int]] = {}
        for (_t, e, lab), c in cands.items():
            if fx.split[e] == "train" and c["positive"] and c["score"] >= fx.s["confident_threshold"]:
                k = (e, lab)
                first[k] = (c["slice_key"], min(first.get(k, (None, 10**9))[1], c["rank"]))
        maxr: dict[tuple[int, Any], int] = defaultdict(int)
        for (_, lab, key), r in ranking(fx).items():
            maxr[(lab, key)] = max(maxr[(lab, key)], r["rank"])
        cut = {}
        for (lab, key), mr in maxr.items():
            firsts = sorted(fr for (e, l2), (k2, fr) in first.items() if l2 == lab and k2 == key)
            k_star = next((r for r in sorted(set(firsts)) if sum(f <= r for f in firsts) >= fx.s["min_targets"]), mr)
            cut[(lab, key)] = k_star
        for (t, e, lab), c in cands.items():
            if c["rank"] <= cut[(lab, c["slice_key"])]:
                contrib[(e, lab)].append((t, c["metric"], c["score"]))
        return _weighted(contrib, name, fx)
    if name == "consensus_experts":
        rk = consensus_ranking(fx)
        for (t, e, lab), _pos in decisions(fx).items():
            r = rk.get((t, lab))
            if fx.split[e] != "valid" and r is not None and r["is_expert"]:
                contrib[(e, lab)].append((t, r["metric"], fx.out[(t, e, lab)]))
        return _weighted(contrib, name, fx)
    if name == "trust":
        thr, mode = fx.s["trust_threshold"], fx.s["trust_weighting"]
        pmap: dict[tuple[int, int], list[float]] = defaultdict(list)
        for (t, e, lab), (p, _) in trusted_outputs(fx).items():
            if p is None or fx.split[e] == "valid" or p < thr:
                continue
            pc = min(p, 1 - 1e-6)
            k = max(sum(1 for (t2, _) in fx.tlabels if t2 == t), 2) if fx.otype[t] in ("multiclass", "vote") else 2
            w = p if mode == 0 else math.log(pc * (k - 1 if mode == 2 else 1) / (1 - pc))
            if w > 0:
                contrib[(e, lab)].append((t, w, fx.out[(t, e, lab)]))
                pmap[(e, lab)].append(p)
        res = _weighted(contrib, name, fx)
        for k, v in res.items():
            v["weight"] = float(np.mean(pmap[k]))
            # the view names the teacher with the highest p_correct, not the highest weight (same order)
        return res
    raise ValueError(name)


def consensus_ranking(fx: Fixture) -> dict[tuple[int, int], dict[str, Any]]:
    dec = decisions(fx)
    n: dict[tuple[int, int], int] = defaultdict(int)
    npos: dict[tuple[int, int], int] = defaultdict(int)
    for (_, e, lab), pos in dec.items():
        if fx.split[e] != "test":
            n[(e, lab)] += 1
            npos[(e, lab)] += int(pos)
    agg: dict[tuple[int, int], list[float]] = defaultdict(list)
    for (t, e, lab), pos in dec.items():
        if fx.split[e] != "test" and pos and n[(e, lab)] > 1:
            agg[(t, lab)].append((npos[(e, lab)] - 1) / (n[(e, lab)] - 1))
    q = {(t, lab, None): (sum(a) + 1) / (len(a) + 2) for (t, lab), a in agg.items() if len(a) >= fx.s["min_support"]}
    return {(t, lab): v for (t, lab, _), v in _rank(q, fx.s["expert_margin"]).items()}


def trusted_outputs(fx: Fixture) -> dict[tuple[int, int, int], tuple[float | None, int | None]]:
    res: dict[tuple[int, int, int], tuple[float | None, int | None]] = {}
    per_te: dict[tuple[int, int], tuple[float, int]] = {}
    for (t, e, _lab), pm in fx.trust.items():
        per_te[(t, e)] = pm
    for (t, e, lab) in fx.out:
        if fx.otype[t] in ("multiclass", "vote"):
            res[(t, e, lab)] = per_te.get((t, e), (None, None))
        else:
            res[(t, e, lab)] = fx.trust.get((t, e, lab), (None, None))
    return res


def _trust_labels(fx: Fixture) -> dict[int, list[tuple[float, int, int]]]:
    dec = decisions(fx)
    res: dict[int, list[tuple[float, int, int]]] = defaultdict(list)
    for (t, e, lab), (p, m) in fx.trust.items():
        if fx.split[e] == "valid" and (t, e, lab) in dec:
            res[t].append((p, int(dec[(t, e, lab)] == ((e, lab) in fx.gold)), m))
    return res


def reliability(fx: Fixture) -> dict[tuple[int, int], dict[str, Any]]:
    bins = int(fx.s["calibration_bins"])
    acc: dict[tuple[int, int], list[tuple[float, int]]] = defaultdict(list)
    for t, rows in _trust_labels(fx).items():
        for p, y, _ in rows:
            acc[(t, min(math.floor(p * bins), bins - 1))].append((p, y))
    return {k: dict(n=len(v), mean_p=float(np.mean([p for p, _ in v])), frac_correct=float(np.mean([y for _, y in v])))
            for k, v in acc.items()}


def auc(y: np.ndarray, p: np.ndarray) -> float | None:
    """AUC by pair counting (ties count one half): the definition, not the rank formula."""
    pos, neg = p[y == 1], p[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return None
    gt = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(gt / (len(pos) * len(neg)))


def calibration(fx: Fixture) -> dict[int, dict[str, Any]]:
    res = {}
    for t, rows in _trust_labels(fx).items():
        p = np.array([r[0] for r in rows])
        y = np.array([r[1] for r in rows])
        res[t] = dict(model_id=max(r[2] for r in rows), n=len(rows), n_correct=int(y.sum()),
                      brier=float(np.mean((p - y) ** 2)), auc=auc(y, p))
    return res
