"""NumPy oracle of the label model (kdstore.labelmodel): a dense, independent Dawid–Skene EM.

It reads the store's raw tables (labels, teachers, kd.scores, examples, gold, settings) into dense
arrays and runs the EM the way the module docstring of :mod:`kdstore.labelmodel` describes it,
without the SQL's sparse bookkeeping: observations ``A[e, t, s]`` over a global symbol axis
(``s < K``: label index, ``s = K``: none of its labels, ``s = K + 1``: abstained).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

VOTING = ("vote", "multiclass", "binary", "multilabel")


@dataclass
class Problem:
    labels: np.ndarray          # [K] label ids, sorted
    teachers: np.ndarray        # [T] teacher ids, sorted
    examples: np.ndarray        # [n] example ids, sorted
    obs: np.ndarray             # [n, T, K + 1] observation weights (labels + none)
    allowed: np.ndarray         # [T, K + 2] bool: symbols of each teacher (labels, none, abstain)
    own: np.ndarray             # [T, K] bool: the teacher's own labels
    has_none: np.ndarray        # [T] bool


@dataclass
class Fit:
    theta: np.ndarray           # [T, K, K + 2] (0 outside the teacher's symbols)
    prior: np.ndarray           # [K]
    q: np.ndarray               # [n, K]
    log_likelihood: list[float] = field(default_factory=list)
    iterations: int = 0
    converged: bool = False


def _rows(store: Any, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    return list(store.con.execute(sql, params).fetchall() if params is not None else store.con.execute(sql).fetchall())


def read_problem(
    store: Any, *, splits: tuple[str, ...] = ("train",), teachers: list[int] | None = None, votes: str = "hard",
    abstain: str = "ignore", gold_valid: bool = False,
) -> Problem:
    """Dense observations of the examples of ``splits`` (or the valid examples with gold)."""
    labels = np.array([r[0] for r in _rows(store, "SELECT label_id FROM kd.labels ORDER BY label_id")], dtype=np.int64)
    k = len(labels)
    lpos = {int(lab): i for i, lab in enumerate(labels)}
    default_thr = float(_rows(store, "SELECT value FROM kd.settings WHERE name = 'threshold'")[0][0])
    trows = _rows(store, "SELECT teacher_id, output_type, threshold FROM kd.teachers ORDER BY teacher_id")
    tinfo = {}
    for tid, otype, thr in trows:
        if otype not in VOTING or (teachers is not None and tid not in teachers):
            continue
        tl = [r[0] for r in _rows(store, "SELECT label_id FROM kd.teacher_labels WHERE teacher_id = ? ORDER BY output_index", [tid])]
        if not tl:
            continue
        tinfo[int(tid)] = (otype, default_thr if thr is None else float(thr), [lpos[int(x)] for x in tl])
    tids = np.array(sorted(tinfo), dtype=np.int64)
    tpos = {int(t): i for i, t in enumerate(tids)}
    if gold_valid:
        ex = _rows(store, "SELECT DISTINCT g.example_id FROM kd.gold g JOIN kd.examples e USING (example_id) WHERE e.split = 'valid'")
    else:
        ex = [r for r in _rows(store, "SELECT example_id, split FROM kd.examples") if r[1] in splits]
    examples = np.array(sorted(int(r[0]) for r in ex), dtype=np.int64)
    epos = {int(e): i for i, e in enumerate(examples)}
    n, nt = len(examples), len(tids)
    obs = np.zeros((n, nt, k + 1))
    for tid, eid, scores in _rows(store, "SELECT teacher_id, example_id, scores FROM kd.scores"):
        if int(tid) not in tpos or int(eid) not in epos:
            continue
        t, e = tpos[int(tid)], epos[int(eid)]
        otype, thr, tl = tinfo[int(tid)]
        vals = [np.nan if s is None else float(s) for s in scores]
        if all(np.isnan(v) for v in vals):
            continue
        top = int(np.nanargmax(vals))  # first maximum = lowest output index
        if votes == "soft" and otype in ("vote", "multiclass"):
            w = np.array([0.0 if np.isnan(v) else max(v, 0.0) for v in vals])
            if w.sum() > 0:
                for i, wi in enumerate(w / w.sum()):
                    obs[e, t, tl[i]] += wi
        elif votes == "soft" and otype == "binary":
            s = min(max(vals[0], 0.0), 1.0)
            obs[e, t, tl[0]] += s
            obs[e, t, k] += 1.0 - s
        elif otype in ("binary", "multilabel") and vals[top] < thr:
            obs[e, t, k] = 1.0
        else:
            obs[e, t, tl[top]] = 1.0
    own = np.zeros((nt, k), dtype=bool)
    has_none = np.zeros(nt, dtype=bool)
    for t, tid in enumerate(tids):
        otype, _, tl = tinfo[int(tid)]
        own[t, tl] = True
        has_none[t] = otype in ("binary", "multilabel")
    allowed = np.zeros((nt, k + 2), dtype=bool)
    allowed[:, :k] = own
    allowed[:, k] = has_none
    allowed[:, k + 1] = abstain != "ignore"
    return Problem(labels, tids, examples, obs, allowed, own, has_none)


def gold_q(store: Any, problem: Problem) -> np.ndarray:
    """One-hot (split evenly) gold posteriors of the problem's examples."""
    lpos = {int(lab): i for i, lab in enumerate(problem.labels)}
    epos = {int(e): i for i, e in enumerate(problem.examples)}
    q = np.zeros((len(problem.examples), len(problem.labels)))
    for eid, lab in _rows(store, "SELECT example_id, label_id FROM kd.gold"):
        if int(eid) in epos and int(lab) in lpos:
            q[epos[int(eid)], lpos[int(lab)]] = 1.0
    return q / q.sum(axis=1, keepdims=True)


