"""Goal A's two misses (issue 7): is it the student, or the valid votes that judge the teachers?

Historical: written and run (results/student_variants.md) on the last-layer sentence embeddings of
the runs before 2026-11-29, when sms and semeval missed goal A. Its finding (the linear student) is
now a student candidate of every quality.py row, and since quality.py moved to the layer-mean
features both misses are gone (results/quality.md). A re-run uses quality.PARTS, the new features.

Run: ``PYTHONPATH=$PWD python benchmarks/student_variants.py [--sets sms,semeval] [--seeds 5]``
-> ``benchmarks/results/student_variants.{json,md}``.

quality.py trains ONE fixed student (an MLP, :data:`quality.STUDENT`) on every label source. On sms
and semeval kdstore's best pipeline misses the max published "MLP <- label model" row. This script
re-runs the kdstore label sources of those sets (and MV as the reference) under quality.py's
``+valid gold x3`` protocol (the protocol of both sets' chosen rows) with two students:

* ``mlp``: quality.py's configuration, unchanged;
* ``linear``: the same trainer with no hidden layer (``hidden=()``: multinomial logistic regression
  on the standardised features), everything else equal.

and, for sets whose data README lists the labeling functions as regex rules (sms), two versions of
the votes that judge the teachers:

* ``stored votes``: the votes in the data files (quality.py);
* ``rule votes``: valid and test votes = the README's rules re-applied to the texts (``re.search``,
  as given; lf_shift.py shows the stored sms valid/test votes are not the rules' outputs, while the
  stored train votes are, exactly -- checked again here). Train votes, and so MV, are unchanged.

kdstore's pick = the kdstore row (policy x student) with the best mean out-of-fold VALID score, ties
broken by the lower out-of-fold valid log-loss -- quality.py's rule with the student as one more
choice. Test is never used to choose. 5 student seeds, mean ± std.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lf_shift
import quality as q
import select_quality as sq
import wrench_data as wd
from _common import peak_rss_mb, write_results

STUDENTS: dict[str, dict[str, Any]] = q.CANDIDATES
PROTOCOL = "+valid gold x3"


def rule_votes(name: str) -> tuple[list[str], dict[str, Any], dict[str, float]] | None:
    """The set with its valid/test votes replaced by the README's rules on the texts; None without rules.

    Returns (classes, parts, share of rows whose rule votes equal the stored votes, per split). Stops
    if the rules do not reproduce the stored TRAIN votes exactly (then train targets would change too).
    """
    classes, parts = sq.read_set(name)
    rules = lf_shift.read_rules(name, parts["train"].votes.shape[1])
    if rules is None:
        return None
    same = {}
    for split, part in parts.items():
        votes = lf_shift.apply_rules(rules, lf_shift.split_texts(name, part.file, part.keys))
        same[split] = float((votes == part.votes).all(axis=1).mean())
        if split == "train":
            if same[split] != 1.0:
                raise SystemExit(f"{name}: the README rules reproduce only {100 * same[split]:.1f}% of the train rows")
        else:
            part.votes = votes
    return classes, parts, same


def run(name: str, votes: str, data: tuple[list[str], dict[str, Any]] | None, seeds: tuple[int, ...],
        log: Any) -> dict[str, Any]:
    """Every (label source x student) row of one set under one version of the votes."""
    t0 = time.perf_counter()
    ws = wd.load_set(name)
    k, metric = len(ws.classes), ws.metric
    X, Xv, Xt = (wd.features(getattr(ws, sp), name, q.PARTS[name]).astype(np.float64) for sp in ("train", "valid", "test"))
    yv, yt = ws.valid.gold, ws.test.gold
    hard, _ = wd.majority_vote(ws.train.votes, k)
    sources: dict[str, tuple[np.ndarray, np.ndarray]] = {
        "MV": (q._onehot(hard, k), (ws.train.votes >= 0).any(axis=1).astype(float))}
    for policy, (y, w, _) in q.kdstore_sources(name, k, data).items():
        sources[f"kdstore {policy}"] = (y, w)
    rows: dict[str, Any] = {}
    done: dict[tuple[str, bytes], str] = {}
    for src, (y, w) in sources.items():
        digest = hashlib.sha1(np.ascontiguousarray(y).tobytes() + np.ascontiguousarray(w).tobytes()).digest()
        for sname, cfg in STUDENTS.items():
            key = f"{src} -> {sname}"
            if (sname, digest) in done:
                rows[key] = {**rows[done[(sname, digest)]], "source": src, "same_targets_as": done[(sname, digest)]}
                continue
            done[(sname, digest)] = key
            t1 = time.perf_counter()
            tests, valids, losses = [], [], []
            for seed in seeds:
                out = q.student(X, y, w, Xv, yv, Xt, k, seed, PROTOCOL, config=cfg)
                tests.append(wd.score(metric, out["test"].argmax(1), yt))
                valids.append(wd.score(metric, out["valid"].argmax(1), yv))
                losses.append(float(-np.mean(np.log(np.maximum(out["valid"][np.arange(yv.size), yv], 1e-12)))))
            rows[key] = {"source": src, "student": sname, "mean": float(np.mean(tests)), "std": float(np.std(tests)),
                         "valid_mean": float(np.mean(valids)), "valid_loss": float(np.mean(losses)),
                         "per_seed": tests, "valid_per_seed": valids, "seconds": time.perf_counter() - t1}
            log(f"  {name} [{votes}] {key}: test {np.mean(tests):.2f} ± {np.std(tests):.2f}, valid {np.mean(valids):.2f}")
    kd = [r for r, v in rows.items() if v["source"].startswith("kdstore")]
    pick = max(kd, key=lambda r: (rows[r]["valid_mean"], -rows[r]["valid_loss"]))
    pick_mlp = max((r for r in kd if rows[r]["student"] == "mlp"),
                   key=lambda r: (rows[r]["valid_mean"], -rows[r]["valid_loss"]))
    top = max(wd.PUBLISHED[p][name] for p in q.PUBLISHED_MLP)
    return {"metric": metric, "rows": rows, "pick": pick, "pick_mlp_only": pick_mlp, "max_published_mlp": top,
            "met": rows[pick]["mean"] > top, "seconds": time.perf_counter() - t0}


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Goal A's misses: the student (MLP vs linear) and the votes that judge the teachers",
        "",
        f"Protocol {PROTOCOL!r} of quality.py (3-fold cross-fit on valid, gold valid rows weight 3), MiniLM features "
        f"as quality.py, seeds {results['seeds']}. Students: **mlp** = quality.py's {STUDENTS['mlp']}; **linear** = the "
        "same with hidden=() (logistic regression). **rule votes** = valid/test votes re-applied from the data "
        "README's regex rules (train votes unchanged; rows identical to the stored votes: "
        + "; ".join(f"{s} {', '.join(f'{sp} {100 * v:.1f}%' for sp, v in r['rule_rows_identical'].items())}"
                    for s, r in results["sets"].items() if "rule_rows_identical" in r)
        + "). Cells: test mean ± std [out-of-fold valid]. kdstore pick = the kdstore row (policy x student) with the "
        "best out-of-fold valid score (ties: lower valid log-loss); never test.",
        "",
        "## Picks",
        "",
        "| set | votes | kdstore pick (valid) | test | pick among mlp rows only | test | max published MLP row | pick beats it |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s, r in results["sets"].items():
        for votes, v in r["votes"].items():
            p, pm = v["rows"][v["pick"]], v["rows"][v["pick_mlp_only"]]
            lines.append(f"| {s} | {votes} | {v['pick']} [{p['valid_mean']:.1f}] | {p['mean']:.2f} ± {p['std']:.2f} | "
                         f"{v['pick_mlp_only']} [{pm['valid_mean']:.1f}] | {pm['mean']:.2f} ± {pm['std']:.2f} | "
                         f"{v['max_published_mlp']:.2f} | {'yes' if v['met'] else 'NO'} |")
    for s, r in results["sets"].items():
        for votes, v in r["votes"].items():
            lines += ["", f"## {s}, {votes} ({v['metric']})", "", "| label source | mlp | linear |", "|---|---|---|"]
            for src in dict.fromkeys(x["source"] for x in v["rows"].values()):
                cells = []
                for sname in STUDENTS:
                    x = v["rows"][f"{src} -> {sname}"]
                    star = " **pick**" if f"{src} -> {sname}" == v["pick"] else ""
                    cells.append(f"{x['mean']:.2f} ± {x['std']:.2f} [{x['valid_mean']:.1f}]{star}")
                lines.append(f"| {src} | " + " | ".join(cells) + " |")
    lines.append(f"\nRuntime {results['seconds']:.0f} s, peak RSS {results['peak_rss_mb']:.0f} MB.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="sms,semeval")
    ap.add_argument("--seeds", type=int, default=len(q.SEEDS))
    args = ap.parse_args(argv)
    seeds = q.SEEDS[:args.seeds]
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.0f} s] {msg}", flush=True)

    results: dict[str, Any] = {"seeds": list(seeds), "students": STUDENTS, "protocol": PROTOCOL, "sets": {}}
    for name in [s for s in args.sets.split(",") if s]:
        res: dict[str, Any] = {"votes": {"stored votes": run(name, "stored votes", None, seeds, log)}}
        ruled = rule_votes(name)
        if ruled is not None:
            classes, parts, same = ruled
            res["rule_rows_identical"] = same
            res["votes"]["rule votes"] = run(name, "rule votes", (classes, parts), seeds, log)
        results["sets"][name] = res
    results["seconds"] = time.perf_counter() - t0
    results["peak_rss_mb"] = peak_rss_mb()
    jp, mp = write_results("student_variants" if len(seeds) == len(q.SEEDS) else "student_variants_quick",
                           results, markdown(results))
    print(mp.read_text())
    print(f"wrote {jp} and {mp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
