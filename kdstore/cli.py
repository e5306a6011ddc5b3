"""The ``kdstore`` command: thin over the library (parse args -> call kdstore -> print).

Errors a user can cause (:class:`~kdstore.errors.KdstoreError`) print one red line and exit 1;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from kdstore.errors import KdstoreError, SchemaError

Handler = Callable[[argparse.Namespace], int]

#: Modules that add sub-commands: each has ``register(subparsers)``. Keep this list short and lazy.
COMMAND_MODULES: list[str] = ["kdstore.cli_teachers", "kdstore.cli_student", "kdstore.cli_demo", "kdstore.cli_select", "kdstore.cli_sql",
                             "kdstore.cli_report", "kdstore.cli_distill"]


def read_table(path: str, *, fmt: str | None = None) -> Any:
    """A file given on the command line -> an input kdstore accepts (Parquet stays a path)."""
    p = Path(path)
    fmt = fmt or p.suffix.lower().lstrip(".")
    if fmt in ("parquet", "pq") or any(c in path for c in "*?["):
        return path
    if not p.exists():
        raise SchemaError("file not found", source=path)
    from kdstore.sources import Named, read_file

    return Named(read_file(path, fmt=fmt), path)


def _open(args: argparse.Namespace, *, read_only: bool = False) -> Any:
    import kdstore

    if read_only and not Path(args.store).exists():
        raise KdstoreError(f"no store at {args.store} (create one with: kdstore init {args.store})")
    return kdstore.connect(args.store, read_only=read_only, trace=print if args.trace else None)


def cmd_init(args: argparse.Namespace) -> int:
    with _open(args) as store:
        print(f"kdstore store ready: {store.path} (schema version {store.info().schema_version})")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    with _open(args, read_only=True) as store:
        info = store.info()
    if args.json:
        print(json.dumps(asdict(info), indent=2))
        return 0
    print(f"store      {info.path}  (schema v{info.schema_version})")
    print("tables     " + "  ".join(f"{k}={v:,}" for k, v in info.counts.items()))
    print("splits     " + ("  ".join(f"{k}={v:,}" for k, v in info.splits.items()) or "-"))
    shown = ", ".join(info.labels[:20]) + (f", ... ({len(info.labels)} in all)" if len(info.labels) > 20 else "")
    print(f"labels     {shown or '-'}")
    print(f"features   {', '.join(info.feature_sources) or '-'}")
    print(f"teachers   {len(info.teachers)}")
    if info.teachers:
        width = max(len(t["name"]) for t in info.teachers)
        for t in info.teachers:
            print(f"  {t['name']:<{width}}  {t['kind']:<6} {t['output_type']:<10} labels={t['labels']:<4} rows={t['rows']:,}")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    what = args.what
    with _open(args) as store:
        progress = False if args.quiet else None
        if what == "labels":
            names = _label_names(args.file)
            ids = store.add_labels(names)
            print(f"{len(ids)} labels in the vocabulary file; store has {len(store.info().labels)}")
            return 0
        data = read_table(args.file)
        if what == "examples":
            n = store.add_examples(data, split=args.split, id_column=args.id_column, progress=progress)
        elif what == "gold":
            n = store.add_gold(data, id_column=args.id_column, label_column=args.label_column, progress=progress)
        elif what == "weak":
            n = store.add_weak(data, id_column=args.id_column, label_column=args.label_column, progress=progress)
        elif what == "outputs":
            if not args.teacher:
                raise KdstoreError("ingest outputs needs --teacher NAME")
            if args.labels:
                store.add_teacher(args.teacher, labels=args.labels.split(","), output_type=args.output_type or "binary",
                                  replace=args.replace)
            n = store.ingest_outputs(args.teacher, data, form=args.form, id_column=args.id_column,
                                     label_column=args.label_column, score_column=args.score_column, progress=progress)
        elif what == "votes":
            classes = args.classes.split(",") if args.classes else None
            names = store.ingest_votes(data, id_column=args.id_column, classes=classes, prefix=args.prefix, progress=progress)
            n = len(names)
            what = "vote teachers"
        elif what == "features":
            if not args.name:
                raise KdstoreError("ingest features needs --name NAME")
            rel = store.register_features(args.name, data, id_column=args.id_column, replace=args.replace, progress=progress)
            print(f"registered {rel}")
            return 0
        else:  # argparse restricts the choices
            raise AssertionError(what)
    print(f"ingested {n:,} {what} rows from {args.file}" if what != "vote teachers" else f"ingested {n} vote teachers from {args.file}")
    return 0


def _label_names(path: str) -> list[str]:
    p = Path(path)
    if p.suffix.lower() in (".txt", ""):
        if not p.exists():
            raise SchemaError("file not found", source=path)
        return [line.strip() for line in p.read_text().splitlines() if line.strip()]
    table = read_table(path)
    if isinstance(table, str):
        import pyarrow.parquet as pq

        table = pq.read_table(table)
    else:
        table = table.data
    if "name" not in table.column_names:
        raise SchemaError("a labels file needs a 'name' column (or use a .txt file, one label per line)", source=path, column="name")
    return [str(x) for x in table.column("name").to_pylist()]


class Parser(argparse.ArgumentParser):
    """argparse with kdstore's error style: one line ``error: ...`` on stderr and exit code 1."""

    def error(self, message: str) -> NoReturn:
        self.exit(1, _red(f"error: {message} (see: {self.prog} --help)") + "\n")


