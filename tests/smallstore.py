"""A small but complete store (every kd table has rows) for the Parquet and Spark tests."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

import kdstore

LABELS = ["cat", "dog", "fox", "owl", "elk"]


def build(store: kdstore.Store, *, n: int = 240, seed: int = 0) -> None:
    """Fill ``store``: 5 labels, ``n`` examples over train/valid/test with slices, gold, weak labels,
    teachers of every scoring type (binary specialists, a multiclass, a multilabel with NULL elements
    and abstains, votes), embeddings, a feature table, changed settings and lineage rows."""
    rng = np.random.default_rng(seed)
    store.add_labels(LABELS)
    ids = np.arange(1000, 1000 + n, dtype=np.int64)
    split = np.array(["train", "valid", "test"])[rng.choice(3, n, p=[0.5, 0.3, 0.2])]
    slices = pa.array([None if i % 7 == 0 else f"s{i % 3}" for i in range(n)], pa.string())
    store.add_examples(pa.table({"example_id": ids, "split": split, "slice": slices}))
    truth = rng.integers(0, len(LABELS), n)
    labeled = split != "train"
    extra = labeled & (rng.random(n) < 0.15)  # a few examples with a second positive label
    gold_ids = np.concatenate([ids[labeled], ids[extra]])
    gold_lab = np.concatenate([truth[labeled], (truth[extra] + 1) % len(LABELS)])
    store.add_gold(pa.table({"example_id": gold_ids, "label": gold_lab}))
    store.add_weak(pa.table({
        "example_id": ids[:30], "label": np.array(LABELS)[truth[:30]], "source": ["kw"] * 30,
        "value": rng.random(30).round(3),
    }))
    onehot = np.eye(len(LABELS))[truth]
    # Binary specialists: good on their label, noisy elsewhere; one abstains on a third of examples.
    for j, lab in enumerate(LABELS[:3]):
        store.add_teacher(f"bin_{lab}", labels=[lab], output_type="binary")
        p = np.clip(onehot[:, j] * (0.55 + 0.4 * rng.random(n)) + 0.35 * rng.random(n), 0, 1)
        sel = rng.random(n) > (0.33 if j == 2 else 0.0)
        store.ingest_outputs(f"bin_{lab}", pa.table({
            "example_id": ids[sel], "label": [lab] * int(sel.sum()), "score": p[sel].astype(np.float32)}))
    # A multiclass teacher over 4 labels (probabilities sum to 1).
    mc_labels = LABELS[1:]
    logits = rng.normal(size=(n, 4)) + 2.0 * onehot[:, 1:]
    prob = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    store.add_teacher("multi", labels=mc_labels, output_type="multiclass")
    store.ingest_outputs("multi", pa.table({
        "example_id": np.repeat(ids, 4), "label": np.tile(mc_labels, n), "score": prob.ravel()}))
    # A multilabel teacher with holes: some (example, label) pairs have no opinion.
    store.add_teacher("tags", labels=LABELS, output_type="multilabel", threshold=0.6)
    sc = np.clip(onehot * 0.7 + 0.3 * rng.random((n, 5)), 0, 1)
    have = rng.random((n, 5)) > 0.2
    ex, la = np.nonzero(have)
    store.ingest_outputs("tags", pa.table({
        "example_id": ids[ex], "label": np.array(LABELS)[la], "score": sc[ex, la]}))
    # Two voters (labeling functions), -1 = abstain.
    votes = {}
    for k in range(2):
        v = np.where(rng.random(n) < 0.7, truth, rng.integers(0, 5, n))
        votes[f"lf{k}"] = np.where(rng.random(n) < 0.3, -1, v)
    store.ingest_votes(pa.table({"example_id": ids, **votes}))
    store.add_teacher("enc", labels=[], output_type="embedding")
    store.ingest_embeddings("enc", pa.table({
        "example_id": ids, "vector": list(rng.normal(size=(n, 3)).astype(np.float32))}))
    store.register_features("pixels", pa.table({
        "example_id": ids, "x0": rng.normal(size=n), "x1": rng.normal(size=n).astype(np.float32)}))
    store.settings.update(threshold=0.55, min_support=3)
    store.run("INSERT INTO kd.runs (run_id, kind, params, metrics) VALUES (1, 'select', '{\"policy\": \"experts\"}', NULL)")
    store.run("INSERT INTO kd.models (model_id, name, kind, run_id, onnx) VALUES (1, 'student', 'student', 1, '\\x00\\x01'::BLOB)")
    store.run("INSERT INTO kd.trust SELECT teacher_id, example_id, label_id, 0.5, 1 FROM kd.outputs WHERE teacher_id = 0")
    store.run(
        "INSERT INTO kd.targets SELECT 1, o.example_id, o.label_id, o.score, 1.0, o.teacher_id, 'expert' "
        "FROM kd.outputs o JOIN kd.examples e USING (example_id) WHERE e.split = 'train' AND o.teacher_id = 3"
    )


def votes_store(votes: np.ndarray, *, n_classes: int, splits: list[str] | None = None,
                gold: dict[int, int] | None = None) -> kdstore.Store:
    """An in-memory store of hard-vote teachers ``t0..`` (``votes[i, j]``: teacher j's class for example i,
    -1 abstain) over classes ``c0..``, every example in ``train`` unless ``splits`` says otherwise."""
    store = kdstore.connect()
    store.add_labels([f"c{i}" for i in range(n_classes)])
    n = votes.shape[0]
    store.add_examples(pa.table({"example_id": np.arange(n, dtype=np.int64), "split": splits or ["train"] * n}))
    if gold:
        store.add_gold(pa.table({"example_id": list(gold), "label": [f"c{v}" for v in gold.values()]}))
    cols = {f"t{j}": votes[:, j].astype(np.int64) for j in range(votes.shape[1])}
    store.ingest_votes(pa.table({"example_id": np.arange(n, dtype=np.int64), **cols}))
    return store


def many_key_votes(seed: int = 5) -> tuple[np.ndarray, int]:
    """40 examples x 32 teachers of 30 classes: the wide EM packs them into 3 BIGINT keys (12 base-32
    digits each), with the top digit of every key in use. Returns (votes, number of classes)."""
    rng = np.random.default_rng(seed)
    n, m, k = 40, 32, 30
    y = rng.integers(0, k, n)
    votes = np.where(rng.random((n, m)) < 0.7, y[:, None], rng.integers(0, k, (n, m)))
    votes[rng.random(votes.shape) < 0.2] = -1
    votes[:, 0] = k - 1
    return votes, k
