"""Gold-label ceiling of the quality benchmark's student (issue 7, goal A): is goal A reachable at all?

Run: ``PYTHONPATH=$PWD python benchmarks/label_ceiling.py [--sets youtube,sms] [--seeds 5] [--resume]``
-> ``benchmarks/results/label_ceiling.{json,md}``.

Every kdstore pipeline of ``quality.py`` only chooses the TRAIN targets (which examples, which
label distribution, which weight) of one fixed student on fixed features. So the same student
trained on the GOLD train labels is an (empirical) upper bound for any label model, teacher
selection or trust policy with these features and this student: if even the gold ceiling stays
below the best published WRENCH "MLP <- label model" row on a set, no pipeline reaches goal A there.

Everything below is imported from ``quality.py`` (not copied): the features (:data:`quality.PARTS`,
MiniLM cache of ``embed_wrench.py``), the student and its one configuration (:func:`quality.student`,
:data:`quality.STUDENT`), the seeds, the protocols and the metric. Rows, for each of the 5 text sets:

* ``gold train (all)``: every train example with its gold label (weight 1);
* ``gold train (LF-covered)``: only the train examples at least one labeling function votes on --
  the examples every kdstore pipeline of ``quality.py`` can give a target to (their targets come
  from the LFs' outputs; an example no LF votes on gets none), so this is the ceiling of those
  pipelines as they stand; ``(all)`` is the ceiling of anything that labels the train pool;
* each under the three protocols of ``quality.py``: ``wrench`` (train targets only, early stopping
  on valid gold), ``+valid gold`` and ``+valid gold x3`` (3-fold cross-fit on valid: the gold valid
  examples join the distillation set with weight 1 or 3; test = mean of the fold students).

Beside them: the published WRENCH MLP rows (BERT features; ``wrench_data.PUBLISHED``) and kdstore's
best pipeline as ``benchmarks/results/quality.json`` records it (read, not re-run). The ceiling of
a set = the best gold row's test mean, picked on TEST on purpose (an optimistic ceiling makes "out of
reach" a conservative statement). chemprot_partial's train gold is the hidden gold of its train pool
(the data README's protocol). Train gold is read only here, to build these oracle rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality as q
import wrench_data as wd
from _common import RESULTS, peak_rss_mb, write_results

PROTOCOLS = ("wrench", *q.GOLD_WEIGHTS)
SUBSETS = ("all", "LF-covered")
CKPT = q.CACHE  # per-set checkpoints beside quality.py's
REPRO_ROW = "MV -> student [wrench]"


def row_name(subset: str, protocol: str) -> str:
    return f"gold train ({subset}) -> student [{protocol}]"


def run_set(name: str, seeds: tuple[int, ...], log: Any) -> dict[str, Any]:
    """The gold rows of one set: {row: mean, std, per-seed test and valid scores, epochs, seconds}."""
    t_set = time.perf_counter()
    ws = wd.load_set(name)
    k, metric = len(ws.classes), ws.metric
    X = wd.features(ws.train, name, q.PARTS[name]).astype(np.float64)
    Xv = wd.features(ws.valid, name, q.PARTS[name]).astype(np.float64)
    Xt = wd.features(ws.test, name, q.PARTS[name]).astype(np.float64)
    yv, yt, ytr = ws.valid.gold, ws.test.gold, ws.train.gold
    if (ytr < 0).any():
        raise SystemExit(f"{name}: {int((ytr < 0).sum())} train examples have no gold label; the ceiling needs all")
    covered = (ws.train.votes >= 0).any(axis=1)
    y = q._onehot(ytr, k)
    masks = {"all": np.ones(ytr.size, bool), "LF-covered": covered}
    res: dict[str, Any] = {
        "metric": metric, "classes": k, "features": "+".join(q.PARTS[name]), "dims": int(X.shape[1]),
        "sizes": {"train": int(ytr.size), "train_covered": int(covered.sum()), "valid": int(yv.size), "test": int(yt.size)},
        "train_class_counts": {s: np.bincount(ytr[m], minlength=k).tolist() for s, m in masks.items()},
        "rows": {},
    }
    for protocol in PROTOCOLS:
        for subset in SUBSETS:
            key = row_name(subset, protocol)
            t0 = time.perf_counter()
            w = masks[subset].astype(float)
            tests, valids, epochs = [], [], []
            for seed in seeds:
                out = q.student(X, y, w, Xv, yv, Xt, k, seed, protocol)
                tests.append(wd.score(metric, out["test"].argmax(1), yt))
                valids.append(wd.score(metric, out["valid"].argmax(1), yv))
                epochs.append(out["epochs"])
            res["rows"][key] = {"subset": subset, "protocol": protocol, "mean": float(np.mean(tests)),
                                "std": float(np.std(tests)), "valid_mean": float(np.mean(valids)), "per_seed": tests,
                                "valid_per_seed": valids, "best_epochs": epochs, "seconds": time.perf_counter() - t0}
            log(f"  {name}: {key}: test {np.mean(tests):.2f} ± {np.std(tests):.2f}, valid {np.mean(valids):.2f} "
                f"({time.perf_counter() - t0:.0f} s)")
    # reproduction check: quality.py's "MV -> student [wrench]" row, re-run here on the rebuilt feature cache
    hard, _ = wd.majority_vote(ws.train.votes, k)
    tests = [wd.score(metric, q.student(X, q._onehot(hard, k), covered.astype(float), Xv, yv, Xt, k, seed, "wrench")["test"]
                      .argmax(1), yt) for seed in seeds]
    res["reproduction"] = {"row": REPRO_ROW, "per_seed": tests, "mean": float(np.mean(tests)), "std": float(np.std(tests))}
    log(f"  {name}: {REPRO_ROW} (reproduction check): test {np.mean(tests):.2f} ± {np.std(tests):.2f}")
    res["seconds"] = time.perf_counter() - t_set
    return res


def quality_reference() -> dict[str, Any]:
    """kdstore's best pipeline per set and its provenance, from the committed quality.json."""
    path = RESULTS / "quality.json"
    d = json.loads(path.read_text())
    out: dict[str, Any] = {"file": str(path.relative_to(RESULTS.parent.parent)), "commit": d["env"]["git_commit"],
                           "seeds": d["seeds"], "student": d["student"], "sets": {}}
    if d["student"] != json.loads(json.dumps(q.STUDENT)):
        raise SystemExit(f"{path} was made with another student configuration {d['student']} than quality.STUDENT {q.STUDENT}")
    for s, r in d["sets"].items():
        best = r["rows"][r["best_kdstore"]]
        out["sets"][s] = {"row": r["best_kdstore"], "mean": best["mean"], "std": best["std"],
                          "valid_mean": best["valid_mean"], "protocol": best["protocol"],
                          "train_label_accuracy": r["train_label_accuracy"].get(best["source"]),
                          "repro_row_per_seed": r["rows"][REPRO_ROW]["per_seed"]}
    return out


