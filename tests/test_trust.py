from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import kdstore
from kdstore import select as ksel
from kdstore import trust as ktrust

from . import oracles_select as orc

SMALL = {"min_data_in_leaf": 5, "num_leaves": 7}


def synthetic(store: kdstore.Store, *, n_valid: int = 240, n_train: int = 120, n_test: int = 60, seed: int = 0) -> np.ndarray:
    """Three classes; teacher 'ctx' is right exactly when feature x > 0, the others right 70% at random.

    Returns the feature x of every example (ids 0..n-1: valid, train, test).
    """
    rng = np.random.default_rng(seed)
    n = n_valid + n_train + n_test
    store.add_labels(["a", "b", "c"])
    split = ["valid"] * n_valid + ["train"] * n_train + ["test"] * n_test
    store.add_examples(pa.table({"example_id": np.arange(n), "split": split}))
    gold = rng.integers(0, 3, n)
    store.add_gold(pa.table({"example_id": np.arange(n_valid), "label": [["a", "b", "c"][g] for g in gold[:n_valid]]}))
    x = rng.normal(size=n)
    wrong = (gold + rng.integers(1, 3, n)) % 3
    votes = {"ctx": np.where(x > 0, gold, wrong)}
    for j in range(3):
        ok = rng.random(n) < 0.7
        v = np.where(ok, gold, (gold + rng.integers(1, 3, n)) % 3)
        votes[f"lf{j}"] = np.where(rng.random(n) < 0.8, v, -1)
    store.ingest_votes(pa.table({"example_id": np.arange(n), **votes}))
    store.register_features("x", pa.table({"example_id": np.arange(n), "x": x, "noise": rng.normal(size=n)}))
    return x


def tid(store: kdstore.Store, name: str) -> int:
    row = store.one("SELECT teacher_id FROM kd.teachers WHERE name = ?", [name])
    assert row is not None
    return int(row[0])


@pytest.mark.slow
def test_per_teacher_learns_the_context(store: kdstore.Store) -> None:
    synthetic(store)
    r = ktrust.fit_trust(store, feature_source="x", params=SMALL, rounds=60)
    ctx = tid(store, "ctx")
    assert r.metrics[ctx]["oof_auc"] > 0.9  # honest out-of-fold AUC on valid
    assert r.metrics[ctx]["valid_units"] == 240  # one unit per (vote teacher, example)
    # kd.trust: one row per decision unit of every split, with the per-teacher model ids
    assert store.one("SELECT count(*) FROM kd.trust WHERE teacher_id = ?", [ctx]) == (420,)
    models = store.execute("SELECT model_id, name, params, metrics FROM kd.models WHERE kind = 'trust' ORDER BY 1").fetchall()
    assert len(models) == 4 and {m[1] for m in models} == {f"trust:{tid(store, n)}" for n in ("ctx", "lf0", "lf1", "lf2")}
    params = json.loads(models[0][2])
    assert "x_x" in params["features"] and params["booster"].startswith("tree")
    booster = ktrust.load_booster(store, r.model_ids[ctx])
    assert booster.num_trees() == 60
    # calibration views against their oracles, on these real trust scores
    ksel.install_views(store)
    fx = orc.fixture(store)
    cal = {int(t): (n, b, a) for t, n, b, a in store.execute("SELECT teacher_id, n, brier, auc FROM kd.trust_calibration").fetchall()}
    want = orc.calibration(fx)
    assert set(cal) == set(want)
    for t, (n, b, a) in cal.items():
        assert n == want[t]["n"] and b == pytest.approx(want[t]["brier"]) and a == pytest.approx(want[t]["auc"])
    assert cal[ctx][2] == pytest.approx(r.metrics[ctx]["oof_auc"])  # the view's rank AUC = the fit's AUC
    rel = store.execute("SELECT sum(n) FROM kd.trust_reliability WHERE teacher_id = ?", [ctx]).fetchall()
    assert rel == [(240,)]


