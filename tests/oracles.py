"""Independent NumPy implementations of every view in ``sql/`` (one function per view, same name).

Each oracle reads a :class:`World` (plain Python/NumPy: labels, examples, gold, teachers with a
dense score matrix each) and returns the view's rows as dicts, with ``None`` for SQL NULL. They
never run SQL and do not copy the views' tricks (no label pages except where the page layout *is*
the view); they follow the empty-group rule each view's header states.

Oracles that rank or threshold values SQL computes (``label_experts``, ``labels_without_expert``,
``consensus_experts``, ``consensus_expertise``) also accept those values as input
(``metrics=``, ``z_rows=``), so a differential test can check the ranking rules exactly while the
values themselves are checked (to a tolerance) by their own oracles.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DECISION_TYPES = ("binary", "multilabel", "multiclass", "vote")
ARGMAX_TYPES = ("multiclass", "vote")
PAGE = 8

DEFAULT_SETTINGS = {
    "threshold": 0.5,
    "confidence": 0.95,
    "min_support": 5.0,
    "min_recall": 0.0,
    "expert_margin": 0.05,
    "expert_metric": 0.0,
    "z_threshold": 2.0,
}
METRICS = ("precision_lb", "recall_lb", "f1", "precision", "recall", "accuracy")

Row = dict[str, Any]


@dataclass
class Teacher:
    """A teacher: ``scores[i, j]`` = output ``j`` (label ``labels[j]``) on ``examples[i]``; NaN = none."""

    name: str
    output_type: str
    labels: list[int]
    examples: list[int] = field(default_factory=list)
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    threshold: float | None = None

    def rows(self) -> list[tuple[int, np.ndarray]]:
        """(example_id, float32 row) for every stored row (an all-NaN row is an abstain: not stored)."""
        out = []
        for e, row in zip(self.examples, self.scores, strict=True):
            if not np.all(np.isnan(row)):
                out.append((int(e), np.asarray(row, np.float32)))
        return out


@dataclass
class World:
    """Everything a store holds that the views read. ``teachers[i]`` gets teacher_id ``i``."""

    labels: list[str]  # label_id = position
    split: dict[int, str]  # example_id -> train | valid | test
    gold: set[tuple[int, int]] = field(default_factory=set)  # (example_id, label_id)
    teachers: list[Teacher] = field(default_factory=list)
    settings: dict[str, float] = field(default_factory=dict)

    def setting(self, name: str) -> float:
        return float(self.settings.get(name, DEFAULT_SETTINGS[name]))

    def examples_in(self, *splits: str) -> list[int]:
        return sorted(e for e, s in self.split.items() if s in splits)


# ---------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------
def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else num / den


def _stats(values: Sequence[float]) -> tuple[int, float | None, float | None]:
    """n, mean, sample stddev with the views' rule: NULL when n < 2, exactly 0 when all equal."""
    v = np.asarray(values, dtype=np.float64)
    n = int(v.size)
    if n == 0:
        return 0, None, None
    mean = float(v.mean())
    if n < 2:
        return n, mean, None
    if v.max() == v.min():
        return n, mean, 0.0
    return n, mean, float(np.std(v, ddof=1))


def _z(x: float, mean: float | None, sd: float | None) -> float | None:
    if mean is None or sd is None or sd == 0:
        return None
    return (x - mean) / sd


def wilson_lower(k: int, n: int, z: float | None) -> float | None:
    """Lower end of the two-sided Wilson score interval for k successes in n trials."""
    if n == 0 or z is None:
        return None
    p = k / n
    z2 = z * z
    return (p + z2 / (2 * n) - z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))) / (1 + z2 / n)


# ---------------------------------------------------------------------------------------------
# the views
# ---------------------------------------------------------------------------------------------
def confidence_z(world: World) -> list[Row]:
    c = world.setting("confidence")
    # NormalDist.inv_cdf of the lower tail keeps its precision near c = 1 (1 - p would not)
    z = -statistics.NormalDist().inv_cdf((1.0 - c) / 2.0) if 0.0 < c < 1.0 else None
    return [{"confidence": c, "z": z}]


def params(world: World) -> list[Row]:
    return [
        {
            "threshold": world.setting("threshold"),
            "confidence": world.setting("confidence"),
            "min_support": world.setting("min_support"),
            "min_recall": world.setting("min_recall"),
            "expert_margin": world.setting("expert_margin"),
            "expert_metric": world.setting("expert_metric"),
            "z_threshold": world.setting("z_threshold"),
        }
    ]


