"""``store.distill`` / ``kdstore distill``: stages run, skip when unchanged, re-run what depends on a
changed teacher; bad configs name their key and leave the store unchanged; the demo's student
beats every teacher and the naive average on the test split."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import kdstore
from kdstore import demo
from kdstore.cli import main
from kdstore.distill import STAGE_ORDER, DistillReport, load_config, parse_config, score_test_split, stage_records
from kdstore.errors import SchemaError

DIGITS = (0, 1, 2)
SPECS = (
    demo.TeacherSpec("spec_0", "specialist", (0,), "lr", 60),
    demo.TeacherSpec("spec_1", "specialist", (1,), "lr", 60),
    demo.TeacherSpec("spec_2", "specialist", (2,), "lr", 60),
    demo.TeacherSpec("gen_012", "generalist", DIGITS, "lr", 60),
    demo.TeacherSpec("shuffled", "bad", DIGITS, "lr", 60, "shuffle"),
)
TABLES = ("labels", "examples", "gold", "teachers", "teacher_labels", "scores", "targets", "trust", "models", "runs",
          "feature_sources", "settings")


def _corpus(folder: Path, *, seed: int = 0) -> Path:
    """A tiny digits corpus (digits 0-2, five LR teachers) with its data files and a distill config."""
    folder.mkdir(parents=True, exist_ok=True)
    x, y = demo.load_digits()
    keep = np.flatnonzero(np.isin(y, DIGITS))
    x, y = x[keep], y[keep]
    split = demo.split_digits(y, seed)
    teachers = demo.build_teachers(x, y, split, folder, seed=seed, specs=SPECS)
    path = demo.write_corpus(x, y, split, teachers, folder, store_name="tiny.duckdb", policies=("experts", "best_per_label"),
                             student={"hidden": (32,), "epochs": 15})
    raw = tomllib.loads(path.read_text())
    raw["data"]["labels"] = [str(d) for d in DIGITS]
    raw["name"] = "tiny"
    path.write_text(_toml(raw))
    return path


def _toml(raw: dict[str, Any]) -> str:
    """Just enough TOML for the configs of these tests (tables, arrays of tables, scalars, lists)."""
    def val(v: Any) -> str:
        return json.dumps(list(v) if isinstance(v, tuple) else v)

    lines = [f"{k} = {val(v)}" for k, v in raw.items() if not isinstance(v, (dict, list)) or
             (isinstance(v, list) and not (v and isinstance(v[0], dict)))]
    for k, v in raw.items():
        if isinstance(v, dict):
            lines += ["", f"[{k}]", *(f"{kk} = {val(vv)}" for kk, vv in v.items())]
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            for item in v:
                lines += ["", f"[[{k}]]", *(f"{kk} = {val(vv)}" for kk, vv in item.items())]
    return "\n".join(lines) + "\n"


def _snapshot(store: kdstore.Store) -> dict[str, Any]:
    snap: dict[str, Any] = {t: store.one(f"SELECT count(*) FROM kd.{t}") for t in TABLES}
    snap["settings_values"] = store.settings.to_dict()
    snap["scores_hash"] = store.one("SELECT bit_xor(hash(teacher_id, example_id, scores)) FROM kd.scores")
    return snap


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _corpus(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def populated(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A store the tiny config was distilled into (closed; tests copy it) and the chosen model id."""
    path = tmp_path_factory.mktemp("populated") / "p.duckdb"
    with kdstore.connect(path) as store:
        rep = store.distill(load_config(corpus), progress=False)
    return path, rep.model_id


def _copy_store(populated: tuple[Path, int], folder: Path) -> Path:
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(populated[0], folder / "copy.duckdb"))


