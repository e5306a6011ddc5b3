"""The digits demo: teacher corpus, ONNX export parity, store contents, determinism, CLI output."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import kdstore
from kdstore import demo
from kdstore.cli import main
from kdstore.errors import ExportError, KdstoreError


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> demo.DemoResult:
    path = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    return demo.build_demo(path, seed=0)


def _scores(path: str) -> pa.Table:
    with kdstore.connect(path, read_only=True) as s:
        return s.query(
            "SELECT t.name, s.example_id, s.scores FROM kd.scores s JOIN kd.teachers t USING (teacher_id) "
            "ORDER BY t.name, s.example_id"
        )


def _features(path: str) -> tuple[np.ndarray, np.ndarray]:
    with kdstore.connect(path, read_only=True) as s:
        tbl = s.query('SELECT * FROM features."digits" ORDER BY example_id')
    return tbl.column("example_id").to_numpy(), np.column_stack([tbl.column(c).to_numpy() for c in demo.PIXELS])


def _numpy_forward(model_path: Path, x: np.ndarray) -> np.ndarray:
    """Oracle: the exported graph evaluated in NumPy from its initializers (no ONNX Runtime)."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(model_path))
    w = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in m.graph.initializer}
    h = (x.astype(np.float64) - w["mean"]) / w["scale"]
    n_layers = sum(1 for k in w if k.startswith("W"))
    for i in range(n_layers):
        h = h @ w[f"W{i}"] + w[f"b{i}"]
        if i < n_layers - 1:
            h = np.maximum(h, 0.0)
    if h.shape[1] == 1:
        return np.asarray(1.0 / (1.0 + np.exp(-h)))
    e = np.exp(h - h.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def test_teacher_corpus(built: demo.DemoResult) -> None:
    with kdstore.connect(built.path, read_only=True) as s:
        info = s.info()
        rows = s.execute(
            "SELECT t.name, t.kind, t.output_type, t.uri, t.fingerprint, list(l.name ORDER BY tl.output_index) "
            "FROM kd.teachers t JOIN kd.teacher_labels tl USING (teacher_id) JOIN kd.labels l USING (label_id) "
            "GROUP BY ALL ORDER BY t.name"
        ).fetchall()
    assert len(rows) == len(demo.TEACHERS) == 17
    assert {r[1] for r in rows} == {"onnx"}
    assert Counter(r[2] for r in rows) == {"binary": 12, "multiclass": 5}
    assert Counter(t.role for t in demo.TEACHERS) == {"specialist": 10, "generalist": 3, "bad": 2, "adversarial": 2}
    by_name = {t.spec.name: t for t in built.teachers}
    for name, _, out_type, uri, fp, labels in rows:
        spec = by_name[name].spec
        assert labels == [str(d) for d in spec.labels]
        assert out_type == spec.output_type
        assert Path(uri).parent == built.teachers_dir.resolve() and Path(uri).is_file()
        assert fp is not None and by_name[name].sha256 in fp  # the model file's sha256
    assert all(t["rows"] == sum(info.splits.values()) for t in info.teachers)
    assert info.feature_sources == ["digits"]


def test_splits_gold_and_features(built: demo.DemoResult) -> None:
    x, y = demo.load_digits()
    sp = built.split
    assert x.shape == (1797, 64)
    everything = np.concatenate([sp.pool, sp.train, sp.valid, sp.test])
    assert np.array_equal(np.sort(everything), np.arange(1797))  # a partition
    assert sp.train.size > sp.valid.size + sp.test.size  # the unlabeled majority
    for part in (sp.pool, sp.valid, sp.test, sp.train):
        assert set(np.unique(y[part])) == set(range(10))  # stratified
    with kdstore.connect(built.path, read_only=True) as s:
        info = s.info()
        gold = s.execute(
            "SELECT e.split, g.example_id, l.name FROM kd.gold g JOIN kd.examples e USING (example_id) "
            "JOIN kd.labels l USING (label_id) ORDER BY g.example_id"
        ).fetchall()
        assert s.one("SELECT count(*) FROM kd.examples WHERE example_id IN (SELECT unnest(?))", [sp.pool.tolist()]) == (0,)
    assert info.splits == {"train": sp.train.size, "valid": sp.valid.size, "test": sp.test.size}
    assert info.labels == [str(d) for d in range(10)]
    assert {r[0] for r in gold} == {"valid", "test"}
    assert len(gold) == sp.valid.size + sp.test.size
    assert all(int(name) == y[eid] for _, eid, name in gold)
    ids, px = _features(built.path)
    assert np.array_equal(ids, np.sort(np.concatenate([sp.train, sp.valid, sp.test])))
    assert np.array_equal(px, x[ids])


def test_stored_outputs_equal_onnx_and_numpy_forward(built: demo.DemoResult) -> None:
    import onnxruntime as ort

    ids, px = _features(built.path)
    stored = _scores(built.path)
    for t in built.teachers:
        mine = stored.filter(pc.equal(stored.column("name"), t.spec.name))
        assert np.array_equal(mine.column("example_id").to_numpy(), ids)
        got = np.asarray(mine.column("scores").to_pylist(), dtype=np.float64)
        sess = ort.InferenceSession(str(t.path), providers=["CPUExecutionProvider"])
        direct = sess.run(None, {"pixels": px.astype(np.float32)})[0]
        assert np.array_equal(got, direct.astype(np.float32).astype(np.float64))
        np.testing.assert_allclose(got, _numpy_forward(t.path, px), atol=1e-5)
        assert t.parity <= demo.PARITY_TOL


@pytest.mark.parametrize("model", ["lr", "mlp"])
@pytest.mark.parametrize("labels", [(3,), (1, 4, 7)])
def test_export_parity_with_predict_proba(model: str, labels: tuple[int, ...]) -> None:
    rng = np.random.default_rng(7)
    x = rng.integers(0, 17, size=(120, 64)).astype(np.float32)
    x[:, 0] = 0.0  # a constant pixel: StandardScaler's scale_ = 1 path
    spec = demo.TeacherSpec("t", "test", labels, model, 0)
    t = rng.integers(0, 2 if len(labels) == 1 else len(labels), size=120)
    pipe = demo.train_teacher(spec, x, t, seed=0)
    onx = demo.to_onnx(pipe, name="t", labels=[str(d) for d in labels])
    diff = demo.check_parity(pipe, onx, x, name="t")
    assert 0.0 <= diff <= 1e-5
    # the check can fail: a model whose weights moved after export no longer matches its graph
    clf = pipe[-1]
    if model == "lr":
        clf.intercept_[0] += 0.5  # one class only: a shift of every logit would not change softmax
    else:
        clf.intercepts_[-1][0] += 0.5
    with pytest.raises(ExportError, match="differs from predict_proba"):
        demo.check_parity(pipe, onx, x, name="t")


def test_accuracy_table_matches_direct_computation(built: demo.DemoResult) -> None:
    import onnxruntime as ort

    x, y = demo.load_digits()
    test_ids = built.split.test
    rows = {r.name: r for r in built.scores}
    assert len(rows) == 17
    for t in built.teachers:
        p = ort.InferenceSession(str(t.path), providers=["CPUExecutionProvider"]).run(None, {"pixels": x[test_ids]})[0]
        digits = np.asarray(t.spec.labels)
        r = rows[t.spec.name]
        if digits.size == 1:
            assert r.acc_10class is None
            assert r.acc_scope == pytest.approx(np.mean((p[:, 0] >= 0.5) == (y[test_ids] == digits[0])))
        else:
            guess = digits[p.argmax(axis=1)]
            assert r.acc_10class == pytest.approx(np.mean(guess == y[test_ids]))
            scope = np.isin(y[test_ids], digits)
            assert r.acc_scope == pytest.approx(np.mean(guess[scope] == y[test_ids][scope]))
    # the corpus is what it claims: good specialists, useless shuffled teacher, a 3<->8 swap
    assert min(rows[f"specialist_{d}"].acc_scope for d in range(10)) > 0.85
    assert rows["bad_shuffled"].acc_10class is not None and rows["bad_shuffled"].acc_10class < 0.3
    swap = next(t for t in built.teachers if t.spec.name == "adversarial_swap_3_8")
    p = ort.InferenceSession(str(swap.path), providers=["CPUExecutionProvider"]).run(None, {"pixels": x[test_ids]})[0]
    threes = y[test_ids] == 3
    assert np.mean(p[threes].argmax(axis=1) == 8) > 0.8
    # naive average: mean score per digit over the teachers with an opinion, argmax
    assert 0.0 < built.naive_average_acc < 1.0


def test_another_seed_gives_another_corpus(built: demo.DemoResult, tmp_path: Path) -> None:
    x, y = demo.load_digits()
    assert all(np.array_equal(getattr(demo.split_digits(y, 0), f), getattr(built.split, f)) for f in ("pool", "train", "valid", "test"))
    other = demo.split_digits(y, 1)
    assert not np.array_equal(other.test, built.split.test)
    mine = demo.build_teachers(x, y, built.split, tmp_path / "same", seed=0, specs=demo.TEACHERS[:3])
    theirs = demo.build_teachers(x, y, other, tmp_path / "other", seed=1, specs=demo.TEACHERS[:3])
    assert [t.sha256 for t in mine] == [t.sha256 for t in built.teachers[:3]]
    assert all(a.sha256 != b.sha256 for a, b in zip(mine, theirs, strict=True))


@pytest.mark.slow
def test_cli_demo_is_deterministic_and_prints_info_and_test_table(
    built: demo.DemoResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cli.duckdb"
    assert main(["demo", str(path), "--seed", "0", "-q"]) == 0
    out = capsys.readouterr().out
    assert f"$ kdstore info {path}" in out
    assert "teachers   17" in out
    assert "features   digits" in out
    assert "Teachers on the TEST split" in out
    for spec in demo.TEACHERS:
        assert f"  {spec.name} " in out
    # same seed, same store: the table, every ONNX file and every stored score are identical
    assert demo.format_table(built.scores, built.naive_average_acc) in out
    for t in built.teachers:
        assert (tmp_path / "cli_teachers" / t.path.name).read_bytes() == t.path.read_bytes()
    assert _scores(str(path)).equals(_scores(built.path))
    # an existing store is not overwritten silently
    assert main(["demo", str(path), "-q"]) == 1
    assert "already exists" in capsys.readouterr().err
    with pytest.raises(KdstoreError, match="already exists"):
        demo.build_demo(path)
