"""Every invalid input is a SchemaError naming the problem, at the right row, and changes nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import kdstore
from kdstore.errors import SchemaError
from tests._helpers import snapshot


def _build(store: kdstore.Store) -> None:
    store.add_labels(["a", "b", "c"])
    store.add_examples(pa.table({"example_id": range(6), "split": ["train"] * 3 + ["valid"] * 2 + ["test"]}))
    store.add_gold(pa.table({"example_id": [3, 4], "label": ["a", "b"]}))
    store.add_teacher("ml", labels=["a", "b", "c"], output_type="multilabel")
    store.add_teacher("mc", labels=["a", "b", "c"], output_type="multiclass")
    store.add_teacher("bin", labels=["a"], output_type="binary")
    store.add_teacher("vote", labels=["a", "b"], output_type="vote")
    store.add_teacher("reg", labels=["a"], output_type="regression")
    store.ingest_outputs("ml", pa.table({"example_id": [0, 1], "a": [0.5, 0.25], "b": [0.5, 0.5], "c": [0.0, 1.0]}), form="wide")


_shared: dict[str, Any] = {}


@pytest.fixture
def base() -> Iterator[kdstore.Store]:
    """Labels a, b, c; examples 0..5 (0-2 train, 3-4 valid, 5 test); one teacher per output type;
    teacher ml already has outputs, so an unchanged store proves they survived.

    Failed calls leave the store unchanged, so one store serves every case; it is rebuilt only if
    a case changed it (that case fails on its own snapshot check)."""
    store = _shared.get("store")
    if store is None or snapshot(store) != _shared["pristine"]:
        if store is not None:
            store.close()
        store = kdstore.connect()
        _build(store)
        _shared["store"], _shared["pristine"] = store, snapshot(store)
    yield store


def reader(*batches: dict[str, Any], schema: pa.Schema | None = None) -> pa.RecordBatchReader:
    """A RecordBatchReader over batches given as column dicts (empty dicts = empty batches)."""
    rbs = [pa.RecordBatch.from_pydict(b, schema=schema) if b else None for b in batches]
    schema = schema or next(r.schema for r in rbs if r is not None)
    full = [r if r is not None else pa.RecordBatch.from_pylist([], schema=schema) for r in rbs]
    return pa.RecordBatchReader.from_batches(schema, full)


def long(ids: list[Any], labels: list[Any], scores: list[Any]) -> pa.Table:
    return pa.table({"example_id": ids, "label": labels, "score": scores})


WIDE_F = pa.schema([("example_id", pa.int64()), ("a", pa.float64()), ("b", pa.float64()), ("c", pa.float64())])
LIST_F = pa.schema([("example_id", pa.int64()), ("score", pa.list_(pa.float32()))])

# (id, call, message regex, row or None)
CASES: list[tuple[str, Callable[[kdstore.Store], object], str, int | None]] = [
    ("unknown example, long",
     lambda s: s.ingest_outputs("ml", long([0, 1, 99], ["a", "a", "a"], [0.1, 0.2, 0.3])), r"unknown example 99", 2),
    ("unknown example, wide, across batches",
     lambda s: s.ingest_outputs("ml", reader({"example_id": [0, 1], "a": [.1, .2], "b": [.1, .2], "c": [.1, .2]}, {},
                                             {"example_id": [2, 77], "a": [.1, .2], "b": [.1, .2], "c": [.1, .2]}, schema=WIDE_F), form="wide"),
     r"unknown example 77", 3),
    ("unknown label name", lambda s: s.ingest_outputs("ml", long([0, 1], ["a", "zzz"], [0.1, 0.2])), r"unknown label 'zzz'", 1),
    ("unknown label id", lambda s: s.ingest_outputs("ml", long([0, 1], [0, 42], [0.1, 0.2])), r"unknown label id 42", 1),
    ("label outside the teacher", lambda s: s.ingest_outputs("bin", long([0, 1], ["a", "b"], [0.1, 0.2])),
     r"label id 1 is not one of the labels of teacher 'bin'", 1),
    ("duplicate output, long",
     lambda s: s.ingest_outputs("ml", long([0, 1, 0, 0], ["a", "a", "b", "a"], [.1, .2, .3, .4])),
     r"duplicate output \(teacher 'ml', example 0, label id 0\) \(first at row 0\)", 3),
    ("duplicate output, long, across batches",
     lambda s: s.ingest_outputs("ml", reader({"example_id": [0, 1], "label": ["a", "b"], "score": [.1, .2]}, {},
                                             {"example_id": [2, 1], "label": ["c", "b"], "score": [.1, .2]})),
     r"duplicate output \(teacher 'ml', example 1, label id 1\) \(first at row 1\)", 3),
    ("duplicate example, wide",
     lambda s: s.ingest_outputs("ml", pa.table({"example_id": [0, 1, 0], "a": [.1, .2, .3], "b": [.1, .2, .3], "c": [.1, .2, .3]}), form="wide"),
     r"duplicate output for example 0 of teacher 'ml'", 2),
    ("duplicate example, wide, across batches",
     lambda s: s.ingest_outputs("ml", reader({"example_id": [0, 1], "score": [[.1, .2, .3]] * 2}, {},
                                             {"example_id": [2, 1], "score": [[.1, .2, .3]] * 2}, schema=LIST_F), form="wide"),
     r"duplicate output for example 1", 3),
    ("duplicate example, wide, first one abstains",
     lambda s: s.ingest_outputs("ml", pa.table({"example_id": [4, 2, 4], "score": pa.array([None, [.1, .2, .3], [.1, .2, .3]], pa.list_(pa.float64()))}), form="wide"),
     r"duplicate output for example 4", 2),
    ("NaN, long", lambda s: s.ingest_outputs("reg", long([0, 1], ["a", "a"], [0.1, float("nan")])), r"NaN score", 1),
    ("inf, wide column",
     lambda s: s.ingest_outputs("ml", pa.table({"example_id": [0, 1], "a": [.1, .2], "b": [.1, float("inf")], "c": [.1, .2]}), form="wide"),
     r"column 'b', row 1: infinite score", 1),
    ("NaN in a float32 column",
     lambda s: s.ingest_outputs("ml", pa.table({"example_id": [0, 1], "a": pa.array([.1, .2], pa.float32()), "b": pa.array([.1, .2], pa.float32()),
                                                "c": pa.array([float("nan"), .2], pa.float32())}), form="wide"),
     r"column 'c', row 0: NaN score", 0),
    ("NaN inside a list (not a null)",
     lambda s: s.ingest_outputs("ml", pa.table({"example_id": [0, 1, 2], "score": pa.array([[.1, None, .3], [.1, .2, .3], [.1, .2, float("nan")]], pa.list_(pa.float32()))}), form="wide"),
     r"NaN score \(label index 2\)", 2),
    ("beyond float32", lambda s: s.ingest_outputs("reg", long([0, 1], ["a", "a"], [1.0, 1e300])), r"score 1e\+300 does not fit in float32", 1),
    ("probability above 1, long", lambda s: s.ingest_outputs("bin", long([0, 1, 2], ["a"] * 3, [0.1, 1.5, 2.0])),
     r"probability 1.5 outside \[0, 1\] for binary teacher 'bin'", 1),
    ("probability below 0, wide",
     lambda s: s.ingest_outputs("ml", pa.table({"example_id": [0, 1], "a": [.1, .2], "b": [.1, .2], "c": [.1, -0.25]}), form="wide"),
     r"probability -0.25 outside \[0, 1\] for multilabel", 1),
    ("multiclass row not summing to 1",
     lambda s: s.ingest_outputs("mc", pa.table({"example_id": [0, 1, 2], "a": [.2, .5, .1], "b": [.3, .2, .1], "c": [.5, .2, .8]}), form="wide"),
     r"multiclass probabilities sum to 0.9, not 1 \(tolerance 0.001", 1),
    ("multiclass row not summing to 1, long (first row of the example)",
     lambda s: s.ingest_outputs("mc", long([0, 1, 0, 1, 0, 1], ["a", "a", "b", "b", "c", "c"], [.2, .5, .3, .5, .5, .5])),
     r"multiclass probabilities sum to 1.5", 1),
    ("partial multiclass row",
     lambda s: s.ingest_outputs("mc", pa.table({"example_id": [0, 1], "a": [.2, .5], "b": [.3, .5], "c": [.5, None]}), form="wide"),
     r"multiclass row of teacher 'mc' gives only some of its labels", 1),
    ("vote not one-hot",
     lambda s: s.ingest_outputs("vote", pa.table({"example_id": [0, 1], "a": [1.0, 1.0], "b": [0.0, 1.0]}), form="wide"),
     r"a vote row must give 1 to exactly one label", 1),
    ("string ids", lambda s: s.ingest_outputs("ml", long(["0", "1"], ["a", "a"], [.1, .2])),
     r"column 'example_id': must be an integer id column, got string", None),
    ("float ids", lambda s: s.ingest_outputs("ml", long([0.0, 1.0], ["a", "a"], [.1, .2])),
     r"must be an integer id column, got double", None),
    ("string scores", lambda s: s.ingest_outputs("ml", long([0, 1], ["a", "a"], ["0.1", "0.2"])),
     r"column 'score': must be numeric, got string", None),
    ("string list elements",
     lambda s: s.ingest_outputs("ml", pa.table({"example_id": [0], "score": [["a", "b", "c"]]}), form="wide"),
     r"list elements must be numeric, got string", None),
    ("list of wrong length",
     lambda s: s.ingest_outputs("ml", pa.table({"example_id": [0, 1], "score": [[.1, .2, .3], [.1, .2]]}), form="wide"),
     r"has 2 scores, teacher 'ml' has 3 labels", 1),
    ("null id", lambda s: s.ingest_outputs("ml", long([0, None], ["a", "a"], [.1, .2])), r"column 'example_id', row 1: null value", 1),
    ("null score in long form", lambda s: s.ingest_outputs("ml", long([0, 1], ["a", "a"], [.1, None])), r"null score", 1),
    ("missing column", lambda s: s.ingest_outputs("ml", pa.table({"example_id": [0], "label": ["a"]})),
     r"column 'score': missing column \(columns are: example_id, label\)", None),
    ("wide without label columns",
     lambda s: s.ingest_outputs("ml", pa.table({"example_id": [0], "a": [0.5]}), form="wide"), r"wide input needs one column per label", None),
    ("unknown teacher", lambda s: s.ingest_outputs("nobody", long([0], ["a"], [.1])), r"unknown teacher 'nobody'", None),
    ("bad form", lambda s: s.ingest_outputs("ml", long([0], ["a"], [.1]), form="tall"), r"form must be 'long' or 'wide'", None),
    ("unsupported input", lambda s: s.ingest_outputs("ml", [1, 2, 3]), r"unsupported input type list", None),
    ("missing Parquet file", lambda s: s.ingest_outputs("ml", "/nonexistent/x.parquet"), r"file not found", None),
    ("failing query", lambda s: s.ingest_outputs("ml", kdstore.Query("SELECT * FROM nowhere")), r"query failed", None),
    # examples
    ("example in two splits", lambda s: s.add_examples(pa.table({"example_id": [6, 0], "split": ["test", "valid"]})),
     r"example 0 is already in split 'train'; an example is in one split only \(got 'valid'\)", 1),
    ("example twice in one input", lambda s: s.add_examples(pa.table({"example_id": [7, 8, 7], "split": ["train", "train", "test"]})),
     r"duplicate example id 7 \(first at row 0\)", 2),
    ("bad split value", lambda s: s.add_examples(pa.table({"example_id": [7, 8], "split": ["train", "training"]})),
     r"split must be one of .*got 'training'", 1),
    ("bad split argument", lambda s: s.add_examples(pa.table({"example_id": [7]}), split="dev"), r"split must be one of", None),
    # gold and weak
    ("gold for an unknown example", lambda s: s.add_gold(pa.table({"example_id": [3, 30], "label": ["a", "a"]})), r"unknown example 30", 1),
    ("gold with an unknown label", lambda s: s.add_gold(pa.table({"example_id": [3, 4], "label": ["a", "d"]})), r"unknown label 'd'", 1),
    ("duplicate gold", lambda s: s.add_gold(pa.table({"example_id": [3, 4, 3], "label": ["a", "b", "a"]})),
     r"duplicate \(example 3, label\) gold row \(first at row 0\)", 2),
    ("weak NaN", lambda s: s.add_weak(pa.table({"example_id": [0, 1], "label": ["a", "a"], "source": ["x", "x"], "value": [1.0, float("nan")]})),
     r"NaN, infinite or null value", 1),
    ("duplicate weak", lambda s: s.add_weak(pa.table({"example_id": [0, 0], "label": ["a", "a"], "source": ["x", "x"], "value": [1.0, 0.0]})),
     r"duplicate \(example, label, source\) weak label", 1),
    # teachers and labels
    ("alignment to a missing label", lambda s: s.add_teacher("new", labels=["a", "nope"], output_type="multilabel"),
     r"label alignment points at missing label 'nope'", 1),
    ("alignment to a missing label id", lambda s: s.add_teacher("new", labels=[0, 17], output_type="multilabel"),
     r"missing label id 17", 1),
    ("label twice in an alignment", lambda s: s.add_teacher("new", labels=["a", "b", "a"], output_type="multilabel"),
     r"a label appears twice in the alignment", 2),
    ("binary with two labels", lambda s: s.add_teacher("new", labels=["a", "b"], output_type="binary"), r"exactly one label", None),
    ("bad output type", lambda s: s.add_teacher("new", labels=["a"], output_type="probability"), r"output_type must be one of", None),
    ("non-finite threshold", lambda s: s.add_teacher("new", labels=["a"], output_type="regression", threshold=float("nan")),
     r"threshold must be a finite number", None),
    ("re-align without replace", lambda s: s.add_teacher("ml", labels=["a", "b"], output_type="multilabel"),
     r"already registered with other labels", None),
    ("duplicate label names", lambda s: s.add_labels(["x", "y", "x"]), r"duplicate label 'x' \(first at row 0\)", 2),
    ("empty label name", lambda s: s.add_labels(["x", " "]), r"label names must be non-empty strings", 1),
    # votes and embeddings
    ("vote out of range", lambda s: s.ingest_votes(pa.table({"example_id": [0, 1], "lf": [0, 5]}), classes=["a", "b"]),
     r"column 'lf', row 1: vote 5 is not -1 \(abstain\) or a class index in \[0, 2\)", 1),
    ("votes for a teacher aligned otherwise", lambda s: s.ingest_votes(pa.table({"example_id": [0], "vote": [0]}), classes=["a", "b", "c"]),
     r"teacher 'vote': already registered with other labels", None),
    ("votes for a teacher of another type", lambda s: s.ingest_votes(pa.table({"example_id": [0], "ml": [0]}), classes=["a", "b", "c"]),
     r"teacher 'ml': already registered with other labels or output type", None),
    ("float votes", lambda s: s.ingest_votes(pa.table({"example_id": [0, 1], "lf": [0.0, 1.0]}), classes=["a", "b"]),
     r"votes must be integers", None),
    ("embedding of another length", lambda s: s.ingest_embeddings("reg", pa.table({"example_id": [0, 1], "vector": [[1.0, 2.0], [1.0]]})),
     r"vector has 1 values, expected 2", 1),
    ("duplicate embedding", lambda s: s.ingest_embeddings("reg", pa.table({"example_id": [0, 0], "vector": [[1.0], [2.0]]})),
     r"duplicate embedding for example 0", 1),
    # features
    ("feature key not unique", lambda s: s.register_features("f", pa.table({"example_id": [1, 1], "x": [1, 2]})), r"duplicate example id 1", None),
    ("feature key not an integer", lambda s: s.register_features("f", pa.table({"example_id": ["1"], "x": [1]})),
     r"the key must be an integer example id, got VARCHAR", None),
    ("feature key missing", lambda s: s.register_features("f", pa.table({"id": [1], "x": [1]})), r"column 'example_id': missing column", None),
]


@pytest.mark.parametrize(("call", "message", "row"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_input_changes_nothing(
    base: kdstore.Store, call: Callable[[kdstore.Store], object], message: str, row: int | None
) -> None:
    before = snapshot(base)
    with pytest.raises(SchemaError, match=message) as info:
        call(base)
    assert info.value.row == row
    assert snapshot(base) == before


def test_error_names_source_column_and_row(base: kdstore.Store, tmp_path: Any) -> None:
    import pyarrow.parquet as pq

    path = tmp_path / "bad.parquet"
    pq.write_table(long([0, 1, 2], ["a", "a", "a"], [0.1, 0.2, 1.7]), path)
    with pytest.raises(SchemaError) as info:
        base.ingest_outputs("bin", str(path))
    e = info.value
    assert (e.source, e.column, e.row) == (str(path), "score", 2)
    assert str(e).startswith(f"source {path}, column 'score', row 2: probability 1.7")


def test_failing_stream_changes_nothing(base: kdstore.Store) -> None:
    """A source that breaks after some batches were written rolls back what was written."""

    def gen() -> Iterator[pa.RecordBatch]:
        for k in range(3):
            yield pa.RecordBatch.from_pydict({"example_id": [2 * k, 2 * k + 1], "score": [[0.1, 0.2, 0.3]] * 2}, schema=LIST_F)
        raise pa.ArrowInvalid("disk on fire")

    before = snapshot(base)
    with pytest.raises(SchemaError, match=r"row 6: cannot read the input: disk on fire"):
        base.ingest_outputs("ml", pa.RecordBatchReader.from_batches(LIST_F, gen()), form="wide")
    assert snapshot(base) == before

    def gen2() -> Iterator[pa.RecordBatch]:
        yield pa.RecordBatch.from_pydict({"example_id": [0, 1], "score": [[0.1, 0.2, 0.3]] * 2}, schema=LIST_F)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        base.ingest_outputs("ml", pa.RecordBatchReader.from_batches(LIST_F, gen2()), form="wide")
    assert snapshot(base) == before


def test_big_input_error_after_insert_rows_were_written(base: kdstore.Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Errors found after earlier INSERTs ran (small INSERT_ROWS) still leave the store unchanged."""
    from kdstore.ingest import outputs

    monkeypatch.setattr(outputs, "INSERT_ROWS", 2)
    base.add_examples(pa.table({"example_id": np.arange(6, 100)}), split="train")
    before = snapshot(base)
    ids = np.arange(100)
    scores = np.full((100, 3), 0.5)
    scores[97, 1] = 3.0
    tbl = pa.table({"example_id": ids, "a": scores[:, 0], "b": scores[:, 1], "c": scores[:, 2]})
    with pytest.raises(SchemaError, match=r"column 'b', row 97: probability 3\.0"):
        base.ingest_outputs("ml", pa.RecordBatchReader.from_batches(tbl.schema, tbl.to_batches(max_chunksize=7)), form="wide")
    assert snapshot(base) == before