@pytest.mark.slow
def test_distill_runs_every_stage_then_skips_every_stage(corpus: Path, tmp_path: Path) -> None:
    cfg = load_config(corpus)
    with kdstore.connect(tmp_path / "a.duckdb") as store:
        first = store.distill(cfg, progress=False)
        assert isinstance(first, DistillReport)
        names = [s.stage for s in first.stages]
        assert names == ["data", "teachers", "evaluate", "select:experts", "select:best_per_label",
                         "student:experts", "student:best_per_label", "export", "score"]
        assert all(n.split(":")[0] in STAGE_ORDER for n in names)
        assert all(s.status == "ran" for s in first.stages)
        assert sorted(first.stage("teachers").result["ran"]) == sorted(s.name for s in SPECS)
        # the student is the policy with the best VALID score (ties: the first listed)
        best = max(first.valid_scores.values(), key=lambda v: -1.0 if v is None else v)
        assert first.valid_scores[first.policy] == best
        assert first.policy == next(p for p in ("experts", "best_per_label") if first.valid_scores[p] == best)
        assert store.models.load(first.model_id).name == f"student_{first.policy}"
        exported = Path(cfg.export_path or "")
        assert exported.read_bytes() == store.models.load(first.model_id).onnx
        # the summary's student accuracy equals the test accuracy train_student stored (its own code path)
        stored_test = store.models.load(first.model_id).metrics["test"]["accuracy"]
        assert first.summary.student == pytest.approx(stored_test, abs=1e-12)
        assert first.summary.examples == store.one(
            "SELECT count(*) FROM kd.examples WHERE split = 'test'")[0]  # type: ignore[index]
        assert [r.label for r in first.summary.labels] == ["0", "1", "2"]
        records = stage_records(store, "tiny")
        assert records.num_rows == len(first.stages)
        # the report describes the student distill chose, not merely the newest one
        from kdstore import report
        assert report.choose(store)[1] == first.model_id

        again = store.distill(cfg, progress=False)
        assert [s.status for s in again.stages] == ["skipped"] * len(first.stages)
        assert again.model_id == first.model_id and again.run_ids == first.run_ids
        assert again.summary == first.summary
        assert stage_records(store, "tiny").num_rows == records.num_rows  # nothing new recorded

        # a deleted export is written again, and only that stage runs
        exported.unlink()
        third = store.distill(cfg, progress=False)
        assert third.ran == ["export"]
        assert exported.is_file()


