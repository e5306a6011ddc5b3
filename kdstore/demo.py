"""``kdstore demo``: a real teacher corpus on scikit-learn's bundled handwritten digits.

The digits (1,797 8x8 images, shipped inside scikit-learn: nothing is downloaded) are split once,
deterministically for a seed, into

* a **private teacher pool** that never enters the store: each teacher is trained on its own
  random shard of it, the way other teams trained their models on data we never see;
* the **store's data**: ``train`` (the unlabeled majority), ``valid`` (small, labeled: judges the
  teachers) and ``test`` (labeled, only ever used to score).

The corpus (see :data:`TEACHERS`): one binary specialist per digit, three generalists that know
only part of the label set, and deliberately bad and adversarial teachers. Every teacher is a
scikit-learn pipeline (standardisation + logistic regression or a small MLP) exported to ONNX
here with ``onnx.helper`` from its fitted weights (no skl2onnx), checked against
``predict_proba`` within 1e-5, and written to a folder next to the store, together with the store's
data as Parquet (examples, gold of valid + test, pixels) and a ``distill.toml``
(:func:`write_corpus`). :func:`build_demo` then runs ``store.distill`` on it: the teachers are
registered and run over the pixels, judged on valid, trust models fitted, one distillation set and
one student per policy made, the student with the best valid accuracy exported and everything
scored on the test split.

>>> spec = TEACHERS[0]
>>> (spec.name, spec.role, spec.labels, spec.output_type)
('specialist_0', 'specialist', (0,), 'binary')
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from kdstore.distill import _f1
from kdstore.errors import ExportError, KdstoreError

if TYPE_CHECKING:
    from kdstore.distill import DistillReport
    from kdstore.store.core import Store

#: Name of the feature source holding the pixels (64 float columns ``px00`` .. ``px63``).
FEATURES = "digits"
PIXELS = tuple(f"px{i:02d}" for i in range(64))
#: The ONNX input every demo teacher declares: float32 pixels, shape [N, 64], raw values 0..16.
INPUT_NAME = "pixels"
OUTPUT_NAME = "probabilities"
LABELS = tuple(str(d) for d in range(10))
#: Split fractions (per digit, so every split has every digit). The rest of the store is train.
POOL_FRACTION, VALID_FRACTION, TEST_FRACTION = 0.30, 0.08, 0.20
PARITY_TOL = 1e-5
OPSET, IR_VERSION = 17, 9


@dataclass(frozen=True, slots=True)
class TeacherSpec:
    """One demo teacher: what it predicts and how its private training set is made.

    Attributes:
        name: teacher name in the store (and ONNX file stem).
        role: specialist, generalist, bad or adversarial.
        labels: the digits it has an opinion on, in output order (binary: its one positive digit).
        model: ``lr`` (logistic regression) or ``mlp`` (one ReLU hidden layer).
        shard: how many private pool examples it trains on (specialists: negatives; the positives
            are a fraction of the pool's images of that digit).
        corrupt: how its training labels are damaged: ``None``, ``shuffle`` (random labels),
            ``swap:A:B`` (digits A and B swapped) or ``also:A`` (digit A counted as positive).
    """

    name: str
    role: str
    labels: tuple[int, ...]
    model: str
    shard: int
    corrupt: str | None = None

    @property
    def output_type(self) -> str:
        return "binary" if len(self.labels) == 1 else "multiclass"


TEACHERS: tuple[TeacherSpec, ...] = (
    *(TeacherSpec(f"specialist_{d}", "specialist", (d,), "lr" if d % 2 == 0 else "mlp", 90) for d in range(10)),
    TeacherSpec("generalist_0-4", "generalist", (0, 1, 2, 3, 4), "mlp", 150),
    TeacherSpec("generalist_5-9", "generalist", (5, 6, 7, 8, 9), "lr", 150),
    TeacherSpec("generalist_even", "generalist", (0, 2, 4, 6, 8), "mlp", 150),
    TeacherSpec("bad_shuffled", "bad", tuple(range(10)), "lr", 250, "shuffle"),
    TeacherSpec("bad_specialist_8", "bad", (8,), "mlp", 150, "shuffle"),
    TeacherSpec("adversarial_swap_3_8", "adversarial", tuple(range(10)), "mlp", 300, "swap:3:8"),
    TeacherSpec("adversarial_9_fires_on_4", "adversarial", (9,), "lr", 90, "also:4"),
)


@dataclass(frozen=True, slots=True)
class DemoSplit:
    """Row indices into ``load_digits()`` of the private pool and the store's three splits."""

    pool: np.ndarray
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray


@dataclass(frozen=True, slots=True)
class ExportedTeacher:
    """A trained teacher written to ONNX: where, its sha256, and the parity measured at export."""

    spec: TeacherSpec
    path: Path
    sha256: str
    parity: float  # max |ONNX - predict_proba| on the shard and the store's examples


@dataclass(frozen=True, slots=True)
class TeacherScore:
    """One row of the demo's test-split table (see :func:`score_on_test_split`).

    Attributes:
        acc_scope: binary: one-vs-rest accuracy on every test example; multiclass: accuracy on the
            test examples whose digit is one of its labels.
        f1: mean one-vs-rest F1 over its labels (binary: score >= 0.5; multiclass: argmax).
        acc_10class: 10-class accuracy if used alone (multiclass only; digits outside its labels
            count as errors), else None.
    """

    name: str
    role: str
    output_type: str
    labels: str
    acc_scope: float
    f1: float
    acc_10class: float | None


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What :func:`build_demo` made."""

    path: str
    teachers_dir: Path
    seed: int
    split: DemoSplit
    teachers: tuple[ExportedTeacher, ...]
    scores: tuple[TeacherScore, ...]
    naive_average_acc: float
    seconds: float
    distill: DistillReport | None = None
    config_path: Path | None = None


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------
def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The bundled digits: pixels ``[1797, 64]`` float32 (0..16) and digits ``[1797]`` int64."""
    try:
        from sklearn.datasets import load_digits as _load
    except ImportError as e:
        raise KdstoreError("the demo needs scikit-learn: pip install 'kdstore[demo]'") from e
    d = _load()
    return np.asarray(d.data, dtype=np.float32), np.asarray(d.target, dtype=np.int64)


def split_digits(y: np.ndarray, seed: int) -> DemoSplit:
    """Stratified, deterministic split of the image indices into pool / train / valid / test.

    >>> s = split_digits(np.repeat(np.arange(10), 100), seed=0)
    >>> [len(s.pool), len(s.train), len(s.valid), len(s.test)]
    [300, 420, 80, 200]
    """
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"pool": [], "train": [], "valid": [], "test": []}
    for digit in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == digit))
        n = idx.size
        n_pool, n_valid, n_test = round(n * POOL_FRACTION), round(n * VALID_FRACTION), round(n * TEST_FRACTION)
        cuts = np.cumsum([n_pool, n_valid, n_test])
        parts["pool"].append(idx[: cuts[0]])
        parts["valid"].append(idx[cuts[0]: cuts[1]])
        parts["test"].append(idx[cuts[1]: cuts[2]])
        parts["train"].append(idx[cuts[2]:])
    return DemoSplit(**{k: np.sort(np.concatenate(v)) for k, v in parts.items()})


