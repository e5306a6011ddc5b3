"""The evaluation views against hand-computed answers and against their NumPy oracles."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings

import kdstore
from kdstore import evaluate, sqlfiles
from tests import oracles
from tests.oracles import Teacher, World
from tests.worlds import assert_rows_match, load_world, rolled_back, view_rows, worlds

#: the grain of every view: the columns that identify a row.
KEYS: dict[str, tuple[str, ...]] = {
    "params": (),
    "confidence_z": (),
    "decisions": ("teacher_id", "example_id", "label_id"),
    "label_metrics": ("teacher_id", "label_id"),
    "label_experts": ("label_id", "teacher_id"),
    "labels_without_expert": ("label_id",),
    "teacher_slots": ("teacher_id", "label_id"),
    "consensus_pages": ("example_id", "page"),
    "consensus": ("example_id", "label_id"),
    "consensus_example": ("example_id",),
    "consensus_z": ("teacher_id", "example_id", "label_id"),
    "consensus_experts": ("teacher_id", "example_id", "label_id"),
    "consensus_expertise": ("teacher_id", "label_id"),
    "teacher_summary": ("teacher_id", "split"),
    "teacher_label_summary": ("teacher_id", "label_id", "split"),
}


#: the views whose oracles live in tests/oracles.py (other modules' views have their own tests).
MINE = tuple(v.name for v in sqlfiles.load_views() if v.header["oracle"].startswith("tests/oracles.py::"))


@pytest.fixture(scope="module")
def mstore() -> Iterator[kdstore.Store]:
    """One store for the module; every test example runs inside BEGIN ... ROLLBACK."""
    with kdstore.connect() as s:
        yield s


def check_all_views(store: kdstore.Store, world: World) -> None:
    """Every view of sql/ against its oracle (ranking oracles fed the engine's own values)."""
    metrics = view_rows(store, "label_metrics")
    z_rows = view_rows(store, "consensus_z")
    for name in MINE:
        oracle = oracles.ORACLES[name]
        if name in ("label_experts", "labels_without_expert"):
            want = oracle(world, metrics=metrics)
        elif name in ("consensus_experts", "consensus_expertise"):
            want = oracle(world, z_rows=z_rows)
        else:
            want = oracle(world)
        assert_rows_match(view_rows(store, name), want, KEYS[name], where=name)


# ---------------------------------------------------------------------------------------------
# meta
# ---------------------------------------------------------------------------------------------
def test_every_view_has_an_oracle_and_a_grain() -> None:
    """Every view of sql/ names its oracle (tests/<module>.py::<function>) and that function exists;
    every view of tests/oracles.py has a grain here and is in evaluate.VIEWS."""
    import importlib

    views = sqlfiles.load_views()
    assert len(views), "no view files found"
    for v in views:
        m = re.fullmatch(r"tests/(\w+)\.py::(\w+)", v.header["oracle"])
        assert m, f"{v.path}: header oracle {v.header['oracle']!r} is not tests/<module>.py::<function>"
        module = importlib.import_module(f"tests.{m.group(1)}")
        assert callable(getattr(module, m.group(2), None)), f"{v.path}: no oracle {v.header['oracle']}"
    assert set(MINE) == set(oracles.ORACLES), f"views vs oracles.ORACLES: {sorted(set(MINE) ^ set(oracles.ORACLES))}"
    for name in MINE:
        assert views.get(name).header["oracle"] == f"tests/oracles.py::{name}"
    assert set(MINE) == set(KEYS), f"views without a grain in KEYS: {sorted(set(MINE) ^ set(KEYS))}"
    assert set(evaluate.VIEWS) <= set(views.names()), f"evaluate.VIEWS names missing views: {sorted(set(evaluate.VIEWS) - set(views.names()))}"
    assert set(evaluate.VIEWS) >= set(MINE), f"evaluate.VIEWS lacks {sorted(set(MINE) - set(evaluate.VIEWS))}"


# ---------------------------------------------------------------------------------------------
# hand fixtures: answers written as fractions
# ---------------------------------------------------------------------------------------------
def _cats_and_dogs() -> World:
    """Six valid examples (1..6), two train (7, 8) and one test (9); labels cat=0, dog=1."""
    split = {1: "valid", 2: "valid", 3: "valid", 4: "valid", 5: "valid", 6: "valid", 7: "train", 8: "train", 9: "test"}
    gold = {(1, 0), (2, 0), (3, 0), (4, 1), (5, 1), (6, 0), (6, 1), (9, 0)}
    nan = math.nan
    cats = Teacher("cats", "binary", [0], [1, 2, 3, 4, 5, 6, 7, 9],
                   np.array([[0.9], [0.6], [0.2], [0.7], [0.1], [nan], [0.8], [0.9]], np.float32))
    # multiclass, output order (dog, cat): example 3 is a tie -> output_index 0 (dog) wins
    mc = Teacher("mc", "multiclass", [1, 0], [1, 2, 3, 4, 5, 6],
                 np.array([[0.25, 0.75], [0.75, 0.25], [0.5, 0.5], [1.0, 0.0], [0.5, 0.5], [0.0, 1.0]], np.float32))
    strict = Teacher("strict", "multilabel", [0, 1], [1, 2, 4, 5],
                     np.array([[0.75, 0.0], [0.5, 0.5], [0.75, 0.75], [nan, 1.0]], np.float32), threshold=0.75)
    reg = Teacher("size", "regression", [0], [1, 2], np.array([[3.0], [-1.0]], np.float32))
    return World(labels=["cat", "dog"], split=split, gold=gold, teachers=[cats, mc, strict, reg],
                 settings={"threshold": 0.5, "min_support": 1.0})


def _by(rows: list[dict], *key: str) -> dict:
    return {tuple(r[k] for k in key) if len(key) > 1 else r[key[0]]: r for r in rows}


def test_hand_label_metrics(mstore: kdstore.Store) -> None:
    world = _cats_and_dogs()
    with rolled_back(mstore):
        load_world(mstore, world)
        m = _by(view_rows(mstore, "label_metrics"), "teacher", "label")
        d = view_rows(mstore, "decisions")
    # cats on cat: valid 1..5 covered (6 is NULL); positives 1, 2, 4 (0.7 >= 0.5); gold cat 1, 2, 3
    c = m[("cats", "cat")]
    assert (c["tp"], c["fp"], c["fn"], c["tn"]) == (2, 1, 1, 1)
    assert c["covered"] == 5 and c["n_valid"] == 6 and c["support"] == 3
    assert c["coverage"] == 5 / 6 and c["precision"] == 2 / 3 and c["recall"] == 2 / 3
    assert c["f1"] == 4 / 6 and c["accuracy"] == 3 / 5
    # mc: argmax per row, ties -> output_index 0 (dog): cat positive on 1, 6; dog on 2, 3, 4, 5
    assert (m[("mc", "cat")]["tp"], m[("mc", "cat")]["fp"], m[("mc", "cat")]["fn"], m[("mc", "cat")]["tn"]) == (2, 0, 2, 2)
    dog = m[("mc", "dog")]
    assert (dog["tp"], dog["fp"], dog["fn"], dog["tn"]) == (2, 2, 1, 1)
    assert dog["precision"] == 2 / 4 and dog["recall"] == 2 / 3
    # strict: own threshold 0.75 beats the 0.5 setting; cat covered on 1, 2, 4; dog on 1, 2, 4, 5
    s_cat, s_dog = m[("strict", "cat")], m[("strict", "dog")]
    assert (s_cat["tp"], s_cat["fp"], s_cat["fn"], s_cat["tn"]) == (1, 1, 1, 0)
    assert (s_dog["tp"], s_dog["fp"], s_dog["fn"], s_dog["tn"]) == (2, 0, 0, 2)
    assert s_dog["precision"] == 1 and s_dog["accuracy"] == 4 / 4
    # regression teachers have no decisions and no metrics; the test split never appears
    assert not any(r["teacher"] == "size" for r in m.values())
    assert {r["example_id"] for r in d}.isdisjoint({9})
    ties = [r for r in d if r["teacher_id"] == 1 and r["example_id"] == 3]
    assert {r["label_id"]: r["positive"] for r in ties} == {1: True, 0: False}


def test_hand_wilson_bounds(mstore: kdstore.Store) -> None:
    world = _cats_and_dogs()
    with rolled_back(mstore):
        load_world(mstore, world)
        mstore.settings.update(confidence=0.95)
        c = _by(view_rows(mstore, "label_metrics"), "teacher", "label")[("cats", "cat")]
        z = view_rows(mstore, "confidence_z")[0]["z"]
    assert z == pytest.approx(1.959963984540054, abs=1e-15)
    # Wilson, k = 2 of n = 3: (p + z^2/2n - z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)
    p, n = 2 / 3, 3
    want = (p + z * z / (2 * n) - z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / (1 + z * z / n)
    assert c["precision_lb"] == pytest.approx(want, rel=1e-12)
    assert c["precision_lb"] == pytest.approx(0.20765, abs=1e-5)  # published tables: 2/3 at 95% -> 0.2077


def test_hand_experts_and_missing_labels(mstore: kdstore.Store) -> None:
    world = _cats_and_dogs()
    world.labels.append("bird")  # nobody has it
    with rolled_back(mstore):
        load_world(mstore, world)
        mstore.settings.update(expert_metric=3, min_support=1, expert_margin=0.4)  # rank by precision
        e = _by(view_rows(mstore, "label_experts"), "label", "teacher")
        missing = _by(view_rows(mstore, "labels_without_expert"), "label")
        mstore.settings.update(min_support=4)
        missing_hi = _by(view_rows(mstore, "labels_without_expert"), "label")
    # dog precision: strict 2/2, mc 2/4 -> strict best; mc is 1/2 behind (outside a 2/5 margin)
    assert e[("dog", "strict")]["rank"] == 1 and e[("dog", "strict")]["is_best"]
    assert e[("dog", "mc")]["rank"] == 2 and not e[("dog", "mc")]["within_margin"]
    # cat precision: mc 2/2, cats 2/3, strict 1/2 -> cats within 2/5 of the best, strict not
    assert [e[("cat", t)]["rank"] for t in ("mc", "cats", "strict")] == [1, 2, 3]
    assert e[("cat", "cats")]["within_margin"] and not e[("cat", "strict")]["within_margin"]
    assert e[("cat", "mc")]["metric"] == 1 and e[("cat", "mc")]["best_metric"] == 1
    assert missing == {"bird": {"label_id": 2, "label": "bird", "n_teachers": 0, "max_support": None,
                                "reason": "no teacher has this label"}}
    # support: cat 3 (cats), 4 (mc), 2 (strict); dog 3, 2 -> only mc reaches 4 on cat
    assert set(missing_hi) == {"dog", "bird"} and missing_hi["dog"]["reason"] == "no teacher reaches min_support"


def test_hand_snorkel_lf_summary(mstore: kdstore.Store) -> None:
    """The label matrix of Snorkel's LFAnalysis docstrings (coverage 0.4, 0.8, 0.4; overlaps 0.4, 0.6,
    0.4; conflicts 0.2, 0.2, 0) as vote teachers on a valid split, with gold Y = (0, 0, 1, 0, 1)."""
    votes = np.array([[-1, 0, 0], [-1, -1, -1], [1, 0, -1], [-1, 0, -1], [0, 0, 0]])
    with rolled_back(mstore):
        mstore.add_labels(["neg", "pos"])
        mstore.add_examples(pa.table({"example_id": np.arange(5), "split": ["valid"] * 5}))
        mstore.add_gold(pa.table({"example_id": [0, 1, 2, 3, 4], "label": [0, 0, 1, 0, 1]}))
        mstore.ingest_votes(pa.table({"example_id": np.arange(5), "a": votes[:, 0], "b": votes[:, 1], "c": votes[:, 2]}),
                            progress=False)
        s = _by(view_rows(mstore, "teacher_summary"), "teacher")
        per_label = _by(view_rows(mstore, "teacher_label_summary"), "teacher", "label")
    assert [s[t]["polarity"] for t in "abc"] == [[0, 1], [0], [0]]
    assert [s[t]["coverage"] for t in "abc"] == [2 / 5, 4 / 5, 2 / 5]
    assert [s[t]["overlaps"] for t in "abc"] == [2 / 5, 3 / 5, 2 / 5]
    assert [s[t]["conflicts"] for t in "abc"] == [1 / 5, 1 / 5, 0]
    # a: votes 1 on ex 2 (gold 1) and 0 on ex 4 (gold 1); b: ex 0 ok, 2 wrong, 3 ok, 4 wrong; c: ex 0 ok, 4 wrong
    assert [(s[t]["correct"], s[t]["incorrect"]) for t in "abc"] == [(1, 1), (2, 2), (1, 1)]
    assert [s[t]["emp_acc"] for t in "abc"] == [1 / 2, 2 / 4, 1 / 2]
    # per label, a vote teacher's rows add up to its summary row
    assert per_label[("a", "pos")]["fired"] == 1 and per_label[("a", "pos")]["emp_acc"] == 1
    assert per_label[("a", "neg")]["emp_acc"] == 0 and per_label[("b", "pos")]["emp_acc"] == 0  # 0/0 -> 0 (Snorkel)
    assert per_label[("a", "neg")]["conflicts"] + per_label[("a", "pos")]["conflicts"] == s["a"]["conflicts"]


def test_hand_consensus_binary_specialists(mstore: kdstore.Store) -> None:
    """The patent's case: six binary specialists; on an example of breed 0 only its expert fires."""
    n = 6
    scores = np.full((n, 1), 0.0, np.float32)
    teachers = [Teacher(f"breed{i}", "binary", [i], [10], np.array([[1.0 if i == 0 else 0.0]], np.float32)) for i in range(n)]
    del scores
    world = World(labels=[f"b{i}" for i in range(n)], split={10: "train"}, teachers=teachers, settings={"z_threshold": 2.0})
    with rolled_back(mstore):
        load_world(mstore, world)
        ce = view_rows(mstore, "consensus_example")
        z = _by(view_rows(mstore, "consensus_z"), "teacher_id")
        experts = view_rows(mstore, "consensus_experts")
        cons = view_rows(mstore, "consensus")
    # crowd: n = 6, mean 1/6, sample stddev sqrt((25/36 + 5/36) / 5) = sqrt(1/6)
    assert ce == [{"example_id": 10, "n": 6, "mean": pytest.approx(1 / 6), "stddev": pytest.approx(math.sqrt(1 / 6))}]
    assert z[0]["z_example"] == pytest.approx((1 - 1 / 6) / math.sqrt(1 / 6))  # 2.0412 >= 2
    assert z[0]["z"] is None  # alone on its label: no per-label consensus spread
    assert [(r["teacher_id"], r["by_example"], r["by_label"]) for r in experts] == [(0, True, False)]
    assert all(r["n"] == 1 and r["stddev"] is None for r in cons)


def test_consensus_pages_beyond_eight_labels(mstore: kdstore.Store) -> None:
    """Ten labels span two pages; the example statistics combine both."""
    labels = [f"l{i}" for i in range(10)]
    rows = np.array([[0.1 * i for i in range(10)], [0.05 * i for i in range(10)]], np.float32)
    t = [Teacher("a", "multilabel", list(range(10)), [1, 2], rows),
         Teacher("b", "multilabel", [9, 0, 8], [1], np.array([[0.5, 0.5, 1.0]], np.float32))]
    world = World(labels=labels, split={1: "train", 2: "valid"}, teachers=t)
    with rolled_back(mstore):
        load_world(mstore, world)
        pages = view_rows(mstore, "consensus_pages")
        check_all_views(mstore, world)
    assert sorted((r["example_id"], r["page"]) for r in pages) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    ex1 = np.array([*rows[0], 0.5, 0.5, 1.0], np.float32).astype(np.float64)
    row = next(r for r in pages if r["example_id"] == 1)
    assert row["n_example"] == 13 and row["stddev_example"] == pytest.approx(np.std(ex1, ddof=1), rel=1e-12)


def test_equal_scores_have_zero_stddev_and_null_z(mstore: kdstore.Store) -> None:
    t = [Teacher(f"t{i}", "binary", [0], [1], np.array([[0.1]], np.float32)) for i in range(3)]
    world = World(labels=["x"], split={1: "train"}, teachers=t)
    with rolled_back(mstore):
        load_world(mstore, world)
        c = view_rows(mstore, "consensus")
        z = view_rows(mstore, "consensus_z")
        ce = view_rows(mstore, "consensus_example")
    assert c[0]["stddev"] == 0.0 and ce[0]["stddev"] == 0.0
    assert all(r["z"] is None and r["z_example"] is None for r in z)


def test_empty_store_and_empty_valid_split(mstore: kdstore.Store) -> None:
    with rolled_back(mstore):
        for name in MINE:
            rows = view_rows(mstore, name)
            assert (len(rows) == 1) if name in ("params", "confidence_z") else (rows == []), name
    world = World(labels=["a"], split={1: "train"},
                  teachers=[Teacher("t", "binary", [0], [1], np.array([[0.9]], np.float32))])
    with rolled_back(mstore):
        load_world(mstore, world)
        m = view_rows(mstore, "label_metrics")
        check_all_views(mstore, world)
    assert m[0]["n_valid"] == 0 and m[0]["coverage"] is None and m[0]["precision"] is None


def test_settings_change_the_views(mstore: kdstore.Store) -> None:
    world = _cats_and_dogs()
    with rolled_back(mstore):
        load_world(mstore, world)
        before = _by(view_rows(mstore, "label_metrics"), "teacher", "label")[("cats", "cat")]
        mstore.settings.update(threshold=0.65)
        after = _by(view_rows(mstore, "label_metrics"), "teacher", "label")[("cats", "cat")]
    assert (before["tp"], before["fp"]) == (2, 1)
    assert (after["tp"], after["fp"]) == (1, 1)  # 0.6 is no longer positive


# ---------------------------------------------------------------------------------------------
# differential: random small worlds against the oracles
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=worlds())
def test_views_match_oracles(mstore: kdstore.Store, world: World) -> None:
    with rolled_back(mstore):
        load_world(mstore, world)
        check_all_views(mstore, world)


@pytest.mark.slow
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=worlds(max_labels=11, max_examples=4, max_teachers=3))
def test_views_match_oracles_many_labels(mstore: kdstore.Store, world: World) -> None:
    with rolled_back(mstore):
        load_world(mstore, world)
        check_all_views(mstore, world)


