"""MiniLM as an embedding teacher (issue 7): does regressing its sentence embedding help a small student?

Run: ``PYTHONPATH=$PWD python benchmarks/embedding_student.py [--sets youtube,sms,trec] [--seeds 3]``
-> ``benchmarks/results/embedding_student.{json,md}``. Needs the embedding cache of
``embed_wrench.py``.

all-MiniLM-L6-v2 (22M parameters, a 90 MB ONNX file) is a teacher of its own kind here: its
outputs are sentence embeddings, stored in ``kd.embeddings`` (``output_type="embedding"``), not
labels. The student is small: an MLP on TF-IDF word features of the text (no encoder at serving
time). Everything goes through the store, as a user would run it: ``sq.build_store`` (the labeling
functions' votes, valid gold), ``register_features("bow", ...)``, ``add_teacher("minilm",
output_type="embedding")`` + ``ingest_embeddings``, ``fit_trust`` + ``select("trust")`` with the
trust configuration of ``quality.TRUST``, then ``store.train_student`` with the protocol of
``train_student`` (train targets, early stopping on valid gold, test read once after the model is
fixed). Per set and seed, four students with quality.py's MLP configuration:

* ``bow -> labels``: the trust run's targets, label head only;
* ``bow -> labels + minilm``: the same plus an embedding head regressing MiniLM's sentence
  embedding (``embedding_teacher="minilm"``, cosine loss, ``label_weight`` 1);
* ``bow -> minilm only``: the embedding head alone (``run_id=None``): how well a bag-of-words MLP
  reproduces the encoder (test cosine);
* ``minilm features -> labels``: the reference, the student on the teacher's own embeddings
  (``Embeddings("minilm")``), i.e. what the encoder gives at serving time.

Scores: test accuracy (sms: F1 of spam, as quality.py), and the test cosine between the student's
embedding head and MiniLM's embedding, mean ± std over seeds. TF-IDF (1-2 grams, at most
:data:`VOCAB` terms, sublinear tf) is fitted on the train texts only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality as q
import select_quality as sq
import wrench_data as wd
from _common import peak_rss_mb, write_results

SETS = ("youtube", "sms", "trec")
SEEDS = (0, 1, 2)
VOCAB = 3000
STUDENTS = ("bow -> labels", "bow -> labels + minilm", "bow -> minilm only", "minilm features -> labels")


def texts(name: str, parts: dict[str, sq.Part]) -> dict[str, list[str]]:
    """Each split's texts, in the parts' order."""
    out = {}
    for split, p in parts.items():
        data = json.loads((wd.wrench_dir() / name / f"{p.file}.json").read_text())
        out[split] = [str(data[k]["data"]["text"]) for k in p.keys]
    return out


def run_set(name: str, seeds: tuple[int, ...], log: Any) -> dict[str, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    from kdstore import trust as ktrust
    from kdstore.student.features import Embeddings

    t_set = time.perf_counter()
    ws = wd.load_set(name)
    classes, parts = sq.parts_of(ws)
    txt = texts(name, parts)
    vec = TfidfVectorizer(max_features=VOCAB, ngram_range=(1, 2), sublinear_tf=True, min_df=2).fit(txt["train"])
    bow = np.vstack([vec.transform(txt[s]).toarray() for s in ("train", "valid", "test")]).astype(np.float32)
    minilm = np.vstack([wd.features(getattr(ws, s), name, ("embedding",)) for s in ("train", "valid", "test")])
    n_tr, n_va = len(parts["train"].keys), len(parts["valid"].keys)
    test_ids = np.arange(n_tr + n_va, bow.shape[0])
    gold_test = parts["test"].gold
    store = sq.build_store(classes, parts, sq.load_embeddings(name, parts))
    try:
        ids = np.arange(bow.shape[0])
        store.register_features("bow", pa.table({"example_id": ids, "x": pa.array(list(bow), pa.list_(pa.float32()))}))
        store.add_teacher("minilm", labels=[], output_type="embedding")
        store.ingest_embeddings("minilm", pa.table({"example_id": ids,
                                                    "vector": pa.array(list(minilm), pa.list_(pa.float32()))}))
        kind, feats, mode, thr = q.TRUST[name]
        ktrust.fit_trust(store, kind=kind, feature_source=feats, seed=0)
        store.settings.update(trust_weighting=mode, trust_threshold=thr)
        run = store.select("trust")
        tgt = store.con.execute("SELECT label_id, count(DISTINCT example_id) FROM kd.targets t JOIN kd.examples e USING "
                                "(example_id) WHERE run_id = ? AND e.split = 'train' AND target >= 0.5 GROUP BY label_id",
                                [run]).fetchall()
        per_class = {classes[int(lab)]: int(n) for lab, n in sorted(tgt)}
        jobs: dict[str, dict[str, Any]] = {
            "bow -> labels": {"run_id": run, "features": "bow"},
            "bow -> labels + minilm": {"run_id": run, "features": "bow", "embedding_teacher": "minilm",
                                       "embedding_loss": "cosine"},
            "bow -> minilm only": {"run_id": None, "features": "bow", "embedding_teacher": "minilm",
                                   "embedding_loss": "cosine"},
            "minilm features -> labels": {"run_id": run, "features": Embeddings("minilm")},
        }
        rows: dict[str, Any] = {}
        for student, kw in jobs.items():
            t0 = time.perf_counter()
            scores, cosines, epochs = [], [], []
            for seed in seeds:
                mid = store.train_student(**kw, name=f"{student} {seed}", progress=False,
                                          **{**q.STUDENT, "seed": seed})
                m = store.models.load(mid)
                if kw["run_id"] is not None:
                    p = store.predict(m).to_pydict()
                    by_id = dict(zip(p["example_id"], p["scores"], strict=True))
                    pred = np.asarray([np.argmax(by_id[int(i)]) for i in test_ids])
                    scores.append(wd.score(ws.metric, pred, gold_test))
                emb = m.metrics["test"].get("embedding")
                if emb is not None:
                    cosines.append(float(emb["cosine"]))
                epochs.append(m.metrics.get("best_epoch"))
            rows[student] = {"score": _ms(scores), "test_cosine": _ms(cosines), "per_seed": scores,
                             "cosine_per_seed": cosines, "best_epochs": epochs, "onnx_bytes": len(m.onnx),
                             "seconds": time.perf_counter() - t0}
            log(f"  {name}: {student}: score {rows[student]['score']}, test cosine {rows[student]['test_cosine']} "
                f"({time.perf_counter() - t0:.0f} s)")
    finally:
        store.close()
    return {"metric": ws.metric, "vocab": len(vec.vocabulary_), "sizes": {"train": n_tr, "valid": n_va, "test": int(test_ids.size)},
            "trust": {"kind": kind, "features": feats, "trust_weighting": mode, "trust_threshold": thr},
            "train_targets_per_class": per_class,
            "rows": rows, "seconds": time.perf_counter() - t_set}


def _ms(v: list[float]) -> dict[str, float] | None:
    return {"mean": float(np.mean(v)), "std": float(np.std(v))} if v else None


def _cell(v: dict[str, float] | None, digits: int = 2) -> str:
    return "–" if v is None else f"{v['mean']:.{digits}f} ± {v['std']:.{digits}f}"


def markdown(results: dict[str, Any]) -> str:
    sets = list(results["sets"])
    lines = [
        "# MiniLM as an embedding teacher: a bag-of-words student with and without its embedding head",
        "",
        f"Teacher: {results['features']['model']} sentence embeddings (ONNX sha256 "
        f"{results['features']['onnx_sha256'][:12]}…) in kd.embeddings; labels: the trust run (quality.TRUST) of the "
        f"labeling functions. Student: quality.STUDENT {q.STUDENT} through store.train_student, on TF-IDF word "
        f"features (1-2 grams, <= {VOCAB} terms, fitted on train texts) unless said; early stopping on valid gold; "
        f"test read once. Seeds {results['seeds']}, mean ± std. Score = test accuracy (sms: F1 of spam); cosine = "
        "mean test cosine between the student's embedding head and MiniLM's embedding.",
        "",
        "| student | " + " | ".join(f"{s} ({results['sets'][s]['metric']})" for s in sets) + " | "
        + " | ".join(f"{s} cosine" for s in sets) + " |",
        "|" + "---|" * (2 * len(sets) + 1),
    ]
    for st in STUDENTS:
        rows = [results["sets"][s]["rows"][st] for s in sets]
        lines.append(f"| {st} | " + " | ".join(_cell(r["score"]) for r in rows) + " | "
                     + " | ".join(_cell(r["test_cosine"], 3) for r in rows) + " |")
    sizes = ", ".join(f"{st} {results['sets'][sets[0]]['rows'][st]['onnx_bytes'] / 1e6:.1f} MB" for st in STUDENTS)
    lines += ["", f"Student ONNX size ({sets[0]}): {sizes}; the MiniLM teacher's ONNX file: "
              f"{results['features'].get('onnx_bytes', 0) / 1e6:.0f} MB.",
              "", "Train examples of the trust run whose target for a class is >= 0.5: "
              + "; ".join(f"{s} {results['sets'][s]['train_targets_per_class']}" for s in sets)
              + ". A class with none (sms: no spam target without valid gold, as quality.md's 'kdstore trust -> "
              "student [wrench]' row, 0.00, shows) leaves the label head nothing to learn it from; the embedding head "
              "still carries what MiniLM's embedding knows about it.",
              "", "Reading: " + "; ".join(_reading(s, results["sets"][s]) for s in sets) + ".",
              "", f"Runtime {results['seconds']:.0f} s, peak RSS {results['peak_rss_mb']:.0f} MB."]
    return "\n".join(lines) + "\n"


def _reading(s: str, r: dict[str, Any]) -> str:
    rows = r["rows"]
    a, b = rows["bow -> labels"]["score"], rows["bow -> labels + minilm"]["score"]
    ref = rows["minilm features -> labels"]["score"]
    return (f"{s}: the embedding head changes the bag-of-words student by {b['mean'] - a['mean']:+.2f} "
            f"({a['mean']:.2f} -> {b['mean']:.2f}; the student on MiniLM's own features: {ref['mean']:.2f})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--seeds", type=int, default=len(SEEDS))
    args = ap.parse_args(argv)
    seeds = tuple(range(args.seeds))
    manifest = json.loads((wd.EMBEDDINGS / "MANIFEST.json").read_text())
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.0f} s] {msg}", flush=True)

    results: dict[str, Any] = {"seeds": list(seeds), "student": q.STUDENT, "vocab": VOCAB, "sets": {},
                               "features": {**{k: manifest[k] for k in ("model", "package", "package_version", "onnx_sha256")},
                                            "onnx_bytes": (wd.EMBEDDINGS.parent / "minilm" / "model.onnx").stat().st_size}}
    for name in [s for s in args.sets.split(",") if s]:
        log(f"{name} ...")
        results["sets"][name] = run_set(name, seeds, log)
    results["seconds"] = time.perf_counter() - t0
    results["peak_rss_mb"] = peak_rss_mb()
    jp, mp = write_results("embedding_student", results, markdown(results))
    print(mp.read_text())
    print(f"wrote {jp} and {mp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