def _shard(spec: TeacherSpec, y_pool: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Positions in the pool of one teacher's private training shard.

    Binary teachers see ~70% of the pool's images of their digit (and of the digit an ``also:``
    teacher wrongly counts as positive) plus ``shard`` random negatives; multiclass teachers see
    ``shard`` random images of their own digits; a shuffled binary teacher sees any ``shard`` images.
    """
    if spec.output_type == "binary" and spec.corrupt != "shuffle":
        digits = [spec.labels[0]] + ([int(spec.corrupt.split(":")[1])] if spec.corrupt else [])
        is_pos = np.isin(y_pool, digits)
        pos, neg = np.flatnonzero(is_pos), np.flatnonzero(~is_pos)
        take = [rng.choice(pos, size=max(2, int(0.7 * pos.size)), replace=False),
                rng.choice(neg, size=min(spec.shard, neg.size), replace=False)]
        return np.sort(np.concatenate(take))
    eligible = np.flatnonzero(np.isin(y_pool, spec.labels)) if spec.output_type == "multiclass" else np.arange(y_pool.size)
    return np.sort(rng.choice(eligible, size=min(spec.shard, eligible.size), replace=False))


def _targets(spec: TeacherSpec, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The (possibly corrupted) training targets: class indices into ``spec.labels``, or 0/1."""
    y = y.copy()
    if spec.corrupt and spec.corrupt.startswith("swap:"):
        a, b = (int(v) for v in spec.corrupt.split(":")[1:])
        y = np.where(y == a, b, np.where(y == b, a, y))
    if spec.output_type == "binary":
        t = (y == spec.labels[0]).astype(np.int64)
        if spec.corrupt and spec.corrupt.startswith("also:"):
            t |= (y == int(spec.corrupt.split(":")[1])).astype(np.int64)
    else:
        t = np.searchsorted(np.asarray(spec.labels), y).astype(np.int64)
    if spec.corrupt == "shuffle":
        t = np.asarray(rng.permutation(t), dtype=np.int64)
    out: np.ndarray = t
    return out


