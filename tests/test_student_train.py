"""The NumPy trainer: gradient checks of every head and loss, and learning known targets."""

from __future__ import annotations

import zlib
from dataclasses import replace

import numpy as np
import pytest

from kdstore.errors import SchemaError
from kdstore.student.train import (
    MLP,
    Targets,
    TrainConfig,
    cosine,
    fit,
    init_model,
    loss_and_grads,
    mse,
    sigmoid_bce,
    soften,
    softmax_ce,
)

N, D = 7, 3


def _numeric_grads(model: MLP, Xs: np.ndarray, t: Targets, cfg: TrainConfig, seed: int) -> list[np.ndarray]:
    """Central finite differences of the loss in float64, one parameter at a time."""
    out = []
    h = 1e-6
    for p in model.params():
        g = np.zeros_like(p)
        for i in range(p.size):
            old = p.flat[i]
            p.flat[i] = old + h
            lp, _ = loss_and_grads(model, Xs, t, cfg, np.random.default_rng(seed), grads=False)
            p.flat[i] = old - h
            lm, _ = loss_and_grads(model, Xs, t, cfg, np.random.default_rng(seed), grads=False)
            p.flat[i] = old
            g.flat[i] = (lp - lm) / (2 * h)
        out.append(g)
    return out


def _problems(rng: np.random.Generator) -> dict[str, Targets]:
    k, e = 4, 5
    mask = (rng.random((N, k)) > 0.35).astype(np.float64)
    return {
        "multiclass": Targets.multiclass(rng.dirichlet(np.ones(k), N), rng.random(N) + 0.1),
        "multiclass_hard": Targets.multiclass(np.eye(k)[rng.integers(0, k, N)], np.ones(N)),
        "multilabel_masked": Targets.multilabel(rng.random((N, k)), mask * (rng.random((N, k)) + 0.5)),
        "embedding": Targets.embedding(rng.standard_normal((N, e)), (rng.random(N) > 0.2).astype(np.float64)),
        "embedding+multiclass": Targets.embedding(rng.standard_normal((N, e)), np.ones(N),
                                                  labels=Targets.multiclass(rng.dirichlet(np.ones(k), N))),
        "embedding+multilabel": Targets.embedding(rng.standard_normal((N, e)), np.ones(N),
                                                  labels=Targets.multilabel(rng.random((N, k)), mask)),
    }


@pytest.mark.parametrize("problem", ["multiclass", "multiclass_hard", "multilabel_masked", "embedding",
                                     "embedding+multiclass", "embedding+multilabel"])
