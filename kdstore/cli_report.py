"""``kdstore report``: thin CLI verb over :mod:`kdstore.report`."""

from __future__ import annotations

import argparse
from typing import Any


def cmd_report(args: argparse.Namespace) -> int:
    from kdstore.cli import _open
    from kdstore.report import write_report

    out = args.output or f"{args.store.rsplit('.', 1)[0] if args.store.endswith('.duckdb') else args.store}_report.html"
    model: int | str | None = args.model
    if isinstance(model, str) and model.strip().isdigit():
        model = int(model)
    with _open(args, read_only=True) as store:
        r = write_report(store, out, run=args.run, model=model, title=args.title)
    missing = [k for k, v in r.available.items() if not v]
    print(f"wrote {r.path} ({r.size / 1024:,.0f} KiB, {r.images} plots; run {r.run_id if r.run_id is not None else '-'}, "
          f"student {r.model_id if r.model_id is not None else '-'})"
          + (f"; not available: {', '.join(missing)}" if missing else ""))
    return 0


def register(sub: Any) -> None:
    """Add ``report`` to the ``kdstore`` command."""
    p = sub.add_parser(
        "report", help="write a self-contained HTML report of the store",
        description=(
            "Write one HTML file (inline CSS, plots embedded as PNG data URIs, nothing loaded from the network): "
            "teacher x label precision/recall, experts per label, consensus and trust calibration, the distillation "
            "set's composition, the student's learning curve and its test scores against the teachers'."
        ),
    )
    p.add_argument("store", help="path of the .duckdb file (opened read-only)")
    p.add_argument("-o", "--output", default=None, help="the HTML file (default: <store>_report.html)")
    p.add_argument("--run", type=int, default=None, help="distillation run to describe (default: the student's run, else the latest)")
    p.add_argument("--model", default=None, help="student id or name to describe (default: the latest student)")
    p.add_argument("--title", default=None, help="page title (default: 'kdstore report: <store file>')")
    p.set_defaults(func=cmd_report)
