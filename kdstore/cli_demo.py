"""``kdstore demo STORE``: build the handwritten-digits demo store (see :mod:`kdstore.demo`)."""

from __future__ import annotations

import argparse
from typing import Any


def cmd_demo(args: argparse.Namespace) -> int:
    from kdstore import cli
    from kdstore.demo import build_demo, format_table

    result = build_demo(args.store, seed=args.seed, teachers_dir=args.teachers_dir, replace=args.replace,
                        progress=False if args.quiet else None, log=print)
    print()
    print(f"$ kdstore info {args.store}")
    cli.cmd_info(argparse.Namespace(store=args.store, json=False, trace=args.trace))
    print()
    print("Teachers on the TEST split (reporting only: computed in NumPy from the stored outputs and the test gold,")
    print("which no evaluation, selection or training step reads). acc(scope): binary = one-vs-rest accuracy;")
    print("multiclass = accuracy on the digits it knows. acc(10-class): used alone as a 10-digit classifier.")
    print(format_table(result.scores, result.naive_average_acc))
    print()
    print(f"demo store built in {result.seconds:.1f} s: {result.path} (teachers in {result.teachers_dir}/)")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo", help="build a demo store: ONNX teachers on scikit-learn's handwritten digits",
        description=(
            "Build a demo store on scikit-learn's bundled handwritten digits (nothing is downloaded): "
            "train a corpus of teachers (one specialist per digit, generalists with partial label sets, "
            "bad and adversarial ones) on private shards, export them to ONNX next to the store, "
            "register examples, gold (valid and test only), pixel features and teachers, run the teachers, "
            "and print the store's info and every teacher's accuracy on the test split."
        ),
    )
    p.add_argument("store", help="path of the .duckdb file to create")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the teachers (default 0)")
    p.add_argument("--teachers-dir", help="folder for the ONNX teachers (default: <store stem>_teachers/ next to the store)")
    p.add_argument("--replace", action="store_true", help="delete an existing store (and its demo teachers) first")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)
