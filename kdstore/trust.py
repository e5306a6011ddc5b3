"""Trust models (LightGBM): will this teacher's decision be right for this input?

A *decision unit* is what a trust score is about (the same definition as ``kd.select_decisions``):

* a binary / multilabel teacher decides each of its labels: one unit per output (teacher, example,
  label); correct = (score >= threshold) agrees with gold (closed world);
* a multiclass / vote teacher decides one class per example: one unit per (teacher, example) whose
  label is its argmax; correct = that class is a gold label. ``kd.trusted_outputs`` applies the unit's
  ``p_correct`` to all of that teacher's outputs at the example.

Features of a unit (names in the model's params): the teacher's own output (score, positive, margin
= top-1 minus top-2 of its scores at the example, entropy of its normalised scores), the label id
(categorical), the consensus of the OTHER teachers on that example and label (how many have an
output, how many decide positive, mean / stddev of their scores, the unit's z-score against them,
how many fired at all, how many decided another label), optionally every other teacher's score on the
label (``other_scores``: NaN = abstain), optionally the numeric columns of a registered feature
source, optionally per-(example, label) scores from relations such as label-model posteriors
(``label_scores``), and, in feedback rounds, the student's score and agreement.

Two kinds of model:

* ``per_teacher``: one booster per teacher (a teacher with fewer than ``min_rows`` valid units or a
  single class gets a constant, the Laplace-smoothed share of correct units);
* ``router``: one booster over the units of all teachers stacked, with ``teacher_id`` as a
  categorical feature: it scores which teachers to trust for an input. ``use_outputs=False`` keeps
  only input features (example features, teacher and label ids), so it can pick teachers before any
  of them is run.

Honesty: models are trained on the VALID split only. Valid units get out-of-fold predictions
(k folds of EXAMPLES, seeded: all units of an example share a fold, so no example's gold reaches its
own score through another teacher's row); then a model fit on all valid units scores the train and
test units. Every feature of a unit comes from its own example, so test rows never influence a
train/valid score. Everything is deterministic for a seed. Models are stored in ``kd.models``
(``kind = 'trust'``, LightGBM model text in ``params->>'booster'``) with their settings, so
:func:`refit` rebuilds them from the stored outputs alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from kdstore.errors import KdstoreError, NotFittedError, SchemaError

if TYPE_CHECKING:
    import pyarrow as pa

    from kdstore.store.core import Store

KINDS = ("per_teacher", "router")

#: LightGBM parameters used unless overridden (small data: shallow trees, L2, fixed seed, 1 thread).
DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 10,
    "min_sum_hessian_in_leaf": 1e-3,
    "lambda_l2": 1.0,
    "feature_fraction": 0.9,
    "max_bin": 63,
    "verbose": -1,
    "deterministic": True,
    "force_col_wise": True,
    "num_threads": 1,
}

_MULTICLASS_TYPES = ("multiclass", "vote")


@dataclass(frozen=True, slots=True)
class TrustData:
    """Dense view of a store's decisions: arrays indexed [teacher, example, label]."""

    example_ids: np.ndarray
    split: np.ndarray
    teacher_ids: np.ndarray
    multiclass: np.ndarray
    label_ids: np.ndarray
    scores: np.ndarray
    positive: np.ndarray
    has: np.ndarray
    gold: np.ndarray
    features: np.ndarray
    feature_names: list[str]
    label_scores: np.ndarray
    label_score_names: list[str]


@dataclass(frozen=True, slots=True)
class TrustResult:
    """What :func:`fit_trust` wrote: the trust run, one model id per teacher, and OOF metrics on valid."""

    run_id: int
    kind: str
    model_ids: dict[int, int]
    metrics: dict[int, dict[str, Any]]
    units: int


@dataclass(frozen=True, slots=True)
class FeedbackRound:
    """One round of :func:`feedback`."""

    round: int
    trust_run_id: int
    select_run_id: int
    student_valid_error: float | None
    trust_auc: dict[int, float | None] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------