@pytest.mark.parametrize("variant", [
    {"hidden": (5, 4)},
    {"hidden": (5, 4), "dropout": 0.3, "temperature": 2.5, "embedding_loss": "cosine", "label_weight": 0.7},
    {"hidden": (), "temperature": 0.5},
])
def test_gradient_check(problem: str, variant: dict[str, object]) -> None:
    rng = np.random.default_rng(zlib.crc32(f"{problem}{variant}".encode()))
    t = _problems(rng)[problem]
    cfg = TrainConfig(dtype="float64", **variant)  # type: ignore[arg-type]
    model = init_model(D, t, cfg, np.random.default_rng(1))
    for p in model.params():
        p += rng.standard_normal(p.shape) * 0.2  # non-zero biases, away from symmetric points
    Xs = rng.standard_normal((N, D))
    loss, grads = loss_and_grads(model, Xs, t, cfg, np.random.default_rng(3))
    assert np.isfinite(loss) and loss > 0
    numeric = _numeric_grads(model, Xs, t, cfg, seed=3)
    ws: dict[object, np.ndarray] = {}  # the trainer's path: reused buffers give the same gradients
    for _ in range(2):
        wl, wg = loss_and_grads(model, Xs, t, cfg, np.random.default_rng(3), workspace=ws)
        assert wl == loss
        for a, b in zip(wg, grads, strict=True):
            np.testing.assert_array_equal(a, b)
    assert len(grads) == len(numeric) == len(model.params())
    for g, n in zip(grads, numeric, strict=True):
        assert g.shape == n.shape
        np.testing.assert_allclose(g, n, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("fn", [mse, cosine])
def test_embedding_losses_are_zero_at_the_target(fn: object) -> None:
    rng = np.random.default_rng(0)
    e = rng.standard_normal((6, 4))
    loss, wsum, g = fn(e.copy(), e, np.ones(6))  # type: ignore[operator]
    assert loss == pytest.approx(0.0, abs=1e-9) and wsum == 6
    np.testing.assert_allclose(g, 0.0, atol=1e-9)
    if fn is cosine:  # scale does not matter to the cosine loss
        assert fn(3 * e, e, np.ones(6))[0] == pytest.approx(0.0, abs=1e-9)  # type: ignore[operator]


def test_loss_values_by_hand() -> None:
    # softmax CE of logits (0, ln 3) against target (1/2, 1/2): q = (1/4, 3/4)
    z = np.array([[0.0, np.log(3.0)]])
    loss, _, g = softmax_ce(z, np.array([[0.5, 0.5]]), np.array([2.0]))
    assert loss == pytest.approx(2.0 * -(0.5 * np.log(1 / 4) + 0.5 * np.log(3 / 4)))
    np.testing.assert_allclose(g, 2.0 * np.array([[1 / 4 - 1 / 2, 3 / 4 - 1 / 2]]))
    # sigmoid CE: a masked label (weight 0) contributes nothing, whatever its target
    loss_a, wsum, _ = sigmoid_bce(np.array([[0.0, 5.0]]), np.array([[1.0, 0.0]]), np.array([[1.0, 0.0]]))
    loss_b, _, _ = sigmoid_bce(np.array([[0.0, 5.0]]), np.array([[1.0, 1.0]]), np.array([[1.0, 0.0]]))
    assert loss_a == loss_b == pytest.approx(np.log(2.0)) and wsum == 1.0


def test_soften() -> None:
    p = np.array([[0.9, 0.1, 0.0]])
    np.testing.assert_allclose(soften(p, 1.0), p)
    s2 = soften(p, 2.0)
    np.testing.assert_allclose(s2, [[3 / 4, 1 / 4, 0.0]])  # sqrt(0.9):sqrt(0.1) = 3:1
    assert soften(p, 1e6)[0, 2] == 0.0  # zeros stay zero


def _teacher_problem(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((n, 6)) * [1, 2, 0.5, 3, 1, 1] + [0, 5, -1, 0, 2, 0]).astype(np.float32)
    W = np.random.default_rng(99).standard_normal((6, 4)) * 1.5
    Z = ((X - [0, 5, -1, 0, 2, 0]) / [1, 2, 0.5, 3, 1, 1]) @ W
    P = np.exp(Z - Z.max(1, keepdims=True))
    P /= P.sum(1, keepdims=True)
    return X, P.astype(np.float32), W


def test_multiclass_soft_targets_recover_a_known_teacher() -> None:
    X, P, _ = _teacher_problem(4000, 0)
    Xv, Pv, _ = _teacher_problem(1000, 1)
    cfg = TrainConfig(hidden=(32,), epochs=40, batch_size=128, learning_rate=3e-3, patience=5)
    res = fit(X, Targets.multiclass(P), valid_X=Xv, valid_targets=Targets.multiclass(Pv), config=cfg)
    got = res.model.predict(Xv)["scores"]
    assert got.shape == Pv.shape and got.dtype == np.float32
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)
    agree = (got.argmax(1) == Pv.argmax(1)).mean()
    tv = 0.5 * np.abs(got - Pv).sum(1).mean()  # total variation distance to the teacher
    assert agree > 0.95, agree
    assert tv < 0.06, tv
    # learning from the soft distribution beats the uniform guess by far, and the curve goes down
    assert res.curve[-1]["train_loss"] < res.curve[0]["train_loss"]
    best = min(c["valid_loss"] for c in res.curve)
    assert res.curve[res.best_epoch - 1]["valid_loss"] <= best + cfg.min_delta


