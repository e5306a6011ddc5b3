"""HTTP teachers against a real local server (tests/teacher_server.py) serving a test ONNX model."""

from __future__ import annotations

import time

import numpy as np
import pytest

import kdstore
from kdstore.teachers import HttpTeacher, TensorSpec
from tests import onnx_models as om
from tests.teacher_server import serve

N, D = 120, 4
LABELS = ["a", "b", "c"]
FAST = {"backoff": 0.01, "timeout": 5.0}


@pytest.fixture
def x() -> np.ndarray:
    return np.random.default_rng(7).normal(size=(N, D)).astype(np.float32)


@pytest.fixture
def mlp() -> om.Mlp:
    return om.mlp(seed=21)


def _no_outputs(store: kdstore.Store, name: str) -> bool:
    return name not in store.teachers or store.teachers.info(name).rows == 0


@pytest.mark.parametrize("fmt", ["json", "arrow"])
def test_served_model_matches_the_model(store: kdstore.Store, x: np.ndarray, mlp: om.Mlp, fmt: str) -> None:
    om.populate(store, x)
    with serve(mlp.model) as server:
        t = HttpTeacher(server.url, name="remote", labels=LABELS, format=fmt, request_rows=32, **FAST)
        report = store.run_teachers([t], features="f", batch_size=50)
        assert server.gets == 1  # the signature came from GET
        assert server.posts == 5  # batches of 50, 50, 20 rows in requests of <= 32 rows: 2 + 2 + 1
    assert report["remote"].status == "ran" and report["remote"].rows == N
    ids, scores = om.stored(store, "remote")
    assert ids.tolist() == list(range(N))
    np.testing.assert_allclose(scores, mlp.forward(x)["probs"], atol=1e-6)
    info = store.teachers.info("remote")
    assert info.kind == "http" and info.uri == t.url and info.input_type == "x:float32[?,4]"
    assert info.fingerprint == t.fingerprint() and info.fingerprint.startswith("sha256:")


def test_registered_http_teacher_runs_again_from_the_registry(store: kdstore.Store, x: np.ndarray, mlp: om.Mlp) -> None:
    om.populate(store, x)
    with serve(mlp.model) as server:
        store.teachers.add(HttpTeacher(server.url, name="remote", labels=LABELS, **FAST))
        assert store.teachers.compatible("f") == ["remote"]
        rebuilt = store.teachers.get("remote")
        assert isinstance(rebuilt, HttpTeacher) and rebuilt.signature() == (TensorSpec("x", "float32", (None, 4)),)
        store.run_teachers(["remote"], features="f", split="valid")
        assert store.teachers.info("remote").rows == N // 2
        posts = server.posts
        assert store.run_teachers(["remote"], features="f", split="valid")["remote"].status == "skipped"
        assert server.posts == posts


def test_failing_server_error_names_endpoint_and_batch(store: kdstore.Store, x: np.ndarray, mlp: om.Mlp) -> None:
    om.populate(store, x)
    with serve(mlp.model, "fail") as server:
        t = HttpTeacher(server.url, name="down", labels=LABELS, retries=2, max_concurrency=1, request_rows=1000,
                        signature=[TensorSpec("x", "float32", (None, 4))], **FAST)
        with pytest.raises(kdstore.TeacherError, match=(
                rf"teacher 'down' on feature batch 0 \(120 examples, ids 0\.\.119\): HTTP teacher 'down': "
                rf"POST {server.url} for rows 0\.\.119 of the batch failed after 3 attempt\(s\): HTTP 500")):
            store.run_teachers([t], features="f")
        assert server.posts == 3  # one try + 2 retries, then the teacher stops
    assert _no_outputs(store, "down")


def test_flaky_server_succeeds_after_retries(store: kdstore.Store, x: np.ndarray, mlp: om.Mlp) -> None:
    om.populate(store, x)
    with serve(mlp.model, "flaky", fail_first=2) as server:
        t = HttpTeacher(server.url, name="flaky", labels=LABELS, retries=2, max_concurrency=1, request_rows=1000, **FAST)
        store.run_teachers([t], features="f")
        assert server.posts == 3
    np.testing.assert_allclose(om.stored(store, "flaky")[1], mlp.forward(x)["probs"], atol=1e-6)