def _arrow(store: Store, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
    if store.trace is not None:
        store.trace(sql if not params else f"{sql}  -- params: {params!r}")
    return store.con.sql(sql, params=params).to_arrow_table() if params else store.con.sql(sql).to_arrow_table()


def _np(tbl: pa.Table, name: str, dtype: Any = None) -> np.ndarray:
    return np.asarray(tbl.column(name).to_numpy(), dtype=dtype)


def load(
    store: Store, *, feature_source: str | None = None, teachers: Sequence[str] | None = None,
    label_scores: Sequence[str] = (),
) -> TrustData:
    """Read decisions, valid gold and (optionally) a feature source and per-label score relations into dense arrays."""
    ex = _arrow(store, "SELECT example_id, split FROM kd.examples ORDER BY example_id")
    example_ids = _np(ex, "example_id", np.int64)
    split = np.asarray(ex.column("split").to_pylist(), dtype=object)
    tq = (
        "SELECT teacher_id, name, output_type FROM kd.teachers "
        "WHERE output_type IN ('binary', 'multiclass', 'multilabel', 'vote') ORDER BY teacher_id"
    )
    tt = _arrow(store, tq)
    names = tt.column("name").to_pylist()
    if teachers is not None:
        unknown = sorted(set(teachers) - set(names))
        if unknown:
            raise SchemaError(f"unknown (or non-deciding) teachers: {', '.join(unknown)}", source="trust")
    teacher_ids = _np(tt, "teacher_id", np.int64)
    multiclass = np.asarray([o in _MULTICLASS_TYPES for o in tt.column("output_type").to_pylist()], dtype=bool)
    label_ids = _np(_arrow(store, "SELECT label_id FROM kd.labels ORDER BY label_id"), "label_id", np.int64)
    n_t, n_e, n_l = len(teacher_ids), len(example_ids), len(label_ids)
    scores = np.full((n_t, n_e, n_l), np.nan, dtype=np.float32)
    positive = np.zeros((n_t, n_e, n_l), dtype=bool)
    d = _arrow(store, "SELECT teacher_id, example_id, label_id, score, positive FROM kd.select_decisions")
    if d.num_rows:
        ti = np.searchsorted(teacher_ids, _np(d, "teacher_id", np.int64))
        ei = np.searchsorted(example_ids, _np(d, "example_id", np.int64))
        li = np.searchsorted(label_ids, _np(d, "label_id", np.int64))
        scores[ti, ei, li] = _np(d, "score", np.float32)
        positive[ti, ei, li] = _np(d, "positive", bool)
    has = ~np.isnan(scores)
    gold = np.zeros((n_e, n_l), dtype=bool)
    g = _arrow(
        store,
        "SELECT g.example_id, g.label_id FROM kd.gold AS g "
        "JOIN kd.examples AS e ON e.example_id = g.example_id AND e.split = 'valid'",
    )
    if g.num_rows:
        gold[np.searchsorted(example_ids, _np(g, "example_id", np.int64)),
             np.searchsorted(label_ids, _np(g, "label_id", np.int64))] = True
    # all teachers are loaded even when ``teachers`` is given: the others feed the consensus features
    features, fnames = _load_features(store, feature_source, example_ids)
    ls = np.full((len(label_scores), n_e, n_l), np.nan)
    for i, rel in enumerate(label_scores):
        ls[i] = _label_score_matrix(store, rel, example_ids, label_ids)
    return TrustData(example_ids, split, teacher_ids, multiclass, label_ids, scores, positive, has, gold, features, fnames,
                     ls, [str(r) for r in label_scores])


def _label_score_matrix(store: Store, relation: str, example_ids: np.ndarray, label_ids: np.ndarray) -> np.ndarray:
    """[E, L] from a relation with example_id, label_id and one numeric score column (e.g. label-model posteriors)."""
    from sqlglot import exp
    from sqlglot.errors import ParseError

    try:
        table = exp.to_table(relation, dialect="duckdb")
    except (ParseError, ValueError) as e:
        raise SchemaError(f"not a relation name: {relation!r}", source="trust") from e
    rel = table.sql(dialect="duckdb")
    try:
        cols = [(str(r[0]), str(r[1])) for r in store.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()]
    except Exception as e:
        raise SchemaError(f"cannot read label scores from {relation!r}: {e}", source="trust") from e
    value = [c for c, t in cols if c not in ("example_id", "label_id") and t in ("FLOAT", "DOUBLE", "REAL")]
    if {"example_id", "label_id"} - {c for c, _ in cols} or len(value) != 1:
        raise SchemaError(f"{relation!r} needs columns example_id, label_id and exactly one FLOAT/DOUBLE score, has "
                          f"{', '.join(c for c, _ in cols)}", source="trust")
    col = exp.to_identifier(value[0], quoted=True).sql(dialect="duckdb")
    tbl = _arrow(store, f"SELECT example_id, label_id, CAST({col} AS DOUBLE) AS v FROM {rel}")
    m = np.full((len(example_ids), len(label_ids)), np.nan)
    ids, labs = _np(tbl, "example_id", np.int64), _np(tbl, "label_id", np.int64)
    ei, li = np.searchsorted(example_ids, ids), np.searchsorted(label_ids, labs)
    ok = (ei < len(example_ids)) & (li < len(label_ids))
    ok &= example_ids[np.minimum(ei, len(example_ids) - 1)] == ids
    ok &= label_ids[np.minimum(li, len(label_ids) - 1)] == labs
    m[ei[ok], li[ok]] = np.asarray(tbl.column("v").to_numpy(zero_copy_only=False), dtype=float)[ok]
    return m


def _load_features(store: Store, source: str | None, example_ids: np.ndarray) -> tuple[np.ndarray, list[str]]:
    if source is None:
        return np.zeros((len(example_ids), 0)), []
    from kdstore.ingest import feature_relation

    row = store.one("SELECT columns FROM kd.feature_sources WHERE name = ?", [source])
    if row is None:
        raise SchemaError(f"no feature source {source!r}", source="trust")
    cols = json.loads(row[0])
    numeric = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "FLOAT", "DOUBLE", "REAL", "DECIMAL", "HUGEINT", "BOOLEAN",
               "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")
    from sqlglot import exp

    scalar = [c["name"] for c in cols if c["name"] != "example_id" and str(c["type"]).split("(")[0] in numeric]
    vectors = [c["name"] for c in cols if c["name"] != "example_id" and str(c["type"]).endswith("[]")]
    rel = feature_relation(source)

    def q(name: str) -> str:
        return str(exp.to_identifier(name, quoted=True).sql(dialect="duckdb"))

    sel = ", ".join(["example_id"] + [f"CAST({q(c)} AS DOUBLE) AS {q(c)}" for c in scalar] + [q(c) for c in vectors])
    tbl = _arrow(store, f"SELECT {sel} FROM {rel}")
    pos = np.searchsorted(example_ids, _np(tbl, "example_id", np.int64))
    ok = (pos < len(example_ids)) & (example_ids[np.minimum(pos, len(example_ids) - 1)] == _np(tbl, "example_id", np.int64))
    blocks, names = [], []
    for c in scalar:
        col = np.full(len(example_ids), np.nan)
        col[pos[ok]] = np.asarray(tbl.column(c).to_numpy(zero_copy_only=False), dtype=float)[ok]
        blocks.append(col[:, None])
        names.append(c)
    for c in vectors:
        vals = tbl.column(c).to_pylist()
        width = max((len(v) for v in vals if v is not None), default=0)
        mat = np.full((len(example_ids), width), np.nan)
        rows = np.full((len(vals), width), np.nan)
        for i, v in enumerate(vals):
            if v is not None:
                rows[i, : len(v)] = v
        mat[pos[ok]] = rows[ok]
        blocks.append(mat)
        names.extend(f"{c}[{j}]" for j in range(width))
    if not blocks:
        return np.zeros((len(example_ids), 0)), []
    return np.hstack(blocks), names