def test_temperature_trains_and_keeps_the_argmax() -> None:
    X, P, _ = _teacher_problem(3000, 2)
    cfg = TrainConfig(hidden=(32,), epochs=15, batch_size=128, learning_rate=3e-3, temperature=3.0)
    res = fit(X, Targets.multiclass(P), config=cfg)
    got = res.model.predict(X)["scores"]
    assert (got.argmax(1) == P.argmax(1)).mean() > 0.9


def test_multilabel_with_masked_labels() -> None:
    rng = np.random.default_rng(5)
    n = 3000
    X = rng.standard_normal((n, 4)).astype(np.float32)
    truth = np.stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, X[:, 3] < -0.5], axis=1).astype(np.float32)
    mask = rng.random((n, 3)) < 0.5  # half the labels of every example have no target
    mask[:, 2] = rng.random(n) < 0.2  # label 2 is mostly missing
    y_clean = np.where(mask, truth, 0.0).astype(np.float32)
    y_junk = np.where(mask, truth, rng.random((n, 3))).astype(np.float32)  # masked entries hold garbage
    cfg = TrainConfig(hidden=(16,), epochs=25, batch_size=128, learning_rate=3e-3)
    a = fit(X, Targets.multilabel(y_clean, mask.astype(np.float32)), config=cfg)
    b = fit(X, Targets.multilabel(y_junk, mask.astype(np.float32)), config=cfg)
    for pa_, pb in zip(a.model.params(), b.model.params(), strict=True):
        np.testing.assert_array_equal(pa_, pb)  # masked targets have no influence at all
    Xt = rng.standard_normal((2000, 4)).astype(np.float32)
    tt = np.stack([Xt[:, 0] > 0, Xt[:, 1] + Xt[:, 2] > 0, Xt[:, 3] < -0.5], axis=1)
    acc = ((a.model.predict(Xt)["scores"] >= 0.5) == tt).mean(axis=0)
    assert (acc > 0.93).all(), acc
    # a masked-out label learns nothing: all-zero weights for label 1 leave its head at initialisation
    w0 = mask.astype(np.float32)
    w0[:, 1] = 0
    c = fit(X, Targets.multilabel(y_junk, w0), config=replace(cfg, weight_decay=0.0, epochs=2))
    init = init_model(4, Targets.multilabel(y_junk, w0), c.config, np.random.default_rng(c.config.seed))
    assert c.model.label_head is not None and init.label_head is not None
    np.testing.assert_array_equal(c.model.label_head[0][:, 1], init.label_head[0][:, 1])
    np.testing.assert_array_equal(c.model.label_head[1][1], init.label_head[1][1])


@pytest.mark.parametrize("loss", ["mse", "cosine"])
def test_embedding_regression_reaches_a_known_target(loss: str) -> None:
    rng = np.random.default_rng(7)
    n = 4000
    X = rng.standard_normal((n, 5)).astype(np.float32)
    A = rng.standard_normal((5, 8))
    E = np.tanh(X @ A).astype(np.float32) + 0.5  # a smooth teacher embedding
    cfg = TrainConfig(hidden=(64,), epochs=40, batch_size=128, learning_rate=1e-2, embedding_loss=loss, patience=0)
    res = fit(X[:3000], Targets.embedding(E[:3000]), valid_X=X[3000:], valid_targets=Targets.embedding(E[3000:]), config=cfg)
    out = res.model.predict(X[3000:])["embedding"]
    cos = (out * E[3000:]).sum(1) / (np.linalg.norm(out, axis=1) * np.linalg.norm(E[3000:], axis=1))
    assert cos.mean() > 0.995, cos.mean()
    if loss == "mse":  # MSE also gets the scale right (cosine only the direction)
        assert ((out - E[3000:]) ** 2).mean() < 0.01 * E.var()