@pytest.mark.slow
def test_router_and_trust_policy(store: kdstore.Store) -> None:
    x = synthetic(store)
    r = ktrust.fit_trust(store, kind="router", feature_source="x", params=SMALL, rounds=60)
    assert len(set(r.model_ids.values())) == 1  # one model for all teachers
    ctx = tid(store, "ctx")
    p = dict(store.execute("SELECT example_id, p_correct FROM kd.trust WHERE teacher_id = ? AND example_id >= 240",
                           [ctx]).fetchall())
    ids = np.array(sorted(p))
    pv = np.array([p[i] for i in ids])
    assert orc.auc((x[ids] > 0).astype(int), pv) > 0.9  # the router trusts ctx where x > 0 on unseen examples
    # input-only router: no teacher outputs among the features
    r2 = ktrust.fit_trust(store, kind="router", feature_source="x", use_outputs=False, params=SMALL, rounds=30)
    feats = json.loads(store.one("SELECT params FROM kd.models WHERE model_id = ?", [r2.model_ids[ctx]])[0])["features"]
    assert feats == ["label_id", "x_x", "x_noise", "teacher_id"]
    sel = ksel.select(store, "trust")
    assert sel.metrics["inferred_examples"] > 0
    sums = store.execute("SELECT example_id, sum(target) FROM kd.targets WHERE run_id = ? GROUP BY 1", [sel.run_id]).fetchall()
    assert all(abs(s - 1) < 1e-9 for _, s in sums)


def test_refit_reproduces_from_stored_outputs(store: kdstore.Store) -> None:
    synthetic(store, n_valid=120, n_train=40, n_test=20)
    r = ktrust.fit_trust(store, feature_source="x", params=SMALL, rounds=20, seed=3)
    before = store.execute("SELECT teacher_id, example_id, label_id, p_correct FROM kd.trust ORDER BY 1, 2, 3").fetchall()
    r2 = ktrust.refit(store, r.run_id)
    after = store.execute("SELECT teacher_id, example_id, label_id, p_correct FROM kd.trust ORDER BY 1, 2, 3").fetchall()
    assert after == before and r2.run_id != r.run_id
    assert set(r2.model_ids.values()).isdisjoint(r.model_ids.values())
    with pytest.raises(kdstore.KdstoreError, match="no trust run 999"):
        ktrust.refit(store, 999)


def test_constant_model_when_too_few_rows(store: kdstore.Store) -> None:
    synthetic(store, n_valid=30, n_train=10, n_test=5)
    r = ktrust.fit_trust(store, min_rows=1000, rounds=5)
    ctx = tid(store, "ctx")
    with pytest.raises(kdstore.NotFittedError, match="constant"):
        ktrust.load_booster(store, r.model_ids[ctx])
    # the final constant is the Laplace share of correct valid units; train rows get it
    n, k = r.metrics[ctx]["valid_units"], r.metrics[ctx]["valid_correct"]
    got = store.execute("SELECT DISTINCT p_correct FROM kd.trust WHERE teacher_id = ? AND example_id >= 30", [ctx]).fetchall()
    assert got == [(pytest.approx((k + 1) / (n + 2)),)]


