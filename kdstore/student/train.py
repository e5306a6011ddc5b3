"""The student's trainer: a NumPy MLP (no torch), float32, Adam, mini-batches, early stopping.

The network is a trunk of fully connected ReLU layers (with inverted dropout) over standardised
features, and one or two heads on the last hidden layer:

* a **label head**, ``multiclass`` (softmax cross-entropy on soft target distributions, with
  Hinton's temperature: targets are softened ``p ∝ p^(1/T)``, logits divided by ``T`` and the loss
  scaled by ``T²``) or ``multilabel`` (per-label sigmoid cross-entropy; a weight of 0 masks a label
  that has no target for an example);
* an **embedding head** that regresses a teacher's embedding (mean squared error or cosine
  distance): the patent's "hidden layer as the target". Both heads may be trained together.

Every loss is a weighted mean: ``sum(weight * loss) / sum(weight)`` over the mini-batch, so the
scale of the weights does not change the step size. Optimiser: Adam with decoupled weight decay
on the weight matrices (not the biases). Early stopping keeps the parameters of the epoch with the
lowest validation loss. Everything random comes from one seeded :class:`numpy.random.Generator`.

>>> rng = np.random.default_rng(0)
>>> X = rng.standard_normal((200, 3)).astype(np.float32)
>>> y = np.eye(2, dtype=np.float32)[(X[:, 0] > 0).astype(int)]
>>> res = fit(X, Targets.multiclass(y), config=TrainConfig(hidden=(8,), epochs=20, batch_size=32, learning_rate=0.01))
>>> float((res.model.predict(X)["scores"].argmax(1) == y.argmax(1)).mean()) > 0.9
True
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from kdstore.errors import SchemaError

LABEL_TASKS = ("multiclass", "multilabel")
EMBEDDING_LOSSES = ("mse", "cosine")
_EVAL_ROWS = 1 << 14
_ADAM_B1, _ADAM_B2, _ADAM_EPS = 0.9, 0.999, 1e-8


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Hyper-parameters of the student (keyword arguments of :func:`fit`; all have defaults).

    Attributes:
        hidden: widths of the hidden ReLU layers (``()`` = a linear / logistic model).
        dropout: probability of dropping a hidden unit while training (inverted dropout).
        weight_decay: decoupled (AdamW) weight decay on the weight matrices.
        learning_rate: Adam's step size.
        batch_size: examples per mini-batch.
        epochs: maximum passes over the training set.
        patience: stop after this many epochs without a validation improvement (0 = never stop early).
        min_delta: an improvement smaller than this is not one.
        seed: seeds initialisation, shuffling and dropout.
        temperature: distillation temperature of the multiclass head (1 = plain soft-target CE).
        embedding_loss: ``"mse"`` or ``"cosine"``.
        label_weight: weight of the label head's loss next to the embedding head's (both heads only).
        dtype: ``"float32"`` (training) or ``"float64"`` (gradient checks).
    """

    hidden: tuple[int, ...] = (256, 256)
    dropout: float = 0.0
    weight_decay: float = 1e-4
    learning_rate: float = 1e-3
    batch_size: int = 512
    epochs: int = 30
    patience: int = 5
    min_delta: float = 1e-4
    seed: int = 0
    temperature: float = 1.0
    embedding_loss: str = "mse"
    label_weight: float = 1.0
    dtype: str = "float32"

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> SchemaError:
            return SchemaError(f"{why}, got {getattr(self, name)!r}", source="student hyper-parameters", column=name)

        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if any(h < 1 for h in self.hidden):
            raise bad("hidden", "hidden layer widths must be positive integers")
        if not 0.0 <= self.dropout < 1.0:
            raise bad("dropout", "must be in [0, 1)")
        for name in ("weight_decay", "min_delta"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise bad(name, "must be a finite number >= 0")
        for name in ("learning_rate", "temperature", "label_weight"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise bad(name, "must be a finite number > 0")
        if self.batch_size < 1:
            raise bad("batch_size", "must be >= 1")
        if self.epochs < 1:
            raise bad("epochs", "must be >= 1")
        if self.patience < 0:
            raise bad("patience", "must be >= 0")
        if self.embedding_loss not in EMBEDDING_LOSSES:
            raise bad("embedding_loss", f"must be one of {', '.join(EMBEDDING_LOSSES)}")
        if self.dtype not in ("float32", "float64"):
            raise bad("dtype", "must be float32 or float64")

    def to_dict(self) -> dict[str, Any]:
        """The hyper-parameters as JSON-ready values."""
        return {name: (list(v) if isinstance(v, tuple) else v) for name in self.__slots__ for v in [getattr(self, name)]}


@dataclass(frozen=True, slots=True)
class Targets:
    """What the student learns for ``n`` examples, row-aligned with the feature matrix.

    Attributes:
        task: ``"multiclass"``, ``"multilabel"`` or None (no label head).
        y: label targets ``[n, K]``: a distribution per row (multiclass) or values in [0, 1] (multilabel).
        w: label weights: ``[n]`` (multiclass) or ``[n, K]`` (multilabel; 0 = no target, masked).
        emb: embedding targets ``[n, E]``, or None (no embedding head).
        emb_w: embedding weights ``[n]`` (0 = this example has no embedding).
    """

    task: str | None
    y: np.ndarray | None
    w: np.ndarray | None
    emb: np.ndarray | None = None
    emb_w: np.ndarray | None = None

    @staticmethod
    def multiclass(y: np.ndarray, w: np.ndarray | None = None) -> Targets:
        """Soft target distributions ``y [n, K]`` (rows sum to 1), weights per example."""
        y = np.asarray(y)
        return Targets("multiclass", y, np.ones(y.shape[0], y.dtype) if w is None else np.asarray(w))

    @staticmethod
    def multilabel(y: np.ndarray, w: np.ndarray | None = None) -> Targets:
        """Per-label targets in [0, 1], weights ``[n, K]`` (0 masks a label)."""
        y = np.asarray(y)
        return Targets("multilabel", y, np.ones_like(y) if w is None else np.asarray(w))

    @staticmethod
    def embedding(emb: np.ndarray, w: np.ndarray | None = None, labels: Targets | None = None) -> Targets:
        """Embedding targets, optionally with a label head (``labels``) on the same rows."""
        emb = np.asarray(emb)
        ew = np.ones(emb.shape[0], emb.dtype) if w is None else np.asarray(w)
        if labels is None:
            return Targets(None, None, None, emb, ew)
        return Targets(labels.task, labels.y, labels.w, emb, ew)

    @property
    def n(self) -> int:
        arr = self.y if self.y is not None else self.emb
        return 0 if arr is None else int(arr.shape[0])

    def take(self, idx: np.ndarray | slice) -> Targets:
        """The rows ``idx`` (a permutation or a slice)."""

        def t(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[idx]

        return Targets(self.task, t(self.y), t(self.w), t(self.emb), t(self.emb_w))

    def astype(self, dtype: np.dtype[Any]) -> Targets:
        def c(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else np.ascontiguousarray(a, dtype=dtype)

        return Targets(self.task, c(self.y), c(self.w), c(self.emb), c(self.emb_w))

    def check(self, n: int, where: str, *, training: bool = True) -> None:
        """Shapes, finiteness and ranges; raises :class:`SchemaError` naming ``where``."""
        if self.task is None and self.emb is None:
            raise SchemaError("nothing to learn: no label targets and no embedding targets", source=where)
        if self.task is not None:
            if self.task not in LABEL_TASKS:
                raise SchemaError(f"task must be one of {', '.join(LABEL_TASKS)}, got {self.task!r}", source=where)
            assert self.y is not None and self.w is not None
            if self.y.ndim != 2 or self.y.shape[0] != n or self.y.shape[1] < 1:
                raise SchemaError(f"label targets must have shape ({n}, K), got {self.y.shape}", source=where, column="target")
            want_w = (n,) if self.task == "multiclass" else self.y.shape
            if self.w.shape != want_w:
                raise SchemaError(f"weights must have shape {want_w}, got {self.w.shape}", source=where, column="weight")
            _check_values(self.y, 0.0, 1.0, where, "target")
            _check_values(self.w, 0.0, math.inf, where, "weight")
            if self.task == "multiclass":
                s = self.y.sum(axis=1)
                bad = (self.w > 0) & (np.abs(s - 1.0) > 1e-3)
                if bad.any():
                    i = int(np.argmax(bad))
                    raise SchemaError(f"multiclass targets of a row must sum to 1, row sums to {float(s[i]):.6g}",
                                      source=where, column="target", row=i)
            if training and self.emb is None and not (self.w > 0).any():
                raise SchemaError("every label weight is 0: nothing to learn", source=where, column="weight")
        if self.emb is not None:
            assert self.emb_w is not None
            if self.emb.ndim != 2 or self.emb.shape[0] != n or self.emb.shape[1] < 1:
                raise SchemaError(f"embedding targets must have shape ({n}, E), got {self.emb.shape}", source=where, column="vector")
            if self.emb_w.shape != (n,):
                raise SchemaError(f"embedding weights must have shape ({n},), got {self.emb_w.shape}", source=where, column="weight")
            _check_values(self.emb, -math.inf, math.inf, where, "vector")
            _check_values(self.emb_w, 0.0, math.inf, where, "weight")


def _check_values(a: np.ndarray, lo: float, hi: float, where: str, column: str) -> None:
    ok = np.isfinite(a) & (a >= lo) & (a <= hi)
    if not ok.all():
        i = int(np.argmax(~ok.reshape(a.shape[0], -1).all(axis=1)))
        bad = a.reshape(a.shape[0], -1)[i][~ok.reshape(a.shape[0], -1)[i]][0]
        rng = "finite" if math.isinf(lo) and math.isinf(hi) else f"finite and in [{lo:g}, {hi:g}]"
        raise SchemaError(f"value {float(bad)!r} must be {rng}", source=where, column=column, row=i)


@dataclass(slots=True)
class MLP:
    """A trained student: standardisation, ReLU trunk, heads. ``predict`` is the reference forward pass.

    Attributes:
        mean, scale: standardisation fitted on train: ``(x - mean) * scale``.
        layers: trunk ``(W [in, out], b [out])`` pairs, each followed by ReLU.
        task: the label head's task, or None.
        label_head: ``(W, b)`` of the label head, or None.
        emb_head: ``(W, b)`` of the embedding head, or None.
    """

    mean: np.ndarray
    scale: np.ndarray
    layers: list[tuple[np.ndarray, np.ndarray]]
    task: str | None
    label_head: tuple[np.ndarray, np.ndarray] | None
    emb_head: tuple[np.ndarray, np.ndarray] | None

    @property
    def n_features(self) -> int:
        return int(self.mean.shape[0])

    @property
    def outputs(self) -> dict[str, int]:
        """Output name -> width: ``scores`` (label head) and/or ``embedding``."""
        out = {}
        if self.label_head is not None:
            out["scores"] = int(self.label_head[1].shape[0])
        if self.emb_head is not None:
            out["embedding"] = int(self.emb_head[1].shape[0])
        return out

    def params(self) -> list[np.ndarray]:
        """All trainable arrays in a fixed order (trunk, label head, embedding head; W then b)."""
        out = [a for pair in self.layers for a in pair]
        for head in (self.label_head, self.emb_head):
            if head is not None:
                out.extend(head)
        return out

    def n_params(self) -> int:
        return int(sum(p.size for p in self.params()))

    def copy(self) -> MLP:
        def cp(pair: tuple[np.ndarray, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray] | None:
            return None if pair is None else (pair[0].copy(), pair[1].copy())

        return MLP(self.mean.copy(), self.scale.copy(), [(w.copy(), b.copy()) for w, b in self.layers],
                   self.task, cp(self.label_head), cp(self.emb_head))

    def hidden(self, X: np.ndarray) -> np.ndarray:
        """The last hidden layer for raw features ``X`` (standardised here)."""
        dt = self.mean.dtype
        h: np.ndarray = (np.asarray(X, dtype=dt) - self.mean) * self.scale
        for w, b in self.layers:
            h = h @ w
            h += b
            np.maximum(h, 0, out=h)
        return h

    def predict(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """Outputs for raw features: ``scores`` (probabilities) and/or ``embedding``."""
        h = self.hidden(X)
        out: dict[str, np.ndarray] = {}
        if self.label_head is not None:
            z = h @ self.label_head[0] + self.label_head[1]
            out["scores"] = _softmax(z) if self.task == "multiclass" else _sigmoid(z)
        if self.emb_head is not None:
            out["embedding"] = h @ self.emb_head[0] + self.emb_head[1]
        return out


@dataclass(frozen=True, slots=True)
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        model: the parameters of the best epoch (lowest validation loss; the last one without validation).
        curve: one dict per epoch: ``epoch``, ``train_loss``, ``valid_loss`` (None without validation),
            ``seconds`` (training only, wall clock), ``cpu_seconds`` (process CPU time, all threads),
            ``examples_per_second``.
        best_epoch: 1-based epoch whose parameters were kept.
        stopped_early: whether patience ran out before ``epochs``.
        config: the hyper-parameters used.
    """

    model: MLP
    curve: tuple[dict[str, Any], ...]
    best_epoch: int
    stopped_early: bool
    config: TrainConfig

    @property
    def examples_per_second(self) -> float:
        """Median training throughput over the epochs."""
        return float(np.median([c["examples_per_second"] for c in self.curve]))


# ---------------------------------------------------------------------------------------------
# losses: each returns (sum of weighted losses, sum of weights, d(sum)/d(output))
# ---------------------------------------------------------------------------------------------
def _softmax(z: np.ndarray) -> np.ndarray:
    e: np.ndarray = np.exp(z - z.max(axis=1, keepdims=True))
    e /= e.sum(axis=1, keepdims=True)
    return e


def _sigmoid(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.exp(-np.logaddexp(0, -z)).astype(z.dtype, copy=False)
    return out


def softmax_ce(z: np.ndarray, p: np.ndarray, w: np.ndarray, temperature: float = 1.0) -> tuple[float, float, np.ndarray]:
    """Soft-target cross-entropy ``T² · Σ_i w_i · (-Σ_k p_ik log softmax(z_i / T)_k)``.

    Returns ``(loss sum, weight sum, d loss-sum / dz)``; ``p`` is already softened.
    """
    t = temperature
    zt = z / t if t != 1.0 else z
    zmax = zt.max(axis=1, keepdims=True)
    shifted = zt - zmax
    e = np.exp(shifted)
    s = e.sum(axis=1, keepdims=True)
    logq = shifted - np.log(s)
    per_row = -(p * logq).sum(axis=1)
    loss = float(t * t * np.dot(w, per_row))
    e /= s  # q
    e -= p
    e *= (w * t)[:, None]
    return loss, float(w.sum()), e


def sigmoid_bce(z: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Per-label sigmoid cross-entropy ``Σ w · (log(1 + e^z) - y z)``; weight 0 masks a label."""
    per = np.logaddexp(0, z) - y * z
    loss = float((w * per).sum())
    g = _sigmoid(z)
    g -= y
    g *= w
    return loss, float(w.sum()), g


def mse(o: np.ndarray, e: np.ndarray, w: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Mean squared error per example (mean over the E dimensions), weighted over examples."""
    d = o - e
    dim = o.shape[1]
    loss = float(np.dot(w, (d * d).sum(axis=1)) / dim)
    d *= (2.0 / dim) * w[:, None]
    return loss, float(w.sum()), d


def cosine(o: np.ndarray, e: np.ndarray, w: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Cosine distance ``1 - cos(o, e)`` per example, weighted over examples."""
    eps = 1e-12
    on = np.sqrt((o * o).sum(axis=1)) + eps
    en = np.sqrt((e * e).sum(axis=1)) + eps
    cos = (o * e).sum(axis=1) / (on * en)
    loss = float(np.dot(w, 1.0 - cos))
    g = -(e / (on * en)[:, None] - (cos / (on * on))[:, None] * o)
    g *= w[:, None]
    return loss, float(w.sum()), g.astype(o.dtype, copy=False)


def _label_loss(task: str, z: np.ndarray, y: np.ndarray, w: np.ndarray, temperature: float) -> tuple[float, float, np.ndarray]:
    if task == "multiclass":
        return softmax_ce(z, y, w, temperature)
    return sigmoid_bce(z, y, w)


# ---------------------------------------------------------------------------------------------
# forward + backward
# ---------------------------------------------------------------------------------------------
def _buf(ws: dict[Any, np.ndarray] | None, key: Any, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A scratch array from the workspace (reused across mini-batches), or a new one without a workspace."""
    if ws is None:
        return np.empty(shape, dtype)
    k = (key, shape)
    a = ws.get(k)
    if a is None:
        a = ws[k] = np.empty(shape, dtype)
    return a


def loss_and_grads(
    model: MLP, Xs: np.ndarray, t: Targets, config: TrainConfig, rng: np.random.Generator | None,
    *, grads: bool = True, workspace: dict[Any, np.ndarray] | None = None,
    masks: list[np.ndarray] | None = None, wsums: tuple[float, float] | None = None,
    grad_out: list[np.ndarray] | None = None,
) -> tuple[float, list[np.ndarray]]:
    """Loss of one mini-batch of *standardised* features and its gradient w.r.t. ``model.params()``.

    Dropout masks are drawn from ``rng`` (None = no dropout: evaluation). Labels use the
    temperature of ``config``; the returned loss is ``embedding loss + label_weight · label loss``
    (each a weighted mean), or the one that exists. With a ``workspace`` (a dict kept by the
    caller) activations and gradients live in reused buffers — no allocation per mini-batch — and
    the returned gradients are overwritten by the next call.

    For data-parallel training over parts of one mini-batch: ``masks`` are dropout multipliers
    drawn beforehand for these rows (one per hidden layer; ``rng`` is then not used), ``wsums``
    the weight sums ``(label head, embedding head)`` of the *whole* mini-batch (each part's loss
    and gradient are then its share of the whole batch's, so the parts add up), and ``grad_out``
    arrays shaped like ``model.params()`` that receive the gradients.
    """
    ws = workspace
    p = config.dropout if rng is not None or masks is not None else 0.0
    n = Xs.shape[0]
    gout: list[np.ndarray | None] = list(grad_out) if grad_out is not None else [None] * len(model.params())
    n_trunk = 2 * len(model.layers)
    dt = Xs.dtype
    acts = [Xs]
    kept: list[np.ndarray | None] = []
    h = Xs
    for i, (w, b) in enumerate(model.layers):
        h = np.matmul(h, w, out=_buf(ws, ("h", i), (n, w.shape[1]), dt))
        np.add(h, b, out=h)
        np.maximum(h, 0, out=h)
        if p > 0:
            if masks is not None:
                keep = masks[i]
            else:
                assert rng is not None
                keep = _dropout_mask(rng, h.shape, p, h.dtype)
            h *= keep
            kept.append(keep)
        else:
            kept.append(None)
        acts.append(h)
    both = model.label_head is not None and model.emb_head is not None
    total = 0.0
    dh_: np.ndarray | None = None
    head_grads: list[np.ndarray] = []
    for head, is_label in ((model.label_head, True), (model.emb_head, False)):
        if head is None:
            continue
        gi = n_trunk + len(head_grads)
        o = np.matmul(h, head[0], out=_buf(ws, ("o", is_label), (n, head[0].shape[1]), dt))
        o += head[1]
        if is_label:
            assert model.task is not None and t.y is not None and t.w is not None
            lsum, wsum, do = _label_loss(model.task, o, t.y, t.w, config.temperature)
            coef = config.label_weight if both else 1.0
        else:
            assert t.emb is not None and t.emb_w is not None
            fn = mse if config.embedding_loss == "mse" else cosine
            lsum, wsum, do = fn(o, t.emb, t.emb_w)
            coef = 1.0
        if wsums is not None:
            wsum = wsums[0] if is_label else wsums[1]
        if wsum <= 0:
            head_grads += [_zeros(gout[gi], head[0]), _zeros(gout[gi + 1], head[1])]
            continue
        total += coef * lsum / wsum
        if not grads:
            continue
        do *= coef / wsum
        head_grads += [np.matmul(h.T, do, out=gout[gi]), np.sum(do, axis=0, out=gout[gi + 1])]
        if dh_ is None:
            dh_ = np.matmul(do, head[0].T, out=_buf(ws, ("dh", len(model.layers)), h.shape, dt))
        else:
            dh_ += do @ head[0].T
    if not grads:
        return total, []
    out: list[np.ndarray] = []
    dh: np.ndarray = np.zeros_like(h) if dh_ is None else dh_
    for i in range(len(model.layers) - 1, -1, -1):
        a = acts[i + 1]
        km = kept[i]
        if km is not None:
            dh *= km
        positive = np.greater(a, 0, out=_buf(ws, ("pos", i), a.shape, np.bool_))
        np.multiply(dh, positive, out=dh)  # ReLU (a dropped unit is already 0)
        w, b = model.layers[i]
        gb, gw = gout[2 * i + 1], gout[2 * i]
        out.append(np.sum(dh, axis=0, out=gb if gb is not None else _buf(ws, ("db", i), b.shape, dt)))
        out.append(np.matmul(acts[i].T, dh, out=gw if gw is not None else _buf(ws, ("dW", i), w.shape, dt)))
        if i > 0:
            dh = np.matmul(dh, w.T, out=_buf(ws, ("dh", i), (n, w.shape[0]), dt))
    out.reverse()
    return total, out + head_grads


def _zeros(out: np.ndarray | None, like: np.ndarray) -> np.ndarray:
    if out is None:
        return np.zeros_like(like)
    out.fill(0)
    return out


def _head_wsums(t: Targets) -> tuple[float, float]:
    """Weight sums ``(label head, embedding head)`` of a mini-batch (0 for a missing head)."""
    return (float(t.w.sum()) if t.task is not None and t.w is not None else 0.0,
            float(t.emb_w.sum()) if t.emb is not None and t.emb_w is not None else 0.0)


def _dropout_mask(rng: np.random.Generator, shape: tuple[int, ...], p: float, dtype: np.dtype[Any]) -> np.ndarray:
    """Inverted-dropout multipliers: 0 with probability ``p``, else ``1 / (1 - p)`` (8-bit resolution)."""
    n = int(np.prod(shape))
    bits = np.frombuffer(rng.bytes(n), dtype=np.uint8).reshape(shape)
    keep = bits >= np.uint8(min(255, round(p * 256)))
    out: np.ndarray = keep.astype(dtype)
    out *= dtype.type(256.0 / (256 - min(255, round(p * 256))))
    return out


def evaluate_loss(model: MLP, Xs: np.ndarray, t: Targets, config: TrainConfig) -> float:
    """The weighted validation loss over all rows (no dropout, temperature 1) on standardised ``Xs``."""
    cfg = replace(config, temperature=1.0) if config.temperature != 1.0 else config
    sums: dict[str, list[float]] = {}
    for start in range(0, Xs.shape[0], _EVAL_ROWS):
        sl = slice(start, start + _EVAL_ROWS)
        h = Xs[sl]
        for w, b in model.layers:
            h = np.maximum(h @ w + b, 0)
        tb = t.take(sl)
        if model.label_head is not None:
            assert model.task is not None and tb.y is not None and tb.w is not None
            z = h @ model.label_head[0] + model.label_head[1]
            ls, ws, _ = _label_loss(model.task, z, tb.y, tb.w, cfg.temperature)
            acc = sums.setdefault("label", [0.0, 0.0])
            acc[0] += ls
            acc[1] += ws
        if model.emb_head is not None:
            assert tb.emb is not None and tb.emb_w is not None
            o = h @ model.emb_head[0] + model.emb_head[1]
            fn = mse if cfg.embedding_loss == "mse" else cosine
            ls, ws, _ = fn(o, tb.emb, tb.emb_w)
            acc = sums.setdefault("emb", [0.0, 0.0])
            acc[0] += ls
            acc[1] += ws
    both = model.label_head is not None and model.emb_head is not None
    total = 0.0
    for key, (ls, ws) in sums.items():
        if ws > 0:
            total += (cfg.label_weight if both and key == "label" else 1.0) * ls / ws
    return total


def model_loss(model: MLP, X: np.ndarray, t: Targets, config: TrainConfig) -> float:
    """:func:`evaluate_loss` on raw features (standardised with the model's own statistics)."""
    return evaluate_loss(model, _standardise(X, model.mean, model.scale), t.astype(model.mean.dtype), config)


# ---------------------------------------------------------------------------------------------
# fitting
# ---------------------------------------------------------------------------------------------
def soften(p: np.ndarray, temperature: float) -> np.ndarray:
    """Target distributions at temperature ``T``: ``p^(1/T)`` renormalised (zeros stay zero).

    >>> soften(np.array([[0.8, 0.2]]), 2.0).round(4)
    array([[0.6667, 0.3333]])
    """
    if temperature == 1.0:
        return p
    with np.errstate(divide="ignore"):
        logp = np.where(p > 0, np.log(np.maximum(p, 1e-300)) / temperature, -np.inf)
    logp -= logp.max(axis=1, keepdims=True)
    e = np.exp(logp)
    out: np.ndarray = (e / e.sum(axis=1, keepdims=True)).astype(p.dtype)
    return out


def init_model(n_features: int, t: Targets, config: TrainConfig, rng: np.random.Generator) -> MLP:
    """He-initialised trunk (ReLU), Glorot-scaled heads, zero biases; identity standardisation."""
    dt = np.dtype(config.dtype)
    layers = []
    fan_in = n_features
    for width in config.hidden:
        w = (rng.standard_normal((fan_in, width)) * math.sqrt(2.0 / fan_in)).astype(dt)
        layers.append((w, np.zeros(width, dt)))
        fan_in = width

    def head(k: int) -> tuple[np.ndarray, np.ndarray]:
        return (rng.standard_normal((fan_in, k)) * math.sqrt(1.0 / fan_in)).astype(dt), np.zeros(k, dt)

    label_head = head(t.y.shape[1]) if t.task is not None and t.y is not None else None
    emb_head = head(t.emb.shape[1]) if t.emb is not None else None
    return MLP(np.zeros(n_features, dt), np.ones(n_features, dt), layers, t.task, label_head, emb_head)


def standardisation(X: np.ndarray, dtype: np.dtype[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and inverse standard deviation per column (constant columns get scale 1)."""
    mean = X.mean(axis=0, dtype=np.float64)
    std = X.std(axis=0, dtype=np.float64)
    scale = np.where(std > 1e-12, 1.0 / np.where(std > 1e-12, std, 1.0), 1.0)
    return mean.astype(dtype), scale.astype(dtype)


def _standardise(X: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    out = np.empty(X.shape, mean.dtype)
    np.subtract(X, mean, out=out, casting="unsafe")
    out *= scale
    return out


def check_features(X: np.ndarray, where: str, columns: list[str] | None = None) -> None:
    """A 2-D finite numeric matrix; names the first bad column and row."""
    if X.ndim != 2:
        raise SchemaError(f"features must be a 2-D matrix, got shape {X.shape}", source=where)
    if not np.issubdtype(X.dtype, np.number):
        raise SchemaError(f"features must be numeric, got {X.dtype}", source=where)
    bad = ~np.isfinite(X)
    if bad.any():
        r, c = (int(v[0]) for v in np.nonzero(bad))
        col = columns[c] if columns is not None and c < len(columns) else f"#{c}"
        raise SchemaError(f"NaN or infinite feature value {X[r, c]!r}", source=where, column=col, row=r)


def fit(
    X: np.ndarray,
    targets: Targets,
    *,
    valid_X: np.ndarray | None = None,
    valid_targets: Targets | None = None,
    config: TrainConfig | None = None,
    on_epoch: Callable[[dict[str, Any]], object] | None = None,
    threads: int | str | None = "auto",
    workers: int | None = None,
) -> FitResult:
    """Train a student on raw features ``X [n, D]`` and ``targets`` (rows aligned).

    Args:
        X: training features (any numeric dtype; standardisation is fitted here, on ``X`` only).
        targets: what to learn; see :class:`Targets`.
        valid_X, valid_targets: the validation rows for early stopping (both or neither).
        config: hyper-parameters (default :class:`TrainConfig`).
        on_epoch: called with each epoch's curve entry (progress reporting).
        threads: BLAS threads while training: a number, None (the BLAS default), or ``"auto"``
            (default): 1. A multi-threaded BLAS at the mini-batch shapes (512 x 256 x 256) gains
            little on a quiet 2-core machine and collapses (~10x slower, measured) when the cores are
            shared with other work; the cores are used by ``workers`` instead.
        workers: data-parallel Python threads per mini-batch (None: ``min(2, cores)`` with
            ``threads="auto"``, else 1). Each computes the forward and backward pass of its slice of
            the mini-batch (NumPy releases the GIL inside BLAS and ufuncs); the gradients are summed
            and one Adam step (split over the workers) follows. Same seed, same result as one worker
            up to float32 rounding of the sum; deterministic for a given number of workers.

    Returns:
        :class:`FitResult` with the parameters of the best validation epoch.
    """
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if threads == "auto" else 1
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise SchemaError(f"workers must be a number >= 1, got {workers!r}", source="student hyper-parameters", column="workers")
    with blas_threads(threads):
        return _fit(X, targets, valid_X, valid_targets, config or TrainConfig(), on_epoch, workers)


def blas_threads(n: int | str | None) -> contextlib.AbstractContextManager[object]:
    """Limit the BLAS thread pool to ``n`` threads inside a ``with`` block (None: no change; see :func:`fit`)."""
    if n == "auto":
        n = 1
    if n is None:
        return contextlib.nullcontext()
    if not isinstance(n, int) or isinstance(n, bool):
        raise SchemaError(f"threads must be a number, None or 'auto', got {n!r}", source="student hyper-parameters", column="threads")
    if n < 1:
        raise SchemaError(f"threads must be >= 1, got {n}", source="student hyper-parameters", column="threads")
    from threadpoolctl import threadpool_limits

    limiter: contextlib.AbstractContextManager[object] = threadpool_limits(limits=n, user_api="blas")
    return limiter


def _fit(X: np.ndarray, targets: Targets, valid_X: np.ndarray | None, valid_targets: Targets | None,
         cfg: TrainConfig, on_epoch: Callable[[dict[str, Any]], object] | None, workers: int) -> FitResult:
    dt = np.dtype(cfg.dtype)
    check_features(X, "training features")
    targets.check(X.shape[0], "training targets")
    if X.shape[0] == 0:
        raise SchemaError("no training examples", source="training features")
    if (valid_X is None) != (valid_targets is None):
        raise SchemaError("give both valid_X and valid_targets, or neither", source="validation")
    rng = np.random.default_rng(cfg.seed)
    mean, scale = standardisation(X, dt)
    Xs = _standardise(X, mean, scale)
    t = targets.astype(dt)
    if t.task == "multiclass" and cfg.temperature != 1.0:
        assert t.y is not None
        t = replace(t, y=soften(t.y, cfg.temperature))
    vXs: np.ndarray | None = None
    vt: Targets | None = None
    if valid_X is not None and valid_targets is not None:
        check_features(valid_X, "validation features")
        if valid_X.shape[1] != X.shape[1]:
            raise SchemaError(f"validation features have {valid_X.shape[1]} columns, training {X.shape[1]}", source="validation features")
        valid_targets.check(valid_X.shape[0], "validation targets", training=False)
        vXs = _standardise(valid_X, mean, scale)
        vt = valid_targets.astype(dt)

    model = init_model(X.shape[1], t, cfg, rng)
    model.mean, model.scale = mean, scale
    opt = _Optimiser(model, cfg)
    n, bs = X.shape[0], cfg.batch_size
    parts = max(1, min(workers, bs // 32))
    grad_bufs = [opt.flat_like() for _ in range(parts)]
    grad_views = [opt.views(g) for g in grad_bufs]
    workspaces: list[dict[Any, np.ndarray]] = [{} for _ in range(parts)]
    pool = ThreadPoolExecutor(max_workers=parts - 1, thread_name_prefix="kdstore-student") if parts > 1 else None
    Xe = np.empty_like(Xs)
    best, best_epoch, bad_epochs = math.inf, 0, 0
    best_model = model.copy()
    curve: list[dict[str, Any]] = []
    stopped = False
    try:
        for epoch in range(1, cfg.epochs + 1):
            t0, c0 = time.perf_counter(), time.process_time()
            perm = rng.permutation(n)
            np.take(Xs, perm, axis=0, out=Xe)
            te = t.take(perm)
            loss_sum = 0.0
            for start in range(0, n, bs):
                stop = min(n, start + bs)
                tb = te.take(slice(start, stop))
                masks = _draw_masks(rng, stop - start, cfg, Xs.dtype)
                k = parts if stop - start >= 2 * parts else 1
                bounds = [start + (stop - start) * j // k for j in range(k + 1)]
                wsums = _head_wsums(tb)

                def part(j: int, lo: int, hi: int, masks: list[np.ndarray] | None = masks, wsums: tuple[float, float] = wsums,
                         tb: Targets = tb, start: int = start) -> float:
                    sl = slice(lo - start, hi - start)
                    return loss_and_grads(model, Xe[lo:hi], tb.take(sl), cfg, None, workspace=workspaces[j],
                                          masks=None if masks is None else [m[sl] for m in masks], wsums=wsums,
                                          grad_out=grad_views[j])[0]

                loss = _run_parts(pool, part, [(j, bounds[j], bounds[j + 1]) for j in range(k)])
                opt.step(grad_bufs[:k], pool)
                loss_sum += loss * (stop - start)
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            entry: dict[str, Any] = {"epoch": epoch, "train_loss": loss_sum / n, "valid_loss": None,
                                     "seconds": seconds, "cpu_seconds": cpu, "examples_per_second": n / seconds}
            if vXs is not None and vt is not None:
                vl = evaluate_loss(model, vXs, vt, cfg)
                entry["valid_loss"] = vl
                if vl < best - cfg.min_delta:
                    best, best_epoch, bad_epochs = vl, epoch, 0
                    best_model = model.copy()
                else:
                    bad_epochs += 1
            else:
                best_epoch = epoch
            curve.append(entry)
            if on_epoch is not None:
                on_epoch(entry)
            if not math.isfinite(entry["train_loss"]):
                raise SchemaError(f"training diverged at epoch {epoch} (loss {entry['train_loss']}); lower the learning rate",
                                  source="student hyper-parameters", column="learning_rate")
            if vXs is not None and cfg.patience and bad_epochs >= cfg.patience:
                stopped = epoch < cfg.epochs
                break
    finally:
        if pool is not None:
            pool.shutdown()
    final = best_model if vXs is not None else model
    return FitResult(final, tuple(curve), best_epoch, stopped, cfg)


def _draw_masks(rng: np.random.Generator, n: int, cfg: TrainConfig, dt: np.dtype[Any]) -> list[np.ndarray] | None:
    """Dropout multipliers of one mini-batch, one per hidden layer, drawn in layer order."""
    if cfg.dropout <= 0:
        return None
    return [_dropout_mask(rng, (n, w), cfg.dropout, dt) for w in cfg.hidden]


def _run_parts(pool: ThreadPoolExecutor | None, fn: Callable[..., float], args: list[tuple[Any, ...]]) -> float:
    """``fn(*a)`` for every ``a``: the first in this thread, the others in ``pool``; the sum of the results."""
    if pool is None:
        return float(sum(fn(*a) for a in args))
    futures = [pool.submit(fn, *a) for a in args[1:]]
    total = fn(*args[0])
    return total + float(sum(f.result() for f in futures))


class _Optimiser:
    """Adam with decoupled weight decay over one flat float buffer holding every parameter.

    The model's arrays become views of ``self.flat`` so one step is a dozen whole-buffer NumPy
    operations (not a dozen per parameter array), and with a thread pool the buffer is split into
    contiguous halves updated in parallel. Gradients of data-parallel parts arrive as flat buffers
    and are summed here, in a fixed order (deterministic).
    """

    def __init__(self, model: MLP, cfg: TrainConfig) -> None:
        params = model.params()
        self.shapes = [p.shape for p in params]
        self.offsets = np.cumsum([0] + [p.size for p in params]).tolist()
        dt = params[0].dtype
        self.flat = np.concatenate([p.ravel() for p in params]).astype(dt)
        views = self.views(self.flat)
        k = len(model.layers)
        model.layers = [(views[2 * i], views[2 * i + 1]) for i in range(k)]
        rest = views[2 * k:]
        if model.label_head is not None:
            model.label_head, rest = (rest[0], rest[1]), rest[2:]
        if model.emb_head is not None:
            model.emb_head = (rest[0], rest[1])
        self.m1 = np.zeros_like(self.flat)
        self.m2 = np.zeros_like(self.flat)
        self.tmp = np.empty_like(self.flat)
        self.shrink = np.ones_like(self.flat)
        for p, lo, hi in zip(params, self.offsets[:-1], self.offsets[1:], strict=True):
            if p.ndim == 2:
                self.shrink[lo:hi] = 1.0 - cfg.learning_rate * cfg.weight_decay
        self.decay = bool(cfg.weight_decay)
        self.cfg = cfg
        self.t = 0

    def flat_like(self) -> np.ndarray:
        return np.empty_like(self.flat)

    def views(self, flat: np.ndarray) -> list[np.ndarray]:
        return [flat[lo:hi].reshape(shape) for lo, hi, shape in zip(self.offsets[:-1], self.offsets[1:], self.shapes, strict=True)]

    def step(self, grads: list[np.ndarray], pool: ThreadPoolExecutor | None) -> None:
        """One Adam step with the sum of the flat gradient buffers ``grads``."""
        self.t += 1
        n = self.flat.size
        k = 2 if pool is not None and n >= 4096 else 1
        cuts = [n * j // k for j in range(k + 1)]
        _run_parts(pool, self._update, [(grads, cuts[j], cuts[j + 1]) for j in range(k)])

    def _update(self, grads: list[np.ndarray], lo: int, hi: int) -> float:
        b1, b2, step, cfg = _ADAM_B1, _ADAM_B2, self.t, self.cfg
        lr_t = cfg.learning_rate * math.sqrt(1 - b2**step) / (1 - b1**step)
        eps = _ADAM_EPS * math.sqrt(1 - b2**step)
        g = grads[0][lo:hi]
        for other in grads[1:]:
            g += other[lo:hi]
        p, m, v, s = self.flat[lo:hi], self.m1[lo:hi], self.m2[lo:hi], self.tmp[lo:hi]
        # m += (1 - b1) (g - m);  v += (1 - b2) (g² - v);  p = p * shrink - lr_t m / (sqrt(v) + eps)
        np.subtract(g, m, out=s)
        s *= 1 - b1
        m += s
        np.multiply(g, g, out=s)
        s -= v
        s *= 1 - b2
        v += s
        np.sqrt(v, out=s)
        s += eps
        np.divide(m, s, out=s)
        s *= lr_t
        if self.decay:
            p *= self.shrink[lo:hi]
        p -= s
        return 0.0