# ---------------------------------------------------------------------------------------------
# training and ONNX export
# ---------------------------------------------------------------------------------------------
def train_teacher(spec: TeacherSpec, x: np.ndarray, t: np.ndarray, seed: int) -> Any:
    """A fitted scikit-learn ``Pipeline(StandardScaler, LogisticRegression | MLPClassifier)``."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if spec.model == "lr":
        clf: Any = LogisticRegression(C=0.05, max_iter=500)
    elif spec.model == "mlp":
        clf = MLPClassifier(hidden_layer_sizes=(32,), solver="lbfgs", alpha=1e-2, max_iter=300, random_state=seed)
    else:
        raise KdstoreError(f"teacher {spec.name!r}: unknown model {spec.model!r} (lr or mlp)")
    pipe = make_pipeline(StandardScaler(), clf)
    with warnings.catch_warnings():
        # small private shards: an unconverged teacher is part of a realistic corpus
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipe.fit(x.astype(np.float64), t)
    return pipe


def _layers(pipe: Any) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """(weights [in, out], bias [out]) per dense layer, and the output activation."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    clf = pipe[-1]
    if isinstance(clf, LogisticRegression):
        w, b = np.asarray(clf.coef_).T, np.asarray(clf.intercept_)
        return [(w, b)], "sigmoid" if w.shape[1] == 1 else "softmax"
    if isinstance(clf, MLPClassifier):
        if clf.activation != "relu":
            raise ExportError(f"only ReLU MLPs are exported, got activation {clf.activation!r}")
        layers = [(np.asarray(w), np.asarray(b)) for w, b in zip(clf.coefs_, clf.intercepts_, strict=True)]
        out = {"logistic": "sigmoid", "softmax": "softmax"}.get(clf.out_activation_)
        if out is None:
            raise ExportError(f"cannot export output activation {clf.out_activation_!r}")
        return layers, out
    raise ExportError(f"cannot export {type(clf).__name__}")