@pytest.mark.slow
def test_out_of_fold_never_sees_its_own_labels(store: kdstore.Store) -> None:
    """A feature that identifies the example (a random id) lets a model memorise the labels in-sample,
    but out of fold it carries nothing: OOF AUC ~ 0.5. Every teacher votes the same class, so the
    correctness label is shared by all rows of an example: with row-level folds the id would leak it
    through the example's other rows; the folds are by example, so it does not."""
    rng = np.random.default_rng(7)
    n = 300
    store.add_labels(["a", "b"])
    store.add_examples(pa.table({"example_id": np.arange(n), "split": ["valid"] * n}))
    gold = rng.integers(0, 2, n)
    store.add_gold(pa.table({"example_id": np.arange(n), "label": [["a", "b"][g] for g in gold]}))
    store.ingest_votes(pa.table({"example_id": np.arange(n), **{f"lf{j}": np.zeros(n, dtype=np.int64) for j in range(4)}}))
    store.register_features("id", pa.table({"example_id": np.arange(n), "rid": rng.permutation(n).astype(float)}))
    leaky = {"min_data_in_leaf": 1, "min_sum_hessian_in_leaf": 1e-5, "num_leaves": 255, "learning_rate": 0.3,
             "feature_fraction": 1.0, "max_bin": 255, "lambda_l2": 0.0}
    r = ktrust.fit_trust(store, kind="router", feature_source="id", params=leaky, rounds=100, other_scores=False)
    y = (gold == 0).astype(int)
    rows = store.execute("SELECT example_id, p_correct FROM kd.trust WHERE teacher_id = ?",
                         [tid(store, "lf0")]).fetchall()
    oof = np.zeros(n)
    for e, p in rows:
        oof[int(e)] = p
    assert 0.35 < orc.auc(y, oof) < 0.65
    # the same model does memorise in sample, so the test above could fail
    booster = ktrust.load_booster(store, r.model_ids[tid(store, "lf0")])
    data = ktrust.load(store, feature_source="id")
    t, e, lab = ktrust.units(data)
    x, _ = ktrust.features(data, t, e, lab, other_scores=False)
    xr = np.column_stack([x, data.teacher_ids[t].astype(float)])
    assert orc.auc(ktrust.correct(data, t, e, lab).astype(int), booster.predict(xr)) > 0.95
    # and row-level folds (the mistake) would leak through the example's other rows
    import lightgbm as lgb

    yy = ktrust.correct(data, t, e, lab).astype(float)
    fold = np.random.default_rng(0).permutation(len(t)) % 5
    leak = np.zeros(len(t))
    for f in range(5):
        ds = lgb.Dataset(xr[fold != f], label=yy[fold != f], params={"verbose": -1, "max_bin": 255})
        b = lgb.train({**ktrust.DEFAULT_PARAMS, **leaky, "seed": 0}, ds, num_boost_round=100)
        leak[fold == f] = b.predict(xr[fold == f])
    assert orc.auc(yy.astype(int), leak) > 0.65


def _snapshot(store: kdstore.Store, runs: dict[str, int]) -> dict[str, Any]:
    snap: dict[str, Any] = {
        "trust": store.execute(
            "SELECT t.teacher_id, t.example_id, t.label_id, round(t.p_correct, 12) FROM kd.trust t "
            "JOIN kd.examples e USING (example_id) WHERE e.split <> 'test' ORDER BY 1, 2, 3").fetchall()
    }
    for p, run in runs.items():
        snap[p] = store.execute("SELECT example_id, label_id, round(target, 12), round(weight, 12), teacher_id, rule "
                                "FROM kd.targets WHERE run_id = ? ORDER BY 1, 2", [run]).fetchall()
    return snap


@pytest.mark.slow
def test_test_split_is_never_read(store: kdstore.Store) -> None:
    """Poison every test-split row (outputs, gold, features): trust and targets of train/valid do not move."""
    x = synthetic(store, n_valid=120, n_train=60, n_test=40)
    store.settings.update(min_support=1, min_targets=5)

    def run_all() -> dict[str, Any]:
        ktrust.fit_trust(store, feature_source="x", params=SMALL, rounds=20)
        runs = {p.value: store.select(p.value, gold_weight=1.0) for p in ksel.Policy}
        ktrust.fit_trust(store, kind="router", feature_source="x", params=SMALL, rounds=20)
        runs["trust_router"] = store.select("trust")
        return _snapshot(store, runs)

    before = run_all()
    test_ids = np.arange(180, 220)
    rng = np.random.default_rng(1)
    n = len(x)
    with store.transaction():
        store.run("DELETE FROM kd.gold WHERE example_id >= 180")
        store.add_gold(pa.table({"example_id": test_ids, "label": ["a"] * len(test_ids)}))
        store.add_gold(pa.table({"example_id": test_ids, "label": ["c"] * len(test_ids)}))
    votes = {}
    for name in ("ctx", "lf0", "lf1", "lf2"):
        rows = store.execute("SELECT o.example_id, o.label_id FROM kd.outputs o JOIN kd.teachers t USING (teacher_id) "
                             "WHERE t.name = ? AND o.score = 1 ORDER BY 1", [name]).fetchall()
        v = np.full(n, -1)
        for e, lab in rows:
            v[int(e)] = int(lab)
        v[test_ids] = rng.integers(-1, 3, len(test_ids))  # poisoned test votes
        votes[name] = v
    store.ingest_votes(pa.table({"example_id": np.arange(n), **votes}))
    store.run('UPDATE features."x" SET x = 1e6, noise = -1e6 WHERE example_id >= 180')  # poisoned test features
    assert store.one("SELECT count(*) FROM kd.scores s JOIN kd.examples e USING (example_id) WHERE e.split = 'test'")[0] > 0
    after = run_all()
    assert before["trust"] != [] and set(before) == set(after)
    for k in before:
        assert before[k] == after[k], k


