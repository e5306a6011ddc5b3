"""Find, parse, check, order, install and transpile the SQL view files.

Every view is one file ``<name>.sql`` holding one ``CREATE OR REPLACE VIEW kd.<name> AS ...``
statement in plain DuckDB SQL, preceded by a comment header with (at least) the keys ``grain:``,
``empty:`` (the empty-group rule) and ``oracle:``. kdstore's own views live at the top level of
``sql/`` (``sql/schema/`` holds the DDL migrations); analysts add folders of their own with
``kdstore.connect(path, sql_dirs=[...])``, checked the same way.

sqlglot reads every file, checks it, infers its dependencies from the tables it reads (``kd.*``),
orders the set with :mod:`graphlib`, qualifies every column against the store's catalogue (a
misspelt column is a :class:`~kdstore.errors.SqlFileError` with file, line and column), and
transpiles the whole set to another dialect, failing (:class:`~kdstore.errors.TranspileError`) on
constructs that have no faithful equivalent there. DuckDB itself always runs the file text as
written.

>>> views = load_views()
>>> "params" in views.names()
True
>>> views.dependencies("label_experts")
('label_metrics', 'params')
>>> print(views.get("label_experts").header["oracle"])
tests/oracles.py::label_experts
"""

from __future__ import annotations

import graphlib
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from kdstore.errors import KdstoreError, SqlDependencyError, SqlFileError, TranspileError
from kdstore.store.schema import sql_dir

if TYPE_CHECKING:
    import duckdb
    from sqlglot import exp

    from kdstore.store.core import Store

#: Schema every view is created in.
VIEW_SCHEMA = "kd"
#: Keys the comment header of every view file must have.
HEADER_KEYS = ("grain", "empty", "oracle")
#: kd.meta keys recording what is installed.
META_BUILTIN_HASH = "views_builtin_hash"
META_BUILTIN_NAMES = "views_builtin"
META_EXTRA_HASH = "views_extra_hash"

_HEADER_LINE = re.compile(r"^\s*--\s?(?P<text>.*)$")
_HEADER_KEY = re.compile(r"^(?P<key>[a-z_]+):\s*(?P<value>.*)$")
_OPT_POS = re.compile(r"Line: (\d+), Col: (\d+)")


@dataclass(frozen=True, slots=True)
class ViewFile:
    """One parsed and statically checked view file.

    Attributes:
        name: the view name (= file stem); the view is ``kd.<name>``.
        path: the file.
        text: the file text, exactly what DuckDB runs.
        header: the comment header's ``key: value`` entries (continuation lines joined).
        reads: the ``kd`` relations the view reads (sorted).
        builtin: True for kdstore's own views.
    """

    name: str
    path: Path
    text: str
    header: dict[str, str]
    reads: tuple[str, ...]
    builtin: bool
    statement: exp.Create = field(compare=False, repr=False)

    @property
    def query(self) -> exp.Expression:
        """The view's query (the ``AS ...`` part), parsed."""
        q: exp.Expression = self.statement.expression
        return q


@dataclass(frozen=True, slots=True)
class ViewSet:
    """A checked set of view files in dependency order (every view after the views it reads)."""

    views: tuple[ViewFile, ...]

    def __iter__(self) -> Iterator[ViewFile]:
        return iter(self.views)

    def __len__(self) -> int:
        return len(self.views)

    def names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.views)

    def get(self, name: str) -> ViewFile:
        for v in self.views:
            if v.name == name:
                return v
        raise KeyError(name)

    def dependencies(self, name: str) -> tuple[str, ...]:
        """The views of this set that ``name`` reads directly."""
        mine = set(self.names())
        return tuple(r for r in self.get(name).reads if r in mine)

    def fingerprint(self) -> str:
        """A hash of the names and texts of every file (what install compares with kd.meta)."""
        return _fingerprint(self.views)

    def subset(self, builtin: bool) -> ViewSet:
        return ViewSet(tuple(v for v in self.views if v.builtin == builtin))

    def sql(self, dialect: str = "duckdb") -> str:
        """The whole set as one script in dependency order; DuckDB gets the files as written."""
        parts = []
        for v in self.views:
            body = v.text.strip() if dialect == "duckdb" else transpile_view(v, dialect)
            parts.append(f"-- kd.{v.name}  ({_shown_path(v)})\n{body.rstrip(';')};\n")
        return "\n".join(parts)


