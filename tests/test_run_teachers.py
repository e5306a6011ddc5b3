"""run_teachers: corpus runs, incremental skips, per-teacher transactions, segmentation, registry, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import kdstore
from kdstore.cli import main
from kdstore.teachers import OnnxTeacher, StoredTeacher, TensorSpec
from tests import onnx_models as om

N, D = 200, 4
LABELS = ["a", "b", "c"]


@pytest.fixture
def x() -> np.ndarray:
    return np.random.default_rng(3).normal(size=(N, D)).astype(np.float32)


def _corpus(tmp_path: Path, k: int = 3) -> list[tuple[OnnxTeacher, om.Mlp]]:
    out = []
    for i in range(k):
        m = om.mlp(seed=100 + i)
        out.append((OnnxTeacher(om.save(m.model, tmp_path / f"t{i}.onnx"), labels=LABELS), m))
    return out


def test_corpus_run_matches_each_model_and_is_independent_of_workers(store: kdstore.Store, tmp_path: Path, x: np.ndarray) -> None:
    om.populate(store, x)
    corpus = _corpus(tmp_path, 4)
    report = store.run_teachers([t for t, _ in corpus], features="f", batch_size=37, workers=2, threads=1)
    assert [r.status for r in report.runs] == ["ran"] * 4 and report.rows_read == N
    assert (report.workers, report.threads) == (2, 1)
    for t, m in corpus:
        ids, scores = om.stored(store, t.name)
        assert ids.tolist() == list(range(N))
        np.testing.assert_allclose(scores, m.forward(x)["probs"], atol=1e-6)
    with kdstore.connect() as other:
        om.populate(other, x)
        other.run_teachers([OnnxTeacher(t.path, labels=LABELS) for t, _ in corpus], features="f", workers=1)
        for t, _ in corpus:
            np.testing.assert_allclose(om.stored(other, t.name)[1], om.stored(store, t.name)[1], rtol=1e-6, atol=1e-7)


def test_incremental_runs_compute_only_what_is_missing(store: kdstore.Store, tmp_path: Path, x: np.ndarray) -> None:
    om.populate(store, x)
    (t0, _m0), (t1, _), (t2, m2) = _corpus(tmp_path, 3)
    first = store.run_teachers([t0, t1], features="f")
    assert [(r.status, r.rows) for r in first.runs] == [("ran", N), ("ran", N)]
    again = store.run_teachers([t0, t1], features="f")
    assert [(r.status, r.rows, r.already_stored) for r in again.runs] == [("skipped", 0, N), ("skipped", 0, N)]
    assert again.rows_read == 0
    # adding a teacher computes only that teacher
    store.teachers.add(t2)
    third = store.run_teachers(None, features="f")
    assert [(r.name, r.status, r.rows) for r in third.runs] == [("t0", "skipped", 0), ("t1", "skipped", 0), ("t2", "ran", N)]
    # new examples: every teacher computes just those, and the feature read skips the rows all have
    x_new = np.random.default_rng(4).normal(size=(50, D)).astype(np.float32)
    store.add_examples(pa.table({"example_id": np.arange(N, N + 50), "split": ["train"] * 50}))
    both = np.vstack([x, x_new])
    store.register_features("f_all", pa.table({"example_id": np.arange(N + 50), **{f"c{j}": both[:, j] for j in range(D)}}))
    fourth = store.run_teachers(None, features="f_all")
    assert [(r.status, r.rows, r.already_stored) for r in fourth.runs] == [("ran", 50, N)] * 3
    assert fourth.rows_read == 50
    ids, scores = om.stored(store, "t2")
    assert ids.tolist() == list(range(N + 50))
    np.testing.assert_allclose(scores, m2.forward(both)["probs"], atol=1e-6)
    ids0, _ = om.stored(store, "t0")
    assert np.unique(ids0).size == ids0.size == N + 50


def test_split_restricts_the_run(store: kdstore.Store, tmp_path: Path, x: np.ndarray) -> None:
    om.populate(store, x)
    (t0, _), = _corpus(tmp_path, 1)
    store.run_teachers([t0], features="f", split="valid")
    ids, _ = om.stored(store, "t0")
    assert ids.tolist() == list(range(1, N, 2))
    rep = store.run_teachers([t0], features="f")  # now the train rows only
    assert (rep["t0"].rows, rep["t0"].already_stored) == (N // 2, N // 2)
    assert om.stored(store, "t0")[0].tolist() == list(range(N))


def test_changed_model_file_recomputes_everything(store: kdstore.Store, tmp_path: Path, x: np.ndarray) -> None:
    om.populate(store, x)
    path = om.save(om.mlp(seed=1).model, tmp_path / "m.onnx")
    store.run_teachers([OnnxTeacher(path, labels=LABELS)], features="f", split="valid")
    old_fp = store.teachers.info("m").fingerprint
    newer = om.mlp(seed=2)
    om.save(newer.model, path)  # a new version of the model under the same path
    rep = store.run_teachers(["m"], features="f", split="train")
    assert (rep["m"].status, rep["m"].rows, rep["m"].already_stored) == ("ran", N // 2, 0)
    ids, scores = om.stored(store, "m")
    assert ids.tolist() == list(range(0, N, 2))  # the stale valid outputs are gone
    np.testing.assert_allclose(scores, newer.forward(x[::2])["probs"], atol=1e-6)
    assert store.teachers.info("m").fingerprint not in (None, old_fp)


def test_changed_output_settings_drop_stale_outputs(store: kdstore.Store, tmp_path: Path, x: np.ndarray) -> None:
    om.populate(store, x)
    path = om.save(om.mlp().model, tmp_path / "m.onnx")
    store.run_teachers([OnnxTeacher(path, labels=LABELS)], features="f")
    assert store.teachers.info("m").rows == N
    store.teachers.add(OnnxTeacher(path, labels=LABELS))  # same definition: outputs kept
    assert store.teachers.info("m").rows == N
    store.teachers.add(OnnxTeacher(path, labels=LABELS, embedding="hidden2"))
    assert store.teachers.info("m").rows == 0
    with pytest.raises(kdstore.TeacherError, match="other labels or output type; pass replace=True"):
        store.teachers.add(OnnxTeacher(path, labels=["c", "b", "a"]))


def test_a_failing_teacher_is_rolled_back_while_the_others_commit(store: kdstore.Store, tmp_path: Path, x: np.ndarray) -> None:
    om.populate(store, x)
    (good, m), = _corpus(tmp_path, 1)
    multi, _ = om.multi_output(D)
    bad = OnnxTeacher(om.save(multi, tmp_path / "nan.onnx"), labels=["a"], output_type="regression", output="bad")
    before = store.query("SELECT count(*) AS n FROM kd.scores").column(0)[0].as_py()
    with pytest.raises(kdstore.TeacherError, match=r"1 teacher\(s\) failed and wrote nothing: teacher 'nan' on feature batch \d+ .*NaN.*\(committed: t0\)"):
        store.run_teachers([good, bad], features="f", batch_size=64)
    assert before == 0
    assert store.teachers.info("nan").rows == 0
    np.testing.assert_allclose(om.stored(store, "t0")[1], m.forward(x)["probs"], atol=1e-6)
    assert store.teachers.info("nan").fingerprint is not None  # registered, with no outputs
    assert store.run_teachers(["t0"], features="f")["t0"].status == "skipped"


def test_incompatible_features_say_which_input_and_how(store: kdstore.Store, tmp_path: Path, x: np.ndarray) -> None:
    om.populate(store, x)
    store.register_features("narrow", pa.table({"example_id": np.arange(N), "c0": x[:, 0], "c1": x[:, 1], "c2": x[:, 2]}))
    store.register_features("wide_vec", pa.table({"example_id": np.arange(N),
                                                  "x": pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(N * 8, np.float32)), 8)}))
    store.register_features("texts", pa.table({"example_id": np.arange(N), "body": ["hello"] * N}))
    (t0, _), = _corpus(tmp_path, 1)
    text = OnnxTeacher(om.save(om.text_model(), tmp_path / "spam.onnx"), labels=["a"], output_type="binary")
    store.teachers.add(t0)
    store.teachers.add(text)
    with pytest.raises(kdstore.TeacherError, match=(
            r"teacher 't0' on feature source 'narrow': input x:float32\[\?,4\] needs 4 values per example but the "
            r"source's numeric columns gives 3 column\(s\) \(c0, c1, c2\); map columns explicitly")):
        store.run_teachers(["t0"], features="narrow")
    with pytest.raises(kdstore.TeacherError, match=r"input x:float32\[\?,4\] needs 4 values per example but list column 'x' has 8"):
        store.run_teachers(["t0"], features="wide_vec")
    with pytest.raises(kdstore.TeacherError, match=r"input x:float32\[\?,4\] needs numbers; the source has body VARCHAR"):
        store.run_teachers(["t0"], features="texts")
    with pytest.raises(kdstore.TeacherError, match=r"text input text:str\[\?,1\] needs one text column; the source has 0"):
        store.run_teachers(["spam"], features="f")
    assert store.query("SELECT count(*) FROM kd.scores").column(0)[0].as_py() == 0
    # segmentation by data type
    assert store.teachers.compatible("f") == ["t0"]
    assert store.teachers.compatible("texts") == ["spam"]
    assert store.teachers.compatible("narrow") == []
    assert set(store.teachers.incompatible("narrow")) == {"t0", "spam"}
    # teachers=None runs the compatible ones and reports the others
    rep = store.run_teachers(None, features="texts")
    assert [(r.name, r.status) for r in rep.runs] == [("t0", "incompatible"), ("spam", "ran")]
    assert "needs numbers" in (rep["t0"].error or "")
    # a mapping makes a narrow source usable
    mapped = OnnxTeacher(t0.path, name="mapped", labels=LABELS, inputs={"x": ["c0", "c1", "c2", "c0"]})
    store.teachers.add(mapped)
    assert store.teachers.compatible("narrow") == ["mapped"]


def test_stored_teacher_is_in_the_registry_with_a_data_fingerprint(store: kdstore.Store, x: np.ndarray) -> None:
    om.populate(store, x)
    t = StoredTeacher("legacy", labels=["b"], output_type="binary")
    t.ingest(store, pa.table({"example_id": [0, 1, 2], "label": ["b"] * 3, "score": [0.1, 0.5, 0.9]}))
    info = store.teachers.info("legacy")
    assert (info.kind, info.rows, info.uri, info.input_type) == ("stored", 3, None, None)
    assert info.fingerprint is not None and info.fingerprint.startswith("data:")
    first = info.fingerprint
    t.ingest(store, pa.table({"example_id": [0, 1, 2], "label": ["b"] * 3, "score": [0.1, 0.5, 0.8]}))
    assert store.teachers.info("legacy").fingerprint not in (None, first)
    store.add_teacher("ingested_only", labels=["a"], output_type="binary")
    assert isinstance(store.teachers.get("ingested_only"), StoredTeacher)
    with pytest.raises(kdstore.TeacherError, match="stored-predictions teacher: there is no model to run"):
        store.run_teachers(["legacy"], features="f")
    assert store.teachers.compatible("f") == []


def test_registry_round_trip_and_errors(store: kdstore.Store, tmp_path: Path, x: np.ndarray) -> None:
    om.populate(store, x)
    path = om.save(om.mlp().model, tmp_path / "m.onnx")
    t = OnnxTeacher(path, name="m", labels=LABELS, embedding="hidden1", scores="probabilities", threshold=0.3)
    tid = store.teachers.add(t)
    assert store.teachers.add(t) == tid
    info = store.teachers.info("m")
    assert info.labels == tuple(LABELS) and info.threshold == 0.3 and info.input_type == "x:float32[?,4]"
    assert info.config["embedding"] == "hidden1" and info.config["signature"] == [{"name": "x", "dtype": "float32", "shape": [None, 4]}]
    got = store.teachers.get("m")
    assert isinstance(got, OnnxTeacher)
    assert (got.path, got.embedding, got.output, got.labels) == (t.path, "hidden1", "probs", tuple(LABELS))
    assert got.fingerprint() == t.fingerprint() == info.fingerprint
    assert got.signature() == (TensorSpec("x", "float32", (None, 4)),)
    assert "m" in store.teachers and len(store.teachers) == 1
    with pytest.raises(kdstore.TeacherError, match=r"unknown teacher 'nope' \(registered: m\)"):
        store.teachers.get("nope")
    with pytest.raises(kdstore.SchemaError, match=r"unknown feature source 'nope' \(registered: f"):
        store.run_teachers(["m"], features="nope")
    with pytest.raises(kdstore.TeacherError, match=r"outside store\.transaction"), store.transaction():
        store.run_teachers(["m"], features="f")
    with pytest.raises(kdstore.TeacherError, match=r"given more than once"):
        store.run_teachers(["m", "m"], features="f")
    with pytest.raises(kdstore.TeacherError, match="missing label 'zzz'"):
        store.teachers.add(OnnxTeacher(path, name="other", labels=["a", "b", "zzz"]))
    store.run_teachers(["m"], features="f")
    store.teachers.remove("m")
    assert len(store.teachers) == 0
    assert store.query("SELECT count(*) FROM kd.scores").column(0)[0].as_py() == 0
    assert store.query("SELECT count(*) FROM kd.embeddings").column(0)[0].as_py() == 0


def test_file_store_run_survives_reopen(tmp_path: Path, x: np.ndarray) -> None:
    db = tmp_path / "s.duckdb"
    (t0, m0), (t1, _) = _corpus(tmp_path, 2)
    with kdstore.connect(db) as store:
        om.populate(store, x)
        store.run_teachers([t0, t1], features="f", batch_size=64)
    with kdstore.connect(db, read_only=True) as store:
        np.testing.assert_allclose(om.stored(store, "t0")[1], m0.forward(x)["probs"], atol=1e-6)
        assert store.teachers.info("t1").rows == N


def test_cli_add_list_run(tmp_path: Path, x: np.ndarray, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "s.duckdb")
    with kdstore.connect(db) as store:
        om.populate(store, x)
    m = om.mlp(seed=8)
    path = str(om.save(m.model, tmp_path / "m.onnx"))
    assert main(["teacher", "add", db, "clf", "--onnx", path, "--labels", "a,b,c", "--embedding", "hidden1"]) == 0
    assert "teacher clf: onnx multiclass, inputs x:float32[?,4]" in capsys.readouterr().out
    assert main(["teacher", "add", db, "logits", "--onnx", path, "--labels", "a,b,c", "--output", "logits",
                 "--scores", "logits", "--input", "x=c0,c1,c2,c3"]) == 0
    capsys.readouterr()
    assert main(["teacher", "run", db, "clf", "--features", "f", "--split", "valid", "-q"]) == 0
    out = capsys.readouterr().out
    assert "clf  ran" in out and f"computed={N // 2}" in out
    assert main(["teacher", "run", db, "--features", "f", "-q"]) == 0
    out = capsys.readouterr().out
    assert f"computed={N // 2:,}  already stored={N // 2:,}" in out and f"logits  ran          computed={N:,}" in out
    assert main(["teacher", "list", db, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(t["name"], t["rows"], t["embeddings"]) for t in listed] == [("clf", N, N), ("logits", N, 0)]
    assert main(["teacher", "list", db, "--features", "f"]) == 0
    assert [line.split()[:2] for line in capsys.readouterr().out.splitlines()] == [["clf", "onnx"], ["logits", "onnx"]]
    with kdstore.connect(db, read_only=True) as store:
        np.testing.assert_allclose(om.stored(store, "logits")[1], m.forward(x)["probs"], atol=1e-6)
    assert main(["teacher", "add", db, "broken", "--onnx", str(tmp_path / "missing.onnx"), "--labels", "a"]) == 1
    assert "missing.onnx does not exist" in capsys.readouterr().err
    assert main(["teacher", "run", db, "clf", "--features", "nope", "-q"]) == 1
    assert "unknown feature source 'nope'" in capsys.readouterr().err


def test_groups_of_teachers_each_commit_and_fail_independently(store: kdstore.Store, tmp_path: Path, x: np.ndarray) -> None:
    om.populate(store, x)
    corpus = _corpus(tmp_path, 3)
    multi, _ = om.multi_output(D)
    bad = OnnxTeacher(om.save(multi, tmp_path / "nan.onnx"), labels=["a"], output_type="regression", output="bad")
    teachers = [corpus[0][0], bad, corpus[1][0], corpus[2][0]]
    with pytest.raises(kdstore.TeacherError, match=r"teacher 'nan'.*\(committed: t0, t1, t2\)"):
        store.run_teachers(teachers, features="f", group_size=1, batch_size=70)
    for t, m in corpus:
        np.testing.assert_allclose(om.stored(store, t.name)[1], m.forward(x)["probs"], atol=1e-6)
    assert store.teachers.info("nan").rows == 0
    store.teachers.remove("nan")
    rep = store.run_teachers([t for t, _ in corpus], features="f", group_size=2)
    assert [r.status for r in rep.runs] == ["skipped"] * 3 and rep.rows_read == 0
    x2 = np.random.default_rng(5).normal(size=(10, D)).astype(np.float32)
    store.add_examples(pa.table({"example_id": np.arange(N, N + 10), "split": ["valid"] * 10}))
    both = np.vstack([x, x2])
    store.register_features("f2", pa.table({"example_id": np.arange(N + 10), **{f"c{j}": both[:, j] for j in range(D)}}))
    rep = store.run_teachers([t for t, _ in corpus], features="f2", group_size=2)
    assert rep.rows_read == 20  # two passes (groups of 2 and 1) over the 10 new rows
    assert [r.rows for r in rep.runs] == [10, 10, 10]


def test_duplicate_example_in_a_query_feature_source(store: kdstore.Store, tmp_path: Path, x: np.ndarray) -> None:
    om.populate(store, x)
    store.con.execute("CREATE TABLE main.raw AS SELECT * FROM features.f").fetchall()
    store.register_features("q", kdstore.Query("SELECT * FROM main.raw"))
    store.con.execute("INSERT INTO main.raw SELECT * FROM features.f WHERE example_id = 7").fetchall()
    (t0, _), = _corpus(tmp_path, 1)
    with pytest.raises(kdstore.TeacherError, match=r"feature source 'q' has example 7 more than once"):
        store.run_teachers([t0], features="q")
    assert store.teachers.info("t0").rows == 0


def test_bad_arguments(store: kdstore.Store, tmp_path: Path, x: np.ndarray) -> None:
    om.populate(store, x)
    (t0, _), = _corpus(tmp_path, 1)
    with pytest.raises(kdstore.TeacherError, match="split must be one of"):
        store.run_teachers([t0], features="f", split="holdout")
    with pytest.raises(kdstore.TeacherError, match="batch_size must be positive"):
        store.run_teachers([t0], features="f", batch_size=0)
    with pytest.raises(kdstore.TeacherError, match="stored-predictions teacher"):
        store.run_teachers([StoredTeacher("s", labels=["a"], output_type="binary")], features="f")
