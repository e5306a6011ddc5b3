"""The WRENCH loader on the real data: ids, splits, gold and votes exactly as in the json files."""

from __future__ import annotations

import json

import numpy as np
import pytest

import kdstore
from kdstore.datasets.wrench import FILE_OFFSET, load_wrench, read_wrench
from tests.conftest import WRENCH


def _json(name: str, file: str) -> dict[int, dict[str, object]]:
    path = WRENCH / name / f"{file}.json"
    return {int(k): v for k, v in json.loads(path.read_text()).items()} if path.exists() else {}


def test_youtube_votes_match_json(store: kdstore.Store) -> None:
    ws = load_wrench(store, "youtube", WRENCH)
    assert ws.splits == {"train": 1686, "valid": 120, "test": 250}
    assert ws.labels == ("HAM", "SPAM") and len(ws.teachers) == 10
    # expected: every non-abstain (example, lf) -> the voted class; computed from the json directly
    expected = set()
    for file in ("train", "valid", "test"):
        for k, v in _json("youtube", file).items():
            for j, vote in enumerate(v["weak_labels"]):  # type: ignore[arg-type]
                if vote >= 0:
                    expected.add((f"youtube/lf{j:03d}", FILE_OFFSET[file] + k, ws.label_ids[vote]))
    got = store.query(
        "SELECT t.name, o.example_id, o.label_id FROM kd.outputs o JOIN kd.teachers t USING (teacher_id) "
        "WHERE o.score = 1"
    ).to_pylist()
    assert {(r["name"], r["example_id"], r["label_id"]) for r in got} == expected
    assert len(got) == len(expected)
    # one-hot: each stored vote row also has a 0 for the other class, nothing else
    n_rows = store.one("SELECT count(*), count(*) FILTER (WHERE score = 0) FROM kd.outputs")
    assert n_rows == (2 * len(expected), len(expected))
    # gold: valid and test only, by default
    gold = store.query("SELECT g.example_id, g.label_id, e.split FROM kd.gold g JOIN kd.examples e USING (example_id)")
    assert set(gold.column("split").to_pylist()) == {"valid", "test"}
    exp_gold = {(FILE_OFFSET[f] + k, ws.label_ids[int(v["label"])]) for f in ("valid", "test")  # type: ignore[call-overload]
                for k, v in _json("youtube", f).items()}
    assert set(zip(gold.column("example_id").to_pylist(), gold.column("label_id").to_pylist(), strict=True)) == exp_gold


def test_ids_distinct_per_file_and_protocols() -> None:
    for name in ("youtube", "chemprot_partial", "tennis_flyingsquid", "semeval"):
        _, table = read_wrench(name, WRENCH)
        ids = table.column("example_id").to_numpy()
        assert np.unique(ids).size == ids.size
        files = np.asarray(table.column("file").to_pylist())
        json_ids = table.column("json_id").to_numpy()
        assert (ids == json_ids + np.array([FILE_OFFSET[f] for f in files])).all()
    _, chem = read_wrench("chemprot_partial", WRENCH)
    split = np.asarray(chem.column("split").to_pylist())
    jid = chem.column("json_id").to_numpy()
    files = np.asarray(chem.column("file").to_pylist())
    assert set(split[(files == "valid") & (jid % 5 == 0)]) == {"valid"}
    assert set(split[(files == "valid") & (jid % 5 != 0)]) == {"train"}
    assert set(split[files == "test"]) == {"test"}
    _, tennis = read_wrench("tennis_flyingsquid", WRENCH)
    split = np.asarray(tennis.column("split").to_pylist())
    jid = tennis.column("json_id").to_numpy()
    files = np.asarray(tennis.column("file").to_pylist())
    assert set(split[(files == "valid") & (jid % 2 == 0)]) == {"valid"}
    assert set(split[(files == "valid") & (jid % 2 == 1)]) == {"test"}
    assert set(split[files == "train"]) == {"train"}


def test_chemprot_hidden_pool_has_no_gold(store: kdstore.Store) -> None:
    ws = load_wrench(store, "chemprot_partial", WRENCH)
    assert ws.splits["train"] == sum(1 for k in _json("chemprot_partial", "valid") if k % 5)
    row = store.one("SELECT count(*) FROM kd.gold JOIN kd.examples USING (example_id) WHERE split = 'train'")
    assert row == (0,)
    assert ws.n_gold == ws.splits["valid"] + ws.splits["test"]


def test_train_gold_and_two_sets_in_one_store(store: kdstore.Store) -> None:
    load_wrench(store, "youtube", WRENCH, train_gold=True)
    assert store.one("SELECT count(*) FROM kd.gold") == (1686 + 120 + 250,)
    with pytest.raises(kdstore.SchemaError, match="already in split"):
        # same ids, other protocol: tennis valid odd ids are test, youtube's are valid
        load_wrench(store, "tennis_flyingsquid", WRENCH, label_prefix="tennis:")
    assert store.one("SELECT count(*) FROM kd.teachers") == (10,)  # the failed load left nothing


def test_missing_folder_is_a_schema_error(store: kdstore.Store, tmp_path: object) -> None:
    with pytest.raises(kdstore.SchemaError, match=r"not a WRENCH set folder"):
        load_wrench(store, "nope", WRENCH)