def decisions(world: World) -> list[Row]:
    out = []
    for tid, t in enumerate(world.teachers):
        if t.output_type not in DECISION_TYPES:
            continue
        thr = t.threshold if t.threshold is not None else world.setting("threshold")
        for e, row in t.rows():
            if world.split[e] == "test":
                continue
            present = ~np.isnan(row)
            if t.output_type in ARGMAX_TYPES:
                winner = int(np.nanargmax(row))  # the first maximum: lowest output_index
            for j, label in enumerate(t.labels):
                if not present[j]:
                    continue
                score = float(row[j])
                positive = (j == winner) if t.output_type in ARGMAX_TYPES else score >= thr
                out.append(
                    {
                        "teacher_id": tid,
                        "example_id": e,
                        "label_id": label,
                        "output_index": j,
                        "score": score,
                        "threshold": None if t.output_type in ARGMAX_TYPES else thr,
                        "positive": bool(positive),
                    }
                )
    return out


def label_metrics(world: World) -> list[Row]:
    valid = set(world.examples_in("valid"))
    z = confidence_z(world)[0]["z"]
    counts: dict[tuple[int, int], list[int]] = {}
    for d in decisions(world):
        if d["example_id"] not in valid:
            continue
        c = counts.setdefault((d["teacher_id"], d["label_id"]), [0, 0, 0, 0])
        gold = (d["example_id"], d["label_id"]) in world.gold
        c[{(True, True): 0, (True, False): 1, (False, True): 2, (False, False): 3}[(d["positive"], gold)]] += 1
    out = []
    for tid, t in enumerate(world.teachers):
        if t.output_type not in DECISION_TYPES:
            continue
        for label in t.labels:
            tp, fp, fn, tn = counts.get((tid, label), [0, 0, 0, 0])
            covered = tp + fp + fn + tn
            out.append(
                {
                    "teacher_id": tid,
                    "teacher": t.name,
                    "label_id": label,
                    "label": world.labels[label],
                    "n_valid": len(valid),
                    "covered": covered,
                    "coverage": _ratio(covered, len(valid)),
                    "support": tp + fn,
                    "tp": tp,
                    "fp": fp,
                    "fn": fn,
                    "tn": tn,
                    "precision": _ratio(tp, tp + fp),
                    "recall": _ratio(tp, tp + fn),
                    "f1": _ratio(2 * tp, 2 * tp + fp + fn),
                    "accuracy": _ratio(tp + tn, covered),
                    "precision_lb": wilson_lower(tp, tp + fp, z),
                    "recall_lb": wilson_lower(tp, tp + fn, z),
                }
            )
    return out


def label_experts(world: World, metrics: list[Row] | None = None) -> list[Row]:
    """Ranks ``metrics`` (default: the label_metrics oracle) the way kd.label_experts does."""
    metrics = label_metrics(world) if metrics is None else metrics
    code = int(world.setting("expert_metric"))
    name = METRICS[code] if 0 <= code < len(METRICS) else None
    min_support, min_recall = world.setting("min_support"), world.setting("min_recall")
    margin = world.setting("expert_margin")
    rows = []
    for m in metrics:
        metric = m[name] if name else None
        qualifies = (
            m["support"] >= min_support and m["recall"] is not None and m["recall"] >= min_recall and metric is not None
        )
        rows.append({**{k: m[k] for k in ("label_id", "label", "teacher_id", "teacher", "support", "recall")},
                     "metric_name": name, "metric": metric, "qualifies": qualifies})
    out = []
    for label in sorted({r["label_id"] for r in rows}):
        mine = [r for r in rows if r["label_id"] == label]
        good = sorted((r for r in mine if r["qualifies"]), key=lambda r: (-r["metric"], r["teacher_id"]))
        best = good[0]["metric"] if good else None
        for rank, r in enumerate(good, start=1):
            out.append({**r, "rank": rank, "is_best": rank == 1, "within_margin": r["metric"] >= best - margin,
                        "best_metric": best})
        for r in mine:
            if not r["qualifies"]:
                out.append({**r, "rank": None, "is_best": False, "within_margin": False, "best_metric": best})
    return out


def labels_without_expert(world: World, metrics: list[Row] | None = None) -> list[Row]:
    experts = label_experts(world, metrics)
    min_support, min_recall = world.setting("min_support"), world.setting("min_recall")
    out = []
    for label, name in enumerate(world.labels):
        mine = [r for r in experts if r["label_id"] == label]
        if any(r["qualifies"] for r in mine):
            continue
        supported = [r for r in mine if r["support"] >= min_support]
        recalled = [r for r in supported if r["recall"] is not None and r["recall"] >= min_recall]
        reason = (
            "no teacher has this label" if not mine
            else "no teacher reaches min_support" if not supported
            else "no teacher reaches min_recall" if not recalled
            else "metric undefined"
        )
        out.append({"label_id": label, "label": name, "n_teachers": len(mine),
                    "max_support": max((r["support"] for r in mine), default=None), "reason": reason})
    return out