# ---------------------------------------------------------------------------------------------
# units and features
# ---------------------------------------------------------------------------------------------
def units(data: TrustData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decision units as index arrays (teacher, example, label), sorted by teacher then example."""
    mc = data.multiclass[:, None, None]
    mask = np.where(mc, data.positive & data.has, data.has)
    t, e, lab = np.nonzero(mask)
    return t, e, lab


def correct(data: TrustData, t: np.ndarray, e: np.ndarray, lab: np.ndarray) -> np.ndarray:
    """Whether each unit's decision agrees with gold (meaningful for valid examples only)."""
    return np.asarray(data.positive[t, e, lab] == data.gold[e, lab])


def features(
    data: TrustData,
    t: np.ndarray,
    e: np.ndarray,
    lab: np.ndarray,
    *,
    other_scores: bool = True,
    student: np.ndarray | None = None,
    threshold: float = 0.5,
) -> tuple[np.ndarray, list[str]]:
    """The feature matrix of the units (float64, NaN = missing) and the column names."""
    s = data.scores
    n_t = s.shape[0]
    own = s[t, e, lab].astype(float)
    own_pos = data.positive[t, e, lab].astype(float)
    filled = np.where(data.has, s, -np.inf)
    top = -np.sort(-filled[t, e, :], axis=1)
    top1 = top[:, 0]
    top2 = top[:, 1] if top.shape[1] > 1 else np.full(len(t), -np.inf)
    margin = np.where(np.isfinite(top2), top1 - top2, np.where(np.isfinite(top1), top1, np.nan))
    row = np.where(data.has[t, e, :], np.clip(s[t, e, :].astype(float), 0.0, None), 0.0)
    tot = row.sum(axis=1, keepdims=True)
    pr = np.divide(row, tot, out=np.zeros_like(row), where=tot > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(pr > 0, pr * np.log(pr), 0.0).sum(axis=1)
    # the other teachers on the same example and label
    others = s[:, e, lab].T.astype(float)  # [units, T]
    others[np.arange(len(t)), t] = np.nan
    o_has = ~np.isnan(others)
    n_out = o_has.sum(axis=1).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_out > 0, np.nansum(others, axis=1) / np.maximum(n_out, 1), np.nan)
        dev = np.where(o_has, others - mean[:, None], 0.0)
        std = np.where(n_out > 0, np.sqrt((dev**2).sum(axis=1) / np.maximum(n_out, 1)), np.nan)
        z = np.where(std > 0, (own - mean) / std, np.nan)
    o_pos = data.positive[:, e, lab].T.copy()
    o_pos[np.arange(len(t)), t] = False
    n_pos = o_pos.sum(axis=1).astype(float)
    frac_pos = np.where(n_out > 0, n_pos / np.maximum(n_out, 1), np.nan)
    fired: np.ndarray = np.asarray(data.has.any(axis=2))  # [T, E]
    n_fired = fired[:, e].sum(axis=0).astype(float) - fired[t, e]
    pos_e = data.positive.sum(axis=2)  # [T, E]
    pos_other_label = (data.positive[:, e, :].sum(axis=(0, 2)) - data.positive[:, e, lab].sum(axis=0)).astype(float)
    pos_other_label -= pos_e[t, e] - data.positive[t, e, lab]
    cols = [own, own_pos, margin, ent, data.label_ids[lab].astype(float), n_out, n_pos, frac_pos, mean, std, z,
            n_fired, pos_other_label]
    names = ["score", "positive", "margin", "entropy", "label_id", "others_n", "others_pos", "others_frac_pos",
             "others_mean", "others_std", "others_z", "others_fired", "others_pos_other_label"]
    blocks = [np.column_stack(cols)]
    if other_scores:
        blocks.append(others)
        names += [f"t{int(i)}_score" for i in data.teacher_ids[:n_t]]
    for i, name in enumerate(data.label_score_names):
        blocks.append(data.label_scores[i, e, lab][:, None])
        names.append(f"ls_{name}")
    if data.features.shape[1]:
        blocks.append(data.features[e])
        names += [f"x_{n}" for n in data.feature_names]
    if student is not None:
        st = student[e, lab]
        spos = np.where(data.multiclass[t], student[e].argmax(axis=1) == lab, st >= threshold)
        spos = np.where(np.isnan(st), np.nan, spos.astype(float))
        blocks.append(np.column_stack([st, np.where(np.isnan(spos), np.nan, (spos == own_pos).astype(float))]))
        names += ["student_score", "student_agrees"]
    return np.hstack(blocks), names


# ---------------------------------------------------------------------------------------------
# fitting
# ---------------------------------------------------------------------------------------------
def auc(y: np.ndarray, p: np.ndarray) -> float | None:
    """Mann-Whitney AUC with average ranks for ties; None when y has one class.

    >>> auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
    """
    y = np.asarray(y, dtype=bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return None
    order = np.argsort(p, kind="mergesort")
    ps = np.asarray(p)[order]
    ranks = np.empty(len(ps))
    i = 0
    while i < len(ps):
        j = i
        while j + 1 < len(ps) and ps[j + 1] == ps[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


class _Model:
    """A booster or a constant (too few rows / one class)."""

    def __init__(self, booster: Any | None, constant: float | None):
        self.booster = booster
        self.constant = constant

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.booster is None:
            return np.full(len(x), float(self.constant if self.constant is not None else 0.5))
        return np.asarray(self.booster.predict(x), dtype=float)


def _train(
    x: np.ndarray, y: np.ndarray, w: np.ndarray | None, names: list[str], cats: list[str],
    params: Mapping[str, Any], rounds: int, min_rows: int,
) -> _Model:
    n = len(y)
    if n < min_rows or y.min(initial=1) == y.max(initial=0):
        return _Model(None, float((y.sum() + 1.0) / (n + 2.0)))
    import lightgbm as lgb

    ds = lgb.Dataset(x, label=y.astype(float), weight=w, feature_name=names, categorical_feature=cats,
                     params={"verbose": -1, "max_bin": params.get("max_bin", 63)}, free_raw_data=True)
    booster = lgb.train(dict(params), ds, num_boost_round=rounds)
    return _Model(booster, None)


def _folds(data: TrustData, k: int, seed: int) -> np.ndarray:
    """Fold id per example (-1 outside valid): a seeded permutation of the valid examples, dealt round-robin."""
    valid = np.flatnonzero(data.split == "valid")
    rng = np.random.default_rng(seed)
    fold = np.full(len(data.example_ids), -1, dtype=np.int64)
    fold[rng.permutation(valid)] = np.arange(len(valid)) % k
    return fold


#: units featurised at once when scoring the train/test decisions (bounds memory on large stores)
SCORE_CHUNK = 1 << 18


def _fit_group(
    idx: np.ndarray, featurize: Callable[[np.ndarray], np.ndarray], y: np.ndarray, w: np.ndarray | None,
    fold: np.ndarray, is_valid: np.ndarray, names: list[str], cats: list[str], params: Mapping[str, Any],
    rounds: int, min_rows: int, k: int, p: np.ndarray,
) -> _Model:
    """Fill ``p[idx]``: OOF predictions on the valid units, then a model fit on all of them scores the rest
    (featurised in chunks). Returns that final model."""
    vi = idx[is_valid[idx]]
    xv, yv, fv = featurize(vi), y[vi], fold[vi]
    wv = None if w is None else w[vi]
    pv = np.full(len(vi), np.nan)
    for f in range(k):
        tr, te = fv != f, fv == f
        if not te.any():
            continue
        m = _train(xv[tr], yv[tr], None if wv is None else wv[tr], names, cats, params, rounds, min_rows)
        pv[te] = m.predict(xv[te])
    p[vi] = pv
    final = _train(xv, yv, wv, names, cats, params, rounds, min_rows)
    rest = idx[~is_valid[idx]]
    for i in range(0, len(rest), SCORE_CHUNK):
        chunk = rest[i : i + SCORE_CHUNK]
        p[chunk] = final.predict(featurize(chunk))
    return final


def fit_trust(
    store: Store,
    *,
    kind: str = "per_teacher",
    feature_source: str | None = None,
    teachers: Sequence[str] | None = None,
    folds: int = 5,
    seed: int = 0,
    rounds: int = 100,
    params: Mapping[str, Any] | None = None,
    min_rows: int = 20,
    other_scores: bool | None = None,
    use_outputs: bool = True,
    student: pa.Table | None = None,
    feedback_weight: float = 1.0,
    label_scores: Sequence[str] = (),
) -> TrustResult:
    """Fit trust models on the valid split and write ``kd.trust`` (replacing those teachers' rows).

    Args:
        store: the store.
        kind: ``per_teacher`` (one booster per teacher) or ``router`` (one booster, teacher id categorical).
        feature_source: a registered feature source whose numeric (and list) columns are input features.
        teachers: teacher names to fit (default all deciding teachers); all teachers feed the consensus features.
        folds: k of the out-of-fold predictions on valid (folds of examples).
        seed: fold permutation and LightGBM seed.
        rounds: boosting rounds.
        params: LightGBM parameters overriding :data:`DEFAULT_PARAMS`.
        min_rows: fewer valid units than this (or one class) -> a constant model.
        other_scores: add every other teacher's score on the unit's label as a feature; None = only while
            units x teachers <= 2e7 (the effective choice is recorded in the params).
        use_outputs: router only; False = input features and ids only (choose teachers before running them).
        student: feedback: the student's predictions (example_id, label_id, score); adds features and
            up-weights valid units of examples the student gets wrong by ``1 + feedback_weight``.
        feedback_weight: see ``student``.
        label_scores: relations (e.g. ``kd.label_model_posteriors``) with example_id, label_id and one
            score column; the score at the unit's example and label becomes a feature. Each must be
            computed without the test split for the test-split guarantee to hold.

    Returns:
        :class:`TrustResult` (the trust run in ``kd.runs``, model ids in ``kd.models``, OOF metrics).
    """
    if kind not in KINDS:
        raise SchemaError(f"trust kind must be one of {KINDS}, got {kind!r}", source="trust")
    if folds < 2:
        raise SchemaError(f"folds must be >= 2, got {folds}", source="trust")
    data = load(store, feature_source=feature_source, teachers=teachers, label_scores=label_scores)
    threshold = float(store.settings["threshold"])
    stud = _student_matrix(data, student) if student is not None else None
    t, e, lab = units(data)
    if teachers is not None:
        names_all = _teacher_names(store, data.teacher_ids)
        wanted = np.isin(np.asarray(names_all, dtype=object), np.asarray(list(teachers), dtype=object))
        sel = wanted[t]
        t, e, lab = t[sel], e[sel], lab[sel]
    is_valid = data.split[e] == "valid"
    if not is_valid.any():
        raise NotFittedError("no valid-split decisions to train trust models on (add valid examples with gold)")
    y = correct(data, t, e, lab).astype(float)
    if other_scores is None:  # every other teacher's score per unit: only while that matrix stays small
        other_scores = len(t) * len(data.teacher_ids) <= 20_000_000
    use_other = bool(other_scores)

    def unit_features(i: np.ndarray) -> tuple[np.ndarray, list[str]]:
        return features(data, t[i], e[i], lab[i], other_scores=use_other, student=stud, threshold=threshold)

    _, names = unit_features(np.zeros(0, dtype=np.int64))
    w = None
    if stud is not None:
        wrong = _student_wrong(data, stud, threshold)
        w = 1.0 + feedback_weight * wrong[e, lab].astype(float)
    fold = _folds(data, folds, seed)[e]
    lgb_params = {**DEFAULT_PARAMS, **(params or {}), "seed": seed}
    p = np.full(len(t), np.nan)
    models: dict[int, _Model] = {}
    model_names: dict[int, list[str]] = {}
    if kind == "per_teacher":
        order = np.argsort(t, kind="stable")
        bounds = np.searchsorted(t[order], np.unique(t))
        for ti, rows in zip(np.unique(t), np.split(order, bounds[1:]), strict=True):
            models[int(ti)] = _fit_group(rows, lambda i: unit_features(i)[0], y, w, fold, is_valid, names,
                                         ["label_id"], lgb_params, rounds, min_rows, folds, p)
            model_names[int(ti)] = names
    else:
        keep = list(range(len(names))) if use_outputs else [
            i for i, n in enumerate(names) if n == "label_id" or n.startswith("x_")]
        rnames = [names[i] for i in keep] + ["teacher_id"]

        def router_features(i: np.ndarray) -> np.ndarray:
            return np.column_stack([unit_features(i)[0][:, keep], data.teacher_ids[t[i]].astype(float)])

        models[-1] = _fit_group(np.arange(len(t)), router_features, y, w, fold, is_valid, rnames,
                                ["label_id", "teacher_id"], lgb_params, rounds, min_rows, folds, p)
        model_names[-1] = rnames
    config = {
        "kind": kind, "feature_source": feature_source, "teachers": list(teachers) if teachers is not None else None,
        "folds": folds, "seed": seed, "rounds": rounds, "params": dict(params or {}), "min_rows": min_rows,
        "other_scores": use_other, "use_outputs": use_outputs, "student": student is not None,
        "feedback_weight": feedback_weight,
        "label_scores": list(label_scores),
    }
    return _write(store, data, config, lgb_params, t, e, lab, y, p, is_valid, models, model_names)


def _teacher_names(store: Store, ids: np.ndarray) -> list[str]:
    got = dict(store.execute("SELECT teacher_id, name FROM kd.teachers").fetchall())
    return [str(got[int(i)]) for i in ids]


def _student_matrix(data: TrustData, student: pa.Table) -> np.ndarray:
    for c in ("example_id", "label_id", "score"):
        if c not in student.column_names:
            raise SchemaError("student predictions need columns example_id, label_id, score", source="student", column=c)
    m = np.full((len(data.example_ids), len(data.label_ids)), np.nan)
    ids = _np(student, "example_id", np.int64)
    labs = _np(student, "label_id", np.int64)
    ei = np.searchsorted(data.example_ids, ids)
    li = np.searchsorted(data.label_ids, labs)
    ok = (ei < len(data.example_ids)) & (li < len(data.label_ids))
    ok &= data.example_ids[np.minimum(ei, len(data.example_ids) - 1)] == ids
    ok &= data.label_ids[np.minimum(li, len(data.label_ids) - 1)] == labs
    m[ei[ok], li[ok]] = _np(student, "score", float)[ok]
    return m


def _student_wrong(data: TrustData, stud: np.ndarray, threshold: float) -> np.ndarray:
    """[E, L] bool: the student is wrong on this valid example (multiclass task: its argmax is not gold)."""
    valid = data.split == "valid"
    multiclass_task = bool(valid.any() and (data.gold[valid].sum(axis=1) == 1).all())
    filled = np.where(np.isnan(stud), -np.inf, stud)
    if multiclass_task:
        am = filled.argmax(axis=1)
        wrong_e = ~data.gold[np.arange(len(am)), am] & np.isfinite(filled.max(axis=1))
        wrong = np.repeat(wrong_e[:, None], stud.shape[1], axis=1)
    else:
        wrong = ~np.isnan(stud) & ((stud >= threshold) != data.gold)
    return np.asarray(wrong & valid[:, None])


def _write(
    store: Store, data: TrustData, config: dict[str, Any], lgb_params: dict[str, Any],
    t: np.ndarray, e: np.ndarray, lab: np.ndarray, y: np.ndarray, p: np.ndarray, is_valid: np.ndarray,
    models: dict[int, _Model], model_names: dict[int, list[str]],
) -> TrustResult:
    import pyarrow as pa

    metrics: dict[int, dict[str, Any]] = {}
    for ti in np.unique(t):
        rows = (t == ti) & is_valid
        yy, pp = y[rows], p[rows]
        metrics[int(data.teacher_ids[ti])] = {
            "valid_units": int(rows.sum()),
            "valid_correct": int(yy.sum()),
            "oof_auc": auc(yy, pp) if rows.any() else None,
            "oof_brier": float(np.mean((pp - yy) ** 2)) if rows.any() else None,
        }
    with store.transaction():
        row = store.one("SELECT coalesce(max(run_id), 0) + 1 FROM kd.runs")
        run_id = int(row[0]) if row else 1
        row = store.one("SELECT coalesce(max(model_id), 0) + 1 FROM kd.models")
        next_model = int(row[0]) if row else 1
        model_ids: dict[int, int] = {}
        unit_model = np.zeros(len(t), dtype=np.int64)
        for key, m in sorted(models.items()):
            mid = next_model
            next_model += 1
            if key == -1:
                name, tid = "trust:router", None
                unit_model[:] = mid
                for ti in np.unique(t):
                    model_ids[int(data.teacher_ids[ti])] = mid
                mm = {"valid_units": int(is_valid.sum()), "oof_auc": auc(y[is_valid], p[is_valid])}
            else:
                tid = int(data.teacher_ids[key])
                name = f"trust:{tid}"
                unit_model[t == key] = mid
                model_ids[tid] = mid
                mm = metrics[tid]
            mparams = {
                **config, "teacher_id": tid, "lightgbm": lgb_params, "features": model_names[key],
                "booster": None if m.booster is None else m.booster.model_to_string(),
                "constant": m.constant,
            }
            store.run(
                "INSERT INTO kd.models (model_id, name, kind, run_id, params, metrics) VALUES (?, ?, 'trust', ?, ?, ?)",
                [mid, name, run_id, json.dumps(mparams), json.dumps(mm)],
            )
        fitted = sorted({int(data.teacher_ids[ti]) for ti in np.unique(t)})
        store.run("DELETE FROM kd.trust WHERE teacher_id IN (SELECT unnest(?::INTEGER[]))", [fitted])
        tbl = pa.table({
            "teacher_id": pa.array(data.teacher_ids[t], pa.int32()),
            "example_id": pa.array(data.example_ids[e], pa.int64()),
            "label_id": pa.array(data.label_ids[lab], pa.int32()),
            "p_correct": pa.array(p, pa.float64()),
            "model_id": pa.array(unit_model, pa.int32()),
        })
        store.con.register("__kdstore_trust", tbl)
        try:
            store.run("INSERT INTO kd.trust SELECT * FROM __kdstore_trust")
        finally:
            store.con.unregister("__kdstore_trust")
        summary = {
            "units": len(t), "valid_units": int(is_valid.sum()),
            "oof_auc": auc(y[is_valid], p[is_valid]),
            "oof_brier": float(np.mean((p[is_valid] - y[is_valid]) ** 2)),
            "models": len(models),
        }
        store.run(
            "INSERT INTO kd.runs (run_id, kind, params, metrics) VALUES (?, 'trust', ?, ?)",
            [run_id, json.dumps(config), json.dumps(summary)],
        )
    return TrustResult(run_id=run_id, kind=str(config["kind"]), model_ids=model_ids, metrics=metrics, units=len(t))


# ---------------------------------------------------------------------------------------------
# stored models
# ---------------------------------------------------------------------------------------------
def load_booster(store: Store, model_id: int) -> Any:
    """The ``lightgbm.Booster`` of a stored trust model (NotFittedError for a constant model)."""
    row = store.one("SELECT params FROM kd.models WHERE model_id = ? AND kind = 'trust'", [model_id])
    if row is None:
        raise KdstoreError(f"no trust model {model_id}")
    params = json.loads(row[0])
    if params.get("booster") is None:
        raise NotFittedError(f"trust model {model_id} is a constant ({params.get('constant')}), it has no booster")
    import lightgbm as lgb

    return lgb.Booster(model_str=params["booster"])


def refit(store: Store, run_id: int, *, student: pa.Table | None = None) -> TrustResult:
    """Refit a trust run's models from the stored outputs alone (same settings, same seed)."""
    row = store.one("SELECT params FROM kd.runs WHERE run_id = ? AND kind = 'trust'", [run_id])
    if row is None:
        raise KdstoreError(f"no trust run {run_id}")
    cfg = json.loads(row[0])
    if cfg.get("student") and student is None:
        raise SchemaError(f"trust run {run_id} used student feedback: pass the student's predictions", source="trust")
    return fit_trust(
        store, kind=cfg["kind"], feature_source=cfg["feature_source"], teachers=cfg["teachers"], folds=cfg["folds"],
        seed=cfg["seed"], rounds=cfg["rounds"], params=cfg["params"], min_rows=cfg["min_rows"],
        other_scores=cfg["other_scores"], use_outputs=cfg["use_outputs"], student=student,
        feedback_weight=cfg["feedback_weight"], label_scores=cfg.get("label_scores", ()),
    )


def feedback(
    store: Store,
    student_fn: Callable[[Store, int], pa.Table],
    *,
    rounds: int = 1,
    policy: str = "trust",
    trust_kwargs: Mapping[str, Any] | None = None,
    task: str | None = None,
) -> list[FeedbackRound]:
    """The patent's feedback loop: trust -> select -> student -> its valid errors -> trust again.

    Each round fits trust models (from round 2 on with the previous student's predictions as features
    and its valid errors as extra weight), selects targets with ``policy`` (no gold rows, so the valid
    split stays clean for judging the student), then calls ``student_fn(store, select_run_id)``, which
    trains a student on that run and returns its predictions (example_id, label_id, score) on the
    store's examples (at least train and valid).
    """
    from kdstore.select import select

    if rounds < 1:
        raise SchemaError(f"rounds must be >= 1, got {rounds}", source="feedback")
    out: list[FeedbackRound] = []
    preds: pa.Table | None = None
    for r in range(rounds):
        fit = fit_trust(store, **dict(trust_kwargs or {}), student=preds)
        sel = select(store, policy, gold_weight=0.0, task=task)
        preds = student_fn(store, sel.run_id)
        data = load(store)
        stud = _student_matrix(data, preds)
        wrong = _student_wrong(data, stud, float(store.settings["threshold"]))
        valid = data.split == "valid"
        err = float(wrong[valid].any(axis=1).mean()) if valid.any() else None
        out.append(FeedbackRound(r, fit.run_id, sel.run_id, err, {k: v["oof_auc"] for k, v in fit.metrics.items()}))
    return out


__all__ = [
    "DEFAULT_PARAMS",
    "KINDS",
    "FeedbackRound",
    "TrustData",
    "TrustResult",
    "auc",
    "correct",
    "features",
    "feedback",
    "fit_trust",
    "load",
    "load_booster",
    "refit",
    "units",
]
