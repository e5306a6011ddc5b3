"""WRENCH weak-supervision sets (Zhang et al., NeurIPS 2021) -> a kdstore store.

A WRENCH set is a folder with ``label.json`` (class index -> name) and ``{train,valid,test}.json``
(json id -> ``{"label": gold class or -1, "weak_labels": [vote per labeling function], "data": ...}``).

**Example ids.** The json ids restart at 0 in every file of most sets (youtube, sms, trec, tennis:
``valid.json`` id 3 and ``train.json`` id 3 are different examples), so every file gets its own
id range: ``example_id = FILE_OFFSET[file] + int(json id)`` with ``FILE_OFFSET = {"train": 0,
"valid": 1_000_000, "test": 2_000_000}`` (json ids are all far below 1,000,000; this is checked).
The offset follows the *file*, the split follows the protocol below, so ``example_id %
1_000_000`` is always the json id and ``example_id // 1_000_000`` the file it came from.

**Splits** (the protocols of the data README, deterministic):

* ``chemprot_partial`` (no train file): ``valid.json`` examples whose json id % 5 == 0 are the
  valid split, the other ``valid.json`` examples are the unlabeled train pool; ``test.json`` is test.
* ``tennis_flyingsquid`` (no test file): ``valid.json`` examples with an even json id are valid,
  odd ones are test; ``train.json`` is train.
* every other set: file = split.

**What is stored.** The class names become global labels (``label_prefix`` + name), in class
order. Gold (``kd.gold``, one row per example with a known class) is stored for the valid and test
splits; the train pool is unlabeled unless ``train_gold=True`` (the chemprot train pool never gets
gold by default, as its protocol hides it). Labeling function ``j`` becomes a ``vote`` teacher
named ``f"{teacher_prefix}lf{j:03d}"`` (default prefix ``"<set>/"``, e.g. ``youtube/lf007``) whose
class ``k`` is label ``label_prefix + class name k``; a vote of ``-1`` is an abstain (no row).

>>> import kdstore
>>> from tests.conftest import WRENCH  # doctest: +SKIP
>>> with kdstore.connect() as store:  # doctest: +SKIP
...     ws = load_wrench(store, "youtube", WRENCH)
...     ws.splits
{'train': 1686, 'valid': 120, 'test': 250}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from kdstore.errors import SchemaError

if TYPE_CHECKING:
    from kdstore.store.core import Store

#: example_id = FILE_OFFSET[file] + json id (see the module docstring).
FILE_OFFSET: dict[str, int] = {"train": 0, "valid": 1_000_000, "test": 2_000_000}
FILES = ("train", "valid", "test")


@dataclass(frozen=True, slots=True)
class WrenchSet:
    """What :func:`load_wrench` stored.

    Attributes:
        name: the set's folder name (``youtube``).
        labels: the global label name of each class index, in class order.
        label_ids: the global label id of each class index.
        teachers: the vote teacher name of each labeling function, in LF order.
        splits: examples per split.
        n_gold: gold rows stored.
    """

    name: str
    labels: tuple[str, ...]
    label_ids: tuple[int, ...]
    teachers: tuple[str, ...]
    splits: dict[str, int]
    n_gold: int


def _split_of(name: str, file: str, json_ids: np.ndarray) -> np.ndarray:
    """The split of each example of one file, by the protocol of the set."""
    if name.startswith("chemprot") and file == "valid":
        return np.where(json_ids % 5 == 0, "valid", "train").astype(object)
    if name.startswith("tennis") and file == "valid":
        return np.where(json_ids % 2 == 0, "valid", "test").astype(object)
    return np.full(json_ids.size, file, dtype=object)


def read_wrench(name: str, root: str | Path) -> tuple[list[str], pa.Table]:
    """Read one WRENCH set without a store.

    Returns ``(class names, table)``; the table has one row per example (in file order, then json
    id order) with columns ``example_id`` (int64, see the id scheme above), ``file``, ``json_id``,
    ``split``, ``gold`` (class index, -1 = unknown), ``votes`` (list<int8>: -1 = abstain, else the
    class index voted by each labeling function) and ``text`` (null when the set has none).
    """
    folder = Path(root) / name
    label_file = folder / "label.json"
    if not label_file.is_file():
        raise SchemaError("not a WRENCH set folder (no label.json)", source=str(folder))
    raw_labels = json.loads(label_file.read_text())
    classes = [str(raw_labels[str(i)]) for i in range(len(raw_labels))]
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("example_id", "json_id", "gold")}
    files: list[str] = []
    splits: list[np.ndarray] = []
    votes: list[list[int]] = []
    texts: list[str | None] = []
    n_lf: int | None = None
    for file in FILES:
        path = folder / f"{file}.json"
        if not path.is_file():
            continue
        data = json.loads(path.read_text())
        items = sorted(((int(k), v) for k, v in data.items()), key=lambda kv: kv[0])
        ids = np.fromiter((k for k, _ in items), dtype=np.int64, count=len(items))
        if ids.size and (ids.min() < 0 or ids.max() >= 1_000_000):
            raise SchemaError("json ids must lie in [0, 1000000) for the id scheme", source=str(path))
        for k, v in items:
            wl = v["weak_labels"]
            if n_lf is None:
                n_lf = len(wl)
            elif len(wl) != n_lf:
                raise SchemaError(f"{len(wl)} weak labels, expected {n_lf}", source=str(path), row=k)
            votes.append([int(x) for x in wl])
            text = v.get("data", {}).get("text")
            texts.append(None if text is None else str(text))
        gold = np.fromiter((int(v["label"]) for _, v in items), dtype=np.int64, count=len(items))
        cols["example_id"].append(ids + FILE_OFFSET[file])
        cols["json_id"].append(ids)
        cols["gold"].append(gold)
        files.extend([file] * ids.size)
        splits.append(_split_of(name, file, ids))
    if not files:
        raise SchemaError("no train/valid/test json file", source=str(folder))
    vote_mat = np.asarray(votes, dtype=np.int8).reshape(len(votes), n_lf or 0)
    bad = (vote_mat < -1) | (vote_mat >= len(classes))
    if bad.any():
        raise SchemaError("a vote is neither -1 nor a class index", source=str(folder), row=int(np.argwhere(bad)[0][0]))
    offsets = np.arange(len(votes) + 1, dtype=np.int32) * np.int32(vote_mat.shape[1])
    vote_lists = pa.ListArray.from_arrays(pa.array(offsets), pa.array(vote_mat.ravel()))
    table = pa.table({
        "example_id": np.concatenate(cols["example_id"]),
        "file": pa.array(files, pa.string()),
        "json_id": np.concatenate(cols["json_id"]),
        "split": pa.array(np.concatenate(splits), pa.string()),
        "gold": np.concatenate(cols["gold"]),
        "votes": vote_lists,
        "text": pa.array(texts, pa.string()),
    })
    return classes, table


def load_wrench(
    store: Store,
    name: str,
    root: str | Path,
    *,
    label_prefix: str = "",
    teacher_prefix: str | None = None,
    train_gold: bool = False,
    progress: bool | None = None,
) -> WrenchSet:
    """Load a WRENCH set into ``store``: labels, examples with splits, gold and one vote teacher per LF.

    Args:
        store: an open, writable store.
        name: the set's folder name under ``root`` (``youtube``, ``sms``, ``trec``, ``semeval``,
            ``chemprot_partial``, ``tennis_flyingsquid``).
        root: the folder holding the sets.
        label_prefix: prefix of the global label names (to keep several sets apart in one store).
        teacher_prefix: prefix of the teacher names; default ``"<name>/"``.
        train_gold: also store gold for the train pool (never for chemprot's hidden pool unless set).
        progress: show progress bars (default: when stderr is a terminal).

    Everything is one transaction. See the module docstring for the id scheme and protocols.
    """
    classes, table = read_wrench(name, root)
    prefix = f"{name}/" if teacher_prefix is None else teacher_prefix
    label_names = [label_prefix + c for c in classes]
    split = np.asarray(table.column("split").to_pylist(), dtype=object)  # (to_numpy on strings imports pandas)
    gold = table.column("gold").to_numpy()
    ids = table.column("example_id").to_numpy()
    keep_gold = (gold >= 0) & ((split != "train") | train_gold)
    votes = table.column("votes").combine_chunks()
    n_lf = len(votes[0]) if len(votes) else 0
    vote_mat = np.asarray(votes.flatten().to_numpy(), dtype=np.int64).reshape(len(votes), n_lf)
    lf_cols = [f"lf{j:03d}" for j in range(n_lf)]
    vote_table = pa.table({"example_id": ids, **{c: vote_mat[:, j] for j, c in enumerate(lf_cols)}})
    with store.transaction():
        label_map = store.add_labels(label_names)
        label_ids = [label_map[n] for n in label_names]
        store.add_examples(
            pa.table({"example_id": ids, "split": table.column("split")}), slice_column=None, progress=progress
        )
        lut = np.asarray(label_ids, dtype=np.int64)
        store.add_gold(
            pa.table({"example_id": ids[keep_gold], "label": lut[gold[keep_gold]]}), progress=progress
        )
        teachers = store.ingest_votes(vote_table, labelers=lf_cols, classes=label_ids, prefix=prefix, progress=progress)
    counts = {s: int((split == s).sum()) for s in ("train", "valid", "test")}
    return WrenchSet(
        name=name, labels=tuple(label_names), label_ids=tuple(label_ids), teachers=tuple(teachers),
        splits=counts, n_gold=int(keep_gold.sum()),
    )


__all__ = ["FILE_OFFSET", "WrenchSet", "load_wrench", "read_wrench"]