def to_onnx(pipe: Any, *, name: str, labels: Sequence[str], doc: str = "") -> bytes:
    """Serialise a fitted ``StandardScaler -> LogisticRegression | ReLU MLPClassifier`` pipeline.

    The graph: ``pixels`` float32 [N, 64] -> Sub(mean) -> Div(scale) -> (Gemm -> Relu)* -> Gemm ->
    Sigmoid (binary: [N, 1] probability of the positive class) or Softmax ([N, K]) -> output
    ``probabilities``. Label names go into the model's metadata (``labels``, comma-separated).
    """
    from onnx import TensorProto, helper, numpy_helper

    scaler = pipe[0]
    layers, out_act = _layers(pipe)
    n_in = layers[0][0].shape[0]
    n_out = layers[-1][0].shape[1]
    inits = [
        numpy_helper.from_array(np.asarray(scaler.mean_, np.float32), "mean"),
        numpy_helper.from_array(np.asarray(scaler.scale_, np.float32), "scale"),
    ]
    nodes = [helper.make_node("Sub", [INPUT_NAME, "mean"], ["centred"]),
             helper.make_node("Div", ["centred", "scale"], ["h0"])]
    h = "h0"
    for i, (w, b) in enumerate(layers):
        inits += [numpy_helper.from_array(w.astype(np.float32), f"W{i}"), numpy_helper.from_array(b.astype(np.float32), f"b{i}")]
        last = i == len(layers) - 1
        z = "logits" if last else f"z{i + 1}"
        nodes.append(helper.make_node("Gemm", [h, f"W{i}", f"b{i}"], [z]))
        if not last:
            h = f"h{i + 1}"
            nodes.append(helper.make_node("Relu", [z], [h]))
    nodes.append(helper.make_node("Sigmoid", ["logits"], [OUTPUT_NAME]) if out_act == "sigmoid"
                 else helper.make_node("Softmax", ["logits"], [OUTPUT_NAME], axis=1))
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", n_in])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", n_out])],
        initializer=inits,
    )
    model = helper.make_model(graph, producer_name="kdstore-demo", doc_string=doc,
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    helper.set_model_props(model, {"labels": ",".join(labels), "output": "binary" if n_out == 1 else "multiclass"})
    import onnx

    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data


def _session(model: bytes | str) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])


def check_parity(pipe: Any, model: bytes, x: np.ndarray, *, name: str, tol: float = PARITY_TOL) -> float:
    """Max |ONNX Runtime - ``predict_proba``| over ``x``; :class:`ExportError` above ``tol``."""
    got = _session(model).run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)})[0]
    want = pipe.predict_proba(x.astype(np.float64))
    if got.shape[1] == 1:
        want = want[:, 1:]
    if got.shape != want.shape:
        raise ExportError(f"teacher {name!r}: ONNX output shape {got.shape} != predict_proba {want.shape}")
    diff = float(np.max(np.abs(got.astype(np.float64) - want))) if got.size else 0.0
    if not diff <= tol:
        raise ExportError(f"teacher {name!r}: ONNX differs from predict_proba by {diff:.3g} (tolerance {tol:g})")
    return diff