def _shown_path(v: ViewFile) -> str:
    return f"sql/{v.path.name}" if v.builtin else str(v.path)


def _fingerprint(views: Iterable[ViewFile]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for v in sorted(views, key=lambda v: v.name):
        h.update(v.name.encode())
        h.update(b"\0")
        h.update(v.text.encode())
        h.update(b"\0")
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# finding and parsing
# ---------------------------------------------------------------------------------------------
def builtin_dir() -> Path:
    """kdstore's own view folder (the top level of ``sql/``)."""
    return sql_dir()


def view_files(directory: str | Path) -> list[Path]:
    """The view files of one folder: ``*.sql`` at its top level, sorted by name."""
    d = Path(directory)
    if not d.is_dir():
        raise SqlFileError("not a folder of view files", path=str(d))
    return sorted(p for p in d.glob("*.sql") if p.is_file())


def _header(text: str, path: Path) -> dict[str, str]:
    """The ``key: value`` entries of the comment block before the statement."""
    entries: dict[str, str] = {}
    last: str | None = None
    for line in text.splitlines():
        if not line.strip():
            last = None
            continue
        m = _HEADER_LINE.match(line)
        if m is None:
            break
        body = m.group("text").rstrip()
        km = _HEADER_KEY.match(body)
        if km and (km.group("key") in HEADER_KEYS or km.group("key") not in entries):
            last = km.group("key")
            entries[last] = km.group("value").strip()
        elif last is not None and body.startswith("  "):
            entries[last] = (entries[last] + " " + body.strip()).strip()
        else:
            last = None
    missing = [k for k in HEADER_KEYS if not entries.get(k)]
    if missing:
        raise SqlFileError(
            "the comment header must state " + ", ".join(f"'{k}:'" for k in missing)
            + " (grain = one row per ..., empty = the empty-group rule, oracle = the test oracle)",
            path=str(path), line=1, col=1,
        )
    return entries


def parse_view_file(path: str | Path, *, builtin: bool = False) -> ViewFile:
    """Parse and statically check one view file (no database needed).

    Raises:
        SqlFileError: unreadable file, parse error (with line and column), not exactly one
            ``CREATE OR REPLACE VIEW kd.<file stem>`` statement, missing header keys, or an
            unqualified table that is not a CTE.
    """
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ParseError, TokenError

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SqlFileError(f"cannot read: {e}", path=str(p)) from e
    name = p.stem
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise SqlFileError(f"view file names must be lower_snake_case SQL identifiers, got {name!r}", path=str(p))
    try:
        statements = [s for s in sqlglot.parse(text, read="duckdb") if s is not None]
    except ParseError as e:
        err = e.errors[0] if e.errors else {}
        raise SqlFileError(
            f"parse error: {err.get('description', e)}", path=str(p), line=err.get("line"), col=err.get("col")
        ) from e
    except TokenError as e:
        raise SqlFileError(f"cannot tokenize: {e}", path=str(p)) from e
    if len(statements) != 1:
        raise SqlFileError(f"a view file holds exactly one statement, found {len(statements)}", path=str(p))
    st = statements[0]
    if isinstance(st, exp.Command):
        raise SqlFileError(
            "sqlglot cannot parse this statement (it fell back to an opaque command): check the syntax",
            path=str(p), line=1, col=1,
        )
    if not (isinstance(st, exp.Create) and str(st.args.get("kind", "")).upper() == "VIEW"):
        raise SqlFileError(f"expected CREATE OR REPLACE VIEW {VIEW_SCHEMA}.{name} AS ..., found {st.key.upper()}", path=str(p), line=_line_of(st))
    if not st.args.get("replace"):
        raise SqlFileError(f"write CREATE OR REPLACE VIEW {VIEW_SCHEMA}.{name} (installs must be repeatable)", path=str(p), line=_line_of(st))
    target = st.this
    if isinstance(target, exp.Schema):
        raise SqlFileError("do not declare a column list on the view; name the columns in the SELECT", path=str(p))
    if not isinstance(target, exp.Table) or target.db != VIEW_SCHEMA or target.name != name or target.catalog:
        raise SqlFileError(
            f"the view must be named {VIEW_SCHEMA}.{name} (the file stem), found {target.sql('duckdb')}",
            path=str(p), line=_line_of(target), col=_col_of(target, text),
        )
    if not isinstance(st.expression, exp.Query):
        raise SqlFileError("the view body must be a query", path=str(p))
    header = _header(text, p)
    reads = _reads(st, p, text)
    if name in reads:
        raise SqlDependencyError(f"view {VIEW_SCHEMA}.{name} reads itself", path=str(p))
    return ViewFile(name=name, path=p, text=text, header=header, reads=reads, builtin=builtin, statement=st)


def _line_of(node: Any) -> int | None:
    from sqlglot import exp

    for n in node.walk():
        if isinstance(n, exp.Identifier) and n.meta.get("line"):
            return int(n.meta["line"])
    return None


def _col_of(node: Any, text: str) -> int | None:
    from sqlglot import exp

    for n in node.walk():
        if isinstance(n, exp.Identifier) and "start" in n.meta:
            start = int(n.meta["start"])
            return start - (text.rfind("\n", 0, start) + 1) + 1
    return None


def _reads(st: exp.Create, path: Path, text: str) -> tuple[str, ...]:
    """The kd relations a view reads; unqualified names must be CTEs (no search-path surprises)."""
    from sqlglot import exp

    ctes = {c.alias_or_name for c in st.find_all(exp.CTE)}
    found: set[str] = set()
    for t in st.expression.find_all(exp.Table):
        if not t.name:  # table functions (range(...), unnest(...)) have no name
            continue
        if isinstance(t.this, exp.Func):
            continue
        if not t.db:
            if t.name in ctes:
                continue
            raise SqlFileError(
                f"table {t.name!r} has no schema: write {VIEW_SCHEMA}.{t.name} (or define it in a WITH clause)",
                path=str(path), line=_line_of(t), col=_col_of(t, text),
            )
        if t.db == VIEW_SCHEMA and not t.catalog:
            found.add(t.name)
    return tuple(sorted(found))


def load_views(sql_dirs: Sequence[str | Path] = (), *, builtin: bool = True) -> ViewSet:
    """Parse kdstore's view files (unless ``builtin=False``) and those of ``sql_dirs``, in order.

    The result is statically checked and ordered; :func:`check` validates it against a store.

    Raises:
        SqlFileError: a bad file, or two files defining the same view.
        SqlDependencyError: views reading each other in a cycle.
    """
    paths: list[tuple[Path, bool]] = []
    if builtin:
        paths += [(p, True) for p in view_files(builtin_dir())]
    for d in sql_dirs:
        paths += [(p, False) for p in view_files(d)]
    return _load(tuple((str(p), b, p.stat().st_mtime_ns, p.stat().st_size) for p, b in paths))


_PARSED: dict[tuple[tuple[str, bool, int, int], ...], ViewSet] = {}


def _load(key: tuple[tuple[str, bool, int, int], ...]) -> ViewSet:
    hit = _PARSED.get(key)
    if hit is not None:
        return hit
    files: dict[str, ViewFile] = {}
    for path, builtin, _, _ in key:
        v = parse_view_file(path, builtin=builtin)
        if v.name in files:
            raise SqlFileError(f"view {VIEW_SCHEMA}.{v.name} is already defined by {files[v.name].path}", path=path)
        files[v.name] = v
    result = ViewSet(tuple(files[n] for n in _order(files)))
    if len(_PARSED) > 64:
        _PARSED.clear()
    _PARSED[key] = result
    return result


def _order(files: dict[str, ViewFile]) -> list[str]:
    """Dependency order; ties broken by name so the order is deterministic."""
    ts: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for name in sorted(files):
        ts.add(name, *[r for r in files[name].reads if r in files])
    try:
        ts.prepare()
    except graphlib.CycleError as e:
        cycle = list(e.args[1])
        paths = " -> ".join(str(files[n].path) for n in cycle)
        raise SqlDependencyError(
            "views read each other in a cycle: " + " -> ".join(f"{VIEW_SCHEMA}.{n}" for n in cycle) + f" ({paths})",
            path=str(files[cycle[0]].path),
        ) from e
    order: list[str] = []
    while ts.is_active():
        ready = sorted(ts.get_ready())
        order.extend(ready)
        ts.done(*ready)
    return order


# ---------------------------------------------------------------------------------------------
# checking against a store's catalogue
# ---------------------------------------------------------------------------------------------
def catalog(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, dict[str, str]]]:
    """``{schema: {relation: {column: type}}}`` of every table and view in the database."""
    rows = con.execute(
        "SELECT schema_name, table_name, column_name, data_type FROM duckdb_columns() "
        "WHERE NOT internal AND database_name = current_database() ORDER BY schema_name, table_name, column_index"
    ).fetchall()
    out: dict[str, dict[str, dict[str, str]]] = {}
    for schema, table, column, dtype in rows:
        out.setdefault(str(schema), {}).setdefault(str(table), {})[str(column)] = str(dtype)
    return out


