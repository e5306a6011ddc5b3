"""WRENCH text sets for the quality benchmarks: votes, gold, the partial-set protocol, cached features.

Shared by ``quality_baselines.py`` (and later ``quality.py``). The data is read in place from
``../shared/data/wrench`` (never copied); features come from the MiniLM cache that
``embed_wrench.py`` writes. Rows keep the JSON file order, which WRENCH's deterministic tie rule
depends on (see :func:`majority_vote`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent
EMBEDDINGS = ROOT / ".cache" / "embeddings"
TEXT_SETS = ("youtube", "sms", "trec", "semeval", "chemprot_partial")
RELATION_SETS = ("semeval", "chemprot_partial")
#: metric per set as WRENCH reports it: accuracy, or binary F1 of the positive class (sms: spam = 1)
METRIC = {"youtube": "acc", "sms": "f1", "trec": "acc", "semeval": "acc", "chemprot_partial": "acc"}

#: Published WRENCH test numbers (the data README, from WRENCH's README at commit ce1030ad)
PUBLISHED = {
    "MV": {"youtube": 84.00, "sms": 23.97, "trec": 60.80, "semeval": 77.33, "chemprot_partial": 49.04},
    "MeTaL": {"youtube": 84.00, "sms": 7.06, "trec": 57.60, "semeval": 71.00, "chemprot_partial": 51.96},
    "MLP <- MV": {"youtube": 89.44, "sms": 89.03, "trec": 61.40, "semeval": 83.13, "chemprot_partial": 56.04},
    "MLP <- MV soft": {"youtube": 90.16, "sms": 91.91, "trec": 63.88, "semeval": 85.53, "chemprot_partial": 55.83},
    "MLP <- MeTaL": {"youtube": 88.88, "sms": 88.07, "trec": 56.32, "semeval": 73.00, "chemprot_partial": 55.02},
    "MLP <- MeTaL soft": {"youtube": 87.44, "sms": 91.10, "trec": 63.80, "semeval": 74.27, "chemprot_partial": 55.52},
    "MLP on gold train labels": {"youtube": 94.00, "sms": 94.45, "trec": 66.04, "semeval": 93.33, "chemprot_partial": 80.15},
}
#: MV reproduced by the data README with the same tie rule (semeval differs from the published row)
REPRODUCED_MV = {"youtube": 84.00, "sms": 23.97, "trec": 60.80, "semeval": 76.50}


def wrench_dir() -> Path:
    for cand in (ROOT.parents[1] / "shared" / "data" / "wrench", Path("/work/shared/data/wrench")):
        if cand.is_dir():
            return cand
    raise SystemExit("WRENCH data not found (expected ../shared/data/wrench beside the repository)")


@dataclass(frozen=True, slots=True)
class Split:
    """One split: WRENCH ids (JSON order), gold (-1 unknown), votes [n, m] (-1 abstain), source file."""

    ids: np.ndarray
    gold: np.ndarray
    votes: np.ndarray
    file: str  # the JSON split the rows come from (features are cached per file)


@dataclass(frozen=True, slots=True)
class WrenchSet:
    name: str
    classes: tuple[str, ...]
    train: Split
    valid: Split
    test: Split

    @property
    def metric(self) -> str:
        return METRIC[self.name]


def _read(path: Path) -> Split:
    d = json.loads(path.read_text())
    ids = np.asarray([int(k) for k in d], np.int64)
    gold = np.asarray([int(v["label"]) for v in d.values()], np.int64)
    votes = np.asarray([v["weak_labels"] for v in d.values()], np.int64)
    return Split(ids, gold, votes, path.stem)


def _subset(s: Split, mask: np.ndarray) -> Split:
    return Split(s.ids[mask], s.gold[mask], s.votes[mask], s.file)


def load_set(name: str) -> WrenchSet:
    """A text set with the data README's protocol applied.

    chemprot_partial has no train split: valid examples whose id % 5 == 0 are the valid split, the
    other valid examples are the unlabeled train pool (their gold is kept only for oracle rows).
    tennis_flyingsquid has no test split: valid examples with an even id are the valid split, the
    odd ones the test split.
    """
    root = wrench_dir() / name
    classes = tuple(v for _, v in sorted(json.loads((root / "label.json").read_text()).items(), key=lambda kv: int(kv[0])))
    valid = _read(root / "valid.json")
    if name == "chemprot_partial":
        keep = valid.ids % 5 == 0
        return WrenchSet(name, classes, _subset(valid, ~keep), _subset(valid, keep), _read(root / "test.json"))
    if name == "tennis_flyingsquid":
        even = valid.ids % 2 == 0
        return WrenchSet(name, classes, _read(root / "train.json"), _subset(valid, even), _subset(valid, ~even))
    return WrenchSet(name, classes, _read(root / "train.json"), valid, _read(root / "test.json"))


def _sha1_row(i: int) -> int:
    return int(hashlib.sha1(str(i).encode("utf-8")).hexdigest(), 16)


def majority_vote(votes: np.ndarray, n_classes: int, tol: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
    """WRENCH's majority vote: (hard labels, soft label distribution).

    Counts of votes per class (an all-abstain row counts 1 for every class), normalised; the hard
    label is the arg-max, and a tie (within ``tol``) between k classes picks
    ``tied[sha1(str(row)) % k]`` -- the deterministic rule of Snorkel's ``probs_to_preds``
    (policy "random") that WRENCH's ``predict`` uses; it depends on the row's position.

    >>> majority_vote(np.array([[0, 1, -1], [1, 1, 0], [-1, -1, -1]]), 2)[0].tolist()
    [1, 1, 0]
    """
    n = votes.shape[0]
    counts = np.zeros((n, n_classes))
    for j in range(votes.shape[1]):
        v = votes[:, j]
        on = v >= 0
        np.add.at(counts, (np.flatnonzero(on), v[on]), 1.0)
    counts[counts.sum(axis=1) == 0] = 1.0
    soft = counts / counts.sum(axis=1, keepdims=True)
    top = soft.max(axis=1, keepdims=True)
    hard = np.empty(n, np.int64)
    for i in range(n):
        tied = np.flatnonzero(np.abs(soft[i] - top[i]) < tol)
        hard[i] = tied[0] if tied.size == 1 else tied[_sha1_row(i) % tied.size]
    return hard, soft


def score(metric: str, pred: np.ndarray, gold: np.ndarray) -> float:
    """Accuracy, or binary F1 of class 1, in percent."""
    if metric == "acc":
        return 100.0 * float(np.mean(pred == gold))
    tp = float(np.sum((pred == 1) & (gold == 1)))
    denom = float(np.sum(pred == 1) + np.sum(gold == 1))
    return 100.0 * 2 * tp / denom if denom else 0.0


def features(split: Split, set_name: str, parts: tuple[str, ...] = ("embedding",)) -> np.ndarray:
    """Cached MiniLM features of a split's rows, in the split's order: [n, 384 * len(parts)].

    ``parts``: columns of the cache to concatenate: ``embedding`` (the sentence embedding) and, for
    the relation sets, ``entity1``, ``entity2``, ``between`` (contextual token means).
    """
    path = EMBEDDINGS / f"{set_name}_{split.file}.parquet"
    if not path.exists():
        raise SystemExit(f"{path} missing: run benchmarks/embed_wrench.py first (see its docstring)")
    cols = ["id", *parts]
    t = pq.read_table(path, columns=cols)
    ids = t.column("id").to_numpy()
    pos = np.searchsorted(ids, split.ids)
    if not np.array_equal(ids[np.minimum(pos, ids.size - 1)], split.ids):
        raise SystemExit(f"{path} does not cover every id of {set_name}/{split.file}: re-run embed_wrench.py --force")

    def mat(c: str) -> np.ndarray:
        col = t.column(c).combine_chunks()
        return np.asarray(col.flatten().to_numpy(zero_copy_only=False), np.float32).reshape(len(col), -1)

    return np.concatenate([mat(c)[pos] for c in cols[1:]], axis=1)