def build_teachers(
    x: np.ndarray, y: np.ndarray, split: DemoSplit, out_dir: Path, *, seed: int,
    specs: Sequence[TeacherSpec] = TEACHERS,
) -> list[ExportedTeacher]:
    """Train every teacher on its private pool shard, export it to ``out_dir/<name>.onnx``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    x_pool, y_pool = x[split.pool], y[split.pool]
    x_store = x[np.concatenate([split.train, split.valid, split.test])]
    made = []
    for i, spec in enumerate(specs):
        rng = np.random.default_rng([seed, i])
        shard = _shard(spec, y_pool, rng)
        t = _targets(spec, y_pool[shard], rng)
        pipe = train_teacher(spec, x_pool[shard], t, seed=seed * 1000 + i)
        model = to_onnx(pipe, name=spec.name, labels=[LABELS[d] for d in spec.labels],
                        doc=f"kdstore demo {spec.role} teacher on digits {spec.labels}, {len(shard)} private images")
        parity = check_parity(pipe, model, np.concatenate([x_pool[shard], x_store]), name=spec.name)
        path = out_dir / f"{spec.name}.onnx"
        path.write_bytes(model)
        made.append(ExportedTeacher(spec, path, hashlib.sha256(model).hexdigest(), parity))
    return made


# ---------------------------------------------------------------------------------------------
# the store
# ---------------------------------------------------------------------------------------------
#: The selection policies the demo distils with; the student with the best VALID accuracy is kept.
POLICIES = ("trust", "experts", "best_per_label")
#: The demo student's hyper-parameters. The library defaults (batch 512, 30 epochs) take ~2 Adam steps
#: per epoch on 756 training examples and under-train; these were chosen among batch 512/64/32 x
#: dropout 0/0.2 x hidden (256, 256)/(128,) by VALID accuracy (mean over seeds 0 and 3), never test.
STUDENT: dict[str, Any] = {"hidden": (128,), "dropout": 0.2, "batch_size": 64, "epochs": 100, "patience": 10}


def write_corpus(x: np.ndarray, y: np.ndarray, split: DemoSplit, teachers: Sequence[ExportedTeacher], out_dir: Path,
                 *, store_name: str, policies: Sequence[str] = POLICIES, student: dict[str, Any] | None = None) -> Path:
    """Write the store's data (examples, gold of valid + test, pixels) as Parquet and a distill config.

    Returns the path of ``distill.toml`` in ``out_dir``: ``kdstore distill out_dir/distill.toml``
    rebuilds the store (``store`` key: ``store_name``, relative to the config).
    """
    import pyarrow.parquet as pq

    ids = np.concatenate([split.train, split.valid, split.test]).astype(np.int64)
    names = ["train"] * split.train.size + ["valid"] * split.valid.size + ["test"] * split.test.size
    order = np.argsort(ids, kind="stable")
    pq.write_table(pa.table({"example_id": ids[order], "split": pa.array(names).take(pa.array(order))}),
                   out_dir / "examples.parquet")
    labeled = np.sort(np.concatenate([split.valid, split.test])).astype(np.int64)
    pq.write_table(pa.table({"example_id": labeled, "label": [LABELS[d] for d in y[labeled]]}), out_dir / "gold.parquet")
    cols: dict[str, Any] = {"example_id": ids[order]}
    cols.update({c: x[ids[order], j] for j, c in enumerate(PIXELS)})
    pq.write_table(pa.table(cols), out_dir / f"{FEATURES}.parquet")

    def q(v: str) -> str:
        return json.dumps(v)

    lines = [
        "# kdstore distill config for the digits demo (written by `kdstore demo`; see docs/distill.md)",
        f"store = {q(store_name)}",
        'name = "demo"',
        "",
        "[data]",
        f"labels = [{', '.join(q(v) for v in LABELS)}]",
        'examples = "examples.parquet"   # example_id, split (train unlabeled, valid judges, test scores)',
        'gold = "gold.parquet"           # valid and test only',
        "",
        "[features]",
        f"name = {q(FEATURES)}",
        f"path = {q(FEATURES + '.parquet')}",
        "",
        "[select]",
        f"policies = [{', '.join(q(p) for p in policies)}]",
        "",
        "[student]",
        *(f"{k} = {json.dumps(list(v) if isinstance(v, tuple) else v)}" for k, v in (student or {}).items()),
        "",
        "[export]",
        'path = "student.onnx"',
    ]
    for t in teachers:
        lines += ["", "[[teachers]]", f"name = {q(t.spec.name)}", f"path = {q(t.path.name)}",
                  f"labels = [{', '.join(q(LABELS[d]) for d in t.spec.labels)}]",
                  f"output_type = {q(t.spec.output_type)}", f"output = {q(OUTPUT_NAME)}"]
    path = out_dir / "distill.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _outputs(store: Store, split: str) -> tuple[np.ndarray, np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Gold digits of ``split`` and, per teacher, its [n, k] scores and label digits, from the store."""
    ex = store.query(
        "SELECT e.example_id, e.split, l.name AS label FROM kd.examples e JOIN kd.gold g USING (example_id) "
        "JOIN kd.labels l USING (label_id) ORDER BY e.example_id")
    keep = np.asarray(ex.column("split").to_pylist(), dtype=object) == split
    ids = ex.column("example_id").to_numpy()[keep]
    gold = np.asarray([int(v) for v in ex.column("label").to_pylist()], dtype=np.int64)[keep]
    label_digit = {int(i): int(n) for i, n in store.execute("SELECT label_id, name FROM kd.labels").fetchall()}
    aligned: dict[int, list[int]] = {}
    for tid, lab in store.execute("SELECT teacher_id, label_id FROM kd.teacher_labels ORDER BY teacher_id, output_index").fetchall():
        aligned.setdefault(int(tid), []).append(label_digit[int(lab)])
    scores = store.query("SELECT teacher_id, example_id, scores FROM kd.scores ORDER BY teacher_id, example_id")
    s_tid = scores.column("teacher_id").to_numpy()
    s_ids = scores.column("example_id").to_numpy()
    s_lists = scores.column("scores").to_pylist()
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for tid, name in store.execute("SELECT teacher_id, name FROM kd.teachers ORDER BY teacher_id").fetchall():
        digits = np.asarray(aligned.get(int(tid), []), dtype=np.int64)
        mat = np.full((ids.size, digits.size), np.nan)
        for j in np.flatnonzero(s_tid == tid):
            pos = int(np.searchsorted(ids, s_ids[j]))
            if pos < ids.size and ids[pos] == s_ids[j]:
                mat[pos] = [np.nan if v is None else v for v in s_lists[j]]
        out[str(name)] = (mat, digits)
    return ids, gold, out


