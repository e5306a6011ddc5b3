"""Labeling-function precision per split: do the LFs' votes mean the same on train, valid and test?

Run: ``PYTHONPATH=$PWD python benchmarks/lf_shift.py [--sets youtube,sms]``
-> ``benchmarks/results/lf_shift.{json,md}``. Reads the WRENCH data through ``wrench_data.py`` (the
data README's protocol: chemprot_partial's train = its unlabeled valid pool), no features, no model.

kdstore judges every teacher (LF) on the VALID split and trusts that judgement on TRAIN, where its
targets come from. That only works if an LF's votes are as reliable on valid as on train. For each of
the 5 text sets and each split this script counts, from the stored votes and gold:

* overall: votes (non-abstain outputs), coverage (examples with >= 1 vote), precision = votes equal
  to gold / votes;
* per class c: the votes for c (every LF in these sets votes a single class, checked and recorded,
  so this is "the LFs of class c");
* per LF, for the LFs whose precision moves most between train and valid (all of sms's spam LFs).

Rule check (sets whose data README lists each LF as a tab-separated ``<class>\\t<regex>`` line, in LF
order: sms and trec): the regexes are re-applied (``re.search``) to each split's ``data.text`` and
compared with the stored votes: agreement = (LF, example) pairs where the rule fires and the stored
vote is that rule's class / pairs where either holds. Texts are tried as given, lowercased, and
lowercased without their first word (trec's test texts begin with a fine-grained TREC label such as
``def`` or ``city``; see the report). It tells a real shift of LF behaviour (the rules fire the same
way, the meaning of their votes changes) from stored votes that are not the rules' outputs on those texts.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import wrench_data as wd
from _common import peak_rss_mb, write_results

SPLITS = ("train", "valid", "test")
#: class names used by the data README's rule lines -> label id (the README's "# Labels" section)
RULE_CLASSES: dict[str, dict[str, int]] = {
    "sms": {"ham": 0, "spam": 1},
    "trec": {"DESCRIPTION": 0, "ENTITY": 1, "HUMAN": 2, "ABBREVIATION": 3, "LOCATION": 4, "NUMERIC": 5},
}
TEXT_FORMS = {
    "as given": lambda t: t,
    "lowercased": lambda t: t.lower(),
    "lowercased, first word dropped": lambda t: t.split(" ", 1)[1].lower() if " " in t else "",
}
#: per-LF rows reported per set: the LFs with the largest train -> valid precision drop (with >= MIN_VOTES valid votes)
TOP_LFS = 8
MIN_VOTES = 5
MIN_DROP = 5.0  # precision points
#: a class's train -> valid precision change is flagged in the summary from this many points, with >= FLAG_VOTES valid votes
FLAG_POINTS = 20.0
FLAG_VOTES = 20
#: random same-size samples of the train rule rows: the chance level of "matched in any order"
CHANCE_DRAWS = 5


def _prec(ok: int, n: int) -> float | None:
    return 100.0 * ok / n if n else None


def split_stats(votes: np.ndarray, gold: np.ndarray, k: int) -> dict[str, Any]:
    """Votes, coverage and precision of one split, overall and per voted class."""
    on = votes >= 0
    right = on & (votes == gold[:, None])
    per_class = {}
    for c in range(k):
        vc = votes == c
        per_class[c] = {"votes": int(vc.sum()), "correct": int((vc & right).sum()),
                        "precision": _prec(int((vc & right).sum()), int(vc.sum())),
                        "lfs_voting": int(vc.any(axis=0).sum()), "gold_count": int((gold == c).sum())}
    return {"examples": int(gold.size), "votes": int(on.sum()), "correct": int(right.sum()),
            "precision": _prec(int(right.sum()), int(on.sum())), "coverage": float(on.any(axis=1).mean()),
            "per_class": per_class}


def lf_stats(ws: wd.WrenchSet) -> dict[int, dict[str, Any]]:
    """Per LF: its class(es) and votes / correct / precision per split."""
    out: dict[int, dict[str, Any]] = {}
    for j in range(ws.train.votes.shape[1]):
        row: dict[str, Any] = {"classes": sorted({int(c) for sp in SPLITS for c in getattr(ws, sp).votes[:, j] if c >= 0})}
        for sp in SPLITS:
            s = getattr(ws, sp)
            v = s.votes[:, j]
            n, ok = int((v >= 0).sum()), int(((v >= 0) & (v == s.gold)).sum())
            row[sp] = {"votes": n, "correct": ok, "precision": _prec(ok, n)}
        out[j] = row
    return out


def read_rules(name: str, n_lfs: int) -> list[tuple[int, str]] | None:
    """The (class, regex) of every LF, in LF order, from the data README; None for sets without rule lines."""
    classes = RULE_CLASSES.get(name)
    if classes is None:
        return None
    path = wd.wrench_dir() / name / "readme.txt"
    rules = []
    for line in path.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and parts[0] in classes:
            rules.append((classes[parts[0]], parts[1]))
    if len(rules) != n_lfs:
        raise SystemExit(f"{path}: {len(rules)} rule lines, the data has {n_lfs} LFs")
    return rules


def split_texts(name: str, file: str, ids: Any) -> list[str]:
    """``data.text`` of the examples ``ids`` (WRENCH keys, in order) of one split file of a set."""
    data = json.loads((wd.wrench_dir() / name / f"{file}.json").read_text())
    return [str(data[str(i)]["data"]["text"]) for i in ids]


def apply_rules(rules: list[tuple[int, str]], texts: list[str]) -> np.ndarray:
    """The rules re-applied to the texts: votes [n, n_rules], the rule's class where ``re.search`` fires, else -1."""
    compiled = [(c, re.compile(rx)) for c, rx in rules]
    fired = np.full((len(texts), len(rules)), -1, np.int64)
    for i, t in enumerate(texts):
        for j, (c, rx) in enumerate(compiled):
            if rx.search(t):
                fired[i, j] = c
    return fired


