"""Valid ingest: round trips (Hypothesis), every input kind, atomic re-ingest, votes, embeddings, features."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kdstore
from kdstore.errors import SchemaError
from tests._helpers import snapshot

LABELS = [f"l{i}" for i in range(5)]
DENSE = list(range(30))
SPARSE = [3 * i + 7 for i in range(20)] + [2**40 + i for i in range(5)]
_stores: dict[str, kdstore.Store] = {}


def _store(kind: str) -> kdstore.Store:
    """One store per example-id layout, shared by the Hypothesis examples (each replaces teacher t)."""
    if kind not in _stores:
        s = kdstore.connect()
        s.add_labels(LABELS)
        s.add_examples(pa.table({"example_id": DENSE if kind == "dense" else SPARSE}), split="train")
        _stores[kind] = s
    return _stores[kind]


Case = dict[str, Any]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    typ = draw(st.sampled_from(["binary", "multilabel", "multiclass", "vote", "regression"]))
    width = 1 if typ == "binary" else draw(st.integers(2 if typ in ("multiclass", "vote") else 1, 4))
    label_ids = draw(st.permutations(range(len(LABELS))))[:width]
    layout = draw(st.sampled_from(["dense", "sparse"]))
    pool = DENSE if layout == "dense" else SPARSE
    ids = draw(st.lists(st.sampled_from(pool), max_size=20, unique=True))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = len(ids)
    if typ in ("binary", "multilabel"):
        vals = rng.random((n, width))
        special = rng.random((n, width)) < 0.2
        vals[special] = rng.choice([0.0, 1.0, 0.1, 1e-45, 1 - 1e-9], size=int(special.sum()))
    elif typ == "multiclass":
        vals = rng.dirichlet(np.ones(width), size=n) if n else np.empty((0, width))
    elif typ == "vote":
        vals = np.eye(width)[rng.integers(0, width, size=n)] if n else np.empty((0, width))
    else:
        vals = rng.normal(0, 1e3, size=(n, width)) * rng.choice([1.0, 1e-30, 1e30], size=(n, width))
    null_p = draw(st.sampled_from([0.0, 0.3, 1.0]))
    row_null = rng.random(n) < null_p / 2
    valid = np.ones((n, width), dtype=bool)
    if typ in ("binary", "multilabel", "regression"):
        valid &= rng.random((n, width)) >= null_p / 2
    valid[row_null] = False
    form = draw(st.sampled_from(["long", "wide_cols", "wide_list32", "wide_list64", "wide_fixed"]))
    n_rows = int(valid.sum()) if form == "long" else n
    cuts = sorted(draw(st.lists(st.integers(0, n_rows), max_size=4)))
    return {"typ": typ, "label_ids": label_ids, "layout": layout, "ids": np.asarray(ids, dtype=np.int64), "vals": vals,
            "valid": valid, "form": form, "cuts": cuts, "as_reader": draw(st.booleans()),
            "label_as_name": draw(st.booleans()), "null_list": draw(st.booleans()), "seed": int(rng.integers(1 << 30))}


def build_input(c: Case) -> tuple[pa.Table, str]:
    """The case's outputs as an Arrow table in the case's form."""
    ids, vals, valid, label_ids = c["ids"], c["vals"], c["valid"], c["label_ids"]
    width = len(label_ids)
    names = [LABELS[i] for i in label_ids]
    if c["form"] == "long":
        r, j = np.nonzero(valid)
        order = np.random.default_rng(c["seed"]).permutation(r.size)
        r, j = r[order], j[order]
        labels: Any = [names[k] for k in j] if c["label_as_name"] else np.asarray(label_ids, dtype=np.int32)[j]
        return pa.table({"example_id": pa.array(ids[r], pa.int64()), "label": labels, "score": vals[r, j]}), "long"
    if c["form"] == "wide_cols":
        cols = {nm: pa.array(vals[:, k], mask=~valid[:, k]) for k, nm in enumerate(names)}
        return pa.table({"example_id": pa.array(ids, pa.int64()), **cols}), "wide"
    dtype = pa.float64() if c["form"] == "wide_list64" else pa.float32()
    flat = pa.array(vals.reshape(-1).astype(np.float32 if dtype == pa.float32() else np.float64), mask=~valid.reshape(-1))
    offsets = pa.array(np.arange(len(ids) + 1, dtype=np.int32) * width)
    null_rows = ~valid.any(axis=1) if c["null_list"] else np.zeros(len(ids), dtype=bool)
    if c["form"] == "wide_fixed":
        lists: pa.Array = pa.FixedSizeListArray.from_arrays(flat, width, mask=pa.array(null_rows))
    else:
        lists = pa.ListArray.from_arrays(offsets, flat, mask=pa.array(null_rows))
    return pa.table({"example_id": pa.array(ids, pa.int64()), "score": lists}), "wide"


def batched(table: pa.Table, cuts: list[int]) -> pa.RecordBatchReader:
    bounds = [0, *cuts, table.num_rows]
    parts = [table.slice(a, b - a) for a, b in itertools.pairwise(bounds)]
    batches = [b for p in parts for b in (p.to_batches() or [pa.RecordBatch.from_pylist([], schema=table.schema)])]
    return pa.RecordBatchReader.from_batches(table.schema, batches)


def expected_outputs(c: Case) -> list[tuple[int, int, float]]:
    r, j = np.nonzero(c["valid"])
    v32 = c["vals"].astype(np.float32)
    return sorted((int(c["ids"][a]), int(c["label_ids"][b]), float(v32[a, b])) for a, b in zip(r, j, strict=True))


def stored(store: kdstore.Store, teacher: str) -> list[tuple[int, int, float]]:
    rows = store.execute(
        "SELECT o.example_id, o.label_id, o.score FROM kd.outputs o JOIN kd.teachers t USING (teacher_id) "
        "WHERE t.name = ? ORDER BY ALL", [teacher]).fetchall()
    return [(int(a), int(b), float(s)) for a, b, s in rows]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_round_trip(c: Case) -> None:
    store = _store(c["layout"])
    store.add_teacher("t", labels=c["label_ids"], output_type=c["typ"], replace=True)
    table, form = build_input(c)
    n = store.ingest_outputs("t", batched(table, c["cuts"]) if c["as_reader"] else table, form=form)
    expected = expected_outputs(c)
    assert stored(store, "t") == expected
    assert n == int(c["valid"].any(axis=1).sum()) == store.one(
        "SELECT count(*) FROM kd.scores JOIN kd.teachers USING (teacher_id) WHERE name = 't'")[0]  # type: ignore[index]


# -- every input kind gives the same stored result ---------------------------------------------
def _dataset() -> tuple[pa.Table, pa.Table]:
    """60 examples x 3 labels of a multilabel teacher, with null cells and all-null rows (wide), and
    the same outputs in long form."""
    rng = np.random.default_rng(7)
    n = 60
    vals = rng.random((n, 3))
    valid = rng.random((n, 3)) > 0.25
    valid[[3, 17]] = False
    ids = np.arange(n, dtype=np.int64)[::-1].copy()
    wide = pa.table({"example_id": ids, **{f"l{k}": pa.array(vals[:, k], mask=~valid[:, k]) for k in range(3)}})
    r, j = np.nonzero(valid)
    long = pa.table({"example_id": ids[r], "label": [f"l{k}" for k in j], "score": vals[r, j]})
    return wide, long


def _kinds(table: pa.Table, tmp: Path, store: kdstore.Store) -> Iterator[tuple[str, Any]]:
    import pandas as pd
    import polars as pl

    yield "table", table
    yield "reader", pa.RecordBatchReader.from_batches(table.schema, [*table.to_batches(max_chunksize=7), *table.slice(0, 0).to_batches()])
    yield "record batch", table.combine_chunks().to_batches()[0]
    yield "pandas", table.to_pandas()
    yield "pandas with an index", table.to_pandas().set_axis(np.arange(100, 100 + table.num_rows))
    assert isinstance(pd.DataFrame, type)
    yield "polars", pl.from_arrow(table)
    path = tmp / "one.parquet"
    pq.write_table(table, path, row_group_size=16)
    yield "parquet path", str(path)
    yield "parquet Path", path
    (tmp / "parts").mkdir()
    for k, start in enumerate(range(0, table.num_rows, 25)):
        pq.write_table(table.slice(start, 25), tmp / "parts" / f"p{k}.parquet")
    yield "parquet glob", str(tmp / "parts" / "*.parquet")
    yield "query", kdstore.Query(f"SELECT * FROM read_parquet('{path}')")


@pytest.mark.parametrize("form", ["wide", "long"])
def test_every_input_kind_stores_the_same(form: str, tmp_path: Path) -> None:
    wide, long = _dataset()
    table = wide if form == "wide" else long
    results = {}
    with kdstore.connect() as store:
        store.add_labels(["l0", "l1", "l2"])
        store.add_examples(pa.table({"example_id": np.arange(60)}), split="train")
        store.add_teacher("t", labels=["l0", "l1", "l2"], output_type="multilabel")
        for kind, src in _kinds(table, tmp_path, store):
            n = store.ingest_outputs("t", src, form=form)
            fp = store.one("SELECT fingerprint FROM kd.teachers WHERE name = 't'")
            results[kind] = (n, stored(store, "t"), fp)
    reference = results["table"]
    assert reference[0] == 58 and len(reference[1]) == int(pa.compute.sum(pa.compute.is_valid(wide.column("l0"))).as_py()) + \
        int(pa.compute.sum(pa.compute.is_valid(wide.column("l1"))).as_py()) + int(pa.compute.sum(pa.compute.is_valid(wide.column("l2"))).as_py())
    for kind, got in results.items():
        assert got == reference, kind


def test_long_and_wide_give_the_same_fingerprint() -> None:
    wide, long = _dataset()
    with kdstore.connect() as store:
        store.add_labels(["l0", "l1", "l2"])
        store.add_examples(pa.table({"example_id": np.arange(60)}), split="train")
        store.add_teacher("t", labels=["l0", "l1", "l2"], output_type="multilabel")
        store.ingest_outputs("t", wide, form="wide")
        fp_wide = store.one("SELECT fingerprint FROM kd.teachers")
        store.ingest_outputs("t", long)
        assert store.one("SELECT fingerprint FROM kd.teachers") == fp_wide
        store.ingest_outputs("t", long.slice(1))
        assert store.one("SELECT fingerprint FROM kd.teachers") != fp_wide
        store.ingest_outputs("t", long, fingerprint="model-sha:abc")
        assert store.one("SELECT fingerprint FROM kd.teachers") == ("model-sha:abc",)


def test_query_source_streams_while_writing(store: kdstore.Store) -> None:
    """A Query larger than one Arrow batch streams on its own cursor while the ingest writes."""
    store.add_labels(["a"])
    store.add_examples(kdstore.Query("SELECT range AS example_id, 'train' AS split FROM range(300000)"))
    store.add_teacher("q", labels=["a"], output_type="binary")
    n = store.ingest_outputs("q", kdstore.Query("SELECT range AS example_id, 'a' AS label, (range % 7) / 7 AS score FROM range(300000)"))
    assert n == 300000
    expected = ((np.arange(300000) % 7) / 7).astype(np.float32).astype(np.float64).sum()
    assert store.one("SELECT count(*), sum(score::DOUBLE) FROM kd.outputs") == pytest.approx((300000, expected), rel=1e-12)


# -- re-ingest is atomic ----------------------------------------------------------------------------
def test_reingest_replaces_only_that_teacher(store: kdstore.Store) -> None:
    store.add_labels(["a", "b"])
    store.add_examples(pa.table({"example_id": np.arange(20)}), split="train")
    for name in ("A", "B"):
        store.add_teacher(name, labels=["a", "b"], output_type="multilabel")
    store.ingest_outputs("A", pa.table({"example_id": np.arange(10), "a": np.full(10, 0.25), "b": np.full(10, 0.5)}), form="wide")
    store.ingest_outputs("B", pa.table({"example_id": np.arange(20), "a": np.full(20, 0.75), "b": np.full(20, 1.0)}), form="wide")
    b_before = stored(store, "B")
    store.ingest_outputs("A", pa.table({"example_id": np.arange(5, 15), "label": ["b"] * 10, "score": np.full(10, 0.125)}))
    assert stored(store, "A") == [(i, 1, 0.125) for i in range(5, 15)]
    assert stored(store, "B") == b_before
    before = snapshot(store)
    bad = pa.table({"example_id": np.arange(20), "label": ["a"] * 20, "score": [0.5] * 19 + [1.5]})
    with pytest.raises(SchemaError, match=r"row 19: probability 1\.5"):
        store.ingest_outputs("A", pa.RecordBatchReader.from_batches(bad.schema, bad.to_batches(max_chunksize=3)))
    assert snapshot(store) == before


def test_realign_with_replace_drops_outputs(store: kdstore.Store) -> None:
    store.add_labels(["a", "b"])
    store.add_examples(pa.table({"example_id": [0, 1]}), split="valid")
    tid = store.add_teacher("t", labels=["a", "b"], output_type="multiclass", threshold=0.3, uri="m.onnx")
    assert store.add_teacher("t", labels=["a", "b"], output_type="multiclass", threshold=0.4) == tid  # same alignment
    assert store.one("SELECT threshold, uri FROM kd.teachers") == (0.4, None)
    store.ingest_outputs("t", pa.table({"example_id": [0], "a": [0.5], "b": [0.5]}), form="wide")
    store.add_teacher("t", labels=["b"], output_type="binary", replace=True)
    assert store.one("SELECT count(*) FROM kd.scores") == (0,)
    assert store.execute("SELECT output_index, label_id FROM kd.teacher_labels").fetchall() == [(0, 1)]


# -- examples, gold, weak -----------------------------------------------------------------------
def test_examples_slices_and_big_ids(store: kdstore.Store) -> None:
    big = 2**50
    assert store.add_examples(pa.table({"example_id": [big, big + 1, 5], "split": ["valid", "valid", "test"],
                                        "slice": ["x", None, "y"]})) == 3
    store.add_examples(pa.table({"example_id": [big]}), split="valid")  # no slice column: slice kept
    assert store.one("SELECT slice FROM kd.examples WHERE example_id = ?", [big]) == ("x",)
    store.add_examples(pa.table({"example_id": [big], "slice": ["z"]}), split="valid")  # slice updated
    assert store.one("SELECT slice FROM kd.examples WHERE example_id = ?", [big]) == ("z",)
    assert store.one("SELECT count(*) FROM kd.examples") == (3,)
    store.add_labels(["a", "b"])
    store.add_gold(pa.table({"example_id": [big, big + 1, big], "label": ["a", "a", "b"]}))
    # ids far apart must not collide in the duplicate check (they did with id * 2**20 + label)
    store.add_gold(pa.table({"example_id": [5, big + 1], "label": [1, 1]}))
    assert sorted(store.execute("SELECT example_id, label_id FROM kd.gold").fetchall()) == [(5, 1), (big, 0), (big, 1), (big + 1, 1)]


def test_gold_replaces_per_example_and_weak_per_source(store: kdstore.Store) -> None:
    store.add_labels(["a", "b", "c"])
    store.add_examples(pa.table({"example_id": [0, 1]}), split="valid")
    store.add_gold(pa.table({"example_id": [0, 0, 1], "label": ["a", "b", "c"]}))
    store.add_gold(pa.table({"example_id": [0], "label": ["c"]}))
    assert sorted(store.execute("SELECT * FROM kd.gold").fetchall()) == [(0, 2), (1, 2)]
    weak = pa.table({"example_id": [0, 0, 1], "label": ["a", "a", "b"], "source": ["s1", "s2", "s1"], "value": [1, 0.5, 1]})
    assert store.add_weak(weak) == 3
    store.add_weak(pa.table({"example_id": [0], "label": ["a"], "source": ["s1"], "value": [0.0]}))
    assert sorted(store.execute("SELECT * FROM kd.weak").fetchall()) == [(0, 0, "s1", 0.0), (0, 0, "s2", 0.5), (1, 1, "s1", 1.0)]


def test_polars_and_dictionary_text_columns(store: kdstore.Store) -> None:
    import polars as pl

    store.add_labels(["a", "b"])
    store.add_examples(pl.DataFrame({"example_id": [0, 1, 2], "split": ["train", "valid", "test"], "slice": ["s", None, "s"]}))
    assert dict(store.execute("SELECT split, count(*) FROM kd.examples GROUP BY split").fetchall()) == {"train": 1, "valid": 1, "test": 1}
    store.add_gold(pa.table({"example_id": [1, 2], "label": pa.array(["a", "b"]).dictionary_encode()}))
    assert store.one("SELECT count(*) FROM kd.gold") == (2,)


# -- votes ------------------------------------------------------------------------------------------
def test_votes_one_hot_and_abstain(store: kdstore.Store) -> None:
    store.add_labels(["neg", "pos", "other"])
    store.add_examples(pa.table({"example_id": np.arange(5)}), split="train")
    votes = pa.table({"example_id": np.arange(5), "lf_a": [1, -1, 0, 1, -1], "lf_b": [-1, -1, -1, -1, -1], "skip": [9] * 5})
    names = store.ingest_votes(votes, labelers=["lf_a", "lf_b"], classes=["neg", "pos"], prefix="wrench/")
    assert names == ["wrench/lf_a", "wrench/lf_b"]
    assert stored(store, "wrench/lf_a") == [(0, 0, 0.0), (0, 1, 1.0), (2, 0, 1.0), (2, 1, 0.0), (3, 0, 0.0), (3, 1, 1.0)]
    assert stored(store, "wrench/lf_b") == []
    assert store.one("SELECT DISTINCT output_type FROM kd.teachers") == ("vote",)
    store.ingest_votes(pa.table({"example_id": [4], "lf_a": [0]}), classes=["neg", "pos"], prefix="wrench/")
    assert stored(store, "wrench/lf_a") == [(4, 0, 1.0), (4, 1, 0.0)]  # replaced


def test_votes_on_wrench_youtube(store: kdstore.Store) -> None:
    from kdstore.datasets.wrench import read_wrench
    from tests.conftest import WRENCH

    classes, table = read_wrench("youtube", WRENCH)
    store.add_labels(classes)
    store.add_examples(table.select(["example_id", "split"]))
    votes = np.asarray(table.column("votes").combine_chunks().flatten().to_numpy()).reshape(table.num_rows, -1)
    cols = {f"lf{j}": votes[:, j].astype(np.int64) for j in range(votes.shape[1])}
    names = store.ingest_votes(pa.table({"example_id": table.column("example_id"), **cols}), classes=classes)
    assert len(names) == 10
    got = store.query(
        "SELECT t.name, count(*) AS n, sum(o.label_id) AS spam FROM kd.outputs o JOIN kd.teachers t USING (teacher_id) "
        "WHERE o.score = 1 GROUP BY t.name").to_pylist()
    by_lf = {r["name"]: (r["n"], r["spam"]) for r in got}
    for j in range(votes.shape[1]):
        v = votes[:, j]
        expect = (int((v >= 0).sum()), int((v == 1).sum()))
        assert by_lf.get(f"lf{j}", (0, 0)) == expect
    assert store.one("SELECT count(*) FROM kd.outputs WHERE score = 0") == (int((votes >= 0).sum()),)


# -- embeddings and features --------------------------------------------------------------------------
def test_embeddings_round_trip(store: kdstore.Store) -> None:
    store.add_labels(["a"])
    store.add_examples(pa.table({"example_id": np.arange(4)}), split="train")
    store.add_teacher("enc", labels=[], output_type="embedding")
    vecs = np.random.default_rng(0).normal(size=(4, 3))
    assert store.ingest_embeddings("enc", pa.table({"example_id": np.arange(4), "vector": list(vecs)})) == 4
    got = store.query("SELECT vector FROM kd.embeddings ORDER BY example_id").column(0).to_pylist()
    np.testing.assert_array_equal(np.asarray(got, dtype=np.float32), vecs.astype(np.float32))
    store.ingest_embeddings("enc", pa.table({"example_id": [1], "vector": [[0.0, 0.0, 1.0]]}))
    assert store.one("SELECT count(*) FROM kd.embeddings") == (1,)
    with pytest.raises(SchemaError, match="outputs embeddings: use ingest_embeddings"):
        store.ingest_outputs("enc", pa.table({"example_id": [0], "label": ["a"], "score": [1.0]}))


def test_features_table_parquet_query_replace(store: kdstore.Store, tmp_path: Path) -> None:
    import polars as pl

    rel = store.register_features("pix", pl.DataFrame({"id": [1, 2], "x": [0.5, 1.5]}), id_column="id")
    assert rel == 'features."pix"'
    assert store.query(f"SELECT * FROM {rel} ORDER BY 1").to_pylist() == [{"example_id": 1, "x": 0.5}, {"example_id": 2, "x": 1.5}]
    with pytest.raises(SchemaError, match="already exists"):
        store.register_features("pix", pa.table({"example_id": [1]}))
    path = tmp_path / "f.parquet"
    pq.write_table(pa.table({"example_id": [7], "y": ["q"]}), path)
    store.register_features("pix", path, replace=True)  # a table replaced by a view
    assert store.query(f"SELECT * FROM {rel}").to_pylist() == [{"example_id": 7, "y": "q"}]
    store.register_features("pix", pa.table({"example_id": pa.array([], pa.int64()), "z": pa.array([], pa.float32())}), replace=True)
    assert store.query(f"SELECT count(*) AS n FROM {rel}").to_pylist() == [{"n": 0}]
    kinds = store.execute("SELECT name, kind FROM kd.feature_sources").fetchall()
    assert kinds == [("pix", "table")]


# -- the writer other modules use ---------------------------------------------------------------------
def test_score_writer_nan_means_no_opinion(store: kdstore.Store) -> None:
    from kdstore.ingest import Examples, ScoreWriter, get_teacher
    from kdstore.sources import open_source

    store.add_labels(["a", "b"])
    store.add_examples(pa.table({"example_id": [10, 20, 30]}), split="train")
    store.add_teacher("onnx", labels=["a", "b"], output_type="multilabel", kind="onnx")
    t = get_teacher(store, "onnx")
    with store.transaction():
        w = ScoreWriter(store, t, open_source(pa.table({"x": [1]}), name="model onnx"), Examples(store))
        w.add(np.array([10, 20, 30]), np.array([[0.5, np.nan], [np.nan, np.nan], [0.25, 1.0]]), 0, "output")
        w.flush()
    assert stored(store, "onnx") == [(10, 0, 0.5), (30, 0, 0.25), (30, 1, 1.0)]
    assert w.rows_written == 2 and w.fingerprint().startswith("data:2:")


def test_read_file_reads_every_supported_type_and_names_the_file_on_error(tmp_path: Path) -> None:
    """sources.read_file (kdstore distill's data files, the CLI's CSV/JSON inputs): one reader for each type."""
    from kdstore.sources import read_file

    want = pa.table({"example_id": [1, 2], "label": ["cat", "dog"]})
    pq.write_table(want, tmp_path / "a.parquet")
    (tmp_path / "a.csv").write_text("example_id,label\n1,cat\n2,dog\n")
    (tmp_path / "a.tsv").write_text("example_id\tlabel\n1\tcat\n2\tdog\n")
    (tmp_path / "a.jsonl").write_text('{"example_id": 1, "label": "cat"}\n{"example_id": 2, "label": "dog"}\n')
    for name in ("a.parquet", "a.csv", "a.tsv", "a.jsonl"):
        assert read_file(tmp_path / name).equals(want), name
    (tmp_path / "b.data").write_text("example_id,label\n1,cat\n2,dog\n")
    assert read_file(tmp_path / "b.data", fmt="csv").equals(want)
    with pytest.raises(SchemaError, match=r"b\.data.*unknown file type 'data'"):
        read_file(tmp_path / "b.data")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(SchemaError, match=r"bad\.parquet.*cannot read as parquet"):
        read_file(tmp_path / "bad.parquet")