def test_stalling_server_times_out_in_bounded_time(store: kdstore.Store, x: np.ndarray, mlp: om.Mlp) -> None:
    om.populate(store, x)
    with serve(mlp.model, "stall", stall=2.0) as server:
        t = HttpTeacher(server.url, name="slow", labels=LABELS, timeout=0.2, retries=1, backoff=0.01,
                        request_rows=1000, signature=[TensorSpec("x", "float32", (None, 4))])
        start = time.perf_counter()
        with pytest.raises(kdstore.TeacherError, match=r"POST .* failed after 2 attempt\(s\): timed out"):
            store.run_teachers([t], features="f")
        assert time.perf_counter() - start < 3.0  # without the timeout: 2 attempts x 2 s stall
    assert _no_outputs(store, "slow")


@pytest.mark.parametrize(("behavior", "fmt", "reason"), [
    ("malformed", "json", r"malformed answer: not JSON"),
    ("malformed", "arrow", r"malformed answer: not an Arrow IPC stream"),
    ("wrong_rows", "json", r"malformed answer: output 'probs' has shape \[119, 3\] .* for 120 rows"),
    ("wrong_rows", "arrow", r"malformed answer: output 'probs' has shape \[119, 3\]"),
])
def test_malformed_answers_fail_without_retry(
    store: kdstore.Store, x: np.ndarray, mlp: om.Mlp, behavior: str, fmt: str, reason: str
) -> None:
    om.populate(store, x)
    with serve(mlp.model, behavior) as server:
        t = HttpTeacher(server.url, name="bad", labels=LABELS, format=fmt, retries=3, request_rows=1000,
                        signature=[TensorSpec("x", "float32", (None, 4))], **FAST)
        with pytest.raises(kdstore.TeacherError, match=rf"POST {server.url} for rows 0\.\.119 of the batch: {reason}"):
            store.run_teachers([t], features="f")
        assert server.posts == 1
    assert _no_outputs(store, "bad")


def test_client_error_is_not_retried(store: kdstore.Store, x: np.ndarray, mlp: om.Mlp) -> None:
    om.populate(store, x)
    with serve(mlp.model, "not_found") as server:
        t = HttpTeacher(server.url, name="nf", labels=LABELS, retries=3, signature=[TensorSpec("x", "float32", (None, 4))], **FAST)
        with pytest.raises(kdstore.TeacherError, match=r"HTTP 404"):
            store.run_teachers([t], features="f")
        assert server.posts == 1


def test_partial_run_leaves_no_partial_outputs(store: kdstore.Store, x: np.ndarray, mlp: om.Mlp) -> None:
    om.populate(store, x)
    good_model = om.mlp(seed=3)
    with serve(mlp.model, "fail_after", fail_after=2) as server, serve(good_model.model) as good:
        broken = HttpTeacher(server.url, name="half", labels=LABELS, retries=0, max_concurrency=1, request_rows=20, **FAST)
        fine = HttpTeacher(good.url, name="fine", labels=LABELS, **FAST)
        with pytest.raises(kdstore.TeacherError, match=r"1 teacher\(s\) failed and wrote nothing: teacher 'half'.*committed: fine"):
            store.run_teachers([broken, fine], features="f", batch_size=40)
        assert server.posts >= 3  # two answers were good before the failure
    assert _no_outputs(store, "half")
    np.testing.assert_allclose(om.stored(store, "fine")[1], good_model.forward(x)["probs"], atol=1e-6)


def test_concurrency_limit_is_respected(store: kdstore.Store, x: np.ndarray, mlp: om.Mlp) -> None:
    om.populate(store, x)
    with serve(mlp.model, delay=0.1) as server:
        t = HttpTeacher(server.url, name="lim", labels=LABELS, max_concurrency=2, request_rows=10, **FAST)
        store.run_teachers([t], features="f", batch_size=N)
        assert server.posts == 12
        assert server.max_in_flight == 2
    assert store.teachers.info("lim").rows == N


def test_signature_from_get_and_bad_urls(mlp: om.Mlp) -> None:
    with pytest.raises(kdstore.TeacherError, match="must be http:// or https://"):
        HttpTeacher("ftp://example.org/model", labels=LABELS)
    with pytest.raises(kdstore.TeacherError, match="format must be one of"):
        HttpTeacher("http://127.0.0.1:9/m", labels=LABELS, format="xml")
    with serve(mlp.model) as server:
        t = HttpTeacher(server.url, labels=LABELS)
        assert t.signature() == (TensorSpec("x", "float32", (None, 4)),)
        assert t.output == "probs"
    closed = HttpTeacher(server.url, labels=LABELS, retries=1, backoff=0.0, timeout=0.5)
    with pytest.raises(kdstore.TeacherError, match=rf"GET {server.url} \(signature\) failed after 2 attempt\(s\)"):
        closed.signature()