def test_embedding_with_a_label_head() -> None:
    rng = np.random.default_rng(8)
    X = rng.standard_normal((2000, 4)).astype(np.float32)
    E = (X @ rng.standard_normal((4, 6))).astype(np.float32)
    y = np.eye(2, dtype=np.float32)[(X[:, 0] > 0).astype(int)]
    t = Targets.embedding(E, labels=Targets.multiclass(y))
    res = fit(X, t, config=TrainConfig(hidden=(32,), epochs=15, batch_size=64, learning_rate=3e-3))
    out = res.model.predict(X)
    assert set(out) == {"scores", "embedding"}
    assert (out["scores"].argmax(1) == y.argmax(1)).mean() > 0.95
    assert ((out["embedding"] - E) ** 2).mean() < 0.05 * E.var()


def test_seeded_and_deterministic() -> None:
    X, P, _ = _teacher_problem(500, 3)
    cfg = TrainConfig(hidden=(8, 8), epochs=3, batch_size=64, dropout=0.2)
    a, b = fit(X, Targets.multiclass(P), config=cfg), fit(X, Targets.multiclass(P), config=cfg)
    for x, y in zip(a.model.params(), b.model.params(), strict=True):
        np.testing.assert_array_equal(x, y)
    c = fit(X, Targets.multiclass(P), config=replace(cfg, seed=1))
    assert not np.array_equal(a.model.params()[0], c.model.params()[0])


def test_early_stopping_keeps_the_best_epoch() -> None:
    rng = np.random.default_rng(4)
    X = rng.standard_normal((200, 10)).astype(np.float32)
    y = np.eye(2, dtype=np.float32)[rng.integers(0, 2, 200)]  # pure noise: the model can only overfit
    Xv = rng.standard_normal((200, 10)).astype(np.float32)
    yv = np.eye(2, dtype=np.float32)[rng.integers(0, 2, 200)]
    cfg = TrainConfig(hidden=(64,), epochs=200, batch_size=16, learning_rate=1e-2, patience=3, weight_decay=0.0, min_delta=0.0)
    res = fit(X, Targets.multiclass(y), valid_X=Xv, valid_targets=Targets.multiclass(yv), config=cfg)
    assert res.stopped_early and len(res.curve) < 200
    losses = [c["valid_loss"] for c in res.curve]
    assert res.best_epoch == int(np.argmin(losses)) + 1
    assert len(res.curve) == res.best_epoch + cfg.patience
    from kdstore.student.train import model_loss

    assert model_loss(res.model, Xv, Targets.multiclass(yv), cfg) == pytest.approx(min(losses), rel=1e-5)


def test_standardisation_is_fitted_on_train() -> None:
    rng = np.random.default_rng(1)
    X = (rng.standard_normal((300, 3)) * [1, 10, 100] + [5, -5, 50]).astype(np.float32)
    X[:, 2] = 7.0  # a constant column gets scale 1, not a division by zero
    y = np.eye(2, dtype=np.float32)[(X[:, 0] > 5).astype(int)]
    res = fit(X, Targets.multiclass(y), config=TrainConfig(hidden=(4,), epochs=1))
    np.testing.assert_allclose(res.model.mean, X.mean(0), rtol=1e-5)
    np.testing.assert_allclose(res.model.scale[:2], 1 / X[:, :2].std(0), rtol=1e-4)
    assert res.model.scale[2] == 1.0


@pytest.mark.parametrize("kwargs, column", [
    ({"dropout": 1.0}, "dropout"), ({"hidden": (0,)}, "hidden"), ({"learning_rate": 0.0}, "learning_rate"),
    ({"embedding_loss": "l1"}, "embedding_loss"), ({"batch_size": 0}, "batch_size"),
    ({"temperature": float("nan")}, "temperature"),
])
def test_bad_hyper_parameters(kwargs: dict[str, object], column: str) -> None:
    with pytest.raises(SchemaError, match=column):
        TrainConfig(**kwargs)  # type: ignore[arg-type]


