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
    rep = result.distill
    if rep is not None:
        valid = ", ".join(f"{p} {'-' if v is None else f'{v:.3f}'}" for p, v in rep.valid_scores.items())
        print(f"Distilled student: {rep.model_name} (policy {rep.policy}, chosen on VALID accuracy: {valid}), "
              f"exported to {rep.export_path}")
        print(rep.summary.format())
        s = rep.summary
        verdict = "beats" if s.student > s.naive_average and s.student > (s.best_teacher_score or 0.0) else "does NOT beat"
        print(f"\nThe 10-class student ({s.student:.3f}) {verdict} the best single teacher "
              f"({'-' if s.best_teacher_score is None else f'{s.best_teacher_score:.3f}'}) and the naive average of all "
              f"teachers ({s.naive_average:.3f}) on the test split.")
        print(f"Re-run or change it: kdstore distill {result.config_path}")
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
            "write the store's data and a distill config beside them, and run `kdstore distill` on it: register examples, "
            "gold (valid and test only), pixel features and teachers, run the teachers, judge them on valid, fit trust "
            "models, select targets, train and export a 10-class student; print the store's info, every teacher's "
            "accuracy and the student vs the teachers on the test split."
        ),
    )
    p.add_argument("store", help="path of the .duckdb file to create")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the teachers (default 0)")
    p.add_argument("--teachers-dir", help="folder for the ONNX teachers (default: <store stem>_teachers/ next to the store)")
    p.add_argument("--replace", action="store_true", help="delete an existing store (and its demo teachers) first")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)