def teacher_slots(world: World) -> list[Row]:
    out = []
    for tid, t in enumerate(world.teachers):
        if t.output_type not in DECISION_TYPES:
            continue
        for j, label in enumerate(t.labels):
            rank = label  # label ids are 0..L-1 in a World, so the rank is the id
            out.append({"teacher_id": tid, "label_id": label, "output_index": j, "label_rank": rank,
                        "page": rank // PAGE, "slot": rank % PAGE})
    return out


def _consensus_values(world: World) -> tuple[dict[tuple[int, int], list[float]], dict[int, list[float]]]:
    """Scores of the consensus teachers per (example, label) and per example (train + valid)."""
    by_label: dict[tuple[int, int], list[float]] = {}
    by_example: dict[int, list[float]] = {}
    for t in world.teachers:
        if t.output_type not in DECISION_TYPES:
            continue
        for e, row in t.rows():
            if world.split[e] == "test":
                continue
            for j, label in enumerate(t.labels):
                if not np.isnan(row[j]):
                    by_label.setdefault((e, label), []).append(float(row[j]))
                    by_example.setdefault(e, []).append(float(row[j]))
    return by_label, by_example


def consensus(world: World) -> list[Row]:
    by_label, _ = _consensus_values(world)
    out = []
    for (e, label), vals in sorted(by_label.items()):
        n, mean, sd = _stats(vals)
        out.append({"example_id": e, "label_id": label, "n": n, "mean": mean, "stddev": sd})
    return out


def consensus_example(world: World) -> list[Row]:
    _, by_example = _consensus_values(world)
    out = []
    for e, vals in sorted(by_example.items()):
        n, mean, sd = _stats(vals)
        out.append({"example_id": e, "n": n, "mean": mean, "stddev": sd})
    return out


def consensus_pages(world: World) -> list[Row]:
    ex = {r["example_id"]: r for r in consensus_example(world)}
    pages: dict[tuple[int, int], Row] = {}
    for c in consensus(world):
        key = (c["example_id"], c["label_id"] // PAGE)
        row = pages.setdefault(key, {"example_id": key[0], "page": key[1],
                                     **{f"n{k}": 0 for k in range(1, PAGE + 1)},
                                     **{f"mean{k}": None for k in range(1, PAGE + 1)},
                                     **{f"stddev{k}": None for k in range(1, PAGE + 1)}})
        k = c["label_id"] % PAGE + 1
        row[f"n{k}"], row[f"mean{k}"], row[f"stddev{k}"] = c["n"], c["mean"], c["stddev"]
    out = []
    for key in sorted(pages):
        e = ex[key[0]]
        out.append({**pages[key], "n_example": e["n"], "mean_example": e["mean"], "stddev_example": e["stddev"]})
    return out


def consensus_z(world: World) -> list[Row]:
    by_label = {(c["example_id"], c["label_id"]): c for c in consensus(world)}
    by_example = {c["example_id"]: c for c in consensus_example(world)}
    out = []
    for tid, t in enumerate(world.teachers):
        if t.output_type not in DECISION_TYPES:
            continue
        for e, row in t.rows():
            if world.split[e] == "test":
                continue
            for j, label in enumerate(t.labels):
                if np.isnan(row[j]):
                    continue
                x = float(row[j])
                c, ce = by_label[(e, label)], by_example[e]
                out.append({"teacher_id": tid, "example_id": e, "label_id": label, "score": x,
                            "z": _z(x, c["mean"], c["stddev"]), "z_example": _z(x, ce["mean"], ce["stddev"])})
    return out


def consensus_experts(world: World, z_rows: list[Row] | None = None) -> list[Row]:
    thr = world.setting("z_threshold")
    out = []
    for r in consensus_z(world) if z_rows is None else z_rows:
        by_label = r["z"] is not None and r["z"] >= thr
        by_example = r["z_example"] is not None and r["z_example"] >= thr
        if by_label or by_example:
            out.append({**{k: r[k] for k in ("example_id", "label_id", "teacher_id", "score", "z", "z_example")},
                        "by_label": by_label, "by_example": by_example})
    return out


def consensus_expertise(world: World, z_rows: list[Row] | None = None) -> list[Row]:
    thr = world.setting("z_threshold")
    groups: dict[tuple[int, int], list[Row]] = {}
    for r in consensus_z(world) if z_rows is None else z_rows:
        groups.setdefault((r["teacher_id"], r["label_id"]), []).append(r)
    out = []
    for (tid, label), rows in sorted(groups.items()):
        row: Row = {"teacher_id": tid, "label_id": label, "n_outputs": len(rows)}
        for col, suffix in (("z", ""), ("z_example", "_example")):
            defined = np.array([r[col] for r in rows if r[col] is not None], dtype=np.float64)
            high = defined[defined >= thr]
            row[f"n_defined{suffix}"] = int(defined.size)
            row[f"n_stand_out{suffix}"] = int(high.size)
            row[f"stand_out_rate{suffix}"] = _ratio(high.size, defined.size)
            row[f"mean_z{suffix}"] = float(high.mean()) if high.size else None
        out.append(row)
    return out


def _covering(world: World) -> tuple[dict[int, set[int]], dict[int, bool], dict[tuple[int, int], list[Row]]]:
    """Per example: teachers covering it, whether two of them disagree; decisions per (teacher, example)."""
    per_te: dict[tuple[int, int], list[Row]] = {}
    per_el: dict[tuple[int, int], set[bool]] = {}
    for d in decisions(world):
        per_te.setdefault((d["teacher_id"], d["example_id"]), []).append(d)
        per_el.setdefault((d["example_id"], d["label_id"]), set()).add(d["positive"])
    covering: dict[int, set[int]] = {}
    for tid, e in per_te:
        covering.setdefault(e, set()).add(tid)
    conflicted: dict[int, bool] = {}
    for (e, _), seen in per_el.items():
        conflicted[e] = conflicted.get(e, False) or len(seen) > 1
    return covering, conflicted, per_te


def _splits(world: World) -> list[tuple[str, int]]:
    return [(s, len(world.examples_in(s))) for s in ("train", "valid") if world.examples_in(s)]


def teacher_summary(world: World) -> list[Row]:
    covering, conflicted, per_te = _covering(world)
    out = []
    for split, n in _splits(world):
        for tid, t in enumerate(world.teachers):
            if t.output_type not in DECISION_TYPES:
                continue
            mine = [(e, ds) for (te, e), ds in per_te.items() if te == tid and world.split[e] == split]
            covered = len(mine)
            correct = sum(all(d["positive"] == ((e, d["label_id"]) in world.gold) for d in ds) for e, ds in mine)
            polarity = sorted({d["label_id"] for _, ds in mine for d in ds if d["positive"]})
            valid = split == "valid"
            out.append({
                "teacher_id": tid, "teacher": t.name, "split": split, "n_examples": n, "polarity": polarity,
                "covered": covered, "coverage": covered / n,
                "overlaps": sum(len(covering[e]) >= 2 for e, _ in mine) / n,
                "conflicts": sum(conflicted[e] for e, _ in mine) / n,
                "correct": correct if valid else None,
                "incorrect": covered - correct if valid else None,
                "emp_acc": (correct / covered if covered else 0.0) if valid else None,
            })
    return out


def teacher_label_summary(world: World) -> list[Row]:
    covering, conflicted, _ = _covering(world)
    fired: dict[tuple[int, int], list[int]] = {}
    for d in decisions(world):
        if d["positive"]:
            fired.setdefault((d["teacher_id"], d["label_id"]), []).append(d["example_id"])
    out = []
    for split, n in _splits(world):
        for tid, t in enumerate(world.teachers):
            if t.output_type not in DECISION_TYPES:
                continue
            for label in t.labels:
                es = [e for e in fired.get((tid, label), []) if world.split[e] == split]
                correct = sum((e, label) in world.gold for e in es)
                valid = split == "valid"
                out.append({
                    "teacher_id": tid, "teacher": t.name, "label_id": label, "label": world.labels[label],
                    "split": split, "n_examples": n, "fired": len(es), "coverage": len(es) / n,
                    "overlaps": sum(len(covering[e]) >= 2 for e in es) / n,
                    "conflicts": sum(conflicted[e] for e in es) / n,
                    "correct": correct if valid else None,
                    "incorrect": len(es) - correct if valid else None,
                    "emp_acc": (correct / len(es) if es else 0.0) if valid else None,
                })
    return out


#: view name -> its oracle (the meta-test checks every view of sql/ is here).
ORACLES = {
    f.__name__: f
    for f in (
        params, confidence_z, decisions, label_metrics, label_experts, labels_without_expert, teacher_slots, consensus_pages,
        consensus, consensus_example, consensus_z, consensus_experts, consensus_expertise, teacher_summary,
        teacher_label_summary,
    )
}