def _full_obs(p: Problem, abstain: str) -> np.ndarray:
    """Observations with the abstain column: 1 where a teacher did not cover the example."""
    covered = p.obs.sum(axis=2) > 0
    a = np.concatenate([p.obs, (~covered)[:, :, None].astype(float)], axis=2)
    if abstain == "ignore":
        a[:, :, -1] = 0.0
    return a


def m_step(p: Problem, q: np.ndarray, *, model: str, abstain: str, alpha: float) -> np.ndarray:
    a = _full_obs(p, abstain)
    n = np.einsum("ek,ets->tks", q, a) * p.allowed[:, None, :]
    nsym = p.allowed.sum(axis=1)
    if model == "class_conditional":
        num = (n + alpha) * p.allowed[:, None, :]
        return num / num.sum(axis=2, keepdims=True)
    k = len(p.labels)
    correct = np.full((len(p.teachers), k), -1)
    for t in range(len(p.teachers)):
        for c in range(k):
            if p.own[t, c]:
                correct[t, c] = c
            elif p.has_none[t]:
                correct[t, c] = k
    theta = np.zeros_like(n)
    for t in range(len(p.teachers)):
        defined = correct[t] >= 0
        c_mass = sum(n[t, c, correct[t, c]] for c in range(k) if defined[c])
        total = n[t, defined, :].sum()
        acc = (c_mass + alpha) / (total + alpha * nsym[t])
        for c in range(k):
            if not defined[c]:
                theta[t, c, p.allowed[t]] = 1.0 / nsym[t]
            else:
                theta[t, c, p.allowed[t]] = (1.0 - acc) / max(nsym[t] - 1, 1)
                theta[t, c, correct[t, c]] = acc
    return theta


def log_scores(p: Problem, theta: np.ndarray, prior: np.ndarray, abstain: str) -> np.ndarray:
    a = _full_obs(p, abstain if abstain == "observe" else "ignore")
    with np.errstate(divide="ignore"):
        lt = np.where(p.allowed[:, None, :], np.log(np.where(theta > 0, theta, 1.0)), 0.0)
    return np.log(prior)[None, :] + np.einsum("ets,tks->ek", a, lt)