class KdColumn(NamedTuple):
    """One column of a ``kd`` table or view, as :func:`kd_columns` lists it."""

    name: str
    type: str
    nullable: bool
    has_default: bool


def kd_columns(con: duckdb.DuckDBPyConnection | Store, relation: str) -> list[KdColumn]:
    """The columns of the table or view ``kd.<relation>`` of the store's own database, in order
    (empty when there is no such relation). ``con`` may be a :class:`~kdstore.Store` (its ``trace``
    sees the query) or a DuckDB connection.

    >>> import kdstore
    >>> with kdstore.connect() as store:
    ...     [c.name for c in kd_columns(store, "labels")]
    ['label_id', 'name']
    """
    rows = con.execute(
        "SELECT column_name, data_type, is_nullable, column_default IS NOT NULL FROM duckdb_columns() "
        "WHERE schema_name = 'kd' AND table_name = ? AND database_name = current_database() ORDER BY column_index",
        [relation],
    ).fetchall()
    return [KdColumn(str(n), str(t), bool(nl), bool(d)) for n, t, nl, d in rows]


def _mapping_schema(cat: dict[str, dict[str, dict[str, str]]]) -> Any:
    from sqlglot.schema import MappingSchema

    schema = MappingSchema(dialect="duckdb")
    for s, rels in cat.items():
        for rel, cols in rels.items():
            try:
                schema.add_table(f'"{s}"."{rel}"', cols, dialect="duckdb")
            except Exception:  # a type sqlglot cannot parse: the names are what qualify needs
                schema.add_table(f'"{s}"."{rel}"', dict.fromkeys(cols, "UNKNOWN"), dialect="duckdb")
    return schema


