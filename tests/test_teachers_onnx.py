"""ONNX teachers: parity with ONNX Runtime and with NumPy forward passes, output handling, inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pytest

import kdstore
from kdstore.teachers import OnnxTeacher
from tests import onnx_models as om

N, D = 300, 4


@pytest.fixture
def x() -> np.ndarray:
    return np.random.default_rng(42).normal(size=(N, D)).astype(np.float32)


def _ort(model: object, feeds: dict[str, np.ndarray], names: list[str]) -> list[np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])  # type: ignore[attr-defined]
    return list(sess.run(names, feeds))


def test_multiclass_parity_with_ort_and_numpy(store: kdstore.Store, tmp_path: Path, x: np.ndarray) -> None:
    m = om.mlp()
    om.populate(store, x)
    path = om.save(m.model, tmp_path / "mlp.onnx")
    report = store.run_teachers([OnnxTeacher(path, labels=["a", "b", "c"])], features="f", batch_size=64)
    assert report["mlp"].status == "ran" and report["mlp"].rows == N
    ids, scores = om.stored(store, "mlp")
    assert ids.tolist() == list(range(N))
    (direct,) = _ort(m.model, {"x": x}, ["probs"])
    np.testing.assert_allclose(scores, direct, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(scores, m.forward(x)["probs"], atol=1e-6)
    long = store.query("SELECT example_id, label_id, score FROM kd.outputs WHERE example_id = 5 ORDER BY label_id")
    assert long.column("score").to_pylist() == pytest.approx(direct[5].tolist(), rel=1e-6)


def test_intermediate_tensor_as_embedding_matches_numpy(store: kdstore.Store, tmp_path: Path, x: np.ndarray) -> None:
    m = om.mlp(hidden=(8, 6))
    om.populate(store, x)
    path = om.save(m.model, tmp_path / "mlp.onnx")
    with_emb = OnnxTeacher(path, name="clf", labels=["a", "b", "c"], embedding="hidden1")
    emb_only = OnnxTeacher(path, name="h2", output_type="embedding", output="hidden2")
    store.run_teachers([with_emb, emb_only], features="f")
    oracle = m.forward(x)
    ids, h1 = om.stored(store, "clf", "embeddings")
    assert ids.tolist() == list(range(N)) and h1.shape == (N, 8)
    np.testing.assert_allclose(h1, oracle["hidden1"], atol=1e-5)
    _, h2 = om.stored(store, "h2", "embeddings")
    np.testing.assert_allclose(h2, oracle["hidden2"], atol=1e-5)
    _, scores = om.stored(store, "clf")
    np.testing.assert_allclose(scores, oracle["probs"], atol=1e-6)
    assert om.stored(store, "h2")[0].size == 0  # an embedding teacher stores no scores
    # the model file itself was not edited
    assert [o.name for o in m.model.graph.output] == ["probs"]
    assert Path(path).read_bytes() == m.model.SerializeToString()


def test_binary_logistic_regression(store: kdstore.Store, tmp_path: Path, x: np.ndarray) -> None:
    model, w, b = om.logistic_regression(D)
    om.populate(store, x)
    path = om.save(model, tmp_path / "lr.onnx")
    store.run_teachers([OnnxTeacher(path, labels=["b"], output_type="binary")], features="f")
    _, scores = om.stored(store, "lr")
    expect = 1 / (1 + np.exp(-(x.astype(np.float64) @ w.astype(np.float64) + b)))
    np.testing.assert_allclose(scores, expect, atol=1e-6)
    got = store.query("SELECT DISTINCT label_id FROM kd.outputs").column(0).to_pylist()
    assert got == [1]  # label 'b'


def test_binary_two_logits_multiclass_logits_and_multilabel(store: kdstore.Store, tmp_path: Path, x: np.ndarray) -> None:
    two = om.mlp(k=2, softmax=False, seed=3)
    three = om.mlp(k=3, softmax=False, seed=4)
    om.populate(store, x)
    p2 = om.save(two.model, tmp_path / "two.onnx")
    p3 = om.save(three.model, tmp_path / "three.onnx")
    store.run_teachers([
        OnnxTeacher(p2, name="bin", labels=["c"], output_type="binary", scores="logits"),
        OnnxTeacher(p3, name="mc", labels=["a", "b", "c"], output_type="multiclass", scores="logits"),
        OnnxTeacher(p3, name="ml", labels=["a", "b", "c"], output_type="multilabel", scores="logits"),
    ], features="f")
    z2 = two.forward(x)["logits"]
    np.testing.assert_allclose(om.stored(store, "bin")[1][:, 0], 1 / (1 + np.exp(-(z2[:, 1] - z2[:, 0]))), atol=1e-6)
    np.testing.assert_allclose(om.stored(store, "mc")[1], three.forward(x)["probs"], atol=1e-6)
    np.testing.assert_allclose(om.stored(store, "ml")[1], 1 / (1 + np.exp(-three.forward(x)["logits"])), atol=1e-6)


def test_logits_registered_as_probabilities_is_refused(store: kdstore.Store, tmp_path: Path, x: np.ndarray) -> None:
    m = om.mlp(softmax=False, seed=5)
    om.populate(store, x)
    path = om.save(m.model, tmp_path / "raw.onnx")
    with pytest.raises(kdstore.TeacherError, match=r"raw.*(outside \[0, 1\]|sum to).*scores='logits'"):
        store.run_teachers([OnnxTeacher(path, labels=["a", "b", "c"])], features="f")
    assert om.stored(store, "raw")[0].size == 0


def test_regression_and_output_choice(store: kdstore.Store, tmp_path: Path, x: np.ndarray) -> None:
    model, w = om.multi_output(D)
    om.populate(store, x)
    path = om.save(model, tmp_path / "multi.onnx")
    default = OnnxTeacher(path, name="dflt", labels=["a", "b", "c"])
    assert default.output == "probs"  # the first float output ('label' is int64)
    reg = OnnxTeacher(path, name="reg", labels=["a"], output_type="regression", output="score")
    store.run_teachers([default, reg], features="f")
    np.testing.assert_allclose(om.stored(store, "reg")[1][:, 0], x.astype(np.float64).sum(axis=1), atol=1e-5)
    z = x.astype(np.float64) @ w.astype(np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(om.stored(store, "dflt")[1], e / e.sum(axis=1, keepdims=True), atol=1e-6)


def test_nan_output_fails_and_writes_nothing(store: kdstore.Store, tmp_path: Path, x: np.ndarray) -> None:
    model, _ = om.multi_output(D)
    om.populate(store, x)
    path = om.save(model, tmp_path / "multi.onnx")
    with pytest.raises(kdstore.TeacherError, match=r"teacher 'nan'.*NaN or infinite.*writes nothing"):
        store.run_teachers([OnnxTeacher(path, name="nan", labels=["a"], output_type="regression", output="bad")],
                           features="f", batch_size=50)
    assert om.stored(store, "nan")[0].size == 0
    assert store.teachers.info("nan").rows == 0


def test_wrong_shape_found_at_registration_and_at_run(store: kdstore.Store, tmp_path: Path, x: np.ndarray) -> None:
    m = om.mlp(k=3)
    om.populate(store, x, labels=("a", "b", "c", "d"))
    path = om.save(m.model, tmp_path / "mlp.onnx")
    with pytest.raises(kdstore.TeacherError, match=r"probs:float32\[\?,3\] has 3 values per example; a multiclass teacher with 4"):
        store.teachers.add(OnnxTeacher(path, labels=["a", "b", "c", "d"]))
    assert "mlp" not in store.teachers
    shapeless = om.save(om.strip_output_shapes(m.model), tmp_path / "shapeless.onnx")
    with pytest.raises(kdstore.TeacherError, match=r"has 3 values per example but the teacher has 4 labels \(wrong shape\)"):
        store.run_teachers([OnnxTeacher(shapeless, labels=["a", "b", "c", "d"])], features="f")
    assert om.stored(store, "shapeless")[0].size == 0


def test_fixed_batch_dimension_is_chunked(store: kdstore.Store, tmp_path: Path, x: np.ndarray) -> None:
    m = om.mlp(batch=7, seed=9)
    om.populate(store, x)
    path = om.save(m.model, tmp_path / "fixed.onnx")
    store.run_teachers([OnnxTeacher(path, labels=["a", "b", "c"])], features="f", batch_size=50)
    ids, scores = om.stored(store, "fixed")
    assert ids.size == N
    np.testing.assert_allclose(scores, m.forward(x)["probs"], atol=1e-6)


def test_list_column_and_mapped_columns_feed_the_same(store: kdstore.Store, tmp_path: Path, x: np.ndarray) -> None:
    m = om.mlp(seed=11)
    om.populate(store, x, name="cols")
    om.populate(store, x, name="vec", list_column=True)
    reordered = pa.table({"example_id": np.arange(N), **{f"z{j}": x[:, 3 - j] for j in range(D)}})
    store.register_features("rev", reordered)
    path = om.save(m.model, tmp_path / "m.onnx")
    store.run_teachers([OnnxTeacher(path, name="t_cols", labels=["a", "b", "c"])], features="cols")
    store.run_teachers([OnnxTeacher(path, name="t_vec", labels=["a", "b", "c"])], features="vec")
    store.run_teachers([OnnxTeacher(path, name="t_map", labels=["a", "b", "c"], inputs={"x": ["z3", "z2", "z1", "z0"]})],
                       features="rev")
    base = om.stored(store, "t_cols")[1]
    np.testing.assert_allclose(base, m.forward(x)["probs"], atol=1e-6)
    np.testing.assert_array_equal(om.stored(store, "t_vec")[1], base)
    np.testing.assert_array_equal(om.stored(store, "t_map")[1], base)


def test_text_teacher_runs_on_text_features(store: kdstore.Store, tmp_path: Path) -> None:
    store.add_labels(["spam"])
    store.add_examples(pa.table({"example_id": [1, 2, 3], "split": ["train"] * 3}))
    store.register_features("texts", pa.table({"example_id": [1, 2, 3], "body": ["spam", "ham", "spam"]}))
    path = om.save(om.text_model(), tmp_path / "spam.onnx")
    store.run_teachers([OnnxTeacher(path, labels=["spam"], output_type="binary")], features="texts")
    assert om.stored(store, "spam")[1][:, 0].tolist() == [1.0, 0.0, 1.0]


def test_null_feature_is_an_error(store: kdstore.Store, tmp_path: Path, x: np.ndarray) -> None:
    om.populate(store, x)
    table = pa.table({"example_id": np.arange(N), **{f"c{j}": pa.array([*x[:, j].tolist()[:-1], None], pa.float32())
                                                      for j in range(D)}})
    store.register_features("holes", table)
    path = om.save(om.mlp().model, tmp_path / "mlp.onnx")
    with pytest.raises(kdstore.TeacherError, match=rf"feature column 'c0' is null for example {N - 1}"):
        store.run_teachers([OnnxTeacher(path, labels=["a", "b", "c"])], features="holes")
    assert om.stored(store, "mlp")[0].size == 0


def test_unknown_tensor_name(store: kdstore.Store, tmp_path: Path, x: np.ndarray) -> None:
    om.populate(store, x)
    path = om.save(om.mlp().model, tmp_path / "mlp.onnx")
    with pytest.raises(kdstore.TeacherError, match=r"computes no tensor named 'hidden9' \(embedding\).*hidden1"):
        store.teachers.add(OnnxTeacher(path, labels=["a", "b", "c"], embedding="hidden9"))


def test_bad_output_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(kdstore.TeacherError, match="exactly one label"):
        OnnxTeacher(tmp_path / "m.onnx", labels=["a", "b"], output_type="binary")
    with pytest.raises(kdstore.TeacherError, match="vote teachers are ingested"):
        OnnxTeacher(tmp_path / "m.onnx", labels=["a"], output_type="vote")
    with pytest.raises(kdstore.TeacherError, match="scores must be one of"):
        OnnxTeacher(tmp_path / "m.onnx", labels=["a"], scores="odds")
    with pytest.raises(kdstore.TeacherError, match="has no labels"):
        OnnxTeacher(tmp_path / "m.onnx", labels=["a"], output_type="embedding")