def rule_check(name: str, ws: wd.WrenchSet, rules: list[tuple[int, str]]) -> dict[str, Any]:
    """Stored votes vs the README's rules re-applied to each split's texts (see the module docstring)."""
    out: dict[str, Any] = {}
    as_given: dict[str, np.ndarray] = {}
    texts = {sp: split_texts(name, getattr(ws, sp).file, getattr(ws, sp).ids) for sp in SPLITS}
    for sp in SPLITS:
        s = getattr(ws, sp)
        res: dict[str, Any] = {}
        for form, f in TEXT_FORMS.items():
            fired = apply_rules(rules, [f(t) for t in texts[sp]])
            stored = s.votes >= 0
            fire = fired >= 0
            both = int((stored & fire & (s.votes == fired)).sum())
            either = int((stored | fire).sum())
            right = fire & (fired == s.gold[:, None])
            per_class = {c: {"votes": int((fired == c).sum()), "correct": int((right & (fired == c)).sum()),
                             "precision": _prec(int((right & (fired == c)).sum()), int((fired == c).sum()))}
                         for c in range(len(ws.classes))}
            # the stored voted rows matched one-to-one to rule rows with the same vote pattern, in any order
            # (next to the chance level below: rule rows of random TRAIN examples)
            matched = _matched(s.votes, fired)
            if form == "as given":
                as_given[sp] = fired
            res[form] = {"agreement": _prec(both, either), "pairs_both": both, "pairs_either": either,
                         "voted_rows": int(stored.any(axis=1).sum()), "voted_rows_matched_any_order": matched,
                         "voted_rows_matched_in_place": int((stored.any(axis=1) & (s.votes == fired).all(axis=1)).sum()),
                         "rule_votes": int(fire.sum()), "stored_votes": int(stored.sum()),
                         "rule_precision": _prec(int(right.sum()), int(fire.sum())), "rule_per_class": per_class}
        # texts that look like "<lowercase word> <Capitalised rest>" (trec test's fine-label prefix)
        first = [t.split(" ", 1) for t in texts[sp]]
        res["prefix_like_texts"] = int(sum(len(p) == 2 and p[0].islower() and p[1][:1].isupper() for p in first))
        res["first_words"] = {w: int(n) for w, n in zip(*np.unique([p[0] for p in first], return_counts=True), strict=True)
                              if n >= 5} if res["prefix_like_texts"] > len(first) // 2 else {}
        out[sp] = res
    rng = np.random.default_rng(0)
    for sp in SPLITS[1:]:
        n = as_given[sp].shape[0]
        if n <= as_given["train"].shape[0]:
            draws = [_matched(getattr(ws, sp).votes, as_given["train"][rng.choice(as_given["train"].shape[0], n, replace=False)])
                     for _ in range(CHANCE_DRAWS)]
            out[sp]["as given"]["voted_rows_matched_random_train"] = float(np.mean(draws))
    return out


