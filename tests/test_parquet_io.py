from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import kdstore
from kdstore.parquet_io import kd_tables
from tests import smallstore


def dump(store: kdstore.Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every kd table (and the outputs view and feature tables) as sorted rows."""
    out = {}
    for t in [*kd_tables(store), "outputs"]:
        rows = store.execute(f"SELECT * FROM kd.{t}").fetchall()
        out[t] = sorted(rows, key=repr)
    for (name,) in store.execute("SELECT name FROM kd.feature_sources").fetchall():
        out[f"features.{name}"] = sorted(store.execute(f'SELECT * FROM features."{name}"').fetchall(), key=repr)
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[tuple[Any, ...]]]]:
    d = tmp_path_factory.mktemp("export") / "kd"
    with kdstore.connect() as s:
        smallstore.build(s)
        s.export_parquet(d)
        return d, dump(s)


def test_round_trip_is_lossless(exported: tuple[Path, dict[str, list[tuple[Any, ...]]]]) -> None:
    d, before = exported
    with kdstore.connect() as s:
        res = s.import_parquet(d)
        after = dump(s)
    assert set(after) == set(before)
    for t in before:
        if t == "feature_sources":  # re-registered from the copy: same name and columns, kind 'table'
            assert [(r[0], r[3]) for r in after[t]] == [(r[0], r[3]) for r in before[t]]
            continue
        assert after[t] == before[t], t
    assert res.rows["scores"] == len(before["scores"])
    assert res.rows["features.pixels"] == len(before["features.pixels"])
    # NULL elements (no opinion) survive: the multilabel teacher has holes.
    assert any(None in r[2] for r in after["scores"])


def test_layout_and_manifest(exported: tuple[Path, dict[str, list[tuple[Any, ...]]]]) -> None:
    d, before = exported
    manifest = json.loads((d / "manifest.json").read_text())
    assert manifest["format"] == "kdstore-parquet" and manifest["schema_version"] == kdstore.store.core.SCHEMA_VERSION
    for t, entry in manifest["tables"].items():
        files = sorted((d / entry["path"]).glob("part-*.parquet"))
        assert files, t
        assert pq.read_table(files).num_rows == entry["rows"] == len(before[t]), t
    assert "meta" not in manifest["tables"]
    outputs = pq.read_table(sorted((d / "outputs").glob("*.parquet")))
    assert outputs.schema.names == ["teacher_id", "example_id", "label_id", "score"]
    scores = pq.read_table(sorted((d / "scores").glob("*.parquet")))
    assert pa.types.is_list(scores.schema.field("scores").type)
    assert manifest["features"]["pixels"]["rows"] == len(before["features.pixels"])


def test_partitioned_by_teacher(tmp_path: Path) -> None:
    with kdstore.connect() as s:
        smallstore.build(s, n=60)
        s.export_parquet(tmp_path / "p", partition_by_teacher=True)
        before = dump(s)
    teachers = sorted(p.name for p in (tmp_path / "p" / "scores").iterdir())
    assert teachers == [f"teacher_id={i}" for i in range(7)]  # the embedding teacher has no scores
    with kdstore.connect() as s2:
        s2.import_parquet(tmp_path / "p")
        assert dump(s2)["scores"] == before["scores"]


def test_partitioned_export_of_empty_tables(tmp_path: Path) -> None:
    """An empty partitionable table is written unpartitioned (one file, no partition folders)."""
    with kdstore.connect() as s:
        s.add_labels(["a"])
        res = s.export_parquet(tmp_path / "p", partition_by_teacher=True)
    assert res.rows["scores"] == 0
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    assert manifest["tables"]["scores"]["partition_by"] == []
    assert [p.name for p in (tmp_path / "p" / "scores").iterdir()] == ["part-0.parquet"]
    with kdstore.connect() as s2:
        s2.import_parquet(tmp_path / "p")
        assert s2.one("SELECT count(*) FROM kd.labels") == (1,)


def test_export_refuses_to_clobber(tmp_path: Path, store: kdstore.Store) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(kdstore.SchemaError, match="not empty"):
        store.export_parquet(tmp_path / "mine")
    with pytest.raises(kdstore.SchemaError, match="not a kdstore export"):
        store.export_parquet(tmp_path / "mine", overwrite=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    store.export_parquet(tmp_path / "x")
    store.add_labels(["a"])
    assert store.export_parquet(tmp_path / "x", overwrite=True).rows["labels"] == 1
    with pytest.raises(kdstore.SchemaError, match="unknown kd table 'nope'"):
        store.export_parquet(tmp_path / "y", tables=["nope"])


def _spark_like(folder: Path, table: pa.Table) -> None:
    """Write like Spark does: part files plus _SUCCESS and .crc side files."""
    folder.mkdir(parents=True)
    pq.write_table(table.slice(0, table.num_rows // 2), folder / "part-00000-abc.snappy.parquet")
    pq.write_table(table.slice(table.num_rows // 2), folder / "part-00001-abc.snappy.parquet")
    (folder / "_SUCCESS").write_text("")
    (folder / ".part-00000-abc.snappy.parquet.crc").write_bytes(b"junk")


def _targets(store: kdstore.Store, run_id: int, split: str = "train") -> pa.Table:
    """Targets as Spark would write them: run_id/teacher_id as long, target as double."""
    t = store.con.sql(
        "SELECT $1::BIGINT AS run_id, o.example_id, o.label_id, o.score::DOUBLE AS target, 1.0 AS weight, "
        "o.teacher_id::BIGINT AS teacher_id, 'spark' AS rule FROM kd.outputs o JOIN kd.examples e USING (example_id) "
        "WHERE e.split = $2 AND o.teacher_id = 0 ORDER BY 2",
        params=[run_id, split],
    ).to_arrow_table()
    return t


def test_import_spark_written_targets_appends(tmp_path: Path) -> None:
    with kdstore.connect() as s:
        smallstore.build(s, n=80)
        new = _targets(s, 7)
        _spark_like(tmp_path / "out" / "targets", new)
        before = s.one("SELECT count(*) FROM kd.targets")
        res = s.import_parquet(tmp_path / "out", mode="append")
        assert res.rows == {"targets": new.num_rows}
        got = s.query("SELECT * FROM kd.targets WHERE run_id = 7 ORDER BY example_id")
        assert got.column("target").to_pylist() == new.column("target").to_pylist()
        assert s.one("SELECT count(*) FROM kd.targets") == (before[0] + new.num_rows,)  # type: ignore[index]


@pytest.fixture(scope="module")
def small() -> Iterator[kdstore.Store]:
    """Shared by the tests whose import must fail (each checks the store is left unchanged)."""
    with kdstore.connect() as s:
        smallstore.build(s, n=60)
        yield s


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda t: t.set_column(1, "example_id", pa.array(np.full(t.num_rows, 99_999), pa.int64())), "unknown example 99999"),
        (lambda t: t.set_column(2, "label_id", pa.array(np.full(t.num_rows, 42), pa.int32())), "unknown label 42"),
        (lambda t: t.set_column(5, "teacher_id", pa.array(np.full(t.num_rows, 77), pa.int64())), "unknown teacher 77"),
        (lambda t: t.set_column(3, "target", pa.array(["x"] * t.num_rows)), "column 'target': type VARCHAR does not match"),
        (lambda t: t.drop_columns(["weight"]), "column 'weight': missing column"),
        (lambda t: t.append_column("oops", pa.array([1] * t.num_rows)), "column 'oops': unknown column"),
        (lambda t: t.set_column(6, "rule", pa.array([None] * t.num_rows, pa.string())), "null values in a NOT NULL column"),
        # NULLs in two NOT NULL columns: the first of them in column order is named, with its count
        (lambda t: t.set_column(3, "target", pa.array([None, None] + [0.5] * (t.num_rows - 2), pa.float64()))
                    .set_column(6, "rule", pa.array([None] * t.num_rows, pa.string())),
         "column 'target': 2 null values in a NOT NULL column"),
    ],
    ids=["example", "label", "teacher", "type", "missing", "extra", "null", "two_nulls"],
)
def test_bad_import_leaves_store_unchanged(small: kdstore.Store, tmp_path: Path, mutate: Any, match: str) -> None:
    before = dump(small)
    _spark_like(tmp_path / "bad" / "targets", mutate(_targets(small, 9)))
    with pytest.raises(kdstore.SchemaError, match=match):
        small.import_parquet(tmp_path / "bad", mode="append")
    assert dump(small) == before


def test_target_on_test_example_is_rejected(small: kdstore.Store, tmp_path: Path) -> None:
    _spark_like(tmp_path / "t" / "targets", _targets(small, 3, split="test"))
    with pytest.raises(kdstore.SchemaError, match="target on test example"):
        small.import_parquet(tmp_path / "t", mode="append")


def test_integrity_checks_on_scores_and_keys(tmp_path: Path) -> None:
    with kdstore.connect() as s:
        smallstore.build(s, n=60)
        s.export_parquet(tmp_path / "e")
        before = dump(s)
        scores = pq.read_table(sorted((tmp_path / "e" / "scores").glob("*.parquet")))
        # A score list one element too long for its teacher.
        rows = scores.to_pylist()
        rows[0]["scores"] = [*rows[0]["scores"], 0.5]
        _spark_like(tmp_path / "len" / "scores", pa.Table.from_pylist(rows, scores.schema))
        with pytest.raises(kdstore.SchemaError, match="2 scores but the teacher has 1 labels"):
            s.import_parquet(tmp_path / "len")
        rows = scores.to_pylist()
        rows[3]["scores"] = [float("nan")]
        _spark_like(tmp_path / "nan" / "scores", pa.Table.from_pylist(rows, scores.schema))
        with pytest.raises(kdstore.SchemaError, match="NaN or infinite score"):
            s.import_parquet(tmp_path / "nan")
        # Appending the same scores again duplicates (teacher, example).
        with pytest.raises(kdstore.SchemaError, match=r"duplicate key \(teacher_id=0, example_id=1000\)"):
            s.import_parquet(tmp_path / "e", tables=["scores"], mode="append")
        # Replacing examples without the ones scores point at orphans them.
        ex = pq.read_table(sorted((tmp_path / "e" / "examples").glob("*.parquet")))
        _spark_like(tmp_path / "ex" / "examples", ex.slice(1))
        with pytest.raises(kdstore.SchemaError, match=r"source kd\.embeddings, column .example_id.: unknown example 1000 \(not in kd\.examples\)"):
            s.import_parquet(tmp_path / "ex")
        assert dump(s) == before
        with pytest.raises(kdstore.SchemaError, match="load 'scores'"):
            s.import_parquet(tmp_path / "e", tables=["outputs"])


def test_settings_are_updated_by_name(tmp_path: Path) -> None:
    with kdstore.connect() as a:
        a.settings.update(z_threshold=3.5)
        a.export_parquet(tmp_path / "s", tables=["settings"])
    folder = tmp_path / "s" / "settings"
    t = pq.read_table(sorted(folder.glob("*.parquet")))
    pq.write_table(t.filter(pa.compute.equal(t["name"], "z_threshold")), next(folder.glob("*.parquet")))
    with kdstore.connect() as b:
        b.settings.update(threshold=0.9)
        b.import_parquet(tmp_path / "s")
        assert b.settings["z_threshold"] == 3.5
        assert b.settings["threshold"] == 0.9  # not in the file: kept


def test_upsert_replaces_rows_by_key(tmp_path: Path) -> None:
    with kdstore.connect() as s:
        smallstore.build(s, n=60)
        scores = s.query("SELECT * FROM kd.scores WHERE teacher_id = 0 ORDER BY example_id")
        doubled = scores.set_column(2, "scores", pa.array([[v[0] / 2] for v in scores.column("scores").to_pylist()],
                                                          pa.list_(pa.float32())))
        _spark_like(tmp_path / "u" / "scores", doubled.slice(0, 10))
        n_before = s.one("SELECT count(*) FROM kd.scores")
        s.import_parquet(tmp_path / "u", mode="upsert")
        assert s.one("SELECT count(*) FROM kd.scores") == n_before
        got = s.query("SELECT * FROM kd.scores WHERE teacher_id = 0 ORDER BY example_id")
        assert got.slice(0, 10).column("scores").to_pylist() == doubled.slice(0, 10).column("scores").to_pylist()
        assert got.slice(10).equals(scores.slice(10))
        _spark_like(tmp_path / "t" / "targets", _targets(s, 5))
        with pytest.raises(kdstore.SchemaError, match="no key to upsert by"):
            s.import_parquet(tmp_path / "t", mode="upsert")