def score_on_test_split(store: Store, roles: dict[str, str] | None = None) -> tuple[list[TeacherScore], float]:
    """Every teacher scored on the ``test`` split in NumPy, and the naive average's 10-class accuracy.

    Reporting only: this reads test gold, which no evaluation, selection or training path does.
    The naive average is the mean score per digit over the teachers with an opinion on it, argmax.
    """
    _, gold, outs = _outputs(store, "test")
    roles = roles or {s.name: s.role for s in TEACHERS}
    rows = []
    total, count = np.zeros((gold.size, 10)), np.zeros((gold.size, 10))
    for name, (mat, digits) in outs.items():
        have = ~np.isnan(mat)
        total[:, digits] += np.where(have, mat, 0.0)
        count[:, digits] += have
        if digits.size == 1:
            pred = mat[:, 0] >= 0.5
            true = gold == digits[0]
            rows.append(TeacherScore(name, roles.get(name, "?"), "binary", str(digits[0]),
                                     float(np.mean(pred == true)), _f1(pred, true), None))
            continue
        guess = digits[np.argmax(np.nan_to_num(mat, nan=-1.0), axis=1)]
        scope = np.isin(gold, digits)
        f1 = float(np.mean([_f1(guess == d, gold == d) for d in digits]))
        acc_scope = float(np.mean(guess[scope] == gold[scope])) if scope.any() else float("nan")
        rows.append(TeacherScore(name, roles.get(name, "?"), "multiclass", _label_text(digits), acc_scope, f1,
                                 float(np.mean(guess == gold))))
    avg = np.where(count > 0, total / np.maximum(count, 1), -1.0)
    naive = float(np.mean(np.argmax(avg, axis=1) == gold)) if gold.size else float("nan")
    return rows, naive


def _label_text(digits: np.ndarray) -> str:
    d = [int(v) for v in digits]
    if len(d) > 2 and d == list(range(d[0], d[-1] + 1)):
        return f"{d[0]}-{d[-1]}"
    return ",".join(map(str, d))