def _matched(a: np.ndarray, b: np.ndarray) -> int:
    """Rows with a vote in ``a`` that pair one-to-one with equal rows of ``b`` (multiset intersection, any order)."""
    def patterns(v: np.ndarray) -> Counter[tuple[int, ...]]:
        return Counter(map(tuple, v[(v >= 0).any(axis=1)].tolist()))

    return sum((patterns(a) & patterns(b)).values())


def run_set(name: str) -> dict[str, Any]:
    ws = wd.load_set(name)
    k = len(ws.classes)
    res: dict[str, Any] = {"classes": list(ws.classes), "lfs": int(ws.train.votes.shape[1]),
                           "splits": {sp: split_stats(getattr(ws, sp).votes, getattr(ws, sp).gold, k) for sp in SPLITS}}
    lfs = lf_stats(ws)
    res["multi_class_lfs"] = [j for j, r in lfs.items() if len(r["classes"]) > 1]
    res["lfs_per_class"] = {c: [j for j, r in lfs.items() if r["classes"] == [c]] for c in range(k)}

    def drop(j: int) -> float:
        tr, va = lfs[j]["train"]["precision"], lfs[j]["valid"]["precision"]
        return -np.inf if tr is None or va is None or lfs[j]["valid"]["votes"] < MIN_VOTES else tr - va

    top = sorted((j for j in lfs if np.isfinite(drop(j)) and drop(j) >= MIN_DROP), key=drop, reverse=True)[:TOP_LFS]
    res["top_drop_lfs"] = {j: lfs[j] for j in top}
    res["lf_stats"] = lfs
    rules = read_rules(name, res["lfs"])
    if rules is not None:
        res["rule_check"] = rule_check(name, ws, rules)
    return res


def _p(v: float | None) -> str:
    return "–" if v is None else f"{v:.1f}"