INJECT = "x'); DROP TABLE kd.labels; --"
INJECT_FEATURE = 'a"; DROP TABLE kd.labels; --'


def test_injection_names_are_stored_literally(base: kdstore.Store, tmp_path: Any) -> None:
    import pyarrow.parquet as pq

    quoted = ["it's", 'say "hi"', "x'); DROP TABLE kd.examples; --"]
    ids = base.add_labels(quoted)
    base.add_teacher(INJECT, labels=quoted, output_type="multilabel", uri="'; DROP TABLE kd.teachers; --")
    n = base.ingest_outputs(INJECT, pa.table({"example_id": [0, 1], **{q: [0.5, 0.25] for q in quoted}}), form="wide")
    assert n == 2
    rows = base.query(
        "SELECT l.name, o.score FROM kd.outputs o JOIN kd.teachers t USING (teacher_id) JOIN kd.labels l USING (label_id) "
        "WHERE t.name = ? ORDER BY o.example_id, o.label_id", [INJECT]).to_pylist()
    assert [r["name"] for r in rows] == quoted * 2
    assert base.one("SELECT uri FROM kd.teachers WHERE name = ?", [INJECT]) == ("'; DROP TABLE kd.teachers; --",)
    # long form with the quoted label names as values
    base.ingest_outputs(INJECT, long([2, 2], quoted[:2], [1.0, 0.0]))
    assert base.one("SELECT count(*) FROM kd.outputs o JOIN kd.teachers t USING (teacher_id) WHERE t.name = ?", [INJECT]) == (2,)
    # votes with an injected prefix and labeler column
    names = base.ingest_votes(pa.table({"example_id": [0, 1], INJECT: [1, -1]}), classes=[ids["it's"], ids['say "hi"']], prefix="p'; --")
    assert names == ["p'; --" + INJECT]
    # feature sources: table, Parquet and query, with an injected name and key column
    key = 'id"; DROP TABLE kd.gold; --'
    rel = base.register_features(INJECT_FEATURE, pa.table({key: [0, 1], "x": [1.0, 2.0]}), id_column=key)
    assert rel == 'features."a""; DROP TABLE kd.labels; --"'
    assert base.query(f"SELECT example_id, x FROM {rel} ORDER BY 1").to_pylist() == [{"example_id": 0, "x": 1.0}, {"example_id": 1, "x": 2.0}]
    path = tmp_path / "it's.parquet"
    pq.write_table(pa.table({"example_id": [0], "y": [3.0]}), path)
    rel2 = base.register_features(INJECT_FEATURE + "2", str(path))
    assert base.query(f"SELECT y FROM {rel2}").to_pylist() == [{"y": 3.0}]
    base.register_features(INJECT_FEATURE, kdstore.Query("SELECT 5 AS example_id, 'o''k' AS z"), replace=True)
    assert base.query(f"SELECT * FROM {rel}").to_pylist() == [{"example_id": 5, "z": "o'k"}]
    for table in ("labels", "examples", "gold", "teachers"):
        assert base.one(f"SELECT count(*) > 0 FROM kd.{table}") == (True,)
    assert base.one("SELECT count(*) FROM kd.feature_sources WHERE name = ?", [INJECT_FEATURE]) == (1,)