def test_bad_training_inputs() -> None:
    X = np.zeros((4, 2), np.float32)
    y = np.eye(2, dtype=np.float32)[[0, 1, 0, 1]]
    X_nan = X.copy()
    X_nan[2, 1] = np.nan
    with pytest.raises(SchemaError, match=r"row 2.*NaN"):
        fit(X_nan, Targets.multiclass(y))
    with pytest.raises(SchemaError, match="sum to 1"):
        fit(X, Targets.multiclass(y * 0.5))
    with pytest.raises(SchemaError, match=r"column 'target'.*\[0, 1\]"):
        fit(X, Targets.multilabel(y * 2))
    with pytest.raises(SchemaError, match="shape"):
        fit(X, Targets.multiclass(y[:3]))
    with pytest.raises(SchemaError, match="every label weight is 0"):
        fit(X, Targets.multilabel(y, np.zeros_like(y)))


def test_blas_threads_are_limited_while_training() -> None:
    import threadpoolctl

    def blas() -> list[int]:
        return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]

    before = blas()
    X, P, _ = _teacher_problem(300, 6)
    seen: list[list[int]] = []
    cfg = TrainConfig(hidden=(8,), epochs=2)
    one = fit(X, Targets.multiclass(P), config=cfg, threads=1, on_epoch=lambda e: seen.append(blas()))
    assert seen == [[1] * len(before)] * 2 and blas() == before
    auto: list[list[int]] = []
    fit(X, Targets.multiclass(P), config=cfg, on_epoch=lambda e: auto.append(blas()))  # "auto" = 1 thread
    assert auto == seen
    default = fit(X, Targets.multiclass(P), config=cfg, threads=None)
    np.testing.assert_allclose(one.model.params()[0], default.model.params()[0], rtol=1e-5, atol=1e-6)
    with pytest.raises(SchemaError, match="threads must be >= 1"):
        fit(X, Targets.multiclass(P), config=cfg, threads=0)


@pytest.mark.parametrize("heads", ["multiclass", "multilabel+embedding"])
def test_data_parallel_workers_match_one_worker(heads: str) -> None:
    """Two workers per mini-batch (halves, summed gradients, split Adam) = one worker, same seed."""
    rng = np.random.default_rng(7)
    n, d, k = 901, 5, 4  # 901: the last mini-batch is ragged
    X = rng.standard_normal((n, d)).astype(np.float32) * 3 + 1
    if heads == "multiclass":
        t = Targets.multiclass(np.eye(k, dtype=np.float32)[rng.integers(0, k, n)], rng.uniform(0, 2, n).astype(np.float32))
    else:
        w = (rng.random((n, k)) > 0.3).astype(np.float32)  # masked labels
        lab = Targets.multilabel(rng.random((n, k)).astype(np.float32), w)
        t = Targets.embedding(rng.standard_normal((n, 6)).astype(np.float32), labels=lab)
    cfg = TrainConfig(hidden=(16, 12), epochs=3, batch_size=128, dropout=0.2, weight_decay=1e-2, learning_rate=3e-3,
                      temperature=2.0 if heads == "multiclass" else 1.0)
    one = fit(X, t, config=cfg, threads=1, workers=1)
    two = fit(X, t, config=cfg, threads=1, workers=2)
    again = fit(X, t, config=cfg, workers=2)
    for a, b, c in zip(one.model.params(), two.model.params(), again.model.params(), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * float(np.abs(a).max()))
        np.testing.assert_array_equal(b, c)  # deterministic
    assert one.model.params()[0].size and not np.array_equal(one.model.params()[0], init_model(d, t, cfg, np.random.default_rng(0)).layers[0][0])
    np.testing.assert_allclose([c["train_loss"] for c in two.curve], [c["train_loss"] for c in one.curve], rtol=1e-5)
    with pytest.raises(SchemaError, match="workers must be"):
        fit(X, t, config=cfg, workers=0)