def check(views: ViewSet, con: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, ...]]:
    """Check every view against the database's catalogue; return each view's output columns.

    A view may read tables and views of the database and the views of the set before it.

    Raises:
        SqlDependencyError: a view reads a ``kd`` relation that is neither in the database nor in
            the set.
        SqlFileError: a column or table that does not resolve (file, line and column).
    """
    cat = catalog(con)
    mine = set(views.names())
    kd = cat.setdefault(VIEW_SCHEMA, {})
    for name in mine:  # never qualify against an older installed version of a view of the set
        kd.pop(name, None)
    key = (views.fingerprint(), json.dumps(cat, sort_keys=True))
    hit = _CHECKED.get(key)
    if hit is not None:
        return hit
    out: dict[str, tuple[str, ...]] = {}
    for v in views:
        for r in v.reads:
            if r not in kd:
                what = "a view of the set that comes later (bug)" if r in mine else "neither a table nor a view"
                raise SqlDependencyError(
                    f"reads {VIEW_SCHEMA}.{r}, which is {what}: no such view file or table",
                    path=str(v.path), line=_first_table_line(v, r),
                )
        cols = _qualify(v, _mapping_schema(cat))
        kd[v.name] = dict.fromkeys(cols, "UNKNOWN")
        out[v.name] = cols
    if len(_CHECKED) > 64:
        _CHECKED.clear()
    _CHECKED[key] = out
    return out


