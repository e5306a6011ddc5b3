"""CLI verbs of the student: ``train``, ``export``, ``predict``, ``models``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from kdstore.errors import KdstoreError


def _hidden(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip()) if text.strip() not in ("", "none") else ()
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--hidden takes comma-separated widths like 256,256, got {text!r}") from e


def _features(args: argparse.Namespace) -> Any:
    from kdstore.student.features import Embeddings

    if args.features and getattr(args, "input_embeddings", None):
        raise KdstoreError("give --features or --input-embeddings, not both")
    if getattr(args, "input_embeddings", None):
        return Embeddings(args.input_embeddings)
    return args.features


def cmd_train(args: argparse.Namespace) -> int:
    from kdstore.cli import _open

    hyper: dict[str, Any] = {}
    for name in ("hidden", "dropout", "weight_decay", "learning_rate", "batch_size", "epochs", "patience", "seed",
                 "temperature", "embedding_loss", "label_weight"):
        value = getattr(args, name)
        if value is not None:
            hyper[name] = value
    candidates = None
    if getattr(args, "candidates", None):
        try:
            candidates = json.loads(args.candidates)
        except json.JSONDecodeError as e:
            raise KdstoreError(f"--candidates must be a JSON list of hyper-parameter objects: {e}") from e
        if isinstance(candidates, list):
            candidates = [{**c, "hidden": tuple(c["hidden"])} if isinstance(c, dict) and isinstance(c.get("hidden"), list)
                          else c for c in candidates]
    features = _features(args)
    if features is None:
        raise KdstoreError("train needs --features NAME (a registered feature source) or --input-embeddings TEACHER")
    with _open(args) as store:
        model_id = store.train_student(
            args.run, features=features, columns=args.columns.split(",") if args.columns else None, task=args.task,
            embedding_teacher=args.embedding_teacher, name=args.name, replace=args.replace,
            progress=False if args.quiet else None, threads=args.threads or "auto", candidates=candidates, **hyper,
        )
        m = store.models.load(model_id)
    valid, test = m.metrics.get("valid", {}), m.metrics.get("test", {})

    def summary(d: dict[str, Any]) -> str:
        parts = [f"{d.get('examples', 0):,} examples"]
        for key in ("loss", "accuracy", "micro_f1", "macro_f1"):
            if d.get(key) is not None:
                parts.append(f"{key} {d[key]:.4f}")
        if d.get("embedding", {}).get("cosine") is not None:
            parts.append(f"cosine {d['embedding']['cosine']:.4f}")
        return ", ".join(parts)

    print(f"trained {m.name} (model {m.model_id}, {m.task}, {m.params['n_params']:,} parameters, "
          f"best epoch {m.metrics['best_epoch']} of {len(m.metrics['curve'])})")
    for i, t in enumerate(m.metrics.get("candidates", [])):
        score = "-" if t["valid_score"] is None else f"{t['valid_score']:.4f}"
        print(f"candidate {i}: hidden {t['hyper_parameters']['hidden']}, valid score {score}"
              + ("  (kept)" if i == m.metrics.get("chosen_candidate") else ""))
    print(f"valid ({valid.get('source', 'none')}): {summary(valid)}")
    print(f"test: {summary(test)}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from kdstore.cli import _open

    with _open(args, read_only=True) as store:
        m = store.models.load(args.model)
        path = m.save(args.output)
    print(f"wrote {m.name} ({len(m.onnx):,} bytes of ONNX) to {path}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import pyarrow.parquet as pq

    from kdstore.cli import _open

    with _open(args, read_only=True) as store:
        table = store.predict(args.model, _features(args), split=args.split)
    if "label" in table.column_names:
        table = table.set_column(table.schema.get_field_index("label"), "label", table.column("label").cast("string"))
    pq.write_table(table, args.output)
    print(f"wrote {table.num_rows:,} predictions to {args.output}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from kdstore.cli import _open

    with _open(args, read_only=True) as store:
        rows = store.models.list().to_pylist()
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    if not rows:
        print("no student models")
        return 0
    for r in rows:
        extra = "  ".join(f"{k}={r[k]:.4f}" for k in ("valid_loss", "test_accuracy", "test_micro_f1") if r[k] is not None)
        print(f"{r['model_id']:>4}  {r['name']}  run={r['run_id']}  {r['task']}  {extra}")
    return 0


def register(sub: Any) -> None:
    """Add ``train``, ``export``, ``predict`` and ``models`` to the ``kdstore`` parser."""
    p = sub.add_parser(
        "train", help="train a student on a run's distillation set, export it to ONNX, store it in kd.models",
        description=("Train an MLP student (NumPy) on the targets of run R (kd.targets), with early stopping on the "
                     "valid split (gold if any, else the run's valid targets); check the ONNX export against NumPy "
                     "and store the model with its training curve and valid/test metrics."),
    )
    p.add_argument("store", help="path of the .duckdb file")
    p.add_argument("--run", type=int, help="run id of the targets (omit for an embedding-only student)")
    p.add_argument("--features", help="the registered feature source to read")
    p.add_argument("--input-embeddings", metavar="TEACHER", help="read this teacher's embeddings as the input instead")
    p.add_argument("--columns", help="comma-separated feature columns (default: all numeric columns)")
    p.add_argument("--task", choices=["multiclass", "multilabel"], help="override the run's task")
    p.add_argument("--embedding-teacher", metavar="TEACHER", help="also regress this teacher's embeddings")
    p.add_argument("--name", help="model name (default student_<id>)")
    p.add_argument("--replace", action="store_true", help="replace a student of the same name")
    p.add_argument("--hidden", type=_hidden, help="hidden layer widths, e.g. 256,256 (default)")
    p.add_argument("--dropout", type=float, help="probability of dropping a hidden unit while training (default 0)")
    p.add_argument("--weight-decay", type=float, help="decoupled (AdamW) weight decay (default 1e-4)")
    p.add_argument("--learning-rate", "--lr", dest="learning_rate", type=float, help="Adam step size (default 1e-3)")
    p.add_argument("--batch-size", type=int, help="examples per mini-batch (default 512)")
    p.add_argument("--epochs", type=int, help="maximum passes over the training set (default 30)")
    p.add_argument("--patience", type=int, help="epochs without validation improvement before stopping")
    p.add_argument("--seed", type=int, help="seed of initialisation, shuffling and dropout (default 0)")
    p.add_argument("--temperature", type=float, help="distillation temperature (multiclass)")
    p.add_argument("--embedding-loss", choices=["mse", "cosine"], help="loss of the embedding head (default mse)")
    p.add_argument("--label-weight", type=float, help="weight of the label loss next to the embedding loss")
    p.add_argument("--threads", type=int, help="BLAS threads while training (default 1: faster on a busy 2-core machine)")
    p.add_argument("--candidates", metavar="JSON",
                   help='alternative hyper-parameters, the best on valid kept, e.g. \'[{"hidden": [256]}, {"hidden": []}]\'')
    p.add_argument("-q", "--quiet", action="store_true", help="no per-epoch lines")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("export", help="write a stored student's ONNX graph to a file",
                       description="Write a student's self-contained ONNX graph (standardisation included, labels in the metadata).")
    p.add_argument("store", help="path of the .duckdb file")
    p.add_argument("model", help="model name or id")
    p.add_argument("output", help="the .onnx file to write")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("predict", help="run a student over a feature source and write Parquet",
                       description="Score every example of a feature source (default: the one the model was trained on).")
    p.add_argument("store", help="path of the .duckdb file")
    p.add_argument("model", help="model name or id")
    p.add_argument("--features", help="feature source to read (default: the model's own)")
    p.add_argument("--input-embeddings", metavar="TEACHER", help="read this teacher's embeddings instead")
    p.add_argument("--split", choices=["train", "valid", "test"], help="only this split")
    p.add_argument("-o", "--output", required=True, help="the .parquet file to write")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("models", help="list the stored students", description="List the students in kd.models.")
    p.add_argument("store", help="path of the .duckdb file")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_models)
