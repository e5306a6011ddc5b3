"""The kdstore command: documented everywhere, one-line errors, end-to-end ingest from files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kdstore import cli
from kdstore.errors import SchemaError

ROOT = Path(__file__).resolve().parents[1]


def test_every_command_has_help_with_a_description(capsys: pytest.CaptureFixture[str]) -> None:
    parser = cli.build_parser()
    commands = list(cli.subparsers(parser))
    assert {"init", "info", "ingest"} <= {name for name, _ in commands}
    for name, sub in [("", parser), *commands]:
        assert sub.description and len(sub.description) > 20, f"kdstore {name}: no description"
        with pytest.raises(SystemExit) as exit_info:
            cli.main([*name.split(), "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert " ".join(sub.description.split())[:40] in " ".join(out.split()), name
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"kdstore {name} {action.option_strings}: no help"


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


def test_errors_are_one_line_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["info", str(tmp_path / "none.duckdb")]) == 1
    assert "no store at" in _one_error_line(capsys)
    with pytest.raises(SystemExit) as e:
        cli.main(["ingest", str(tmp_path / "s.duckdb")])  # missing arguments: argparse's error, our style
    assert e.value.code == 1
    assert "the following arguments are required" in _one_error_line(capsys)
    with pytest.raises(SystemExit) as e:
        cli.main(["frobnicate"])
    assert e.value.code == 1
    assert "invalid choice" in _one_error_line(capsys)
    store = str(tmp_path / "s.duckdb")
    assert cli.main(["init", store]) == 0
    capsys.readouterr()
    csv = tmp_path / "labels.csv"
    csv.write_text("nom\nx\n")
    assert cli.main(["ingest", store, "labels", str(csv)]) == 1
    assert "a labels file needs a 'name' column" in _one_error_line(capsys)
    assert cli.main(["ingest", store, "outputs", str(tmp_path / "x.csv"), "--teacher", "t"]) == 1
    assert f"source {tmp_path / 'x.csv'}: file not found" in _one_error_line(capsys)
    csv.write_text("example_id,label,score\n0,x,0.5\n")
    assert cli.main(["ingest", store, "outputs", str(csv), "--teacher", "t"]) == 1
    assert "unknown teacher 't'" in _one_error_line(capsys)


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    store = str(tmp_path / "s.duckdb")
    cli.main(["init", store])
    bad = tmp_path / "ex.csv"
    bad.write_text("example_id,split\n1,train\n2,later\n")
    with pytest.raises(SchemaError, match=r"row 1: split must be one of"):
        cli.main(["ingest", store, "examples", str(bad), "--debug"])
    with pytest.raises(SchemaError, match=r"row 1: split must be one of"):
        cli.main(["--debug", "ingest", store, "examples", str(bad)])


def test_trace_prints_sql(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "s.duckdb")
    assert cli.main(["init", store, "--trace"]) == 0
    assert "SELECT" in capsys.readouterr().out


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KDSTORE_PROGRESS": "0"}
    return subprocess.run([sys.executable, "-m", "kdstore.cli", *args], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=300, check=False)


@pytest.mark.slow
def test_end_to_end_from_csv_and_parquet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """init -> ingest labels/examples/gold/outputs/votes/features from CSV and Parquet -> info --json, as a user runs it."""
    store = str(tmp_path / "s.duckdb")
    (tmp_path / "labels.txt").write_text("cat\ndog\n")
    (tmp_path / "examples.csv").write_text("example_id,split,slice\n0,train,a\n1,train,b\n2,valid,a\n3,test,\n")
    (tmp_path / "gold.csv").write_text("example_id,label\n2,dog\n3,cat\n")
    (tmp_path / "outputs.csv").write_text("example_id,label,score\n0,dog,0.9\n1,dog,0.1\n2,dog,0.8\n")
    pq.write_table(pa.table({"example_id": [0, 1, 2], "cat": [0.3, None, 0.5], "dog": [0.7, None, 0.5]}), tmp_path / "wide.parquet")
    pq.write_table(pa.table({"example_id": [0, 1, 2, 3], "lf1": [0, 1, -1, 1]}), tmp_path / "votes.parquet")
    pq.write_table(pa.table({"example_id": [0, 1, 2, 3], "len": [3, 5, 7, 9]}), tmp_path / "feat.parquet")
    steps = [
        ["init", store],
        ["ingest", store, "labels", str(tmp_path / "labels.txt")],
        ["ingest", store, "examples", str(tmp_path / "examples.csv")],
        ["ingest", store, "gold", str(tmp_path / "gold.csv")],
        ["ingest", store, "outputs", str(tmp_path / "outputs.csv"), "--teacher", "dogs", "--labels", "dog"],
        ["ingest", store, "outputs", str(tmp_path / "wide.parquet"), "--teacher", "both", "--labels", "cat,dog",
         "--output-type", "multiclass", "--form", "wide"],
        ["ingest", store, "votes", str(tmp_path / "votes.parquet"), "--classes", "cat,dog", "--prefix", "lf/"],
        ["ingest", store, "features", str(tmp_path / "feat.parquet"), "--name", "lengths"],
    ]
    done = _run(*steps[0])  # the real command line once; the rest in-process (much faster)
    assert done.returncode == 0 and "schema version" in done.stdout, done.stderr
    for step in steps[1:]:
        assert cli.main(step) == 0, step
    assert cli.main(steps[4]) == 0  # re-ingest replaces
    done = _run("info", store, "--json")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["splits"] == {"test": 1, "train": 2, "valid": 1}
    assert info["labels"] == ["cat", "dog"]
    assert info["counts"]["gold"] == 2 and info["counts"]["outputs"] == 3 + 4 + 3 * 2
    assert [t["name"] for t in info["teachers"]] == ["dogs", "both", "lf/lf1"]
    assert [t["rows"] for t in info["teachers"]] == [3, 2, 3]
    assert info["feature_sources"] == ["lengths"]
    assert cli.main(["info", store]) == 0
    text = capsys.readouterr().out
    assert "lf/lf1" in text and "splits     test=1  train=2  valid=1" in text
    bad = tmp_path / "bad.csv"
    bad.write_text("example_id,label,score\n0,dog,0.5\n1,dog,inf\n")
    done = _run("ingest", store, "outputs", str(bad), "--teacher", "dogs")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"error: source {bad}, column 'score', row 1: infinite score"]
