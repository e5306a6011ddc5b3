"""Model safety: broken, custom-op and escaping-external-data models are refused before any session."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

import kdstore
from kdstore.teachers import OnnxTeacher
from kdstore.teachers.safety import load_model
from tests import onnx_models as om


@pytest.fixture
def no_sessions(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Fail the test if ONNX Runtime is ever asked to build a session."""
    import onnxruntime

    calls: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        calls.append(args)
        raise AssertionError("an InferenceSession was created for a refused model")

    monkeypatch.setattr(onnxruntime, "InferenceSession", refuse)
    return calls


def _external_model(folder: Path, location: str = "weights.bin") -> tuple[Path, om.Mlp]:
    m = om.mlp(d=4, hidden=(64,), k=3, seed=7)
    model = onnx.ModelProto()
    model.CopyFrom(m.model)
    path = folder / "ext.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=location,
                    size_threshold=0)
    return path, m


def _set_location(path: Path, location: str, **extra: str) -> None:
    model = onnx.load_model(str(path), load_external_data=False)
    for t in model.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = location
            if e.key in extra:
                e.value = extra[e.key]
    path.write_bytes(model.SerializeToString())


def test_external_data_inside_the_folder_loads(store: kdstore.Store, tmp_path: Path) -> None:
    path, m = _external_model(tmp_path)
    assert (tmp_path / "weights.bin").stat().st_size > 0
    checked = load_model(path)
    assert not any(t.external_data for t in checked.model.graph.initializer)
    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    om.populate(store, x)
    store.run_teachers([OnnxTeacher(path, labels=["a", "b", "c"])], features="f")
    np.testing.assert_allclose(om.stored(store, "ext")[1], m.forward(x)["probs"], atol=1e-6)
    # the fingerprint covers the external weights too
    before = checked.fingerprint
    data = bytearray((tmp_path / "weights.bin").read_bytes())
    data[0] ^= 0xFF
    (tmp_path / "weights.bin").write_bytes(bytes(data))
    assert load_model(path).fingerprint != before


@pytest.mark.parametrize("cut", ["empty", "half", "minus_one", "graph_only", "garbage"])
def test_corrupt_or_truncated_model_is_refused(tmp_path: Path, no_sessions: list[object], cut: str) -> None:
    data = om.mlp().model.SerializeToString()
    graph_end = len(data) - len(b"".join(o.SerializeToString() for o in onnx.load_model_from_string(data).opset_import)) - 2
    body = {
        "empty": b"",
        "half": data[: len(data) // 2],
        "minus_one": data[:-1],
        "graph_only": data[:graph_end],  # ends right after the graph: no opset_import
        "garbage": np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
    }[cut]
    path = tmp_path / "broken.onnx"
    path.write_bytes(body)
    with pytest.raises(kdstore.TeacherError, match=r"broken\.onnx (is not a valid ONNX file|fails the ONNX checker).*"):
        load_model(path)
    with pytest.raises(kdstore.TeacherError, match=r"broken\.onnx"):
        OnnxTeacher(path, labels=["a"], output_type="regression").open()
    assert no_sessions == []


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(kdstore.TeacherError, match=r"nothing\.onnx does not exist"):
        load_model(tmp_path / "nothing.onnx")


def test_custom_op_domain_is_refused(store: kdstore.Store, tmp_path: Path, no_sessions: list[object]) -> None:
    node = helper.make_node("FastGelu", ["x"], ["y"], domain="com.example.custom", name="gelu")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, 4])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example.custom", 1)])
    path = om.save(model, tmp_path / "custom.onnx")
    with pytest.raises(kdstore.TeacherError, match=r"custom operator domain 'com\.example\.custom'.*never loads custom-op"):
        load_model(path)
    # a node using a domain that is not even imported is caught too
    del model.opset_import[1]
    path.write_bytes(model.SerializeToString())
    with pytest.raises(kdstore.TeacherError, match=r"node 'gelu' .* uses custom operator com\.example\.custom\.FastGelu"):
        load_model(path)
    store.add_labels(["a", "b", "c", "d"])
    with pytest.raises(kdstore.TeacherError, match="custom operator"):
        store.teachers.add(OnnxTeacher(path, labels=["a", "b", "c", "d"], output_type="regression"))
    assert len(store.teachers) == 0
    assert no_sessions == []


def test_custom_op_inside_a_subgraph_is_refused(tmp_path: Path) -> None:
    inner = helper.make_graph([helper.make_node("Evil", ["x"], ["o"], domain="evil.ops")], "then",
                              [], [helper.make_tensor_value_info("o", onnx.TensorProto.FLOAT, [None, 4])])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["o2"])], "else",
                              [], [helper.make_tensor_value_info("o2", onnx.TensorProto.FLOAT, [None, 4])])
    node = helper.make_node("If", ["c"], ["y"], then_branch=inner, else_branch=other)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, 4]),
                                            helper.make_tensor_value_info("c", onnx.TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = om.save(model, tmp_path / "sub.onnx")
    with pytest.raises(kdstore.TeacherError, match=r"graph 'then' uses custom operator evil\.ops\.Evil"):
        load_model(path)


def test_external_data_outside_the_folder_is_refused(tmp_path: Path, no_sessions: list[object]) -> None:
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    path, _ = _external_model(model_dir)
    (tmp_path / "secret.bin").write_bytes((model_dir / "weights.bin").read_bytes())
    _set_location(path, "../secret.bin")
    with pytest.raises(kdstore.TeacherError, match=r"points outside the model's folder"):
        load_model(path)
    _set_location(path, str(tmp_path / "secret.bin"))
    with pytest.raises(kdstore.TeacherError, match=r"only paths relative to the model's folder"):
        load_model(path)
    os.symlink(tmp_path / "secret.bin", model_dir / "link.bin")
    _set_location(path, "link.bin")
    with pytest.raises(kdstore.TeacherError, match=r"points outside the model's folder"):
        load_model(path)
    _set_location(path, "gone.bin")
    with pytest.raises(kdstore.TeacherError, match=r"external data file 'gone\.bin' .* is missing"):
        load_model(path)
    _set_location(path, "weights.bin", length="99999999")
    with pytest.raises(kdstore.TeacherError, match=r"asks for bytes .* \(truncated\?\)"):
        load_model(path)
    assert no_sessions == []


def test_refused_model_leaves_the_store_unchanged(store: kdstore.Store, tmp_path: Path) -> None:
    x = np.random.default_rng(1).normal(size=(10, 4)).astype(np.float32)
    om.populate(store, x)
    good = om.save(om.mlp().model, tmp_path / "good.onnx")
    store.run_teachers([OnnxTeacher(good, labels=["a", "b", "c"])], features="f")
    before = store.query("SELECT * FROM kd.scores ORDER BY example_id")
    good.write_bytes(good.read_bytes()[:100])  # the model file gets truncated later
    with pytest.raises(kdstore.TeacherError, match="corrupt or truncated"):
        store.run_teachers(["good"], features="f")
    assert store.query("SELECT * FROM kd.scores ORDER BY example_id").equals(before)