def _best_of(r: dict[str, Any], rows: list[str], top: float) -> dict[str, Any]:
    """The row of ``rows`` with the best test mean, and its margin over ``top`` (points, and in its own stds)."""
    best = max(rows, key=lambda x: r["rows"][x]["mean"])
    v = r["rows"][best]
    return {"row": best, "mean": v["mean"], "std": v["std"], "margin_vs_max_published": v["mean"] - top,
            "margin_in_std": (v["mean"] - top) / v["std"] if v["std"] > 0 else None}


def verdicts(results: dict[str, Any]) -> dict[str, Any]:
    """Per set: the ceiling (best gold row, on test) against the max published MLP row and kdstore's best."""
    out: dict[str, Any] = {}
    for s, r in results["sets"].items():
        pub = {p: wd.PUBLISHED[p][s] for p in q.PUBLISHED_MLP}
        top_name = max(pub, key=lambda p: pub[p])
        top = pub[top_name]

        ceiling = _best_of(r, list(r["rows"]), top)
        covered = _best_of(r, [x for x, v in r["rows"].items() if v["subset"] == "LF-covered"], top)
        kd = results["quality"]["sets"].get(s)
        out[s] = {"max_published": {"row": top_name, "score": top}, "ceiling": ceiling, "ceiling_covered": covered,
                  "reachable": ceiling["mean"] > top, "reachable_by_covered_pipelines": covered["mean"] > top,
                  "counted": s in q.COMPLETE,
                  "kdstore_best": kd, "kdstore_gap_to_ceiling": None if kd is None else kd["mean"] - ceiling["mean"],
                  "published_mlp_gold": wd.PUBLISHED["MLP on gold train labels"][s]}
    return out


def _pm(v: dict[str, Any]) -> str:
    return f"{v['mean']:.2f} ± {v['std']:.2f}"