def e_step(p: Problem, theta: np.ndarray, prior: np.ndarray, abstain: str) -> tuple[np.ndarray, float]:
    s = log_scores(p, theta, prior, abstain)
    mx = s.max(axis=1, keepdims=True)
    z = np.exp(s - mx).sum(axis=1, keepdims=True)
    return np.exp(s - mx) / z, float((mx[:, 0] + np.log(z[:, 0])).sum())


def majority_q(p: Problem) -> np.ndarray:
    k = len(p.labels)
    c = p.obs[:, :, :k].sum(axis=1)
    tot = c.sum(axis=1, keepdims=True)
    return np.where(tot > 0, c / np.where(tot > 0, tot, 1.0), 1.0 / k)


def prior_from(q: np.ndarray, beta: float) -> np.ndarray:
    return (q.sum(axis=0) + beta) / (len(q) + beta * q.shape[1])


def em(
    p: Problem, *, model: str, abstain: str, alpha: float, beta: float, max_iter: int, tol: float,
    class_prior: str = "fit", fixed_prior: np.ndarray | None = None,
    init_theta: np.ndarray | None = None, init_prior: np.ndarray | None = None,
) -> Fit:
    """The EM of kdstore.labelmodel on dense arrays (init_theta/init_prior = the gold start)."""
    k = len(p.labels)
    if class_prior == "uniform":
        fixed_prior = np.full(k, 1.0 / k)
    prev: tuple[np.ndarray, np.ndarray] | None = None
    if init_theta is not None:
        assert init_prior is not None
        q, _ = e_step(p, init_theta, init_prior, abstain)
        prev = (init_theta, init_prior)
    else:
        q = majority_q(p)
    fit = Fit(theta=np.zeros(0), prior=np.zeros(0), q=q)
    for it in range(1, max_iter + 1):
        theta = m_step(p, q, model=model, abstain=abstain, alpha=alpha)
        prior = prior_from(q, beta) if class_prior == "fit" else fixed_prior
        assert prior is not None
        q, ll = e_step(p, theta, prior, abstain)
        fit.log_likelihood.append(ll)
        fit.theta, fit.prior, fit.q, fit.iterations = theta, prior, q, it
        if prev is not None:
            change = max(np.abs((theta - prev[0])[:, :, p.allowed.any(axis=0)]).max(), np.abs(prior - prev[1]).max())
            if change < tol:
                fit.converged = True
                break
        prev = (theta, prior)
    return fit


def posteriors(store: Any, p: Problem, theta: np.ndarray, prior: np.ndarray, abstain: str) -> np.ndarray:
    """The ``label_model_posteriors`` view: E-step of stored parameters on problem ``p``."""
    return e_step(p, theta, prior, abstain)[0]


def stored_parameters(store: Any, run_id: int, p: Problem) -> tuple[np.ndarray, np.ndarray]:
    """A run's kd.label_model_accuracy / _priors as dense arrays aligned with problem ``p``."""
    k = len(p.labels)
    lpos = {int(lab): i for i, lab in enumerate(p.labels)}
    tpos = {int(t): i for i, t in enumerate(p.teachers)}
    theta = np.zeros((len(p.teachers), k, k + 2))
    for tid, kk, v, prob in _rows(store, "SELECT teacher_id, true_label_id, voted_label_id, prob FROM kd.label_model_accuracy WHERE run_id = ?", [run_id]):
        s = k if v == -2 else k + 1 if v == -1 else lpos[int(v)]
        theta[tpos[int(tid)], lpos[int(kk)], s] = prob
    prior = np.zeros(k)
    for lab, pr in _rows(store, "SELECT label_id, prior FROM kd.label_model_priors WHERE run_id = ?", [run_id]):
        prior[lpos[int(lab)]] = pr
    return theta, prior