@pytest.mark.slow
def test_changing_one_teacher_reruns_only_what_depends_on_it(corpus: Path, populated: tuple[Path, int],
                                                            tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(corpus.parent, folder)
    cfg_path = folder / "distill.toml"
    with kdstore.connect(_copy_store(populated, tmp_path)) as store:
        # same files in another folder: content fingerprints match, only the export (a new path) runs
        assert store.distill(load_config(cfg_path), progress=False).ran == ["export"]
        before = store.query("SELECT t.name, s.example_id, s.scores FROM kd.scores s JOIN kd.teachers t USING (teacher_id) "
                             "ORDER BY 1, 2")
        # retrain one teacher with another seed: a new model file, same name and labels
        x, y = demo.load_digits()
        keep = np.flatnonzero(np.isin(y, DIGITS))
        x, y = x[keep], y[keep]
        split = demo.split_digits(y, 0)
        new = demo.build_teachers(x, y, split, tmp_path / "other", seed=7, specs=SPECS[3:4])[0]
        shutil.copy(new.path, folder / "gen_012.onnx")

        rep = store.distill(load_config(cfg_path), progress=False)
        status = {s.stage: s.status for s in rep.stages}
        assert status["data"] == "skipped"
        assert status["teachers"] == "ran"
        assert rep.stage("teachers").result["ran"] == ["gen_012"]
        assert sorted(rep.stage("teachers").result["skipped"]) == sorted(s.name for s in SPECS if s.name != "gen_012")
        for stage in ("evaluate", "select:experts", "select:best_per_label", "student:experts", "student:best_per_label",
                      "score"):
            assert status[stage] == "ran", stage
        after = store.query("SELECT t.name, s.example_id, s.scores FROM kd.scores s JOIN kd.teachers t USING (teacher_id) "
                            "ORDER BY 1, 2")
        def rows(tbl: Any, name: str) -> list[Any]:
            return [r for r in tbl.to_pylist() if r["name"] == name]
        for spec in SPECS:
            same = rows(before, spec.name) == rows(after, spec.name)
            assert same is (spec.name != "gen_012"), spec.name

        # a setting change re-runs selection and what follows, not the teachers
        raw = tomllib.loads(cfg_path.read_text())
        raw["settings"] = {"expert_margin": 0.2}
        cfg_path.write_text(_toml(raw))
        rep2 = store.distill(load_config(cfg_path), progress=False)
        status2 = {s.stage: s.status for s in rep2.stages}
        assert status2["data"] == status2["teachers"] == "skipped"
        assert status2["evaluate"] == status2["select:experts"] == "ran"
        assert store.settings["expert_margin"] == 0.2


BAD_CONFIGS: list[tuple[str, Any, str]] = [
    ("unknown top-level key", lambda r: r.update(stduent={}), "stduent"),
    ("unknown section key", lambda r: r["select"].update(policy="experts"), "select.policy"),
    ("unknown policy", lambda r: r["select"].update(policies=["experts", "oracle"]), "select.policies"),
    ("unknown setting", lambda r: r.update(settings={"thresold": 0.4}), "settings.thresold"),
    ("missing data file", lambda r: r["data"].update(gold="nowhere.parquet"), "data.gold"),
    ("missing teacher file", lambda r: r["teachers"][1].update(path="gone.onnx"), "teachers[1].path"),
    ("bad teacher kind", lambda r: r["teachers"][0].update(kind="torch"), "teachers[0].kind"),
    ("bad hyper-parameter", lambda r: r["student"].update(dropout=1.5), "student.dropout"),
    ("unknown hyper-parameter", lambda r: r["student"].update(layers=3), "student.layers"),
    ("bad candidate hyper-parameter", lambda r: r["student"].update(candidates=[{"hidden": [8]}, {"dropout": 2.0}]),
     "student.candidates[1].dropout"),
    ("candidate not a table", lambda r: r["student"].update(candidates=[{"hidden": [8]}, 3]), "student.candidates[1]"),
    ("empty candidates", lambda r: r["student"].update(candidates=[]), "student.candidates"),
    ("broken teacher model", None, "teachers[2]"),
]


def test_config_paths_resolve_against_the_base_and_bad_ones_name_the_key(tmp_path: Path) -> None:
    cfg = parse_config({"store": "a/s.duckdb", "export": {"path": "out.onnx"}}, base=tmp_path)
    assert (cfg.store, cfg.export_path) == (tmp_path / "a" / "s.duckdb", tmp_path / "out.onnx")
    assert parse_config({"store": "~/s.duckdb"}, base=tmp_path).store == Path("~/s.duckdb").expanduser()
    assert parse_config({"store": str(tmp_path / "abs.duckdb")}, base=Path("/elsewhere")).store == tmp_path / "abs.duckdb"
    for raw, key, msg in [
        ({"store": 3}, "store", "must be a file path (text), got 3"),
        ({"export": {"path": ""}}, "export.path", "must be a file path (text), got ''"),
        ({"export": {"path": "nope/x.onnx"}}, "export.path", "folder not found"),
        ({"data": {"gold": 5}}, "data.gold", "must be a file path (text), got 5"),
        ({"data": {"gold": "missing.parquet"}}, "data.gold", "file not found"),
    ]:
        with pytest.raises(SchemaError, match=re.escape(f"config key '{key}': {msg}")):
            parse_config(raw, base=tmp_path)


@pytest.mark.parametrize(("what", "edit", "key"), BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_names_the_key_and_leaves_the_store_unchanged(
    corpus: Path, populated: tuple[Path, int], tmp_path: Path, what: str, edit: Any, key: str
) -> None:
    import shutil

    folder = tmp_path / "bad"
    shutil.copytree(corpus.parent, folder)
    raw = tomllib.loads((folder / "distill.toml").read_text())
    with kdstore.connect(_copy_store(populated, tmp_path)) as store:
        before = _snapshot(store)
        if edit is None:
            (folder / raw["teachers"][2]["path"]).write_bytes(b"not an onnx model")
        else:
            edit(raw)
        with pytest.raises(SchemaError) as err:
            store.distill(parse_config(raw, base=folder, source="my.toml"), progress=False)
        assert f"'{key}'" in str(err.value), (what, str(err.value))
        assert _snapshot(store) == before


@pytest.mark.slow
def test_cli_distill_prints_the_summary_and_errors_in_one_line(corpus: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "cli.duckdb"
    assert main(["distill", str(corpus), "--store", str(store), "-q"]) == 0
    out = capsys.readouterr().out
    assert "Per label F1" in out and "naive avg" in out and "student" in out
    assert "(9 of 9 stages ran)" in out
    assert main(["distill", str(corpus), "--store", str(store), "-q"]) == 0
    assert "(0 of 9 stages ran)" in capsys.readouterr().out
    assert main(["distill", str(corpus), "--store", str(store), "-q", "--force", "score"]) == 0
    assert "(1 of 9 stages ran)" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text(corpus.read_text().replace("[select]", "[select]\npolicy_typo = 1"))
    assert main(["distill", str(bad), "--store", str(store)]) == 1
    err = capsys.readouterr().err
    assert "select.policy_typo" in err and str(bad) in err and len(err.strip().splitlines()) == 1


def test_summary_naive_average_matches_the_demo_oracle(populated: tuple[Path, int]) -> None:
    """Two implementations of the test-split teacher scores agree (the demo's table and distill's)."""
    with kdstore.connect(populated[0], read_only=True) as store:
        rows, naive = demo.score_on_test_split(store, {s.name: s.role for s in SPECS})
        s = score_test_split(store, populated[1])
    assert s.naive_average == pytest.approx(naive, abs=1e-12)
    ten = {r.name: r.acc_10class for r in rows if r.acc_10class is not None}
    assert {k: v for k, v in s.teachers.items() if v is not None} == pytest.approx(ten, abs=1e-12)
    f1 = {r.name: r.f1 for r in rows if r.output_type == "binary"}
    for lab in s.labels:
        assert lab.best_teacher_f1 is not None and lab.best_teacher_f1 >= f1[f"spec_{lab.label}"] - 1e-12


@pytest.mark.slow
def test_demo_student_beats_every_teacher_and_the_naive_average(tmp_path: Path) -> None:
    result = demo.build_demo(tmp_path / "demo.duckdb", seed=0, progress=False)
    rep = result.distill
    assert rep is not None
    s = rep.summary
    assert s.task == "multiclass" and s.examples == result.split.test.size
    best = max(r.acc_10class for r in result.scores if r.acc_10class is not None)
    assert s.best_teacher_score == pytest.approx(best, abs=1e-12)
    assert s.naive_average == pytest.approx(result.naive_average_acc, abs=1e-12)
    assert s.student > s.best_teacher_score
    assert s.student > s.naive_average
    # the printed config reproduces the store: every stage skipped
    with kdstore.connect(result.path) as store:
        again = store.distill(load_config(result.config_path or ""), progress=False)
    assert again.ran == []


def test_stored_teacher_from_an_outputs_file(corpus: Path, populated: tuple[Path, int], tmp_path: Path) -> None:
    """A ``kind = "stored"`` teacher ingests its outputs file; an unchanged file is skipped, a new one re-ingested."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "stored"
    shutil.copytree(corpus.parent, folder)
    cfg_path = folder / "distill.toml"
    with kdstore.connect(_copy_store(populated, tmp_path)) as store:
        ids = np.asarray(store.query("SELECT example_id FROM kd.examples ORDER BY 1").column(0).to_numpy())
        rng = np.random.default_rng(0)
        scores = rng.uniform(size=ids.size).astype(np.float32)
        pq.write_table(pa.table({"example_id": ids, "label": ["1"] * ids.size, "score": scores}), folder / "legacy.parquet")
        raw = tomllib.loads(cfg_path.read_text())
        raw["teachers"].append({"name": "legacy", "kind": "stored", "outputs": "legacy.parquet", "labels": ["1"],
                                "output_type": "binary"})
        cfg_path.write_text(_toml(raw))
        rep = store.distill(load_config(cfg_path), progress=False)
        assert rep.stage("teachers").status == "ran"
        assert rep.stage("teachers").result["stored"] == ["legacy"]
        assert rep.stage("teachers").result["ran"] == []  # the ONNX teachers' outputs were all there
        got = store.query("SELECT s.example_id, s.scores[1] AS score FROM kd.scores s JOIN kd.teachers t USING (teacher_id) "
                          "WHERE t.name = 'legacy' ORDER BY 1")
        np.testing.assert_array_equal(got.column("score").to_numpy(), scores)
        assert store.distill(load_config(cfg_path), progress=False).ran == []
        pq.write_table(pa.table({"example_id": ids, "label": ["1"] * ids.size, "score": 1 - scores}), folder / "legacy.parquet")
        again = store.distill(load_config(cfg_path), progress=False)
        assert again.stage("teachers").status == "ran" and again.stage("evaluate").status == "ran"
        got = store.query("SELECT s.scores[1] AS score FROM kd.scores s JOIN kd.teachers t USING (teacher_id) "
                          "WHERE t.name = 'legacy' ORDER BY s.example_id")
        np.testing.assert_allclose(got.column("score").to_numpy(), 1 - scores, atol=1e-6)


def test_student_candidates_are_chosen_on_valid_and_rerun_only_the_students(
    corpus: Path, populated: tuple[Path, int], tmp_path: Path
) -> None:
    raw = tomllib.loads(corpus.read_text())
    cands = [{"hidden": []}, {"hidden": [16], "dropout": 0.1}]
    raw["student"] = {**raw.get("student", {}), "candidates": cands}
    with kdstore.connect(_copy_store(populated, tmp_path)) as store:
        rep = store.distill(parse_config(raw, base=corpus.parent), progress=False)
        status = {s.stage: s.status for s in rep.stages}
        assert status["data"] == status["teachers"] == status["evaluate"] == "skipped"
        assert all(v == "skipped" for k, v in status.items() if k.startswith("select:"))
        assert all(v == "ran" for k, v in status.items() if k.startswith("student:"))
        for policy, score in rep.valid_scores.items():
            m = store.models.load(int(rep.stage(f"student:{policy}").result["model_id"]))
            tried = m.metrics["candidates"]
            assert [t["hyper_parameters"]["hidden"] for t in tried] == [[], [16]]
            assert score == max(t["valid_score"] for t in tried) == tried[m.metrics["chosen_candidate"]]["valid_score"]
        assert store.distill(parse_config(raw, base=corpus.parent), progress=False).ran == []