def test_hand_fixture_matches_oracles(mstore: kdstore.Store) -> None:
    world = _cats_and_dogs()
    with rolled_back(mstore):
        load_world(mstore, world)
        check_all_views(mstore, world)


# ---------------------------------------------------------------------------------------------
# the Python API
# ---------------------------------------------------------------------------------------------
def test_evaluate_api(mstore: kdstore.Store) -> None:
    world = _cats_and_dogs()
    with rolled_back(mstore):
        load_world(mstore, world)
        m = mstore.evaluate.label_metrics(teacher="cats")
        assert isinstance(m, pa.Table) and m.column("teacher").to_pylist() == ["cats"]
        both = evaluate.label_metrics(mstore, teacher=["cats", "mc"], label="dog")
        assert both.column("teacher").to_pylist() == ["mc"]  # cats has no dog
        assert mstore.view("params").num_rows == 1
        assert mstore.view("label_metrics", where={"tp": 2}, columns=["teacher", "label"]).column_names == ["teacher", "label"]
        experts = {e.label: e for e in mstore.evaluate.experts()}
        assert experts["dog"].best is not None and experts["dog"].reason is None
        with pytest.raises(kdstore.KdstoreError, match=r"no view kd\.nope"):
            mstore.view("nope")
        with pytest.raises(kdstore.KdstoreError, match="has no column 'nope'"):
            mstore.view("label_metrics", where={"nope": 1})
        with pytest.raises(kdstore.KdstoreError, match="unknown teacher 'ghost'"):
            mstore.evaluate.label_metrics(teacher="ghost")
        with pytest.raises(kdstore.KdstoreError, match="unknown label 'ghost'"):
            mstore.evaluate.label_metrics(teacher="cats", label=["dog", "ghost"])