def markdown(results: dict[str, Any]) -> str:
    sets = list(results["sets"])
    v = results["verdicts"]
    ref = results["quality"]
    complete = [s for s in sets if s in q.COMPLETE]
    reach = [s for s in complete if v[s]["reachable"]]
    reach_cov = [s for s in complete if v[s]["reachable_by_covered_pipelines"]]
    lines = [
        "# Gold-label ceiling of the quality benchmark's student (goal A of issue 7)",
        "",
        "Every kdstore pipeline in quality.py only chooses the train targets of one fixed student on fixed features "
        "(MiniLM sentence embeddings; semeval/chemprot_partial + entity1 + entity2 + between). Here the SAME student "
        f"(quality.student, configuration {q.STUDENT}), the same features and the same protocols are trained on the "
        f"GOLD train labels instead, seeds {results['seeds']}, test score mean ± std (sms: F1 of spam). **all** = every "
        "train example; **LF-covered** = only the train examples some labeling function votes on (the only examples "
        "quality.py's pipelines give targets to). Protocols as quality.py: **wrench** = train only, early stopping on "
        "valid gold; **+valid gold** (x3) = 3-fold cross-fit with the gold valid examples in the training set (weight 1 "
        "or 3). The ceiling = the best gold row, picked on test (optimistic on purpose). kdstore best = "
        f"{ref['file']} (commit {ref['commit'][:10]}, chosen there on valid). Published rows: WRENCH, BERT features.",
        "",
        "## Verdict",
        "",
        "| set | max published MLP row | gold ceiling (best row) | margin | reachable | LF-covered ceiling | margin | "
        "kdstore best (quality.json) | kdstore - ceiling | published MLP on gold train (BERT) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in sets:
        x = v[s]
        c, cc, kd = x["ceiling"], x["ceiling_covered"], x["kdstore_best"]
        short = c["row"].replace("gold train ", "").replace(" -> student", "")
        shortc = cc["row"].replace("gold train (LF-covered) -> student ", "")
        reach_cell = ("yes" if x["reachable"] else "**NO**") + ("" if x["counted"] else " (not counted)")
        kd_cell = "–" if kd is None else f"{kd['mean']:.2f} ± {kd['std']:.2f} ({kd['row'].replace(' -> student', '')})"
        gap = "–" if x["kdstore_gap_to_ceiling"] is None else f"{x['kdstore_gap_to_ceiling']:+.2f}"
        lines.append(f"| {s} | {x['max_published']['score']:.2f} ({x['max_published']['row']}) | {_pm(c)} {short} | "
                     f"{c['margin_vs_max_published']:+.2f} | {reach_cell} | {_pm(cc)} {shortc} | "
                     f"{cc['margin_vs_max_published']:+.2f} | {kd_cell} | {gap} | {x['published_mlp_gold']:.2f} |")
    lines += [
        "",
        f"- Goal A needs 3 of the {len(q.COMPLETE)} complete sets ({', '.join(q.COMPLETE)}). With gold train labels the student beats the max "
        f"published MLP row on **{len(reach)} of {len(complete)}** ({', '.join(reach) or 'none'}); restricted to the "
        f"LF-covered train examples (the targets quality.py's pipelines can set): **{len(reach_cov)} of {len(complete)}** "
        f"({', '.join(reach_cov) or 'none'}).",
    ]
    for s in complete:
        x = v[s]
        c = x["ceiling"]
        if not x["reachable"]:
            lines.append(f"- **{s}: out of reach.** Even the gold train labels give at best {_pm(c)} "
                         f"({c['row']}), {c['margin_vs_max_published']:+.2f} below the published "
                         f"{x['max_published']['row']} {x['max_published']['score']:.2f}: no label model, teacher "
                         "selection or trust policy can reach it with these features and this student.")
        elif not x["reachable_by_covered_pipelines"]:
            cc = x["ceiling_covered"]
            lines.append(f"- **{s}: out of reach for pipelines that only label LF-covered examples** (best {_pm(cc)}, "
                         f"{cc['margin_vs_max_published']:+.2f}); gold labels on ALL train examples reach {_pm(c)} "
                         f"({c['margin_vs_max_published']:+.2f}).")
        else:
            lines.append(f"- {s}: reachable in principle: the gold ceiling {_pm(c)} is {c['margin_vs_max_published']:+.2f} "
                         f"above the published {x['max_published']['score']:.2f}; kdstore's best is "
                         + ("–" if x["kdstore_best"] is None else f"{x['kdstore_gap_to_ceiling']:+.2f} from the ceiling") + ".")
    lines += ["", "## All gold rows (test score; [valid score] = out-of-fold for +valid gold, early-stopping set for wrench)",
              "", "| row | " + " | ".join(f"{s} ({results['sets'][s]['metric']})" for s in sets) + " |",
              "|" + "---|" * (len(sets) + 1)]
    names = [row_name(sub, p) for p in PROTOCOLS for sub in SUBSETS]
    for n in names:
        cells = []
        for s in sets:
            r = results["sets"][s]["rows"].get(n)
            cells.append("–" if r is None else f"{_pm(r)} [{r['valid_mean']:.1f}]")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    for pub in (*q.PUBLISHED_MLP, "MLP on gold train labels"):
        lines.append(f"| published: {pub} | " + " | ".join(f"{wd.PUBLISHED[pub][s]:.2f}" for s in sets) + " |")
    lines.append("| kdstore best (quality.json) | " + " | ".join(
        "–" if v[s]["kdstore_best"] is None else _pm(v[s]["kdstore_best"]) for s in sets) + " |")
    lines += ["", f"Reproduction check (same features and student as quality.json?): quality.py's '{REPRO_ROW}' re-run "
              "here on the rebuilt embedding cache, per seed, against quality.json's per-seed numbers:", "",
              "| set | here | quality.json | max abs diff |", "|---|---|---|---|"]
    for s in sets:
        mine = results["sets"][s]["reproduction"]["per_seed"]
        theirs = ref["sets"][s]["repro_row_per_seed"][:len(mine)] if s in ref["sets"] else []
        diff = f"{max(abs(a - b) for a, b in zip(mine, theirs, strict=True)):.2f}" if len(theirs) == len(mine) else "–"
        lines.append(f"| {s} | {', '.join(f'{x:.2f}' for x in mine)} | {', '.join(f'{x:.2f}' for x in theirs)} | {diff} |")
    lines += ["", "Train examples (LF-covered / all) and class counts: " + "; ".join(
        f"{s} {r['sizes']['train_covered']}/{r['sizes']['train']} "
        f"(covered {r['train_class_counts']['LF-covered']}, all {r['train_class_counts']['all']})"
        for s, r in results["sets"].items()) + "."]
    lines.append(f"\nRuntime {results['seconds']:.0f} s, peak RSS {results['peak_rss_mb']:.0f} MB.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default=",".join(wd.TEXT_SETS))
    ap.add_argument("--seeds", type=int, default=len(q.SEEDS), help=f"number of student seeds (default {len(q.SEEDS)})")
    ap.add_argument("--resume", action="store_true", help="reuse per-set results checkpointed by an earlier run")
    args = ap.parse_args(argv)
    if not 1 <= args.seeds <= len(q.SEEDS):
        raise SystemExit(f"--seeds must be 1..{len(q.SEEDS)}, got {args.seeds}")
    seeds = q.SEEDS[:args.seeds]
    sets = [s for s in args.sets.split(",") if s]
    bad = [s for s in sets if s not in wd.TEXT_SETS]
    if bad:
        raise SystemExit(f"--sets: unknown set(s) {bad}; choose from {list(wd.TEXT_SETS)}")
    manifest = json.loads((wd.EMBEDDINGS / "MANIFEST.json").read_text())
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.0f} s] {msg}", flush=True)

    results: dict[str, Any] = {
        "seeds": list(seeds), "student": q.STUDENT, "folds": q.FOLDS, "gold_weights": q.GOLD_WEIGHTS,
        "features": {k: manifest[k] for k in ("model", "package", "package_version", "onnx_sha256", "dim", "pooling")},
        "quality": quality_reference(), "sets": {},
    }
    if results["features"]["onnx_sha256"] != json.loads((RESULTS / "quality.json").read_text())["features"]["onnx_sha256"]:
        raise SystemExit("the embedding cache was made with another ONNX model than quality.json's: re-export")
    for name in sets:
        ckpt = CKPT / f"ceiling_{name}_{len(seeds)}seeds.json"
        if args.resume and ckpt.exists():
            results["sets"][name] = json.loads(ckpt.read_text())
            log(f"{name}: resumed from {ckpt}")
            continue
        log(f"{name} ...")
        results["sets"][name] = run_set(name, seeds, log)
        CKPT.mkdir(parents=True, exist_ok=True)
        ckpt.write_text(json.dumps(results["sets"][name], default=float))
    results["verdicts"] = verdicts(results)
    results["seconds"] = time.perf_counter() - t0
    results["peak_rss_mb"] = peak_rss_mb()
    name = "label_ceiling" if len(seeds) == len(q.SEEDS) and len(sets) == len(wd.TEXT_SETS) else "label_ceiling_partial"
    jp, mp = write_results(name, results, markdown(results))
    print(mp.read_text())
    print(f"wrote {jp} and {mp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
