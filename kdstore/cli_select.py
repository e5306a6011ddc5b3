"""``kdstore select`` and ``kdstore trust``: thin CLI verbs over :mod:`kdstore.select` and :mod:`kdstore.trust`."""

from __future__ import annotations

import argparse
import json
from typing import Any


def _open(args: argparse.Namespace) -> Any:
    import kdstore

    return kdstore.connect(args.store, trace=print if args.trace else None)


def cmd_select(args: argparse.Namespace) -> int:
    from kdstore import select

    with _open(args) as store:
        r = select.select(store, args.policy, run=args.run, gold_weight=args.gold_weight, task=args.task)
    if args.json:
        print(json.dumps({"run_id": r.run_id, "policy": r.policy, "task": r.task, "metrics": r.metrics}, indent=2))
        return 0
    m = r.metrics
    cov = "-" if m["coverage"] is None else f"{100 * m['coverage']:.1f}%"
    share = "-" if m["inferred_share"] is None else f"{100 * m['inferred_share']:.1f}%"
    print(f"run {r.run_id}: {r.policy} ({r.task}) -> {m['targets']:,} targets on {m['examples']:,} examples; "
          f"train coverage {cov}, inferred share {share}, gold examples {m['gold_examples']:,}")
    return 0


def cmd_trust(args: argparse.Namespace) -> int:
    from kdstore import trust

    with _open(args) as store:
        r = trust.fit_trust(store, kind=args.kind, feature_source=args.features, folds=args.folds, seed=args.seed,
                            rounds=args.rounds)
    aucs = [v["oof_auc"] for v in r.metrics.values() if v["oof_auc"] is not None]
    if args.json:
        print(json.dumps({"run_id": r.run_id, "kind": r.kind, "model_ids": r.model_ids, "metrics": r.metrics}, indent=2))
        return 0
    mean = f"{sum(aucs) / len(aucs):.3f}" if aucs else "-"
    print(f"trust run {r.run_id}: {r.kind}, {len(set(r.model_ids.values()))} models, {r.units:,} decisions scored; "
          f"mean out-of-fold AUC on valid {mean} ({len(aucs)} teachers with both outcomes)")
    return 0


def register(sub: Any) -> None:
    """Add ``select`` and ``trust`` to the ``kdstore`` command."""
    from kdstore.select import Policy
    from kdstore.trust import KINDS

    p = sub.add_parser(
        "select", help="materialise a selection policy into kd.targets (a new run)",
        description=(
            "Choose which teacher outputs become distillation targets with a policy (views sql/select_*.sql, "
            "parameters from kd.settings) and write them to kd.targets under a new run id (params in kd.runs)."
        ),
    )
    p.add_argument("store", help="path of the .duckdb file")
    p.add_argument("policy", choices=[x.value for x in Policy], help="the selection policy")
    p.add_argument("--gold-weight", type=float, default=None, help="weight of valid gold rows (default: setting gold_weight)")
    p.add_argument("--task", choices=["multiclass", "multilabel"], default=None, help="target shape (default: inferred from gold)")
    p.add_argument("--run", type=int, default=None, help="overwrite this existing select run")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_select)

    p = sub.add_parser(
        "trust", help="fit LightGBM trust models on the valid split and write kd.trust",
        description="Fit trust models (out-of-fold on valid, seeded), score train/test decisions, store the models in kd.models.",
    )
    p.add_argument("store", help="path of the .duckdb file")
    p.add_argument("--kind", choices=list(KINDS), default="per_teacher", help="one model per teacher, or one router")
    p.add_argument("--features", default=None, help="a registered feature source to use as input features")
    p.add_argument("--folds", type=int, default=5, help="out-of-fold folds (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--rounds", type=int, default=100, help="boosting rounds (default 100)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_trust)
