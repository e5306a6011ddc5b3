"""Gold-label ceiling of the quality benchmark's student (issue 7, goal A): is goal A reachable at all?

Run: ``PYTHONPATH=$PWD python benchmarks/label_ceiling.py [--sets youtube,sms] [--seeds 5] [--resume]``
-> ``benchmarks/results/label_ceiling.{json,md}``.

Every kdstore pipeline of ``quality.py`` only chooses the TRAIN targets (which examples, which
label distribution, which weight) of a student on fixed features (since 2026-11-28 it keeps the better
of two candidates on valid; this ceiling uses the MLP candidate, :data:`quality.STUDENT`). So the same student
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
* ``gold train (an LF votes gold)``: only the train examples where at least one LF votes the gold
  class -- the best any choice AMONG the LFs' votes can do (keep the right vote of each example,
  drop every example where no LF is right): the ceiling of teacher selection and trust policies
  whose targets are the teachers' own outputs;
* each under the three protocols of ``quality.py``: ``wrench`` (train targets only, early stopping
  on valid gold), ``+valid gold`` and ``+valid gold x3`` (3-fold cross-fit on valid: the gold valid
  examples join the distillation set with weight 1 or 3; test = mean of the fold students).

Beside them: the published WRENCH MLP rows (BERT features; ``wrench_data.PUBLISHED``) and kdstore's
best pipeline as ``benchmarks/results/quality.json`` records it (read, not re-run). The ceiling of
a set = the best gold row's test mean, picked on TEST on purpose (an optimistic ceiling makes "out of
reach" a conservative statement). chemprot_partial's train gold is the hidden gold of its train pool
(the data README's protocol). Train gold is read only here, to build these oracle rows.

trec check (``--no-trec-prefix`` skips it): every trec TEST text begins with an extra word, a
fine-grained TREC label (``def``, ``city``, ``date``, ...) that the train and valid texts lack (found by
``lf_shift.py``). The same students are scored on the cached test features and on the test texts
re-embedded without that word (``embed_wrench.Embedder``, in memory; the cache is not touched).
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
SUBSETS = ("all", "LF-covered", "an LF votes gold")
#: what each subset bounds (for the report)
SUBSET_MEANING = {
    "all": "anything that labels the train pool",
    "LF-covered": "pipelines that only label examples some LF votes on (every quality.py pipeline)",
    "an LF votes gold": "pipelines whose targets are chosen among the LFs' own votes (selection, trust)",
}
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
    masks = {"all": np.ones(ytr.size, bool), "LF-covered": covered,
             "an LF votes gold": (ws.train.votes == ytr[:, None]).any(axis=1)}
    res: dict[str, Any] = {
        "metric": metric, "classes": k, "features": "+".join(q.PARTS[name]), "dims": int(X.shape[1]),
        "sizes": {"train": int(ytr.size), "train_covered": int(covered.sum()),
                  "train_an_lf_right": int(masks["an LF votes gold"].sum()), "valid": int(yv.size), "test": int(yt.size)},
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


def trec_prefix_check(seeds: tuple[int, ...], log: Any) -> dict[str, Any]:
    """trec's test texts begin with an extra word (a fine-grained TREC label: ``def``, ``city``, ...; see
    lf_shift.md) that train and valid texts lack. The same students are scored on the test features as
    cached (with the word) and on the test texts re-embedded without their first word, and the word's own
    information is measured (accuracy of "the majority test class of each first word", on test itself)."""
    import embed_wrench as ew

    name = "trec"
    ws = wd.load_set(name)
    k, metric = len(ws.classes), ws.metric
    X = wd.features(ws.train, name, q.PARTS[name]).astype(np.float64)
    Xv = wd.features(ws.valid, name, q.PARTS[name]).astype(np.float64)
    Xt = wd.features(ws.test, name, q.PARTS[name]).astype(np.float64)
    yv, yt = ws.valid.gold, ws.test.gold
    data = json.loads((wd.wrench_dir() / name / "test.json").read_text())
    texts = [str(data[str(i)]["data"]["text"]) for i in ws.test.ids]
    split = [t.split(" ", 1) for t in texts]
    stripped = [p[1] if len(p) == 2 else p[0] for p in split]
    emb = ew.Embedder(threads=1)
    again = emb.embed(texts)["embedding"].astype(np.float64)
    Xs = emb.embed(stripped)["embedding"].astype(np.float64)
    words = np.asarray([p[0] for p in split])
    lookup = {w: int(np.bincount(yt[words == w], minlength=k).argmax()) for w in np.unique(words)}
    n = yt.size
    covered = (ws.train.votes >= 0).any(axis=1)
    hard, _ = wd.majority_vote(ws.train.votes, k)
    t0 = time.perf_counter()
    trust_y, trust_w, _ = q.kdstore_sources(name, k)["trust"]
    log(f"  trec prefix check: kdstore trust targets ({time.perf_counter() - t0:.0f} s)")
    sources = {"gold train (all)": (q._onehot(ws.train.gold, k), np.ones(ws.train.gold.size)),
               "MV": (q._onehot(hard, k), covered.astype(float)), "kdstore trust": (trust_y, trust_w)}
    rows: dict[str, Any] = {}
    for src, (y, w) in sources.items():
        for protocol in ("wrench", "+valid gold x3"):
            with_word, without = [], []
            for seed in seeds:
                out = q.student(X, y, w, Xv, yv, np.vstack([Xt, Xs]), k, seed, protocol)["test"]
                with_word.append(wd.score(metric, out[:n].argmax(1), yt))
                without.append(wd.score(metric, out[n:].argmax(1), yt))
            key = f"{src} -> student [{protocol}]"
            rows[key] = {"with_word": {"mean": float(np.mean(with_word)), "std": float(np.std(with_word)), "per_seed": with_word},
                         "without_word": {"mean": float(np.mean(without)), "std": float(np.std(without)), "per_seed": without}}
            log(f"  trec prefix check: {key}: test with the word {np.mean(with_word):.2f}, without {np.mean(without):.2f}")
    return {"texts": n, "re_embed_max_abs_diff": float(np.abs(again - Xt).max()),
            "first_word_lookup_accuracy": wd.score("acc", np.asarray([lookup[w] for w in words]), yt),
            "distinct_first_words": len(lookup), "rows": rows}


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
                          # this script trains quality.STUDENT alone: compare with that candidate, not the kept one
                          "repro_row_per_seed": r["rows"][REPRO_ROW].get("candidates", {}).get(
                              "mlp", r["rows"][REPRO_ROW])["per_seed"]}
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

        ceilings = {sub: _best_of(r, [x for x, v in r["rows"].items() if v["subset"] == sub], top) for sub in SUBSETS}
        ceiling = max(ceilings.values(), key=lambda c: c["mean"])
        kd = results["quality"]["sets"].get(s)
        out[s] = {"max_published": {"row": top_name, "score": top}, "ceiling": ceiling, "ceilings": ceilings,
                  "reachable": ceiling["mean"] > top, "reachable_per_subset": {sub: c["mean"] > top for sub, c in ceilings.items()},
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
    lines = [
        "# Gold-label ceiling of the quality benchmark's student (goal A of issue 7)",
        "",
        "Every kdstore pipeline in quality.py only chooses the train targets of a student on fixed features "
        "(quality.PARTS: MiniLM layer-mean sentence embedding; semeval/chemprot_partial + entity1 + entity2 + between). Here the SAME student "
        f"(quality.student, configuration {q.STUDENT}), the same features and the same protocols are trained on the "
        f"GOLD train labels instead, seeds {results['seeds']}, test score mean ± std (sms: F1 of spam). **all** = every "
        "train example; **LF-covered** = only the train examples some labeling function votes on (the only examples "
        "quality.py's pipelines give targets to); **an LF votes gold** = only the train examples where some LF votes the "
        "gold class (the best any choice among the LFs' own votes can do). Protocols as quality.py: **wrench** = train only, early stopping on "
        "valid gold; **+valid gold** (x3) = 3-fold cross-fit with the gold valid examples in the training set (weight 1 "
        "or 3). The ceiling = the best gold row, picked on test (optimistic on purpose). kdstore best = "
        f"{ref['file']} (commit {ref['commit'][:10]}, chosen there on valid). Published rows: WRENCH, BERT features.",
        "",
        "## Verdict",
        "",
        "| set | max published MLP row | " + " | ".join(f"ceiling: {sub} (margin)" for sub in SUBSETS)
        + " | reachable | kdstore best (quality.json) | kdstore - ceiling | published MLP on gold train (BERT) |",
        "|---|---|" + "---|" * len(SUBSETS) + "---|---|---|---|",
    ]
    for s in sets:
        x = v[s]
        kd = x["kdstore_best"]
        cells = []
        for sub in SUBSETS:
            c = x["ceilings"][sub]
            proto = c["row"].rsplit(" [", 1)[1].rstrip("]")
            cells.append(f"{_pm(c)} [{proto}] ({c['margin_vs_max_published']:+.2f})")
        reach_cell = ("yes" if x["reachable"] else "**NO**") + ("" if x["counted"] else " (not counted)")
        kd_cell = "–" if kd is None else f"{kd['mean']:.2f} ± {kd['std']:.2f} ({kd['row'].replace(' -> student', '')})"
        gap = "–" if x["kdstore_gap_to_ceiling"] is None else f"{x['kdstore_gap_to_ceiling']:+.2f}"
        lines.append(f"| {s} | {x['max_published']['score']:.2f} ({x['max_published']['row']}) | " + " | ".join(cells)
                     + f" | {reach_cell} | {kd_cell} | {gap} | {x['published_mlp_gold']:.2f} |")
    lines += ["", "These are empirical ceilings of this one student configuration, not theorems: soft targets, weights or "
              "extra examples can put a pipeline within noise of one, or slightly above (a set whose kdstore best exceeds "
              "its 'an LF votes gold' ceiling shows that).",
              "", f"- Goal A needs 3 of the {len(q.COMPLETE)} complete sets ({', '.join(q.COMPLETE)}). Sets where the "
              "gold ceiling beats the max published MLP row:"]
    for sub in SUBSETS:
        ok = [s for s in complete if v[s]["reachable_per_subset"][sub]]
        lines.append(f"  - gold on **{sub}** train examples (bounds {SUBSET_MEANING[sub]}): **{len(ok)} of {len(complete)}** "
                     f"({', '.join(ok) or 'none'})")
    for s in complete:
        x = v[s]
        c = x["ceiling"]
        if not x["reachable"]:
            lines.append(f"- **{s}: out of reach.** Even the gold train labels give at best {_pm(c)} "
                         f"({c['row']}), {c['margin_vs_max_published']:+.2f} below the published "
                         f"{x['max_published']['row']} {x['max_published']['score']:.2f}: no label model, teacher "
                         "selection or trust policy can reach it with these features and this student.")
        elif not all(x["reachable_per_subset"].values()):
            for sub in SUBSETS:
                cc = x["ceilings"][sub]
                if not x["reachable_per_subset"][sub]:
                    lines.append(f"- **{s}: out of reach for {SUBSET_MEANING[sub]}**: gold on the {sub} train examples "
                                 f"gives at best {_pm(cc)} ({cc['margin_vs_max_published']:+.2f}); gold on all train "
                                 f"examples {_pm(c)} ({c['margin_vs_max_published']:+.2f}).")
        else:
            tight = x["ceilings"][SUBSETS[-1]]
            kd = x["kdstore_best"]
            lines.append(f"- {s}: reachable in principle, even by choosing among the LFs' votes: gold on the "
                         f"'{SUBSETS[-1]}' examples gives {_pm(tight)} ({tight['margin_vs_max_published']:+.2f} over the "
                         f"published {x['max_published']['score']:.2f}; gold on all train {_pm(c)}). kdstore's best, "
                         + ("–" if kd is None else f"{kd['mean']:.2f}, is {kd['mean'] - tight['mean']:+.2f} from that ceiling")
                         + ".")
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
              "here on the rebuilt embedding cache, per seed, against quality.json's per-seed numbers of the same (mlp) candidate:", "",
              "| set | here | quality.json | max abs diff |", "|---|---|---|---|"]
    for s in sets:
        mine = results["sets"][s]["reproduction"]["per_seed"]
        theirs = ref["sets"][s]["repro_row_per_seed"][:len(mine)] if s in ref["sets"] else []
        diff = f"{max(abs(a - b) for a, b in zip(mine, theirs, strict=True)):.2f}" if len(theirs) == len(mine) else "–"
        lines.append(f"| {s} | {', '.join(f'{x:.2f}' for x in mine)} | {', '.join(f'{x:.2f}' for x in theirs)} | {diff} |")
    lines += ["", "Train examples (an LF votes gold / LF-covered / all) and their class counts: " + "; ".join(
        f"{s} {r['sizes']['train_an_lf_right']}/{r['sizes']['train_covered']}/{r['sizes']['train']} "
        f"({' / '.join(str(r['train_class_counts'][sub]) for sub in reversed(SUBSETS))})"
        for s, r in results["sets"].items()) + "."]
    tp = results.get("trec_prefix")
    if tp is not None:
        lines += ["", "## trec: test texts with and without their leading label word", "",
                  f"Every trec test text begins with an extra lowercase word that train and valid texts lack: a "
                  f"fine-grained TREC label ({tp['distinct_first_words']} distinct words; see lf_shift.md). 'Each word -> "
                  f"its majority test class' alone scores {tp['first_word_lookup_accuracy']:.2f}% test accuracy. The same "
                  "students (same seeds) scored on the cached test features (with the word) and on the test texts "
                  f"re-embedded without it (re-embedding the texts as given reproduces the cache to "
                  f"{tp['re_embed_max_abs_diff']:.1e}):", "",
                  "| row | test, with the word (as in quality.md) | test, without it | change |", "|---|---|---|---|"]
        for key, r in tp["rows"].items():
            lines.append(f"| {key} | {_pm(r['with_word'])} | {_pm(r['without_word'])} | "
                         f"{r['without_word']['mean'] - r['with_word']['mean']:+.2f} |")
    resumed = results.get("resumed", [])
    lines.append(f"\nRuntime {results['seconds']:.0f} s, peak RSS {results['peak_rss_mb']:.0f} MB"
                 + (f" (gold rows of {', '.join(resumed)} reused from an earlier run's checkpoint: "
                    + ", ".join(f"{s} {results['sets'][s]['seconds']:.0f} s" for s in resumed) + ")" if resumed else "")
                 + ".")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default=",".join(wd.TEXT_SETS))
    ap.add_argument("--seeds", type=int, default=len(q.SEEDS), help=f"number of student seeds (default {len(q.SEEDS)})")
    ap.add_argument("--resume", action="store_true", help="reuse per-set results checkpointed by an earlier run")
    ap.add_argument("--no-trec-prefix", action="store_true", help="skip the trec test-text prefix check")
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
        ckpt = CKPT / f"ceiling_{name}_{len(seeds)}seeds_{manifest['onnx_sha256'][:12]}.json"
        if args.resume and ckpt.exists():
            results["sets"][name] = json.loads(ckpt.read_text())
            results.setdefault("resumed", []).append(name)
            log(f"{name}: resumed from {ckpt}")
            continue
        log(f"{name} ...")
        results["sets"][name] = run_set(name, seeds, log)
        CKPT.mkdir(parents=True, exist_ok=True)
        ckpt.write_text(json.dumps(results["sets"][name], default=float))
    if "trec" in sets and not args.no_trec_prefix:
        log("trec prefix check ...")
        results["trec_prefix"] = trec_prefix_check(seeds, log)
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
