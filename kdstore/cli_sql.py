"""CLI verbs over the SQL views: ``kdstore sql``, ``kdstore views``, ``kdstore query``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdstore.errors import KdstoreError

if TYPE_CHECKING:
    import pyarrow as pa


def cmd_sql(args: argparse.Namespace) -> int:
    import kdstore
    from kdstore import sqlfiles

    views = sqlfiles.load_views(args.sql_dir)
    if args.store:
        if not Path(args.store).exists():
            raise KdstoreError(f"no store at {args.store}")
        with kdstore.connect(args.store, read_only=True) as store:
            sqlfiles.check(views, store.con)
    else:
        with kdstore.connect() as store:  # kdstore's own schema: the catalogue the views run on
            if args.sql_dir:
                sqlfiles.check(views, store.con)
    print(views.sql(args.dialect), end="")
    return 0


def cmd_views(args: argparse.Namespace) -> int:
    import kdstore
    from kdstore import evaluate, sqlfiles

    if not Path(args.store).exists():
        raise KdstoreError(f"no store at {args.store}")
    headers = {v.name: v.header for v in sqlfiles.load_views()}
    with kdstore.connect(args.store, read_only=True) as store:
        names = evaluate.installed_views(store)
        rows = []
        for name in names:
            cols = [c.name for c in sqlfiles.kd_columns(store, name)]
            rows.append({"view": name, "columns": cols, "grain": headers.get(name, {}).get("grain", "")})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max((len(r["view"]) for r in rows), default=4)
    for r in rows:
        grain = f"  -- {r['grain']}" if r["grain"] and args.verbose else ""
        print(f"kd.{r['view']:<{width}}  ({', '.join(r['columns'])}){grain}")
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    import kdstore

    if not Path(args.store).exists():
        raise KdstoreError(f"no store at {args.store}")
    with kdstore.connect(args.store, read_only=True, trace=print if args.trace else None) as store:
        try:
            table = store.query(args.sql)
        except Exception as e:  # duckdb.Error: the user's SQL
            raise KdstoreError(f"query failed: {e}".replace("\n", " ")) from e
    print(format_table(table, fmt=args.format, limit=args.limit), end="")
    return 0


def format_table(table: pa.Table, *, fmt: str = "table", limit: int | None = 50) -> str:
    """An Arrow table as aligned text (``table``), CSV or JSON lines; ``limit`` rows at most."""
    shown = table.slice(0, limit) if limit is not None and limit >= 0 else table
    rows = shown.to_pylist()
    names = table.column_names
    if fmt == "json":
        return "".join(json.dumps(r, default=str) + "\n" for r in rows)
    if fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(names)
        for r in rows:
            w.writerow(["" if r[n] is None else r[n] for n in names])
        return buf.getvalue()
    cells = [[_cell(r[n]) for n in names] for r in rows]
    widths = [max([len(n)] + [len(c[i]) for c in cells]) for i, n in enumerate(names)]
    lines = ["  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    if table.num_rows > len(rows):
        lines.append(f"... {table.num_rows - len(rows)} more rows ({table.num_rows} in all; --limit -1 shows all)")
    else:
        lines.append(f"({table.num_rows} row{'s' if table.num_rows != 1 else ''})")
    return "\n".join(lines) + "\n"


def _cell(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def register(sub: Any) -> None:
    """Add ``sql``, ``views`` and ``query`` to the ``kdstore`` command."""
    p = sub.add_parser(
        "sql", help="print every view's SQL in dependency order, optionally in another dialect",
        description=(
            "Print kdstore's view files (and those of --sql-dir folders) as one script in dependency "
            "order. With --dialect, transpile with sqlglot; constructs without a faithful equivalent "
            "in that dialect are an error. With STORE, the views are checked against that store's "
            "tables."
        ),
    )
    p.add_argument("store", nargs="?", help="a .duckdb store to check the views against (optional)")
    p.add_argument("--dialect", default="duckdb", help="target SQL dialect, e.g. spark (default: duckdb, the files as written)")
    p.add_argument("--sql-dir", action="append", default=[], help="a folder of your own view files (repeatable)")
    p.set_defaults(func=cmd_sql)

    p = sub.add_parser("views", help="list the views of a store and their columns",
                       description="List the views in a store's kd schema with their columns.")
    p.add_argument("store", help="path of the .duckdb file")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="also show each kdstore view's grain")
    p.set_defaults(func=cmd_views)

    p = sub.add_parser("query", help="run a SQL query on a store (read-only) and print the rows",
                       description="Run one SQL query on a store opened read-only and print the result.")
    p.add_argument("store", help="path of the .duckdb file")
    p.add_argument("sql", help="the query, e.g. \"SELECT * FROM kd.label_experts WHERE is_best\"")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table", help="output format (default table)")
    p.add_argument("--limit", type=int, default=50, help="rows to print (default 50; -1 = all)")
    p.set_defaults(func=cmd_query)