_CHECKED: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {}


def _first_table_line(v: ViewFile, name: str) -> int | None:
    from sqlglot import exp

    for t in v.query.find_all(exp.Table):
        if t.db == VIEW_SCHEMA and t.name == name:
            return _line_of(t)
    return None


def _qualify(v: ViewFile, schema: Any) -> tuple[str, ...]:
    from sqlglot.errors import OptimizeError, SqlglotError
    from sqlglot.optimizer.qualify import qualify

    try:
        q = qualify(
            v.query.copy(), schema=schema, dialect="duckdb", validate_qualify_columns=True,
            quote_identifiers=False, identify=False,
        )
    except OptimizeError as e:
        msg = str(e)
        m = _OPT_POS.search(msg)
        line: int | None
        col: int | None
        if m:
            line, col = int(m.group(1)), _start_col(v, int(m.group(1)), int(m.group(2)))
        else:  # e.g. "Unknown column: x" for t.x: find the column in the file ourselves
            line, col = _locate_column(v, msg)
        clean = re.sub(r"^Unknown column: (\S+)", r"Column '\1' could not be resolved", _OPT_POS.sub("", msg).strip()).rstrip(".")
        raise SqlFileError(f"{clean} (checked against the store's tables and the views before it)", path=str(v.path), line=line, col=col) from e
    except SqlglotError as e:
        raise SqlFileError(f"cannot qualify: {e}", path=str(v.path)) from e
    names = tuple(str(n) for n in getattr(q, "named_selects", ()))
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup or any(not n for n in names):
        raise SqlFileError(f"every output column needs a distinct name (duplicates: {dup or 'unnamed'})", path=str(v.path))
    return names


def _locate_column(v: ViewFile, msg: str) -> tuple[int | None, int | None]:
    from sqlglot import exp

    m = re.search(r"(?:Unknown column: |Column ')([^'\s]+)", msg)
    if not m:
        return None, None
    for c in v.query.find_all(exp.Column):
        ident = c.this
        if c.name == m.group(1) and isinstance(ident, exp.Identifier) and "start" in ident.meta:
            start = int(ident.meta["start"])
            return int(ident.meta["line"]), start - (v.text.rfind("\n", 0, start) + 1) + 1
    return None, None


def _start_col(v: ViewFile, line: int | None, end_col: int) -> int:
    """sqlglot reports the column where a token ends; show where the identifier starts."""
    from sqlglot import exp

    if line is None:
        return end_col
    for n in v.statement.walk():
        if isinstance(n, exp.Identifier) and n.meta.get("line") == line and n.meta.get("col") == end_col:
            start = int(n.meta["start"])
            return start - (v.text.rfind("\n", 0, start) + 1) + 1
    return end_col


# ---------------------------------------------------------------------------------------------
# installing
# ---------------------------------------------------------------------------------------------
def install(con: duckdb.DuckDBPyConnection, views: ViewSet, *, transaction: bool = True) -> None:
    """Check ``views`` and (re)create them in dependency order, in one transaction.

    Records in ``kd.meta`` what was installed, so :func:`ensure_views` can skip unchanged sets.
    Built-in views that an older kdstore installed and this one no longer has are dropped.
    """
    check(views, con)
    if transaction:
        con.execute("BEGIN TRANSACTION").fetchall()
    try:
        for v in views:
            try:
                con.execute(v.text).fetchall()
            except Exception as e:  # duckdb.Error: the engine rejects the file as written
                raise SqlFileError(f"DuckDB cannot create the view: {e}".replace("\n", " "), path=str(v.path)) from e
        meta = _meta(con)
        builtin = views.subset(builtin=True)
        if len(builtin):
            old = json.loads(meta.get(META_BUILTIN_NAMES, "[]"))
            for stale in sorted(set(old) - set(builtin.names())):
                con.execute(f'DROP VIEW IF EXISTS {VIEW_SCHEMA}."{stale}"').fetchall()  # name from kd.meta, written by us
            _set_meta(con, META_BUILTIN_NAMES, json.dumps(list(builtin.names())))
            _set_meta(con, META_BUILTIN_HASH, builtin.fingerprint())
        extra = views.subset(builtin=False)
        if len(extra):
            _set_meta(con, META_EXTRA_HASH, extra.fingerprint())
        if transaction:
            con.execute("COMMIT").fetchall()
    except BaseException:
        if transaction:
            con.execute("ROLLBACK").fetchall()
        raise