def _red(msg: str) -> str:
    red = sys.stderr.isatty() and os.environ.get("NO_COLOR") is None
    return f"\033[31m{msg}\033[0m" if red else msg


def subparsers(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every (command path, parser) below ``parser``, depth first (``"ingest"``, ``"x y"``...)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield name, child
                for sub_name, grandchild in subparsers(child):
                    yield f"{name} {sub_name}", grandchild


def _global_options_everywhere(parser: argparse.ArgumentParser) -> None:
    """Accept --debug and --trace after the command too (``kdstore info x.duckdb --debug``)."""
    for _, child in subparsers(parser):
        for flag, text in (("--debug", "show a full traceback on error"), ("--trace", "print every SQL statement kdstore runs")):
            if flag not in child._option_string_actions:
                child.add_argument(flag, action="store_true", default=argparse.SUPPRESS, help=text)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="kdstore",
        description="Knowledge distillation from a corpus of pre-trained models, in one DuckDB file.",
    )
    parser.add_argument("--debug", action="store_true", help="show a full traceback on error")
    parser.add_argument("--trace", action="store_true", help="print every SQL statement kdstore runs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("init", help="create (or migrate) a store file", description="Create a kdstore file, or migrate an older one to this version.")
    p.add_argument("store", help="path of the .duckdb file")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("info", help="counts per table, splits, labels and teachers",
                       description="Show what a store holds: row counts per table, splits, labels, features and teachers.")
    p.add_argument("store", help="path of the .duckdb file")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "ingest", help="load labels, examples, gold, weak labels, outputs, votes or features from a file",
        description=(
            "Load data into a store from a file (.parquet or a glob of them, .csv, .tsv, .jsonl; "
            "labels also from .txt, one per line). Each call is one transaction: on any error "
            "nothing is written."
        ),
    )
    p.add_argument("store", help="path of the .duckdb file")
    p.add_argument("what", choices=["labels", "examples", "gold", "weak", "outputs", "votes", "features"],
                   help="what the file holds")
    p.add_argument("file", help="the input file")
    p.add_argument("--id-column", default="example_id", help="example id column (default: example_id)")
    p.add_argument("--label-column", default="label", help="label column, names or ids (default: label)")
    p.add_argument("--score-column", default="score", help="outputs: score column (long form) or list column (wide form)")
    p.add_argument("--split", choices=["train", "valid", "test"], help="examples: one split for every row (else a 'split' column)")
    p.add_argument("--teacher", help="outputs: the teacher's name")
    p.add_argument("--labels", help="outputs: register the teacher first with these labels (comma-separated, output order)")
    p.add_argument("--output-type", choices=["binary", "multiclass", "multilabel", "vote", "regression"],
                   help="outputs: the teacher's output type when registering (default binary)")
    p.add_argument("--form", choices=["long", "wide"], default="long", help="outputs: long (example, label, score) or wide (a column per label)")
    p.add_argument("--prefix", default="", help="votes: prefix for the teacher names made from the labeler columns")
    p.add_argument("--classes", help="votes: the label of each class index, comma-separated (default: every label, by id)")
    p.add_argument("--name", help="features: the feature source's name")
    p.add_argument("--replace", action="store_true", help="replace an existing feature source / re-align a teacher")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_ingest)

    import importlib

    for mod in COMMAND_MODULES:
        importlib.import_module(mod).register(sub)
    _global_options_everywhere(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except KdstoreError as e:
        if args.debug:
            raise
        print(_red(f"error: {e}".replace("\n", " ")), file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