def test_feedback_rounds(store: kdstore.Store) -> None:
    synthetic(store, n_valid=120, n_train=40, n_test=10)
    calls: list[int] = []

    def student_fn(s: kdstore.Store, run_id: int) -> pa.Table:
        calls.append(run_id)
        assert s.one("SELECT count(*) FROM kd.targets WHERE run_id = ? AND rule = 'gold'", [run_id]) == (0,)
        ids = np.arange(170)
        return pa.table({"example_id": np.repeat(ids, 3), "label_id": np.tile(np.arange(3), 170),
                         "score": np.tile([0.6, 0.3, 0.1], 170)})

    rounds = ktrust.feedback(store, student_fn, rounds=2, trust_kwargs={"params": SMALL, "rounds": 10})
    assert [r.round for r in rounds] == [0, 1] and calls == [r.select_run_id for r in rounds]
    assert rounds[0].student_valid_error is not None and 0 < rounds[0].student_valid_error < 1
    feats0 = json.loads(store.one("SELECT params FROM kd.models WHERE run_id = ? LIMIT 1", [rounds[0].trust_run_id])[0])
    feats1 = json.loads(store.one("SELECT params FROM kd.models WHERE run_id = ? LIMIT 1", [rounds[1].trust_run_id])[0])
    assert "student_score" not in feats0["features"] and "student_score" in feats1["features"]
    assert feats1["student"] is True
    with pytest.raises(kdstore.SchemaError, match="rounds must be >= 1"):
        ktrust.feedback(store, student_fn, rounds=0)


def test_errors(store: kdstore.Store) -> None:
    synthetic(store, n_valid=30, n_train=10, n_test=5)
    with pytest.raises(kdstore.SchemaError, match="trust kind"):
        ktrust.fit_trust(store, kind="bogus")
    with pytest.raises(kdstore.SchemaError, match="no feature source 'nope'"):
        ktrust.fit_trust(store, feature_source="nope")
    with pytest.raises(kdstore.SchemaError, match=r"unknown .*teachers: zz"):
        ktrust.fit_trust(store, teachers=["zz"])
    r = ktrust.fit_trust(store, teachers=["ctx"], rounds=5, params=SMALL)
    assert list(r.metrics) == [tid(store, "ctx")]


def test_label_scores_feature(store: kdstore.Store) -> None:
    """A per-(example, label) relation (e.g. label-model posteriors) becomes a feature of each unit."""
    x = synthetic(store, n_valid=200, n_train=40, n_test=10)
    ids = np.arange(len(x))
    # a 'posterior' that says the ctx teacher's vote is right exactly where x > 0
    votes = dict(store.execute("SELECT o.example_id, o.label_id FROM kd.outputs o JOIN kd.teachers t USING (teacher_id) "
                               "WHERE t.name = 'ctx' AND o.score = 1").fetchall())
    post = [(int(i), votes[int(i)], 0.9 if x[i] > 0 else 0.1) for i in ids]
    store.run("CREATE TABLE lm (example_id BIGINT, label_id INTEGER, posterior DOUBLE)")
    store.run_many("INSERT INTO lm VALUES (?, ?, ?)", post)
    r = ktrust.fit_trust(store, label_scores=["lm"], other_scores=False, params=SMALL, rounds=30, teachers=["ctx"])
    feats = json.loads(store.one("SELECT params FROM kd.models WHERE model_id = ?", [r.model_ids[tid(store, "ctx")]])[0])
    assert "ls_lm" in feats["features"] and feats["label_scores"] == ["lm"]
    assert r.metrics[tid(store, "ctx")]["oof_auc"] > 0.9  # learnt from the posterior alone (no feature source)
    store.run("CREATE TABLE bad (example_id BIGINT, label_id INTEGER)")
    with pytest.raises(kdstore.SchemaError, match="exactly one FLOAT/DOUBLE score"):
        ktrust.fit_trust(store, label_scores=["bad"])
    with pytest.raises(kdstore.SchemaError, match="cannot read label scores"):
        ktrust.fit_trust(store, label_scores=["kd.nope"])


