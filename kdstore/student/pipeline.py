"""``store.train_student``: read a run's distillation set, train, export with parity, register.

Splits: the trainer reads **train** (targets) and **valid** (early stopping: valid gold when the
split has any for the run's labels, closed world; else the run's valid targets). The **test** split
is read once, after the model is fixed, for the test metrics stored with it; it never influences
any choice (standardisation, early stopping, hyper-parameters).
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any

import numpy as np

from kdstore.errors import KdstoreError, SchemaError
from kdstore.student import data
from kdstore.student.features import Embeddings, FeatureSpec, read_split, resolve
from kdstore.student.train import MLP, Targets, TrainConfig, fit, model_loss

if TYPE_CHECKING:
    from kdstore.store.core import Store


def make_config(config: TrainConfig | None, hyper: dict[str, Any]) -> TrainConfig:
    """``config`` updated with keyword hyper-parameters; unknown names are a :class:`SchemaError`."""
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(hyper) - known)
    if unknown:
        raise SchemaError(f"unknown hyper-parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}",
                          source="student hyper-parameters", column=unknown[0])
    base = (config or TrainConfig()).to_dict()
    base.update(hyper)
    base["hidden"] = tuple(base["hidden"])
    return TrainConfig(**base)


def candidate_configs(config: TrainConfig, candidates: Sequence[Mapping[str, Any]] | None) -> list[TrainConfig]:
    """``config`` alone, or one configuration per candidate (each candidate's fields on top of ``config``).

    A candidate that is not a mapping, or names an unknown or invalid field, is a :class:`SchemaError`
    whose column is ``candidates[i].<field>``.
    """
    if candidates is None:
        return [config]
    if isinstance(candidates, (str, bytes, Mapping)) or not isinstance(candidates, Sequence) or not candidates:
        raise SchemaError(f"candidates must be a non-empty list of hyper-parameter tables, got {candidates!r}",
                          source="student hyper-parameters", column="candidates")
    out = []
    for i, c in enumerate(candidates):
        if not isinstance(c, Mapping):
            raise SchemaError(f"each candidate must be a table of hyper-parameters, got {c!r}",
                              source="student hyper-parameters", column=f"candidates[{i}]")
        try:
            out.append(make_config(config, dict(c)))
        except (SchemaError, TypeError, ValueError) as e:
            col = getattr(e, "column", None)
            raise SchemaError(str(e), source="student hyper-parameters",
                              column=f"candidates[{i}]" + (f".{col}" if col else "")) from e
    return out


def _candidate_key(valid: dict[str, Any], task: str | None, index: int) -> tuple[float, float, int]:
    """Sort key of a candidate (larger is better): valid score, then lower valid loss, then earlier listed."""
    score = valid.get("accuracy") if task == "multiclass" else valid.get("micro_f1")
    loss = valid.get("loss")
    return (-math.inf if score is None else float(score), -math.inf if loss is None else -float(loss), -index)


def _union(*ids: np.ndarray) -> np.ndarray:
    parts = [i for i in ids if i is not None and i.size]
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)


def _assemble(ids: np.ndarray, task: str | None, labels: data.LabelData | None, k: int,
              emb: tuple[np.ndarray, np.ndarray] | None, emb_dim: int | None) -> Targets:
    """Targets over ``ids``: rows without a label target / an embedding get weight 0."""
    n = ids.size
    y = w = e = ew = None
    if task is not None:
        y = np.zeros((n, k), np.float32)
        w = np.zeros(n if task == "multiclass" else (n, k), np.float32)
        if task == "multiclass":
            y[:, 0] = 1.0  # placeholder distribution for rows without targets (weight 0)
        if labels is not None and labels.ids.size:
            pos = np.searchsorted(ids, labels.ids)
            y[pos] = labels.y
            w[pos] = labels.w
    if emb_dim is not None:
        e = np.zeros((n, emb_dim), np.float32)
        ew = np.zeros(n, np.float32)
        if emb is not None and emb[0].size:
            eids, vecs = emb
            pos = np.searchsorted(ids, eids)
            e[pos] = vecs
            ew[pos] = 1.0
    return Targets(task, y, w, e, ew)


def _features_for(store: Store, spec: FeatureSpec, split: str, ids: np.ndarray, what: str,
                  cache: dict[str, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    if split not in cache:
        cache[split] = read_split(store, spec, split)
    fids, X = cache[split]
    pos = data.align(ids, fids, what=what, source=spec.describe())
    out: np.ndarray = X[pos]
    return out


def train_student(
    store: Store,
    run_id: int | None = None,
    *,
    features: str | Embeddings,
    columns: Sequence[str] | None = None,
    task: str | None = None,
    embedding_teacher: str | None = None,
    name: str | None = None,
    replace: bool = False,
    config: TrainConfig | None = None,
    candidates: Sequence[Mapping[str, Any]] | None = None,
    progress: bool | None = None,
    threads: int | str | None = "auto",
    **hyper: Any,
) -> int:
    """Train a student on run ``run_id``'s targets, export it to ONNX, store it in ``kd.models``.

    Args:
        store: the store.
        run_id: the distillation run (``kd.targets.run_id``) to learn labels from; None for an
            embedding-only student.
        features: a registered feature source name, or :class:`Embeddings` (a teacher's embeddings).
        columns: the feature columns to use (default: every numeric column, or the one list column).
        task: ``multiclass`` / ``multilabel`` to override the run's task (see :mod:`kdstore.student.data`).
        embedding_teacher: also regress this teacher's embeddings (``kd.embeddings``) from the last
            hidden layer; alone (``run_id=None``) or with the label head.
        name: the model's name (default ``student_<model_id>``); ``replace`` overwrites a student of that name.
        config, **hyper: hyper-parameters (:class:`TrainConfig` fields, e.g. ``hidden=(128,)``, ``epochs=10``).
        candidates: alternative hyper-parameter sets, each applied on top of ``config``/``**hyper``
            (e.g. ``[{"hidden": (256,)}, {"hidden": ()}]``). One student is trained per candidate and
            the one with the best valid score is kept (accuracy for multiclass, micro-F1 for
            multilabel, ties: lower valid loss, then the first listed); every candidate's valid
            score is recorded in the model's ``metrics["candidates"]``. Needs a valid split; the
            test split is never used to choose.
        progress: print one line per epoch on stderr (default: when stderr is a terminal).
        threads: BLAS threads while training (default ``"auto"``: 1 BLAS thread per data-parallel worker,
            ``min(2, cores)`` workers; see :func:`kdstore.student.train.fit`).

    Returns:
        The new ``model_id``.
    """
    if store.read_only:
        raise KdstoreError(f"{store.path} is open read-only")
    if run_id is None and embedding_teacher is None:
        raise SchemaError("give a run_id (label targets), an embedding_teacher, or both", source="train_student")
    cfg = make_config(config, hyper)
    cfgs = candidate_configs(cfg, candidates)
    spec = resolve(store, features, columns)
    info = data.run_info(store, int(run_id), task) if run_id is not None else None
    k = len(info.label_ids) if info else 0
    head = info.task if info else None
    cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    # train split
    tr_labels = data.read_targets(store, info, "train") if info else None
    tr_emb = data.read_embedding_targets(store, embedding_teacher, "train") if embedding_teacher else None
    if tr_emb is not None and tr_emb[0].size == 0:
        raise SchemaError(f"teacher {embedding_teacher!r} has no embeddings on the train split", source="kd.embeddings")
    tr_ids = _union(tr_labels.ids if tr_labels else None, tr_emb[0] if tr_emb else None)  # type: ignore[arg-type]
    if tr_ids.size == 0:
        raise SchemaError("nothing to train on: no targets on the train split", source=f"kd.targets run {run_id}")
    X = _features_for(store, spec, "train", tr_ids, "training", cache)
    t = _assemble(tr_ids, head, tr_labels, k, tr_emb, tr_emb[1].shape[1] if tr_emb else None)

    # valid split: gold (closed world) if any, else the run's valid targets
    valid_source = "none"
    va_labels = None
    if info is not None:
        if data.has_gold(store, "valid", info.label_ids):
            va_labels, valid_source = data.read_gold(store, "valid", info.task, info.label_ids), "gold"
        else:
            va_labels = data.read_targets(store, info, "valid")
            valid_source = "targets" if va_labels.ids.size else "none"
            if not va_labels.ids.size:
                va_labels = None
    va_emb = data.read_embedding_targets(store, embedding_teacher, "valid") if embedding_teacher else None
    if va_emb is not None and va_emb[0].size == 0:
        va_emb = None
    va_ids = _union(va_labels.ids if va_labels else None, va_emb[0] if va_emb else None)  # type: ignore[arg-type]
    vX = vt = None
    if va_ids.size:
        vX = _features_for(store, spec, "valid", va_ids, "validation", cache)
        vt = _assemble(va_ids, head, va_labels, k, va_emb, t.emb.shape[1] if t.emb is not None else None)
    cache.clear()
    if len(cfgs) > 1 and (vX is None or vt is None):
        raise SchemaError("choosing among candidates needs a valid split (gold or targets), and it has none",
                          source=f"kd.targets run {run_id}", column="candidates")

    show = progress if progress is not None else (sys.stderr.isatty() and os.environ.get("KDSTORE_PROGRESS", "1") != "0")
    on_epoch = None
    if show:
        def on_epoch(e: dict[str, Any]) -> None:
            vl = "-" if e["valid_loss"] is None else f"{e['valid_loss']:.4f}"
            print(f"epoch {e['epoch']}/{cfg.epochs}  train {e['train_loss']:.4f}  valid {vl}  "
                  f"{e['examples_per_second']:,.0f} ex/s", file=sys.stderr)

    threshold = _threshold(store)
    names = list(info.label_names) if info else []
    tried: list[dict[str, Any]] = []
    best: tuple[tuple[float, float, int], Any, TrainConfig, dict[str, Any], float] | None = None
    for i, c in enumerate(cfgs):
        cfg = c
        t0 = time.perf_counter()
        result = fit(X, t, valid_X=vX, valid_targets=vt, config=c, on_epoch=on_epoch, threads=threads)
        seconds = time.perf_counter() - t0
        # metrics: valid (the split used for early stopping and to choose a candidate)
        valid = split_metrics(result.model, vX, vt, names, threshold, c) if vX is not None and vt is not None \
            else {"examples": 0}
        key = _candidate_key(valid, head, i)
        tried.append({"hyper_parameters": c.to_dict(), "valid_score": None if key[0] == -math.inf else key[0],
                      "valid_loss": valid.get("loss"), "best_epoch": result.best_epoch, "train_seconds": seconds})
        if best is None or key > best[0]:
            best = (key, result, c, valid, seconds)
    assert best is not None
    _, result, cfg, valid, seconds = best
    model = result.model
    del X

    # then test (read only now, for the record)
    metrics: dict[str, Any] = {
        "curve": list(result.curve), "best_epoch": result.best_epoch, "stopped_early": result.stopped_early,
        "train_examples": int(tr_ids.size), "train_seconds": seconds,
        "examples_per_second": result.examples_per_second, "blas_threads": threads,
    }
    if len(cfgs) > 1:
        metrics["candidates"] = tried
        metrics["chosen_candidate"] = next(i for i, c in enumerate(cfgs) if c is cfg)
    metrics["valid"] = {"source": valid_source, **valid}
    metrics["test"] = _test_metrics(store, spec, model, info, embedding_teacher, names, threshold, cfg)

    params: dict[str, Any] = {
        "task": head or "embedding",
        "labels": [{"label_id": i, "name": n} for i, n in zip(info.label_ids, info.label_names, strict=True)] if info else [],
        "features": spec.to_dict(),
        "embedding_teacher": embedding_teacher,
        "outputs": model.outputs,
        "hyper_parameters": cfg.to_dict(),
        "n_params": model.n_params(),
        "valid_source": valid_source,
    }

    def build(model_id: int, model_name: str) -> bytes:
        from kdstore.student.export import export_onnx, metadata

        meta = metadata(model, name=model_name, labels=names, label_ids=[int(x) for x in (info.label_ids if info else ())],
                        features=spec.to_dict())
        onnx_bytes, parity = export_onnx(model, meta)
        metrics["parity_max_abs_diff"] = parity.max_abs_diff
        params["onnx_sha256"] = hashlib.sha256(onnx_bytes).hexdigest()
        return onnx_bytes

    model_id = store.models.add(name=name, run_id=run_id, params=params, metrics=metrics, build_onnx=build, replace=replace)
    store.enable_sql_functions()
    return model_id


def _threshold(store: Store) -> float:
    try:
        return float(store.settings["threshold"])
    except KeyError:
        return 0.5


def _test_metrics(store: Store, spec: FeatureSpec, model: MLP, info: data.RunInfo | None, teacher: str | None,
                  names: list[str], threshold: float, cfg: TrainConfig) -> dict[str, Any]:
    """Final metrics on the test split (read here, after training; never used for a choice)."""
    lab = data.read_gold(store, "test", info.task, info.label_ids) if info and data.has_gold(store, "test", info.label_ids) else None
    emb = data.read_embedding_targets(store, teacher, "test", final=True) if teacher else None
    if emb is not None and emb[0].size == 0:
        emb = None
    ids = _union(lab.ids if lab else None, emb[0] if emb else None)  # type: ignore[arg-type]
    if ids.size == 0:
        return {"source": "none", "examples": 0}
    fids, FX = read_split(store, spec, "test")
    have = np.isin(ids, fids)
    ids = ids[have]
    if ids.size == 0:
        return {"source": "gold", "examples": 0, "missing_features": int(have.size)}
    X = FX[data.align(ids, fids, what="test", source=spec.describe())]

    if lab is not None:
        m = np.isin(lab.ids, ids)
        lab = data.LabelData(lab.ids[m], lab.y[m], lab.w[m])
    if emb is not None:
        m = np.isin(emb[0], ids)
        emb = (emb[0][m], emb[1][m])
    t = _assemble(ids, model.task, lab, len(names), emb, model.outputs.get("embedding"))
    out = split_metrics(model, X, t, names, threshold, cfg)
    return {"source": "gold" if lab is not None else "embeddings", "missing_features": int((~have).sum()), **out}


def split_metrics(model: MLP, X: np.ndarray, t: Targets, names: list[str], threshold: float,
                  cfg: TrainConfig) -> dict[str, Any]:
    """Loss, accuracy / micro-F1 and per-label precision, recall, F1, support; embedding MSE and cosine."""
    out: dict[str, Any] = {"examples": int(X.shape[0]), "loss": model_loss(model, X, t, cfg)}
    pred = model.predict(X)
    if "scores" in pred and t.y is not None and t.w is not None:
        out.update(label_metrics(pred["scores"], t.y, t.w, str(model.task), names, threshold))
    if "embedding" in pred and t.emb is not None and t.emb_w is not None:
        m = t.emb_w > 0
        o, e = pred["embedding"][m].astype(np.float64), t.emb[m].astype(np.float64)
        cos = (o * e).sum(1) / (np.linalg.norm(o, axis=1) * np.linalg.norm(e, axis=1) + 1e-12)
        out["embedding"] = {"examples": int(m.sum()), "mse": float(((o - e) ** 2).mean()) if m.any() else None,
                            "cosine": float(cos.mean()) if m.any() else None}
    return out


def _ratio(a: float, b: float) -> float | None:
    return float(a / b) if b else None


def label_metrics(scores: np.ndarray, y: np.ndarray, w: np.ndarray, task: str, names: list[str],
                  threshold: float) -> dict[str, Any]:
    """Per-label metrics of predictions against targets ``y`` (gold or soft) on rows/labels with weight > 0.

    Multiclass: the prediction is the argmax; an example's true labels are its targets' maxima.
    Multilabel: positive when ``score >= threshold``; truth is ``y >= 0.5``; masked labels are skipped.
    """
    if task == "multiclass":
        rows = w > 0
        s, yy = scores[rows], y[rows]
        truth = (yy >= yy.max(axis=1, keepdims=True) - 1e-9) & (yy > 0)
        pred = np.zeros_like(truth)
        pred[np.arange(s.shape[0]), s.argmax(axis=1)] = True
        mask = np.ones_like(truth)
    else:
        mask = w > 0
        truth = (y >= 0.5) & mask
        pred = (scores >= threshold) & mask
    tp = (pred & truth).sum(axis=0)
    fp = (pred & ~truth & mask).sum(axis=0)
    fn = (~pred & truth).sum(axis=0)
    per: dict[str, Any] = {}
    for j, name in enumerate(names):
        p, r = _ratio(tp[j], tp[j] + fp[j]), _ratio(tp[j], tp[j] + fn[j])
        f1 = _ratio(2 * tp[j], 2 * tp[j] + fp[j] + fn[j])
        per[name] = {"precision": p, "recall": r, "f1": f1, "support": int(tp[j] + fn[j])}
    out: dict[str, Any] = {"labels": per}
    TP, FP, FN = int(tp.sum()), int(fp.sum()), int(fn.sum())
    out["micro_f1"] = _ratio(2 * TP, 2 * TP + FP + FN)
    f1s = [v["f1"] for v in per.values() if v["f1"] is not None and v["support"] > 0]
    out["macro_f1"] = float(np.mean(f1s)) if f1s else None
    if task == "multiclass":
        out["accuracy"] = float((pred & truth).any(axis=1).mean()) if pred.shape[0] else None
    return out
