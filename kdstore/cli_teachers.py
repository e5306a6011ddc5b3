"""``kdstore teacher add | run | list``: register model teachers and run them over features."""

from __future__ import annotations

import argparse
import json
from typing import Any

from kdstore.errors import KdstoreError


def _labels(text: str | None) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()] if text else []


def _inputs(items: list[str] | None) -> dict[str, str | list[str]] | None:
    if not items:
        return None
    out: dict[str, str | list[str]] = {}
    for item in items:
        name, sep, cols = item.partition("=")
        if not sep or not name or not cols:
            raise KdstoreError(f"--input wants INPUT=COLUMN or INPUT=COL1,COL2,..., got {item!r}")
        parts = [c for c in cols.split(",") if c]
        out[name] = parts[0] if len(parts) == 1 else parts
    return out


def cmd_add(args: argparse.Namespace) -> int:
    from kdstore.cli import _open
    from kdstore.teachers import HttpTeacher, OnnxTeacher

    common: dict[str, Any] = {
        "name": args.name, "labels": _labels(args.labels), "output_type": args.output_type, "output": args.output,
        "embedding": args.embedding, "inputs": _inputs(args.input), "scores": args.scores, "threshold": args.threshold,
    }
    teacher: Any
    if args.onnx:
        teacher = OnnxTeacher(args.onnx, **common)
    else:
        teacher = HttpTeacher(args.url, format=args.format, timeout=args.timeout, retries=args.retries,
                              max_concurrency=args.max_concurrency, **common)
    with _open(args) as store:
        store.teachers.add(teacher, replace=args.replace)
        info = store.teachers.info(args.name)
    print(f"teacher {info.name}: {info.kind} {info.output_type}, inputs {info.input_type}, labels "
          f"{','.join(info.labels) or '-'}, fingerprint {info.fingerprint}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from kdstore.cli import _open

    with _open(args) as store:
        report = store.run_teachers(args.names or None, features=args.features, split=args.split,
                                    batch_size=args.batch_size, workers=args.workers, threads=args.threads,
                                    progress=False if args.quiet else None)
    width = max((len(r.name) for r in report.runs), default=4)
    for r in report.runs:
        extra = f"  ({r.error})" if r.error and r.status == "incompatible" else ""
        print(f"{r.name:<{width}}  {r.status:<12} computed={r.rows:,}  already stored={r.already_stored:,}{extra}")
    print(f"{report.rows_read:,} feature rows read in {report.seconds:.2f} s "
          f"({report.workers} worker(s) x {report.threads} thread(s))")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from kdstore.cli import _open

    with _open(args, read_only=True) as store:
        infos = store.teachers.list()
        compatible = set(store.teachers.compatible(args.features)) if args.features else None
    if compatible is not None:
        infos = [i for i in infos if i.name in compatible]
    if args.json:
        print(json.dumps([asdict(i) for i in infos], indent=2, default=str))
        return 0
    if not infos:
        print("no teachers" + (f" can run on features {args.features!r}" if args.features else ""))
        return 0
    width = max(len(i.name) for i in infos)
    for i in infos:
        print(f"{i.name:<{width}}  {i.kind:<6} {i.output_type:<10} rows={i.rows:<9,} inputs={i.input_type or '-'}  "
              f"{i.uri or ''}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``kdstore teacher ...`` to the main parser."""
    p = subparsers.add_parser("teacher", help="register, list and run model teachers (ONNX files, HTTP endpoints)",
                              description="Register ONNX or HTTP teachers, list them, and run them over a feature source.")
    sub = p.add_subparsers(dest="teacher_command", metavar="ACTION", required=True)

    a = sub.add_parser("add", help="register an ONNX file or an HTTP endpoint as a teacher",
                       description="Register a teacher. The model is checked (and read) before anything is written.")
    a.add_argument("store", help="path of the .duckdb file")
    a.add_argument("name", help="the teacher's name")
    src = a.add_mutually_exclusive_group(required=True)
    src.add_argument("--onnx", metavar="PATH", help="an ONNX model file")
    src.add_argument("--url", help="an HTTP endpoint speaking kdstore's teacher protocol (docs/teachers.md)")
    a.add_argument("--labels", help="global label of each output, comma-separated, in output order")
    a.add_argument("--output-type", default="multiclass",
                   choices=["binary", "multiclass", "multilabel", "regression", "embedding"],
                   help="how to read the output (default multiclass)")
    a.add_argument("--output", metavar="TENSOR", help="the output tensor (default: the first float output)")
    a.add_argument("--embedding", metavar="TENSOR", help="also store this tensor (any intermediate one) as an embedding")
    a.add_argument("--input", action="append", metavar="INPUT=COLUMNS",
                   help="feed a model input from a column, or from scalar columns COL1,COL2,... (repeatable)")
    a.add_argument("--scores", default="probabilities", choices=["probabilities", "logits"],
                   help="the output holds probabilities (checked) or logits (softmax/sigmoid applied)")
    a.add_argument("--threshold", type=float, help="this teacher's decision threshold")
    a.add_argument("--format", default="json", choices=["json", "arrow"], help="HTTP: request/answer encoding")
    a.add_argument("--timeout", type=float, default=30.0, help="HTTP: seconds per socket operation")
    a.add_argument("--retries", type=int, default=3, help="HTTP: retries after a timeout, connection error or 5xx")
    a.add_argument("--max-concurrency", type=int, default=4, help="HTTP: requests in flight at once")
    a.add_argument("--replace", action="store_true", help="allow changing the labels, output type or kind")
    a.set_defaults(func=cmd_add)

    r = sub.add_parser("run", help="run teachers over a feature source and store their outputs",
                       description="Run teachers (default: every compatible one) over a feature source. Outputs already "
                                   "stored with the same model fingerprint are skipped; each teacher is one transaction.")
    r.add_argument("store", help="path of the .duckdb file")
    r.add_argument("names", nargs="*", help="teachers to run (default: all ONNX/HTTP teachers the features can feed)")
    r.add_argument("--features", required=True, help="the feature source's name")
    r.add_argument("--split", choices=["train", "valid", "test"], help="only the examples of this split")
    r.add_argument("--batch-size", type=int, default=1 << 16, help="feature rows per batch (default 65536)")
    r.add_argument("--workers", type=int, help="ONNX sessions running at once (default: cores)")
    r.add_argument("--threads", type=int, help="intra-op threads per session (default: cores / workers)")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_run)

    ls = sub.add_parser("list", help="list registered teachers", description="List registered teachers.")
    ls.add_argument("store", help="path of the .duckdb file")
    ls.add_argument("--features", help="only the teachers that can run on this feature source")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=cmd_list)


__all__ = ["register"]