def test_view_execution_error_wraps_engine_failures(mstore: kdstore.Store) -> None:
    with rolled_back(mstore):
        # a setting the engine cannot bind makes the view fail at run time
        mstore.run("CREATE OR REPLACE VIEW kd.broken AS SELECT CAST('x' AS INTEGER) AS v FROM kd.params")
        with pytest.raises(kdstore.ViewExecutionError, match="view broken") as info:
            mstore.view("broken")
        assert re.search(r'FROM "kd"\."broken"', info.value.sql())


# ---------------------------------------------------------------------------------------------
# real data: WRENCH label functions against Snorkel's LFAnalysis formulas on the vote matrix
# ---------------------------------------------------------------------------------------------
def _snorkel_lf_summary(votes: np.ndarray, gold: np.ndarray | None) -> dict[str, np.ndarray | list[list[int]]]:
    """LFAnalysis(L).lf_summary(Y) column by column, from Snorkel's definitions (-1 = abstain)."""
    n = votes.shape[0]
    on = votes != -1
    per_row = on.sum(axis=1)
    distinct = np.array([len(set(r[r != -1].tolist())) for r in votes])
    out: dict[str, np.ndarray | list[list[int]]] = {
        "polarity": [sorted(set(votes[on[:, j], j].tolist())) for j in range(votes.shape[1])],
        "coverage": on.sum(0) / n,
        "overlaps": (on & (per_row > 1)[:, None]).sum(0) / n,
        "conflicts": (on & (distinct > 1)[:, None]).sum(0) / n,
    }
    if gold is not None:
        correct = (on & (votes == gold[:, None])).sum(0)
        out["correct"] = correct
        out["incorrect"] = on.sum(0) - correct
        with np.errstate(invalid="ignore", divide="ignore"):
            out["emp_acc"] = np.nan_to_num(correct / on.sum(0))
    return out


