"""``kdstore distill CONFIG.toml``: the whole pipeline from a config file (see :mod:`kdstore.distill`)."""

from __future__ import annotations

import argparse
from typing import Any


def cmd_distill(args: argparse.Namespace) -> int:
    import kdstore
    from kdstore.distill import distill, load_config
    from kdstore.errors import SchemaError

    cfg = load_config(args.config)
    path = args.store or (str(cfg.store) if cfg.store is not None else None)
    if path is None:
        raise SchemaError("config key 'store': give the store file in the config or with --store", source=args.config,
                          column="store")
    with kdstore.connect(path, trace=print if args.trace else None) as store:
        print(f"distill {cfg.name!r} into {path}")
        report = distill(store, cfg, progress=False if args.quiet else None, force=args.force or (),
                         log=print)
    print()
    scores = ", ".join(f"{p} {'-' if v is None else f'{v:.3f}'}" for p, v in report.valid_scores.items())
    print(f"student: {report.model_name} (model {report.model_id}, policy {report.policy}; valid: {scores})")
    if report.export_path is not None:
        print(f"exported: {report.export_path}")
    print(report.summary.format())
    print(f"\ndistill finished in {report.seconds:.1f} s ({len(report.ran)} of {len(report.stages)} stages ran)")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "distill", help="run the whole pipeline from a TOML config (stages skipped when unchanged)",
        description=(
            "Register data, features and teachers, run what is missing, evaluate, fit trust models, select "
            "targets (one run per policy), train a student per policy, export the best on valid to ONNX and "
            "score teachers vs student on the test split. Each stage is skipped when its inputs have not "
            "changed since its last run. Config format: docs/distill.md."
        ),
    )
    p.add_argument("config", help="the TOML config file")
    p.add_argument("--store", help="the .duckdb store (default: the config's 'store' key)")
    p.add_argument("--force", action="append", metavar="STAGE",
                   help="run this stage even if its inputs are unchanged (repeatable; e.g. student, select:trust)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_distill)