def summary(results: dict[str, Any]) -> list[str]:
    """One line per set: overall precision per split, the classes whose precision moves most, the rule check."""
    out = []
    for s, r in results["sets"].items():
        sp = r["splits"]
        line = (f"- {s}: precision train {_p(sp['train']['precision'])}, valid {_p(sp['valid']['precision'])}, "
                f"test {_p(sp['test']['precision'])}")
        flags = []
        for c, cname in enumerate(r["classes"]):
            tr, va, te = (sp[x]["per_class"][c] for x in SPLITS)
            if tr["precision"] is None or va["precision"] is None or va["votes"] < FLAG_VOTES:
                continue
            if abs(va["precision"] - tr["precision"]) >= FLAG_POINTS:
                flags.append(f"**{cname}** {_p(tr['precision'])} -> {_p(va['precision'])} (valid, {va['correct']}/{va['votes']})"
                             f" -> {_p(te['precision'])} (test, {te['correct']}/{te['votes']})")
        line += ("; classes moving >= " + f"{FLAG_POINTS:.0f} points: " + "; ".join(flags)) if flags else \
            f"; no class moves >= {FLAG_POINTS:.0f} points between train and valid (>= {FLAG_VOTES} valid votes)"
        rc = r.get("rule_check")
        if rc is not None:
            parts = []
            for x in SPLITS:
                given = rc[x]["as given"]
                best = max(TEXT_FORMS, key=lambda f, x=x: rc[x][f]["agreement"] or 0.0)
                part = f"{x} {_p(given['agreement'])}%"
                if best != "as given" and (rc[x][best]["agreement"] or 0) > (given["agreement"] or 0):
                    part += f" ({best}: {_p(rc[x][best]['agreement'])}%)"
                parts.append(part)
            line += ". Stored votes = the README's rules re-applied to the text: " + ", ".join(parts)
            bad = [x for x in SPLITS if max(rc[x][f]["agreement"] or 0.0 for f in TEXT_FORMS) < 90.0]
            if bad:
                line += (f" -> the stored votes of {' and '.join(bad)} are NOT the rules' outputs on those texts; "
                         "the re-applied rules are " + ", ".join(
                             f"{_p(rc[x]['as given']['rule_precision'])}% precise on {x}" for x in SPLITS))
                line += (". Stored rows with a vote that equal a rule row of the same split in place / in any order / "
                         "in any order against the rule rows of random train examples (chance) ")
                line += ", ".join(f"({x}): {rc[x]['as given']['voted_rows_matched_in_place']} / "
                                  f"{rc[x]['as given']['voted_rows_matched_any_order']} / "
                                  f"{rc[x]['as given'].get('voted_rows_matched_random_train', float('nan')):.0f} "
                                  f"of {rc[x]['as given']['voted_rows']}" for x in bad)
                line += (" -- the stored rows look like rule outputs (their patterns match rule rows as often as any "
                         "texts' rule rows do), but not of their own texts")
            for x in SPLITS:
                if rc[x]["first_words"]:
                    line += (f". {rc[x]['prefix_like_texts']} of {sp[x]['examples']} {x} texts begin with an extra "
                             f"lowercase word before a capitalised text (e.g. {', '.join(list(rc[x]['first_words'])[:4])}): "
                             "the votes were computed without it, but the text (and any feature made from it) carries it")
        out.append(line + ".")
    return out