@pytest.mark.parametrize("name", ["youtube", "trec"])
def test_teacher_summary_equals_snorkel_formulas_on_wrench(mstore: kdstore.Store, name: str) -> None:
    from kdstore.datasets.wrench import load_wrench, read_wrench
    from tests.conftest import WRENCH

    classes, table = read_wrench(name, WRENCH)
    votes_all = np.asarray(table.column("votes").combine_chunks().flatten().to_numpy(), np.int64).reshape(table.num_rows, -1)
    split = np.asarray(table.column("split").to_pylist(), dtype=object)
    gold = table.column("gold").to_numpy()
    with rolled_back(mstore):
        ws = load_wrench(mstore, name, WRENCH, progress=False)
        rows = {(r["teacher"], r["split"]): r for r in view_rows(mstore, "teacher_summary")}
    to_label = dict(enumerate(ws.label_ids))
    for sp in ("train", "valid"):
        m = split == sp
        want = _snorkel_lf_summary(votes_all[m], gold[m] if sp == "valid" else None)
        for j, teacher in enumerate(ws.teachers):
            got = rows[(teacher, sp)]
            assert got["polarity"] == [to_label[k] for k in want["polarity"][j]], (teacher, sp)
            for col in ("coverage", "overlaps", "conflicts"):
                assert got[col] == pytest.approx(want[col][j], abs=1e-12), (teacher, sp, col)
            if sp == "valid":
                assert (got["correct"], got["incorrect"]) == (want["correct"][j], want["incorrect"][j]), teacher
                assert got["emp_acc"] == pytest.approx(want["emp_acc"][j], abs=1e-12), teacher
            else:
                assert got["correct"] is None and got["emp_acc"] is None
    assert len(classes) == len(ws.label_ids)