def _meta(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return {str(k): str(v) for k, v in con.execute("SELECT key, value FROM kd.meta").fetchall()}


def _set_meta(con: duckdb.DuckDBPyConnection, key: str, value: str) -> None:
    con.execute("DELETE FROM kd.meta WHERE key = ?", [key]).fetchall()
    con.execute("INSERT INTO kd.meta VALUES (?, ?)", [key, value]).fetchall()


def ensure_views(
    con: duckdb.DuckDBPyConnection, path: str, sql_dirs: Sequence[str | Path] = (), *, read_only: bool = False
) -> ViewSet:
    """Install kdstore's views and those of ``sql_dirs`` when they differ from what the file holds.

    Called by :func:`kdstore.connect`. A read-only store is left as it is: its installed views keep
    working; asking it for analyst folders that are not installed is an error.
    """
    views = load_views(sql_dirs)
    meta = _meta(con)
    builtin, extra = views.subset(builtin=True), views.subset(builtin=False)
    builtin_ok = meta.get(META_BUILTIN_HASH) == builtin.fingerprint()
    extra_ok = not len(extra) or (builtin_ok and meta.get(META_EXTRA_HASH) == extra.fingerprint())
    if builtin_ok and extra_ok:
        return views
    if read_only:
        if not extra_ok:
            raise KdstoreError(
                f"{path} is open read-only and the views of {', '.join(map(str, sql_dirs))} are not installed "
                "in it: open it read-write once to install them"
            )
        return views  # an older kdstore's views: they still run; nothing can be written
    install(con, views)
    return views


# ---------------------------------------------------------------------------------------------
# transpiling
# ---------------------------------------------------------------------------------------------
#: Functions sqlglot does not model ("anonymous") are passed through to the target unchanged;
#: these are the ones known to exist with the same meaning in a target dialect.
PASS_THROUGH_OK: dict[str, frozenset[str]] = {
    "spark": frozenset(),
    "databricks": frozenset(),
}

#: Dialects whose array subscript is 0-based (DuckDB's is 1-based). sqlglot shifts literal
#: subscripts but leaves computed ones (``a[i + 1]``) as they are, silently off by one.
_ZERO_BASED = frozenset({"spark", "spark2", "databricks", "hive", "presto", "trino", "athena", "bigquery"})
#: Spark's family: TRY_ELEMENT_AT exists, decimal literals stay DECIMAL.
_SPARK = frozenset({"spark", "databricks"})
#: Dialects that allow one generator (UNNEST/EXPLODE) per SELECT.
_ONE_GENERATOR = frozenset({"spark", "spark2", "databricks", "hive"})


def portability_problems(v: ViewFile, dialect: str) -> list[str]:
    """Constructs of ``v`` that would change meaning or fail in ``dialect`` (empty = portable)."""
    from sqlglot import exp

    problems: list[str] = []
    ok = PASS_THROUGH_OK.get(dialect, frozenset())
    for node in v.query.walk():
        if isinstance(node, exp.Anonymous):
            fname = str(node.this).lower()
            if fname == "getvariable":
                problems.append(f"{_where(node, v)}getvariable() has no {dialect} equivalent: read parameters from kd.settings")
            elif fname not in ok:
                problems.append(f"{_where(node, v)}{fname}() is unknown to sqlglot and would pass to {dialect} unchanged")
        elif isinstance(node, exp.ArrayAgg) and isinstance(node.this, exp.Order) and dialect != "duckdb":
            problems.append(f"{_where(node, v)}list(... ORDER BY ...) loses its ORDER BY in {dialect} (COLLECT_LIST)")
        elif isinstance(node, exp.Select) and dialect in _ONE_GENERATOR:
            gens = [e for e in node.expressions if e.find(exp.Unnest, exp.Explode)]
            if len(gens) > 1:
                problems.append(f"{_where(gens[1], v)}{dialect} allows one UNNEST/EXPLODE per SELECT, this one has {len(gens)}")
    return problems


def _where(node: exp.Expression, v: ViewFile) -> str:
    line = _line_of(node)
    return f"{v.path.name}:{line}: " if line else f"{v.path.name}: "


def _adapt(query: exp.Expression, dialect: str) -> exp.Expression:
    """Rewrites that keep meaning where sqlglot alone would not.

    * DuckDB's ``list[i]`` is 1-based and NULL out of bounds. sqlglot shifts literal subscripts for
      0-based dialects but leaves computed ones (``a[i + 1]``) as they are, silently off by one: they
      become 1-based ``ELEMENT_AT`` — in Spark ``TRY_ELEMENT_AT``, NULL out of bounds even in ANSI
      mode, where ``ELEMENT_AT`` raises.
    * Spark keeps a decimal literal (``2.0``) DECIMAL through a division and rounds to 6 digits,
      where DuckDB's result is DOUBLE: such literals become ``CAST(... AS DOUBLE)`` (found by
      executing the views on Spark, kdstore/spark.py; equal to 1e-15).
    """
    from sqlglot import exp

    spark = dialect in _SPARK
    if dialect not in _ZERO_BASED:
        return query

    def fix(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Bracket) and len(node.expressions) == 1 and (spark or not node.expressions[0].is_int):
            fn = "TRY_ELEMENT_AT" if spark else "ELEMENT_AT"
            return exp.Anonymous(this=fn, expressions=[node.this.copy(), node.expressions[0].copy()])
        if (
            spark and isinstance(node, exp.Literal) and node.is_number and "." in node.this
            and "e" not in node.this.lower() and not isinstance(node.parent, exp.Cast)
        ):
            return exp.cast(node.copy(), exp.DataType.build("DOUBLE"))
        return node

    return query.transform(fix)


def transpile_view(v: ViewFile, dialect: str) -> str:
    """``CREATE OR REPLACE VIEW`` of ``v`` in ``dialect``.

    Raises:
        TranspileError: the view uses something with no faithful equivalent in ``dialect``.
    """
    import sqlglot
    from sqlglot import ErrorLevel
    from sqlglot.errors import SqlglotError

    if dialect == "duckdb":
        return v.text
    try:
        sqlglot.Dialect.get_or_raise(dialect)
    except (ValueError, SqlglotError) as e:
        raise TranspileError(f"unknown dialect {dialect!r}: {e}") from e
    problems = portability_problems(v, dialect)
    if problems:
        raise TranspileError(f"{_shown_path(v)} is not portable to {dialect}:\n  " + "\n  ".join(problems))
    st = v.statement.copy()
    st.set("expression", _adapt(st.expression, dialect))
    try:
        return st.sql(dialect=dialect, pretty=True, unsupported_level=ErrorLevel.RAISE, comments=False)
    except SqlglotError as e:
        raise TranspileError(f"{_shown_path(v)} cannot be written in {dialect}: {e}") from e


def transpile(views: ViewSet, dialect: str) -> str:
    """The whole set in ``dialect``, in dependency order (see :func:`transpile_view`)."""
    return views.sql(dialect)


__all__ = [
    "HEADER_KEYS",
    "VIEW_SCHEMA",
    "KdColumn",
    "ViewFile",
    "ViewSet",
    "builtin_dir",
    "catalog",
    "check",
    "ensure_views",
    "install",
    "kd_columns",
    "load_views",
    "parse_view_file",
    "portability_problems",
    "transpile",
    "transpile_view",
    "view_files",
]