def test_no_valid_split(store: kdstore.Store) -> None:
    store.add_labels(["a", "b"])
    store.add_examples(pa.table({"example_id": [0, 1], "split": ["train", "train"]}))
    store.ingest_votes(pa.table({"example_id": [0, 1], "lf": [0, 1]}))
    with pytest.raises(kdstore.NotFittedError, match="no valid-split decisions"):
        store.fit_trust()


def test_cli_trust(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from kdstore.cli import main

    path = tmp_path / "s.duckdb"
    with kdstore.connect(path) as s:
        synthetic(s, n_valid=60, n_train=20, n_test=5)
    assert main(["trust", str(path), "--features", "x", "--rounds", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "per_teacher" and len(out["model_ids"]) == 4
    assert main(["trust", str(path), "--kind", "router", "--rounds", "5"]) == 0
    assert "1 models" in capsys.readouterr().out


@pytest.mark.slow
def test_feedback_with_the_real_student(store: kdstore.Store) -> None:
    """The loop with kdstore's own student: trust -> select -> train_student -> predictions -> trust."""
    synthetic(store, n_valid=160, n_train=200, n_test=20)

    def student_fn(s: kdstore.Store, run_id: int) -> pa.Table:
        mid = s.train_student(run_id, features="x", hidden=(8,), epochs=5, seed=0)
        labels = s.models.load(mid).label_ids
        pred = s.predict(mid)
        ids = np.asarray(pred.column("example_id").to_numpy())
        scores = np.asarray(pred.column("scores").to_pylist(), dtype=float)
        return pa.table({"example_id": np.repeat(ids, len(labels)), "label_id": np.tile(np.asarray(labels), len(ids)),
                         "score": scores.reshape(-1)})

    rounds = ktrust.feedback(store, student_fn, rounds=2, trust_kwargs={"params": SMALL, "rounds": 10,
                                                                         "feature_source": "x"})
    assert len(rounds) == 2 and all(r.student_valid_error is not None for r in rounds)
    params = json.loads(store.one("SELECT params FROM kd.runs WHERE run_id = ?", [rounds[1].trust_run_id])[0])
    assert params["student"] is True
    run = json.loads(store.one("SELECT params FROM kd.runs WHERE run_id = ?", [rounds[1].select_run_id])[0])
    assert run["policy"] == "trust" and run["task"] == "multiclass" and run["gold_weight"] == 0.0


@pytest.mark.slow
def test_label_model_posteriors_as_a_feature(store: kdstore.Store) -> None:
    """kd.label_model_posteriors (kdstore.labelmodel, fit on train only) plugs in as a label-score feature."""
    from kdstore import labelmodel

    synthetic(store, n_valid=120, n_train=120, n_test=10)
    labelmodel.fit_label_model(store, fit_splits=("train",))
    r = ktrust.fit_trust(store, label_scores=["kd.label_model_posteriors"], params=SMALL, rounds=10)
    feats = json.loads(store.one("SELECT params FROM kd.models WHERE model_id = ?", [r.model_ids[tid(store, "ctx")]])[0])
    assert "ls_kd.label_model_posteriors" in feats["features"]
    assert ktrust.refit(store, r.run_id).units == r.units