def markdown(results: dict[str, Any]) -> str:
    sets = results["sets"]
    lines = [
        "# Labeling-function precision per split (train / valid / test)",
        "",
        "Precision = stored LF votes equal to gold / votes (abstentions not counted); per class = the votes for that "
        "class (every LF of these sets votes one class only: "
        + ", ".join(f"{s} {'yes' if not r['multi_class_lfs'] else 'NO: ' + str(r['multi_class_lfs'])}" for s, r in sets.items())
        + "). Data: the WRENCH files via benchmarks/wrench_data.py (chemprot_partial: the README's split, train = the "
        "unlabeled valid pool). kdstore judges LFs on valid and applies them on train, so a precision that moves "
        "between train and valid misleads every labeled selection policy.",
        "",
        "## Summary",
        "",
        *summary(results),
        "",
        "## Overall and per class: precision % (votes)",
        "",
        "| set | class | train | valid | test |",
        "|---|---|---|---|---|",
    ]
    for s, r in sets.items():
        sp = r["splits"]
        cov = ", ".join(f"{100 * sp[x]['coverage']:.0f}%" for x in SPLITS)
        lines.append(f"| {s} | all (coverage {cov}) | "
                     + " | ".join(f"**{_p(sp[x]['precision'])}** ({sp[x]['votes']})" for x in SPLITS) + " |")
        for c, cname in enumerate(r["classes"]):
            lines.append(f"| {s} | {cname} ({len(r['lfs_per_class'][c])} LFs) | "
                         + " | ".join(f"{_p(sp[x]['per_class'][c]['precision'])} ({sp[x]['per_class'][c]['votes']})"
                                      for x in SPLITS) + " |")
    if "sms" in sets:
        r = sets["sms"]
        spam = r["lfs_per_class"][1]
        lines += ["", f"## sms: the {len(spam)} spam LFs, one by one (votes: correct / votes per split)", "",
                  "| LF | train | valid | test |", "|---|---|---|---|"]
        for j in spam:
            x = r["lf_stats"][j]
            lines.append(f"| lf{j:03d} | " + " | ".join(f"{x[sp]['correct']}/{x[sp]['votes']}" for sp in SPLITS) + " |")
        tot = {sp: (sum(r["lf_stats"][j][sp]["correct"] for j in spam), sum(r["lf_stats"][j][sp]["votes"] for j in spam))
               for sp in SPLITS}
        lines.append("| all spam LFs | " + " | ".join(f"**{c}/{n} = {_p(_prec(c, n))}%**" for c, n in tot.values()) + " |")
    lines += ["", f"## Largest train -> valid precision drops per set (LFs with >= {MIN_VOTES} valid votes and a drop "
              f">= {MIN_DROP:.0f} points; precision % (votes))", "", "| set | LF | class | train | valid | test |", "|---|---|---|---|---|---|"]
    for s, r in sets.items():
        for j, x in r["top_drop_lfs"].items():
            lines.append(f"| {s} | lf{int(j):03d} | {'/'.join(r['classes'][c] for c in x['classes'])} | "
                         + " | ".join(f"{_p(x[sp]['precision'])} ({x[sp]['votes']})" for sp in SPLITS) + " |")
    checked = {s: r["rule_check"] for s, r in sets.items() if "rule_check" in r}
    if checked:
        lines += ["", "## Rule check: the data README's regex rules re-applied to the texts",
                  "", "Agreement = (LF, example) pairs where the re-applied rule fires AND the stored vote is its class / "
                  "pairs where either holds. 'rule precision' = precision of the re-applied rules' votes against gold "
                  "(per class in brackets).", "",
                  "| set | split | text form | agreement % | stored votes | rule votes | rule precision % (per class) |",
                  "|---|---|---|---|---|---|---|"]
        for s, rc in checked.items():
            for sp in SPLITS:
                for form in TEXT_FORMS:
                    x = rc[sp][form]
                    pc = ", ".join(f"{sets[s]['classes'][int(c)]} {_p(v['precision'])}" for c, v in x["rule_per_class"].items())
                    lines.append(f"| {s} | {sp} | {form} | **{_p(x['agreement'])}** ({x['pairs_both']}/{x['pairs_either']}) | "
                                 f"{x['stored_votes']} | {x['rule_votes']} | {_p(x['rule_precision'])} ({pc}) |")
        for s, rc in checked.items():
            for sp in SPLITS:
                if rc[sp]["first_words"]:
                    top = sorted(rc[sp]["first_words"].items(), key=lambda kv: -kv[1])[:10]
                    lines.append(f"\n{s} {sp}: {rc[sp]['prefix_like_texts']} of {sets[s]['splits'][sp]['examples']} texts "
                                 "start with a lowercase word followed by a capitalised text; most common first words: "
                                 + ", ".join(f"{w} {n}" for w, n in top) + ".")
    lines.append(f"\nRuntime {results['seconds']:.1f} s, peak RSS {results['peak_rss_mb']:.0f} MB.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default=",".join(wd.TEXT_SETS))
    args = ap.parse_args(argv)
    sets = [s for s in args.sets.split(",") if s]
    bad = [s for s in sets if s not in wd.TEXT_SETS]
    if bad:
        raise SystemExit(f"--sets: unknown set(s) {bad}; choose from {list(wd.TEXT_SETS)}")
    t0 = time.perf_counter()
    results: dict[str, Any] = {"sets": {s: run_set(s) for s in sets}}
    results["seconds"] = time.perf_counter() - t0
    results["peak_rss_mb"] = peak_rss_mb()
    name = "lf_shift" if len(sets) == len(wd.TEXT_SETS) else "lf_shift_partial"
    jp, mp = write_results(name, results, markdown(results))
    print(mp.read_text())
    print(f"wrote {jp} and {mp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