def format_table(rows: Sequence[TeacherScore], naive: float) -> str:
    """The per-teacher test table as aligned text."""
    w = max([len(r.name) for r in rows] + [20])
    head = f"  {'teacher':<{w}}  {'role':<11} {'output':<10} {'labels':<9} {'acc(scope)':>10} {'F1':>6} {'acc(10-class)':>13}"
    lines = [head, "  " + "-" * (len(head) - 2)]
    for r in rows:
        a10 = f"{r.acc_10class:13.3f}" if r.acc_10class is not None else f"{'-':>13}"
        lines.append(f"  {r.name:<{w}}  {r.role:<11} {r.output_type:<10} {r.labels:<9} {r.acc_scope:10.3f} {r.f1:6.3f} {a10}")
    best = max((r.acc_10class for r in rows if r.acc_10class is not None), default=float("nan"))
    lines.append("  " + "-" * (len(head) - 2))
    lines.append(f"  {'best single teacher (10-class)':<{w + 46}} {best:13.3f}")
    lines.append(f"  {'naive average of all teachers':<{w + 46}} {naive:13.3f}")
    return "\n".join(lines)


def build_demo(
    path: str | Path,
    *,
    seed: int = 0,
    teachers_dir: str | Path | None = None,
    replace: bool = False,
    progress: bool | None = None,
    log: Any = None,
    student: dict[str, Any] | None = None,
) -> DemoResult:
    """Build the digits demo store at ``path`` (a new file) with its ONNX teachers beside it.

    Args:
        path: the store file to create (``replace=True`` deletes an existing one first).
        seed: fixes the split, every teacher's shard and its training: same seed, same store.
        teachers_dir: where the ONNX files go (default: ``<store stem>_teachers/`` next to it).
        log: called with a line of text per stage (e.g. ``print``), or None.
        student: ``[student]`` hyper-parameters written into the distill config (default :data:`STUDENT`).

    Returns:
        A :class:`DemoResult` with the split, the teachers, and their scores on the test split.
    """
    import kdstore

    t0 = time.perf_counter()
    say = log or (lambda _msg: None)
    path = Path(path)
    tdir = Path(teachers_dir) if teachers_dir is not None else path.with_name(f"{path.stem}_teachers")
    if path.exists() or Path(f"{path}.wal").exists():
        if not replace:
            raise KdstoreError(f"{path} already exists (pass --replace to rebuild the demo store)")
        path.unlink(missing_ok=True)
        Path(f"{path}.wal").unlink(missing_ok=True)
    if tdir.exists() and replace:
        for pattern in ("*.onnx", "*.parquet", "distill.toml"):
            for f in tdir.glob(pattern):
                f.unlink()
    x, y = load_digits()
    path.parent.mkdir(parents=True, exist_ok=True)
    split = split_digits(y, seed)
    say(f"digits: {x.shape[0]} images of 8x8 pixels (scikit-learn's bundled copy), seed {seed}")
    say(f"split: private teacher pool {split.pool.size} | store: train {split.train.size} (unlabeled), "
        f"valid {split.valid.size} (labeled), test {split.test.size} (scoring only)")
    teachers = build_teachers(x, y, split, tdir, seed=seed)
    say(f"trained {len(teachers)} teachers on private shards, exported to {tdir}/ "
        f"(ONNX vs predict_proba: max |diff| {max(t.parity for t in teachers):.1e})")
    store_ref = os.path.relpath(path.resolve(), tdir.resolve())
    config = write_corpus(x, y, split, teachers, tdir, store_name=store_ref, student=STUDENT if student is None else student)
    say(f"wrote the store's data (Parquet) and the distill config {config}")
    say(f"$ kdstore distill {config}")
    from kdstore.distill import load_config

    try:
        with kdstore.connect(path) as store:
            report = store.distill(load_config(config), progress=progress, log=say)
            rows, naive = score_on_test_split(store)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return DemoResult(str(path), tdir, seed, split, tuple(teachers), tuple(rows), naive, time.perf_counter() - t0,
                      report, config)


__all__ = [
    "FEATURES",
    "LABELS",
    "POLICIES",
    "STUDENT",
    "TEACHERS",
    "DemoResult",
    "DemoSplit",
    "ExportedTeacher",
    "TeacherScore",
    "TeacherSpec",
    "build_demo",
    "build_teachers",
    "check_parity",
    "format_table",
    "load_digits",
    "score_on_test_split",
    "split_digits",
    "to_onnx",
    "write_corpus",
]
