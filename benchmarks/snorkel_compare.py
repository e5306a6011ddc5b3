"""kd.teacher_summary vs Snorkel's LFAnalysis(L).lf_summary(Y) on every WRENCH set.

Run: ``PYTHONPATH=$PWD python benchmarks/snorkel_compare.py`` (Snorkel 0.10.0 runs in
/work/venv-snorkel, a benchmark-only venv; override with $SNORKEL_PYTHON)
-> benchmarks/results/snorkel_compare.{json,md}

For every set and split (train: no gold, valid: with gold; the test split is never read by the
view), the vote matrix of the split's examples (in example_id order, the same rows the store holds)
goes to Snorkel; the view is read from a store loaded with ``load_wrench``. Every LF's coverage,
overlaps, conflicts (and on valid: correct, incorrect, empirical accuracy) must agree to 1e-9, and
the polarity (labels voted) must be equal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import kdstore  # noqa: E402
from benchmarks._common import write_results  # noqa: E402
from kdstore.datasets.wrench import load_wrench, read_wrench  # noqa: E402

SNORKEL_PY = os.environ.get("SNORKEL_PYTHON", "/work/venv-snorkel/bin/python")
WRENCH = next((p / "shared" / "data" / "wrench" for p in ROOT.parents if (p / "shared" / "data" / "wrench").is_dir()),
              ROOT.parents[1] / "shared" / "data" / "wrench")
SETS = ["youtube", "sms", "trec", "semeval", "chemprot_partial", "tennis_flyingsquid"]
COLUMNS = ("coverage", "overlaps", "conflicts", "correct", "incorrect", "emp_acc")

CHILD = r"""
import json, sys, numpy as np, snorkel
from snorkel.labeling import LFAnalysis
out = {}
for name in sys.argv[2:]:
    L = np.load(f"{sys.argv[1]}/{name}_L.npy")
    Y = np.load(f"{sys.argv[1]}/{name}_Y.npy") if name.endswith("valid") else None
    df = LFAnalysis(L).lf_summary(Y)
    out[name] = {
        "polarity": [sorted(int(x) for x in p) for p in df["Polarity"]],
        "coverage": df["Coverage"].astype(float).tolist(),
        "overlaps": df["Overlaps"].astype(float).tolist(),
        "conflicts": df["Conflicts"].astype(float).tolist(),
    }
    if Y is not None:
        out[name]["correct"] = df["Correct"].astype(float).tolist()
        out[name]["incorrect"] = df["Incorrect"].astype(float).tolist()
        out[name]["emp_acc"] = df["Emp. Acc."].astype(float).tolist()
print(json.dumps({"snorkel": snorkel.__version__, "summaries": out}))
"""


def main() -> None:
    names = sys.argv[1:] or SETS
    ours: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="kd_snorkel_cmp_") as tmp:
        keys = []
        for name in names:
            _, table = read_wrench(name, WRENCH)
            with kdstore.connect() as store:
                ws = load_wrench(store, name, WRENCH)
                lut = {lab: i for i, lab in enumerate(ws.label_ids)}
                summary = store.query(
                    "SELECT t.name AS teacher, s.* FROM kd.teacher_summary s JOIN kd.teachers t USING (teacher_id)"
                ).to_pylist()
            ids = table.column("example_id").to_numpy()
            split = np.asarray(table.column("split").to_pylist(), dtype=object)
            votes = table.column("votes").combine_chunks()
            n_lf = len(ws.teachers)
            L = np.asarray(votes.flatten().to_numpy(), dtype=np.int64).reshape(len(votes), n_lf)
            gold = table.column("gold").to_numpy()
            for sp in ("train", "valid"):
                rows = np.flatnonzero(split == sp)
                if rows.size == 0:
                    continue
                order = rows[np.argsort(ids[rows])]
                key = f"{name}__{sp}"
                np.save(Path(tmp) / f"{key}_L.npy", L[order])
                np.save(Path(tmp) / f"{key}_Y.npy", gold[order])
                keys.append(key)
                by_teacher = {r["teacher"]: r for r in summary if r["split"] == sp}
                ours[key] = {
                    "polarity": [sorted(lut[x] for x in by_teacher[t]["polarity"]) for t in ws.teachers],
                    **{c: [by_teacher[t][c] for t in ws.teachers] for c in COLUMNS},
                }
        proc = subprocess.run([SNORKEL_PY, "-c", CHILD, tmp, *keys], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-3000:])
        theirs = json.loads(proc.stdout.strip().splitlines()[-1])
    results: dict[str, Any] = {"snorkel": theirs["snorkel"], "sets": {}}
    all_ok = True
    for key, mine in ours.items():
        snk = theirs["summaries"][key]
        row: dict[str, Any] = {"lfs": len(mine["coverage"]), "polarity_equal": mine["polarity"] == snk["polarity"]}
        ok = row["polarity_equal"]
        for c in COLUMNS:
            if c not in snk:
                continue
            a = np.asarray(mine[c], dtype=float)
            b = np.asarray(snk[c], dtype=float)
            diff = float(np.nanmax(np.abs(a - b))) if a.size else 0.0
            row[f"{c}_max_abs_diff"] = diff
            ok = ok and diff <= 1e-9
        row["agree"] = ok
        all_ok = all_ok and ok
        results["sets"][key] = row
    results["all_agree_1e-9"] = all_ok
    md = [
        "# kd.teacher_summary vs Snorkel LFAnalysis.lf_summary (max abs difference over LFs)",
        "",
        f"Snorkel {theirs['snorkel']}; tolerance 1e-9. All agree: **{all_ok}**.",
        "",
        "| set / split | LFs | polarity equal | coverage | overlaps | conflicts | correct | incorrect | emp. acc. | agree |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, r in results["sets"].items():
        cells = [f"{r[c + '_max_abs_diff']:.1e}" if c + "_max_abs_diff" in r else "-" for c in COLUMNS]
        md.append(f"| {key.replace('__', ' / ')} | {r['lfs']} | {r['polarity_equal']} | {' | '.join(cells)} | {'yes' if r['agree'] else 'NO'} |")
    write_results("snorkel_compare", results, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
