"""The student in the store: reading the distillation set, registry, serving from Python and SQL, CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pytest

import kdstore
from kdstore.errors import KdstoreError, SchemaError
from kdstore.student import Embeddings
from kdstore.student import data as sdata

N, D, K = 1200, 6, 3
LABELS = ["cat", "dog", "fox"]
FAST = {"hidden": (16,), "epochs": 8, "batch_size": 64, "learning_rate": 5e-3}


def _world(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((N, D)) * 2 + 1).astype(np.float32)
    W = np.random.default_rng(42).standard_normal((D, K))
    Z = (X - 1) / 2 @ W
    P = np.exp(Z - Z.max(1, keepdims=True))
    P /= P.sum(1, keepdims=True)
    split = np.array(["train"] * 800 + ["valid"] * 200 + ["test"] * 200)
    return {"X": X, "P": P, "split": split, "ids": np.arange(N, dtype=np.int64) + 1000}


def _insert_targets(store: kdstore.Store, rows: dict[str, Any]) -> None:
    n = len(rows["example_id"])
    table = pa.table({
        "run_id": pa.array(rows.get("run_id", [1] * n), pa.int32()),
        "example_id": pa.array(rows["example_id"], pa.int64()),
        "label_id": pa.array(rows["label_id"], pa.int32()),
        "target": pa.array(rows["target"], pa.float64()),
        "weight": pa.array(rows.get("weight", [1.0] * n), pa.float64()),
        "teacher_id": pa.array(rows.get("teacher_id", [None] * n), pa.int32()),
        "rule": pa.array(rows.get("rule", ["test"] * n), pa.string()),
    })
    store.con.register("__t", table)
    store.run("INSERT INTO kd.targets SELECT * FROM __t")
    store.con.unregister("__t")


def build(store: kdstore.Store, w: dict[str, np.ndarray], *, gold: bool = True, run_params: dict[str, Any] | None = None) -> None:
    store.add_labels(LABELS)
    ids, X, P, split = w["ids"], w["X"], w["P"], w["split"]
    store.add_examples(pa.table({"example_id": ids, "split": split}))
    store.register_features("px", pa.table({"example_id": ids, **{f"f{j}": X[:, j] for j in range(D)}}))
    if gold:
        lab = ~(split == "train")
        store.add_gold(pa.table({"example_id": ids[lab], "label": np.array(LABELS)[P[lab].argmax(1)]}))
    store.run("INSERT INTO kd.runs (run_id, kind, params) VALUES (1, 'selection', ?)",
              [json.dumps(run_params if run_params is not None else {"task": "multiclass"})])
    tr = np.flatnonzero(split == "train")
    _insert_targets(store, {"example_id": np.repeat(ids[tr], K), "label_id": np.tile(np.arange(K), tr.size),
                            "target": P[tr].ravel(), "teacher_id": [7] * (tr.size * K)})


@pytest.fixture
def world() -> dict[str, np.ndarray]:
    return _world()


@pytest.fixture
def trained(store: kdstore.Store, world: dict[str, np.ndarray]) -> Iterator[tuple[kdstore.Store, int]]:
    build(store, world)
    yield store, store.train_student(1, features="px", **FAST)


def _cols() -> str:
    return ", ".join(f"f{j}" for j in range(D))


# -- reading the distillation set ---------------------------------------------------------------
def test_targets_aggregation_by_hand(store: kdstore.Store) -> None:
    store.add_labels(LABELS)
    store.add_examples(pa.table({"example_id": [1, 2, 3], "split": ["train", "train", "test"]}))
    # multilabel: example 1, label 0 from two teachers (targets 1 and 0, weights 1 and 3); label 2 has no row
    _insert_targets(store, {"example_id": [1, 1, 1, 2, 3], "label_id": [0, 0, 1, 1, 2], "target": [1.0, 0.0, 0.5, 1.0, 1.0],
                            "weight": [1.0, 3.0, 2.0, 1.0, 9.0]})
    info = sdata.run_info(store, 1)
    assert info.task == "multilabel"  # example 1 sums to 1.5: not a distribution
    assert info.label_ids == (0, 1)  # label 2 only has a test-split target: never read
    got = sdata.read_targets(store, info, "train")
    assert got.ids.tolist() == [1, 2]
    assert [[Fraction(float(v)).limit_denominator(100) for v in r] for r in got.y] == [[Fraction(1, 4), Fraction(1, 2)], [0, 1]]
    assert got.w.tolist() == [[4.0, 2.0], [0.0, 1.0]]  # 0 = masked (no target for label 0 of example 2)
    # the same rows read as multiclass: per example, targets summed per label then normalised
    mc = sdata.read_targets(store, sdata.run_info(store, 1, "multiclass"), "train")
    np.testing.assert_allclose(mc.y, [[1 / 1.5, 0.5 / 1.5], [0.0, 1.0]])
    np.testing.assert_allclose(mc.w, [(1 * 1 + 3 * 0 + 2 * 0.5) / 1.5, 1.0])  # target-weighted mean weight
    with pytest.raises(ValueError, match="not readable"):
        sdata.read_targets(store, info, "test")


def test_task_from_params_or_inferred(store: kdstore.Store, world: dict[str, np.ndarray]) -> None:
    build(store, world, run_params={})
    assert sdata.run_info(store, 1).task == "multiclass"  # every train example sums to 1
    store.run("UPDATE kd.runs SET params = ? WHERE run_id = 1", [json.dumps({"task": "multilabel"})])
    assert sdata.run_info(store, 1).task == "multilabel"
    assert sdata.run_info(store, 1, "multiclass").task == "multiclass"
    with pytest.raises(SchemaError, match="no targets"):
        sdata.run_info(store, 99)


def test_bad_targets_are_named(store: kdstore.Store) -> None:
    store.add_labels(LABELS)
    store.add_examples(pa.table({"example_id": [1], "split": ["train"]}))
    _insert_targets(store, {"example_id": [1], "label_id": [0], "target": [1.5]})
    with pytest.raises(SchemaError, match=r"target 1.5 of example 1, label 0"):
        sdata.read_targets(store, sdata.run_info(store, 1, "multilabel"), "train")


# -- training + registry ----------------------------------------------------------------------
def test_train_register_and_load(trained: tuple[kdstore.Store, int], world: dict[str, np.ndarray]) -> None:
    store, mid = trained
    m = store.models.load(mid)
    assert store.models.load(m.name).model_id == store.models.load(str(mid)).model_id == mid
    assert m.name == f"student_{mid}" and m.run_id == 1 and m.task == "multiclass"
    assert m.labels == LABELS and m.label_ids == [0, 1, 2]
    assert m.features.columns == tuple(f"f{j}" for j in range(D))
    assert m.params["hyper_parameters"]["hidden"] == [16]
    curve = m.metrics["curve"]
    assert 1 <= len(curve) <= 8 and all(c["valid_loss"] is not None for c in curve)
    assert m.metrics["valid"]["source"] == "gold" and m.metrics["valid"]["examples"] == 200
    assert m.metrics["test"]["examples"] == 200 and set(m.metrics["test"]["labels"]) == set(LABELS)
    assert m.metrics["valid"]["accuracy"] > 0.8 and m.metrics["test"]["accuracy"] > 0.8
    md = m.metadata()
    assert json.loads(md["kdstore.labels"]) == LABELS and md["kdstore.model_name"] == m.name
    rows = store.models.list().to_pylist()
    assert [r["model_id"] for r in rows] == [mid] and rows[0]["task"] == "multiclass"
    assert rows[0]["test_accuracy"] == pytest.approx(m.metrics["test"]["accuracy"])
    # names are unique; replace=True swaps the model
    with pytest.raises(SchemaError, match="exists"):
        store.train_student(1, features="px", name=m.name, **FAST)
    mid2 = store.train_student(1, features="px", name=m.name, replace=True, **{**FAST, "seed": 3})
    assert store.models.load(m.name).model_id == mid2 != mid
    with pytest.raises(KdstoreError, match="no student model"):
        store.models.load(mid)
    store.models.delete(mid2)
    assert store.models.list().num_rows == 0


def test_per_label_metrics_match_a_numpy_count(trained: tuple[kdstore.Store, int], world: dict[str, np.ndarray]) -> None:
    store, mid = trained
    m = store.models.load(mid)
    test = world["split"] == "test"
    pred = m.run(world["X"][test])["scores"].argmax(1)
    gold = world["P"][test].argmax(1)
    for k, name in enumerate(LABELS):
        tp, fp, fn = int(((pred == k) & (gold == k)).sum()), int(((pred == k) & (gold != k)).sum()), int(((pred != k) & (gold == k)).sum())
        got = m.metrics["test"]["labels"][name]
        assert got["support"] == tp + fn
        assert got["precision"] == pytest.approx(tp / (tp + fp))
        assert got["recall"] == pytest.approx(tp / (tp + fn))
    assert m.metrics["test"]["accuracy"] == pytest.approx(float((pred == gold).mean()))


def test_candidates_keep_the_best_on_valid_and_record_every_one(store: kdstore.Store, world: dict[str, np.ndarray]) -> None:
    build(store, world)
    cands = [{"hidden": (), "epochs": 1, "learning_rate": 1e-4}, {"hidden": (16,)}, {"hidden": (8, 8), "dropout": 0.1}]
    mid = store.train_student(1, features="px", candidates=cands, **FAST)
    m = store.models.load(mid)
    tried = m.metrics["candidates"]
    assert [t["hyper_parameters"]["hidden"] for t in tried] == [[], [16], [8, 8]]
    scores = [t["valid_score"] for t in tried]
    chosen = m.metrics["chosen_candidate"]
    assert scores[chosen] == max(scores) == m.metrics["valid"]["accuracy"]
    assert scores[0] < max(scores)  # one epoch of a tiny step size cannot be the best
    assert m.params["hyper_parameters"] == tried[chosen]["hyper_parameters"]
    # the kept model is the chosen candidate trained alone (same seed, same data): same valid numbers
    alone = store.models.load(store.train_student(1, features="px", name="alone", **{**FAST, **cands[chosen]}))
    assert alone.metrics["valid"]["accuracy"] == m.metrics["valid"]["accuracy"]
    assert alone.metrics["valid"]["loss"] == pytest.approx(m.metrics["valid"]["loss"], rel=1e-6)
    assert "candidates" not in alone.metrics


def test_bad_candidates_are_named_and_store_nothing(store: kdstore.Store, world: dict[str, np.ndarray]) -> None:
    build(store, world)
    for cands, col in [([{"hidden": (4,)}, {"dropout": 1.5}], "candidates[1].dropout"),
                       ([{"hiden": (4,)}], "candidates[0].hiden"), ([5], "candidates[0]"), ([], "candidates"),
                       ({"hidden": (4,)}, "candidates")]:
        with pytest.raises(SchemaError) as err:
            store.train_student(1, features="px", candidates=cands, **FAST)
        assert err.value.column == col, (cands, err.value)
    assert store.one("SELECT count(*) FROM kd.models")[0] == 0


def test_candidates_need_a_valid_split(store: kdstore.Store, world: dict[str, np.ndarray]) -> None:
    w = {**world, "split": np.where(world["split"] == "valid", "test", world["split"])}
    build(store, w)
    with pytest.raises(SchemaError, match="needs a valid split"):
        store.train_student(1, features="px", candidates=[{"hidden": (4,)}, {"hidden": ()}], **FAST)
    assert store.one("SELECT count(*) FROM kd.models")[0] == 0


def test_valid_targets_when_there_is_no_gold(store: kdstore.Store, world: dict[str, np.ndarray]) -> None:
    build(store, world, gold=False)
    va = np.flatnonzero(world["split"] == "valid")
    _insert_targets(store, {"example_id": np.repeat(world["ids"][va], K), "label_id": np.tile(np.arange(K), va.size),
                            "target": world["P"][va].ravel()})
    m = store.models.load(store.train_student(1, features="px", **FAST))
    assert m.metrics["valid"]["source"] == "targets" and m.metrics["valid"]["examples"] == 200
    assert m.metrics["test"] == {"source": "none", "examples": 0}


def test_no_validation_split_trains_all_epochs(store: kdstore.Store, world: dict[str, np.ndarray]) -> None:
    build(store, world, gold=False)
    m = store.models.load(store.train_student(1, features="px", **{**FAST, "epochs": 3}))
    assert m.metrics["valid"] == {"source": "none", "examples": 0}
    assert len(m.metrics["curve"]) == 3 and m.metrics["best_epoch"] == 3


def test_test_split_is_never_read_for_choices(world: dict[str, np.ndarray]) -> None:
    """Poison everything of the test split: features, targets, gold. The model must not change."""

    def train(poison: bool) -> tuple[bytes, dict[str, Any]]:
        w = {k: v.copy() for k, v in world.items()}
        test = w["split"] == "test"
        if poison:
            w["X"][test] = np.random.default_rng(1).standard_normal((int(test.sum()), D)).astype(np.float32) * 1e4
            w["P"][test] = w["P"][test][:, ::-1]  # flipped gold
        with kdstore.connect() as s:
            build(s, w)
            if poison:
                te = w["ids"][test]
                _insert_targets(s, {"example_id": np.repeat(te, K), "label_id": np.tile(np.arange(K), te.size),
                                    "target": np.tile([1.0, 0.0, 0.0], te.size), "weight": [50.0] * (te.size * K)})
            m = s.models.load(s.train_student(1, features="px", **FAST))
            return m.onnx, m.metrics

    clean, poisoned = train(False), train(True)
    assert clean[0] == poisoned[0]  # identical graph: weights, standardisation, early-stopping epoch
    strip = [{k: v for k, v in c.items() if k not in ("seconds", "cpu_seconds", "examples_per_second")} for c in clean[1]["curve"]]
    assert strip == [{k: v for k, v in c.items() if k not in ("seconds", "cpu_seconds", "examples_per_second")} for c in poisoned[1]["curve"]]
    assert clean[1]["test"]["accuracy"] != poisoned[1]["test"]["accuracy"]  # the test metrics did see the poison


def test_missing_features_are_an_error(store: kdstore.Store, world: dict[str, np.ndarray]) -> None:
    build(store, world)
    ids = world["ids"][5:]
    store.register_features("partial", pa.table({"example_id": ids, **{f"f{j}": world["X"][5:, j] for j in range(D)}}))
    with pytest.raises(SchemaError, match=r"5 training examples have no features \(first: example 1000\)"):
        store.train_student(1, features="partial", **FAST)
    with pytest.raises(SchemaError, match="no feature source named 'nope'"):
        store.train_student(1, features="nope", **FAST)
    with pytest.raises(SchemaError, match="column 'zz'"):
        store.train_student(1, features="px", columns=["f0", "zz"], **FAST)
    with pytest.raises(SchemaError, match="unknown hyper-parameter"):
        store.train_student(1, features="px", hiden=(3,))


def test_list_column_and_teacher_embeddings_as_input(store: kdstore.Store, world: dict[str, np.ndarray]) -> None:
    build(store, world)
    X = world["X"]
    vec = pa.array(list(X), pa.list_(pa.float32()))
    store.register_features("vec", pa.table({"example_id": world["ids"], "x": vec}))
    store.add_teacher("enc", labels=[], output_type="embedding")
    store.ingest_embeddings("enc", pa.table({"example_id": world["ids"], "vector": vec}))
    a = store.models.load(store.train_student(1, features="px", **FAST))
    b = store.models.load(store.train_student(1, features="vec", **FAST))
    c = store.models.load(store.train_student(1, features=Embeddings("enc"), **FAST))
    assert b.features.list_column and b.features.dim == D
    assert c.features.kind == "embeddings" and c.features.name == "enc"
    # the same numbers in three layouts give the same model
    for other in (b, c):
        np.testing.assert_array_equal(a.run(X)["scores"], other.run(X)["scores"])
    p = store.predict(c)
    assert p.num_rows == N and p.column("example_id").to_pylist() == world["ids"].tolist()


def test_embedding_teacher_with_a_label_head(store: kdstore.Store, world: dict[str, np.ndarray]) -> None:
    build(store, world)
    E = np.tanh(world["X"] @ np.random.default_rng(3).standard_normal((D, 4))).astype(np.float32)
    store.add_teacher("bert", labels=[], output_type="embedding")
    store.ingest_embeddings("bert", pa.table({"example_id": world["ids"], "vector": pa.array(list(E), pa.list_(pa.float32()))}))
    m = store.models.load(store.train_student(1, features="px", embedding_teacher="bert", **{**FAST, "epochs": 20}))
    assert m.outputs == {"scores": K, "embedding": 4} and m.params["embedding_teacher"] == "bert"
    assert m.metrics["valid"]["embedding"]["cosine"] > 0.9 and m.metrics["test"]["embedding"]["examples"] == 200
    only = store.models.load(store.train_student(None, features="px", embedding_teacher="bert", **FAST))
    assert only.task == "embedding" and only.outputs == {"embedding": 4} and only.labels == []
    got = store.query(f"SELECT kd_embed('{m.name}', {_cols()}) AS e, kd_predict('{only.name}', {_cols()}) AS o "
                      "FROM features.px ORDER BY example_id LIMIT 4")
    np.testing.assert_array_equal(np.array(got.column("e").to_pylist(), np.float32), m.run(world["X"][:4])["embedding"])
    np.testing.assert_array_equal(np.array(got.column("o").to_pylist(), np.float32), only.run(world["X"][:4])["embedding"])


# -- serving ----------------------------------------------------------------------------------
def test_fresh_session_store_predict_and_sql_agree(trained: tuple[kdstore.Store, int], world: dict[str, np.ndarray],
                                                   tmp_path: Path) -> None:
    import onnxruntime as ort

    store, mid = trained
    m = store.models.load(mid)
    path = store.models.export(mid, tmp_path / "student.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])  # fresh, default options
    want = sess.run(["scores"], {"features": world["X"]})[0]
    np.testing.assert_allclose(want, m.run(world["X"])["scores"], rtol=0, atol=1e-6)

    p = store.predict(mid)  # the model's own feature source, streamed out of DuckDB
    assert p.column_names == ["example_id", "scores", "label"]
    assert p.column("example_id").to_pylist() == world["ids"].tolist()
    np.testing.assert_allclose(np.array(p.column("scores").to_pylist(), np.float32), want, atol=1e-6)
    assert p.column("label").to_pylist() == [LABELS[i] for i in want.argmax(1)]

    q = store.query(f"SELECT example_id, kd_predict('{m.name}', {_cols()}) AS p, kd_predict_label('{mid}', {_cols()}) AS l, "
                    f"kd_predict('{m.name}', [{_cols()}]) AS pl FROM features.px ORDER BY example_id")
    sql = np.array(q.column("p").to_pylist(), np.float32)
    np.testing.assert_allclose(sql, want, atol=1e-6)
    np.testing.assert_array_equal(sql, np.array(p.column("scores").to_pylist(), np.float32))  # same session, same numbers
    np.testing.assert_array_equal(np.array(q.column("pl").to_pylist(), np.float32), sql)
    assert q.column("l").to_pylist() == p.column("label").to_pylist()

    # the long shape of kd.outputs (what trust models take as student feedback)
    lg = store.predict(mid, split="valid", long=True)
    assert lg.column_names == ["example_id", "label_id", "score"] and lg.num_rows == 200 * K
    valid = np.flatnonzero(world["split"] == "valid")
    np.testing.assert_array_equal(np.asarray(lg.column("score")).reshape(-1, K), sql[valid])
    assert lg.column("label_id").to_pylist()[:K] == [0, 1, 2]
    assert lg.column("example_id").to_pylist()[:K] == [int(world["ids"][valid[0]])] * K
    assert m.predict(world["X"][:2], long=True).column_names == ["row", "label_id", "score"]

    # one split only; in-memory inputs (Arrow with example_id, NumPy)
    assert store.predict(mid, split="test").column("example_id").to_pylist() == world["ids"][-200:].tolist()
    t = pa.table({f"f{j}": world["X"][:3, j] for j in reversed(range(D))})  # column order does not matter
    np.testing.assert_array_equal(np.array(store.predict(mid, t).column("scores").to_pylist(), np.float32), sql[:3])
    np.testing.assert_array_equal(np.array(m.predict(world["X"][:3]).column("scores").to_pylist(), np.float32), sql[:3])


def test_sql_function_over_any_table_and_nulls(trained: tuple[kdstore.Store, int], world: dict[str, np.ndarray]) -> None:
    store, mid = trained
    m = store.models.load(mid)
    x = world["X"][:2]
    store.run("CREATE TABLE mine (id INTEGER, " + ", ".join(f"f{j} DOUBLE" for j in range(D)) + ")")
    store.run_many("INSERT INTO mine VALUES (" + ", ".join("?" * (D + 1)) + ")",
                   [[1, *map(float, x[0])], [2, *map(float, x[1])], [3, None, *map(float, x[1][1:])]])
    got = store.query(f"SELECT id, kd_predict({mid}, {_cols()}) AS p FROM mine ORDER BY id").to_pylist()
    np.testing.assert_allclose(np.array([got[0]["p"], got[1]["p"]]), m.run(x)["scores"], atol=1e-6)
    assert got[2]["p"] is None  # a NULL input gives NULL
    two = store.query(f"SELECT kd_predict(CASE WHEN id = 1 THEN '{m.name}' ELSE '{mid}' END, {_cols()}) AS p FROM mine "
                      "WHERE id < 3 ORDER BY id").column("p").to_pylist()
    np.testing.assert_allclose(np.array(two), m.run(x)["scores"], atol=1e-6)


def test_bad_features_at_predict_time(trained: tuple[kdstore.Store, int], world: dict[str, np.ndarray]) -> None:
    store, mid = trained
    m = store.models.load(mid)
    good = {f"f{j}": world["X"][:4, j] for j in range(D)}
    with pytest.raises(SchemaError, match=r"column 'f3': missing feature column"):
        m.predict(pa.table({k: v for k, v in good.items() if k != "f3"}))
    with pytest.raises(SchemaError, match=r"column 'f2': feature column must be numeric, got string"):
        m.predict(pa.table({**good, "f2": ["a", "b", "c", "d"]}))
    with pytest.raises(SchemaError, match=r"column 'f1', row 2: null feature value"):
        m.predict(pa.table({**good, "f1": pa.array([1.0, 2.0, None, 4.0])}))
    with pytest.raises(SchemaError, match=r"expected a matrix of shape \(rows, 6\), got shape \(4, 5\)"):
        m.predict(world["X"][:4, :5])
    with pytest.raises(SchemaError, match="expected numeric features, got dtype <U1"):
        m.predict(np.full((2, D), "x"))
    store.register_features("short", pa.table({"example_id": world["ids"], "x": pa.array(list(world["X"][:, :4]), pa.list_(pa.float32()))}))
    with pytest.raises(SchemaError, match=r"features.\"short\", column 'f0': no such column"):
        store.predict(mid, "short")
    holes = {f"f{j}": pa.array(world["X"][:, j]) for j in range(D)}
    holes["f4"] = pa.array([None if i == 3 else float(v) for i, v in enumerate(world["X"][:, 4])], pa.float64())
    store.register_features("holes", pa.table({"example_id": world["ids"], **holes}))
    with pytest.raises(SchemaError, match=r"column 'f4', row 3: null feature value"):
        store.predict(mid, "holes")
    store.register_features("vec", pa.table({"example_id": world["ids"], "x": pa.array(list(world["X"]), pa.list_(pa.float32()))}))
    lm = store.train_student(1, features="vec", **{**FAST, "epochs": 1})
    with pytest.raises(SchemaError, match=r"reads 6 values per example, .*short.* has 4"):
        store.predict(lm, "short")
    with pytest.raises(duckdb.Error, match=r"expects 6 feature arguments \(f0, f1, f2, f3, f4, f5\) or one list of 6 values, got 5"):
        store.query(f"SELECT kd_predict('{m.name}', f0, f1, f2, f3, f4) FROM features.px")
    with pytest.raises(duckdb.Error, match=r"argument 3 \(feature 'f1'\) must be numeric, got string"):
        store.query(f"SELECT kd_predict('{m.name}', f0, 'x', f2, f3, f4, f5) FROM features.px")
    with pytest.raises(duckdb.Error, match="expected 6 values per row, got 2"):
        store.query(f"SELECT kd_predict('{m.name}', [f0, f1]) FROM features.px")
    with pytest.raises(duckdb.Error, match="no student model 'nope'"):
        store.query(f"SELECT kd_predict('nope', {_cols()}) FROM features.px")


def test_sql_functions_registered_on_connect(tmp_path: Path, world: dict[str, np.ndarray]) -> None:
    path = tmp_path / "s.duckdb"
    with kdstore.connect(path) as s:
        build(s, world)
        with pytest.raises(duckdb.Error, match="kd_predict"):
            s.query("SELECT kd_predict('x', 1.0)")  # no student yet: nothing registered
        mid = s.train_student(1, features="px", **FAST)
        want = s.query(f"SELECT kd_predict({mid}, {_cols()}) AS p FROM features.px ORDER BY example_id LIMIT 5")
    for ro in (False, True):
        with kdstore.connect(path, read_only=ro) as s:
            got = s.query(f"SELECT kd_predict('student_{mid}', {_cols()}) AS p FROM features.px ORDER BY example_id LIMIT 5")
            assert got.equals(want)


# -- CLI --------------------------------------------------------------------------------------
def test_cli_train_export_predict(tmp_path: Path, world: dict[str, np.ndarray], capsys: pytest.CaptureFixture[str]) -> None:
    import onnxruntime as ort
    import pyarrow.parquet as pq

    from kdstore.cli import main

    path = str(tmp_path / "c.duckdb")
    with kdstore.connect(path) as s:
        build(s, world)
    assert main(["train", path, "--run", "1", "--features", "px", "--hidden", "16", "--epochs", "3", "--lr", "0.005",
                 "--name", "tiny", "-q"]) == 0
    out = capsys.readouterr().out
    assert "trained tiny (model 1, multiclass" in out and "valid (gold): 200 examples" in out
    assert main(["models", path]) == 0 and "tiny" in capsys.readouterr().out
    assert main(["export", path, "tiny", str(tmp_path / "m.onnx")]) == 0
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert main(["predict", path, "1", "--split", "valid", "-o", str(tmp_path / "p.parquet")]) == 0
    t = pq.read_table(tmp_path / "p.parquet")
    assert t.num_rows == 200 and t.column_names == ["example_id", "scores", "label"]
    valid = world["split"] == "valid"
    np.testing.assert_allclose(np.array(t.column("scores").to_pylist(), np.float32),
                               sess.run(["scores"], {"features": world["X"][valid]})[0], atol=1e-6)
    assert main(["predict", path, "nope", "-o", str(tmp_path / "x.parquet")]) == 1
    assert "no student model 'nope'" in capsys.readouterr().err
    assert main(["train", path, "--run", "1", "--features", "px", "--dropout", "2"]) == 1
    assert "dropout" in capsys.readouterr().err
    assert main(["train", path, "--run", "1", "--features", "px", "--epochs", "3", "--name", "picked", "-q",
                 "--candidates", '[{"hidden": []}, {"hidden": [16], "learning_rate": 0.005}]']) == 0
    out = capsys.readouterr().out
    assert "candidate 0: hidden []" in out and "candidate 1: hidden [16]" in out and out.count("(kept)") == 1
    assert main(["train", path, "--run", "1", "--features", "px", "--candidates", "[{hidden: 3}"]) == 1
    assert "--candidates must be a JSON list" in capsys.readouterr().err
    assert main(["train", path, "--run", "1", "--features", "px", "--candidates", '[{"hidden": [4]}, {"dropout": 7}]']) == 1
    assert "candidates[1].dropout" in capsys.readouterr().err
