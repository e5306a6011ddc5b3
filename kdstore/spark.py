"""Scale-out: the same store contract, views, label model and teachers on Apache Spark.

DuckDB stays the embedded default; when teacher outputs outgrow one machine, the ``kd`` tables live
as Spark tables or Parquet/Delta folders (for example written by
:meth:`kdstore.Store.export_parquet`) and this module

* registers them as Spark views under the kd contract (:func:`register_tables`),
* installs the views of ``sql/`` transpiled to Spark SQL by sqlglot (:func:`install_views`;
  one set of SQL files, no second hand-written copy),
* runs the label-free Dawid-Skene EM with the same SQL statements (:func:`label_model`),
* runs ONNX teachers with ``mapInArrow`` (:func:`run_onnx_teacher`).

pyspark is an optional extra (``pip install 'kdstore[spark]'``) and is imported only here, inside
functions: ``import kdstore`` never imports it.

Names: in temporary mode (the default) kd table or view ``X`` is the Spark temporary view
``kd_X`` (``prefix``); with ``database="d"`` it is ``d.X`` (permanent views over the tables of
database ``d``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdstore.errors import KdstoreError, SchemaError, TranspileError, ViewExecutionError

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession
    from sqlglot import exp

    from kdstore.labelmodel import LabelModelResult
    from kdstore.sqlfiles import ViewFile

#: Tables every view needs; the others are created empty when absent.
REQUIRED = ("labels", "examples", "gold", "teachers", "teacher_labels")
#: The long outputs derived from the wide scores with posexplode, when a source has no ``outputs``.
#: This is kd.outputs of sql/schema/001_init.sql for Spark: sqlglot turns DuckDB's two zipped
#: UNNESTs into two EXPLODEs (a cross product, and an error in Spark), so the one statement that
#: cannot be transpiled is written here; tests/test_spark.py checks it row for row against DuckDB.
_OUTPUTS_FROM_SCORES = """
SELECT s.teacher_id, s.example_id, tl.label_id, s.score
FROM (SELECT teacher_id, example_id, posexplode(scores) AS (output_index, score) FROM {scores}) AS s
JOIN {teacher_labels} AS tl ON tl.teacher_id = s.teacher_id AND tl.output_index = s.output_index
WHERE s.score IS NOT NULL
"""
_SPARK_TYPES = {
    "BOOLEAN": "boolean", "TINYINT": "tinyint", "SMALLINT": "smallint", "INTEGER": "int", "BIGINT": "bigint",
    "FLOAT": "float", "DOUBLE": "double", "VARCHAR": "string", "JSON": "string", "BLOB": "binary",
    "TIMESTAMP": "timestamp_ntz", "TIMESTAMP WITH TIME ZONE": "timestamp", "DATE": "date",
}


# ---------------------------------------------------------------------------------------------
# session and contract
# ---------------------------------------------------------------------------------------------
def local_session(
    *,
    cores: int = 2,
    driver_memory: str = "2g",
    shuffle_partitions: int = 4,
    app_name: str = "kdstore",
    conf: Mapping[str, str] | None = None,
) -> SparkSession:
    """A local Spark session set up for kdstore (tests, benchmarks, a laptop).

    Points the Python workers at this interpreter (``mapInArrow`` fails when workers start a
    Python without pyarrow), turns the UI and console progress off, uses few shuffle partitions
    and UTC. ``driver_memory`` only applies when this call starts the JVM.
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName(app_name)
        .config("spark.driver.memory", driver_memory)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
    )
    for k, v in (conf or {}).items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


@dataclass(frozen=True, slots=True)
class Column:
    """One column of the kd contract: DuckDB type, Spark type, nullability."""

    name: str
    duckdb_type: str
    spark_type: str
    nullable: bool


def _spark_type(duck: str) -> str:
    if duck.endswith("[]"):
        return f"array<{_spark_type(duck[:-2])}>"
    if duck.startswith("DECIMAL"):
        return duck.lower()
    if duck not in _SPARK_TYPES:
        raise KdstoreError(f"no Spark type for DuckDB type {duck}")
    return _SPARK_TYPES[duck]


@functools.cache
def contract() -> dict[str, tuple[Column, ...]]:
    """The kd tables (and the ``outputs`` view) with their columns, read from the schema DDL."""
    import kdstore
    from kdstore.parquet_io import kd_tables
    from kdstore.sqlfiles import kd_columns

    with kdstore.connect() as store:
        out = {}
        for t in [*kd_tables(store), "outputs"]:
            # A view reports every column nullable; the long outputs contract has no NULLs.
            out[t] = tuple(Column(c.name, c.type, _spark_type(c.type), c.nullable and t != "outputs") for c in kd_columns(store, t))
    return out


def _family(spark_type: str) -> str:
    t = spark_type.lower()
    if t.startswith("array<"):
        return "array<" + _family(t[6:-1]) + ">"
    if t in ("tinyint", "smallint", "int", "integer", "bigint", "long", "short", "byte"):
        return "int"
    if t in ("float", "double", "real") or t.startswith("decimal"):
        return "float"
    if t.startswith(("timestamp", "date")):
        return "time"
    if t.startswith(("string", "varchar", "char")):
        return "string"
    return t


# ---------------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------------
def _name(table: str, *, prefix: str, database: str | None) -> str:
    """The Spark name of kd table/view ``table`` (backquoted)."""
    from sqlglot import exp

    if database is not None:
        return exp.table_(table, db=database, quoted=True).sql(dialect="spark")
    return exp.to_identifier(prefix + table, quoted=True).sql(dialect="spark")


def _read(spark: SparkSession, path: str | Path, fmt: str | None) -> DataFrame:
    p = Path(path)
    kind = fmt or ("delta" if (p / "_delta_log").is_dir() else "parquet")
    try:
        return spark.read.format(kind).load(str(p))
    except Exception as e:  # AnalysisException: path missing, not Parquet, empty folder...
        raise SchemaError(f"Spark cannot read it as {kind}: {_first_line(e)}", source=str(p)) from e


def _conform(df: DataFrame, table: str, source: str) -> DataFrame:
    """Check ``df`` against the contract of ``table`` and return it with contract names, types and order."""
    from pyspark.sql import functions as F

    have = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    cols = []
    for c in contract()[table]:
        if c.name not in have:
            if c.nullable:
                cols.append(F.lit(None).cast(c.spark_type).alias(c.name))
                continue
            raise SchemaError(f"missing column (columns are: {', '.join(have)})", source=source, column=c.name)
        if _family(have[c.name]) != _family(c.spark_type):
            raise SchemaError(f"type {have[c.name]} does not match the contract's {c.spark_type}", source=source, column=c.name)
        col = F.col(f"`{c.name}`")
        cols.append(col if have[c.name] == c.spark_type else col.cast(c.spark_type).alias(c.name))
    return df.select(*cols)


def _empty(spark: SparkSession, table: str) -> DataFrame:
    schema = ", ".join(f"`{c.name}` {c.spark_type}" for c in contract()[table])
    return spark.createDataFrame([], schema)


def _default_settings(spark: SparkSession) -> DataFrame:
    from kdstore.store.core import DEFAULT_SETTINGS

    rows = [(n, float(v), d) for n, (v, d) in DEFAULT_SETTINGS.items()]
    return spark.createDataFrame(rows, "name string, value double, doc string")


def register_tables(
    spark: SparkSession,
    source: str | Path | Mapping[str, Any],
    *,
    prefix: str = "kd_",
    database: str | None = None,
    format: str | None = None,
    cache: bool = False,
) -> dict[str, str]:
    """Expose kd tables to Spark SQL under the kd contract; returns ``{kd name: Spark name}``.

    Args:
        source: a folder with one sub-folder per table (the layout of
            :meth:`kdstore.Store.export_parquet`; Delta folders are recognised by ``_delta_log``),
            or a mapping ``{table: DataFrame or path}``.
        prefix: temporary view names are ``prefix + table``.
        database: instead of temporary views, create permanent tables ``database.table``
            (external, over the given paths; DataFrames are not accepted here) so that permanent
            views can be installed over them.
        format: ``"parquet"`` or ``"delta"`` for path sources (default: detected).
        cache: cache the temporary views in Spark memory (many queries over small tables, or the
            EM iterations that read ``outputs`` once per iteration).

    Missing columns that the contract allows to be NULL are added; integer and float widths are
    cast to the contract's; other mismatches are a :class:`SchemaError`. Absent optional tables
    (weak, trust, targets, ...) become empty; ``outputs`` is derived from ``scores`` when absent;
    ``settings`` are completed with the defaults.
    """
    if isinstance(source, (str, Path)):
        root = Path(source)
        if not root.is_dir():
            raise SchemaError("no such folder", source=str(root))
        given: dict[str, Any] = {t: root / t for t in contract() if (root / t).is_dir()}
    else:
        given = dict(source)
        unknown = [t for t in given if t not in contract()]
        if unknown:
            raise SchemaError(f"unknown kd table {unknown[0]!r}; known: {', '.join(contract())}", source="register_tables")
    missing = [t for t in REQUIRED if t not in given]
    if missing:
        raise SchemaError(f"required kd table {missing[0]!r} is missing", source=str(source) if isinstance(source, (str, Path)) else "register_tables")
    if "outputs" not in given and "scores" not in given:
        raise SchemaError("need 'outputs' (long) or 'scores' (wide) teacher outputs", source="register_tables")
    if database is not None:
        return _register_permanent(spark, given, database, format)
    names: dict[str, str] = {}
    frames: dict[str, DataFrame] = {}
    for t in contract():
        if t in given:
            obj = given[t]
            src = str(obj) if isinstance(obj, (str, Path)) else f"DataFrame for {t}"
            df = _read(spark, obj, format) if isinstance(obj, (str, Path)) else obj
            frames[t] = _conform(df, t, src)
        elif t == "settings":
            frames[t] = _default_settings(spark)
        elif t != "outputs":
            frames[t] = _empty(spark, t)
    if "settings" in given:
        defaults = _default_settings(spark)
        frames["settings"] = frames["settings"].unionByName(
            defaults.join(frames["settings"].select("name"), "name", "left_anti")
        )
    for t, df in frames.items():
        if cache:
            df = df.cache()
        df.createOrReplaceTempView(prefix + t)
        names[t] = _name(t, prefix=prefix, database=None)
    if "outputs" not in given:
        sql = _OUTPUTS_FROM_SCORES.format(scores=names["scores"], teacher_labels=names["teacher_labels"])
        derived = spark.sql(sql)
        (derived.cache() if cache else derived).createOrReplaceTempView(prefix + "outputs")
        names["outputs"] = _name("outputs", prefix=prefix, database=None)
    return names


def _register_permanent(spark: SparkSession, given: dict[str, Any], database: str, fmt: str | None) -> dict[str, str]:
    from sqlglot import exp

    spark.sql(f"CREATE DATABASE IF NOT EXISTS {exp.to_identifier(database, quoted=True).sql(dialect='spark')}")
    names: dict[str, str] = {}
    for t in contract():
        name = _name(t, prefix="", database=database)
        if t in given:
            obj = given[t]
            if not isinstance(obj, (str, Path)):
                raise SchemaError("permanent tables need a path (Parquet or Delta folder), not a DataFrame", source=t)
            p = Path(obj)
            kind = fmt or ("delta" if (p / "_delta_log").is_dir() else "parquet")
            spark.sql(f"DROP TABLE IF EXISTS {name}")
            spark.sql(f"CREATE TABLE {name} USING {kind} LOCATION {exp.Literal.string(str(p.resolve())).sql(dialect='spark')}")
            _conform(spark.table(name), t, str(p))  # validates; a permanent table cannot be cast in place
            have = {f.name: f.dataType.simpleString() for f in spark.table(name).schema.fields}
            for c in contract()[t]:
                if c.name in have and have[c.name] != c.spark_type:
                    raise SchemaError(f"type {have[c.name]} must be exactly {c.spark_type} in a permanent table",
                                      source=str(p), column=c.name)
        elif t == "outputs":
            body = _OUTPUTS_FROM_SCORES.format(
                scores=_name("scores", prefix="", database=database),
                teacher_labels=_name("teacher_labels", prefix="", database=database),
            )
            spark.sql(f"CREATE OR REPLACE VIEW {name} AS {body}")
        else:
            cols = ", ".join(f"CAST(NULL AS {c.spark_type}) AS `{c.name}`" for c in contract()[t])
            spark.sql(f"CREATE OR REPLACE VIEW {name} AS SELECT {cols} WHERE false")
        names[t] = name
    return names


# ---------------------------------------------------------------------------------------------
# views
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SparkView:
    """One view of ``sql/`` as Spark SQL: its name, what it reads, and the statement run."""

    name: str
    depends_on: tuple[str, ...]
    sql: str


def _view_asts() -> list[tuple[str, exp.Expression]]:
    """(name, parsed DuckDB CREATE VIEW) of every view file in ``sql/``, dependencies first.

    The statements are :func:`kdstore.sqlfiles.load_views`' (parsed once, checked, ordered); callers copy
    before they rewrite.
    """
    from kdstore.sqlfiles import load_views

    return [(v.name, v.statement) for v in load_views()]


def _spark_fixes(tree: Any, view: str) -> exp.Expression:
    """Make DuckDB semantics explicit where Spark SQL differs and sqlglot does not cover it."""
    from sqlglot import exp

    for agg in list(tree.find_all(exp.AggFunc)):
        if isinstance(agg.this, exp.Order):
            spark_sql = agg.sql(dialect="spark").upper()
            if "ORDER BY" not in spark_sql or "WITHIN GROUP" not in spark_sql:
                raise TranspileError(
                    f"view {view}: the ordered aggregate {agg.sql(dialect='duckdb')} has no Spark SQL twin "
                    "(Spark drops or rejects ORDER BY inside an aggregate); use arg_max/arg_min or a window"
                )

    def decimal_to_double(node: exp.Expression) -> exp.Expression:
        # DuckDB reads 2.0 as DECIMAL and computes exactly before a division turns it into DOUBLE;
        # Spark keeps DECIMAL through the division and rounds to 6 digits. DOUBLE matches to 1e-15.
        if isinstance(node, exp.Literal) and node.is_number and "." in node.this and "e" not in node.this.lower():
            return exp.cast(node.copy(), exp.DataType.build("DOUBLE"))
        # DuckDB's list[i] is NULL out of bounds; Spark's ELEMENT_AT raises under ANSI mode.
        if isinstance(node, exp.Bracket) and len(node.expressions) == 1:
            return exp.Anonymous(this="TRY_ELEMENT_AT", expressions=[node.this.copy(), node.expressions[0].copy()])
        return node

    out: exp.Expression = tree.transform(decimal_to_double)
    return out


def _spark_view(v: ViewFile, *, prefix: str, database: str | None) -> SparkView:
    body = _rename_kd(_spark_fixes(v.query, v.name), prefix=prefix, database=database)  # fixes copy the tree
    target = _name(v.name, prefix=prefix, database=database)
    verb = "CREATE OR REPLACE VIEW" if database else "CREATE OR REPLACE TEMPORARY VIEW"
    return SparkView(name=v.name, depends_on=v.reads, sql=f"{verb} {target} AS {body.sql(dialect='spark')}")


def spark_views(*, prefix: str = "kd_", database: str | None = None) -> list[SparkView]:
    """Every view of ``sql/`` as a Spark ``CREATE OR REPLACE [TEMPORARY] VIEW`` statement, in dependency order.

    Raises :class:`TranspileError` when a view cannot keep its meaning in Spark SQL.
    """
    from kdstore.sqlfiles import load_views

    return [_spark_view(v, prefix=prefix, database=database) for v in load_views()]


def install_views(
    spark: SparkSession,
    *,
    permanent: bool = False,
    database: str | None = None,
    prefix: str = "kd_",
    views: Sequence[str] | None = None,
) -> list[str]:
    """Install the views of ``sql/`` in Spark; returns the Spark names, in dependency order.

    Args:
        permanent: create permanent views in ``database`` (over the tables of that database,
            see :func:`register_tables`); else temporary views named ``prefix + view``.
        views: install only these views and what they depend on (default all).

    A view Spark rejects raises :class:`ViewExecutionError` with the Spark SQL that failed.
    """
    if permanent and not database:
        raise KdstoreError("permanent views need database=...")
    allv = spark_views(prefix=prefix, database=database if permanent else None)
    if views is not None:
        by_name = {v.name: v for v in allv}
        unknown = [v for v in views if v not in by_name]
        if unknown:
            raise KdstoreError(f"unknown view {unknown[0]!r}; known: {', '.join(by_name)}")
        need: set[str] = set()
        stack = list(views)
        while stack:
            name = stack.pop()
            if name in need or name not in by_name:
                continue
            need.add(name)
            stack.extend(by_name[name].depends_on)
        allv = [v for v in allv if v.name in need]
    installed = []
    for view in allv:
        try:
            spark.sql(view.sql)
        except Exception as e:
            raise ViewExecutionError(_first_line(e), view=view.name, sql=view.sql) from e
        installed.append(_name(view.name, prefix=prefix, database=database if permanent else None))
    return installed


# ---------------------------------------------------------------------------------------------
# label-free EM (kdstore.labelmodel's statements, run on Spark)
# ---------------------------------------------------------------------------------------------
def _rename_kd(tree: exp.Expression, *, prefix: str, database: str | None) -> exp.Expression:
    """Point ``kd.<table>`` references at their Spark names (``prefix + table`` or ``database.table``)."""
    from sqlglot import exp

    for t in tree.find_all(exp.Table):
        if t.db == "kd":
            t.set("this", exp.to_identifier(t.name if database else prefix + t.name, quoted=True))
            t.set("db", exp.to_identifier(database, quoted=True) if database else None)
    return tree


def to_spark_sql(duckdb_sql: str, *, what: str, prefix: str = "kd_", database: str | None = None) -> str:
    """One DuckDB query as Spark SQL: sqlglot, kdstore's meaning-keeping fixes, kd tables renamed.

    ``$name`` parameters become Spark's ``:name`` (pass the values as ``spark.sql(..., args=)``).
    """
    import sqlglot

    tree = sqlglot.parse_one(duckdb_sql, read="duckdb")
    tree = _rename_kd(_adapt(_spark_fixes(tree, what)), prefix=prefix, database=database)
    return str(tree.sql(dialect="spark"))


def _adapt(tree: exp.Expression) -> exp.Expression:
    """sqlfiles' rewrites for Spark (1-based computed list subscripts), when sqlfiles is present."""
    try:
        from kdstore.sqlfiles import _adapt as adapt
    except ImportError:  # pragma: no cover - sqlfiles is part of kdstore once the views land
        return tree
    return adapt(tree, "spark")


@dataclass(frozen=True, slots=True)
class SparkLabelModel:
    """A label-model fit on Spark: the :class:`kdstore.labelmodel.LabelModelResult` and the rows the
    fit wrote, as Spark DataFrames in the store contract (``tables``: ``runs``, ``label_model_runs``,
    ``label_model_priors``, ``label_model_accuracy`` and, when kept, ``label_model_fit_posteriors``),
    ready for :func:`write_label_model` and ``store.import_parquet``."""

    result: LabelModelResult
    tables: dict[str, DataFrame]


def _copy_of(tree: exp.Expr) -> str | None:
    """``b`` when ``tree`` is ``CREATE ... a AS SELECT * FROM b`` (a plain copy), else None."""
    from sqlglot import exp

    q = tree.expression if isinstance(tree, exp.Create) else None
    if (isinstance(q, exp.Select) and len(q.expressions) == 1 and isinstance(q.expressions[0], exp.Star)
            and not any(q.args.get(k) for k in ("where", "joins", "group", "having", "order", "limit", "distinct", "with"))):
        src = q.args.get("from") or q.args.get("from_")
        if src is not None and isinstance(src.this, exp.Table) and not src.this.db:
            return str(src.this.name)
    return None


def _without_stats(df: DataFrame) -> DataFrame:
    """``df`` (checkpointed) as a new DataFrame over the same rows that forgets its origin's statistics.

    A checkpoint keeps the size estimate of the plan it cut (SPARK-39834), and an inner join's estimate
    is the product of its sides: an E-step that joins the previous iteration's table M times raises the
    estimate to the power M per iteration, a number with ~M**iterations digits that Spark's planner
    multiplies out (class-conditional EM hung at iteration 12 with 4 teachers). Rebuilt from its rows
    (JVM to JVM, no Python round trip), the table gets Spark's default size estimate instead.
    """
    from pyspark.sql import DataFrame as _DataFrame

    jdf = df._jdf
    return _DataFrame(df.sparkSession._jsparkSession.createDataFrame(jdf.javaRDD(), jdf.schema()), df.sparkSession)


class SparkExecutor:
    """The Spark executor of :func:`kdstore.labelmodel.fit_em` (the one EM driver).

    Every DuckDB statement the driver gives (``sql/labelmodel/*.sql`` and its few inline queries)
    is transpiled by sqlglot with the views' fixes; ``CREATE TEMP TABLE x AS q`` becomes the
    temporary view ``x`` over ``q`` checkpointed once (materialised, lineage cut, so iterations do
    not grow the plan); ``INSERT INTO kd.<table>`` is kept as a DataFrame in ``tables`` (Spark is
    not the store: :func:`write_label_model` writes them for ``store.import_parquet``).
    """

    def __init__(self, spark: SparkSession, prefix: str = "kd_"):
        self.spark, self.prefix = spark, prefix
        self.params: dict[str, Any] = {}
        self.frames: dict[str, DataFrame] = {}
        self.tables: dict[str, DataFrame] = {}

    def _spark_sql(self, tree: exp.Expr, what: str) -> str:
        body = _rename_kd(_adapt(_spark_fixes(tree.copy(), what)), prefix=self.prefix, database=None)
        return str(body.sql(dialect="spark"))

    def _materialise(self, view: str, df: DataFrame, *, checkpoint: bool = True) -> None:
        if checkpoint:
            df = _without_stats(df.localCheckpoint(eager=True))
        old = self.frames.get(view)
        df.createOrReplaceTempView(view)
        self.frames[view] = df
        if old is not None and not any(f is old for f in self.frames.values()):
            old.unpersist()  # no other view shares it (keep_prev copies share their source's data)

    def _statement(self, text: str, args: dict[str, Any], what: str) -> None:
        import sqlglot
        from sqlglot import exp

        tree = sqlglot.parse_one(text, read="duckdb")
        copied = _copy_of(tree)
        if copied is not None and copied in self.frames:  # CREATE TEMP TABLE a AS SELECT * FROM b
            self._materialise(tree.this.name, self.frames[copied], checkpoint=False)
            return
        if not isinstance(tree, (exp.Create, exp.Insert)) or not isinstance(tree.expression, exp.Expression):
            raise TranspileError(f"{what}: the Spark executor runs CREATE ... AS and INSERT ... SELECT statements")
        try:
            df = self.spark.sql(self._spark_sql(tree.expression, what), args=args or None)
        except Exception as e:
            raise ViewExecutionError(_first_line(e), view=what, sql=self._spark_sql(tree.expression, what)) from e
        if isinstance(tree, exp.Create):
            self._materialise(tree.this.name, df)
            return
        target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
        if target.db == "kd":  # write_*: kept as a DataFrame in the kd table's contract
            cols = [c.name for c in contract()[target.name]]
            self.tables[target.name] = df.toDF(*cols[: len(df.columns)]).localCheckpoint(eager=True)
            return
        # INSERT INTO a temporary table: the new rows (computed from the old table) appended
        old = self.frames[target.name]
        self._materialise(target.name, old.union(df.toDF(*old.columns)))

    def run(self, name: str) -> None:
        from kdstore.labelmodel import _template

        text, names = _template(name)
        self._statement(text, {n: self.params[n] for n in names}, f"labelmodel/{name}")

    def run_sql(self, name: str, sql: str) -> None:
        from kdstore.labelmodel import _params_of

        self._statement(sql, {n: self.params[n] for n in _params_of(sql)}, f"labelmodel/{name}")

    def scalar(self, name: str) -> float:
        import sqlglot

        from kdstore.labelmodel import _template

        text, names = _template(name)
        sql = self._spark_sql(sqlglot.parse_one(text, read="duckdb"), f"labelmodel/{name}")
        row = self.spark.sql(sql, args={n: self.params[n] for n in names} or None).collect()
        return float(row[0][0]) if row and row[0][0] is not None else 0.0

    def execute(self, sql: str) -> None:
        self._statement(sql, {}, "label model")

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        spark_sql = to_spark_sql(sql, what="label model", prefix=self.prefix)
        return [tuple(r) for r in self.spark.sql(spark_sql, args=params or None).collect()]

    def temp_table(self, name: str, column: str, sql_type: str, values: Sequence[Any]) -> None:
        schema = f"`{column}` {_spark_type(sql_type.upper())}"
        self._materialise(name, self.spark.createDataFrame([(v,) for v in values], schema), checkpoint=False)

    def insert(self, table: str, row: dict[str, Any]) -> None:
        types = {c.name: c.spark_type for c in contract()[table]}
        schema = ", ".join(f"`{c}` {types[c]}" for c in row)
        self.tables[table] = self.spark.createDataFrame([tuple(row.values())], schema)

    def transaction(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()  # nothing is written to the store; temp views are dropped by close()

    def close(self) -> None:
        for view, df in self.frames.items():
            self.spark.catalog.dropTempView(view)
            df.unpersist()
        self.frames.clear()


def label_model(spark: SparkSession, *, prefix: str = "kd_", run_id: int | None = None, **options: Any) -> SparkLabelModel:
    """Fit the Dawid–Skene label model on Spark: :func:`kdstore.labelmodel.fit_em` (the driver of
    :func:`kdstore.labelmodel.fit_label_model`, same ``options`` and defaults from the registered
    ``settings``) with a :class:`SparkExecutor`.

    The tables must be registered (:func:`register_tables`, same ``prefix``). ``run_id`` is the id
    the fit gets in its rows (default: one more than the registered ``runs``; pick one the store
    does not have before importing them).
    """
    from kdstore.labelmodel import fit_em

    ex = SparkExecutor(spark, prefix)
    try:
        result = fit_em(ex, run_id=run_id, **options)
    finally:
        ex.close()
    return SparkLabelModel(result=result, tables=dict(ex.tables))


def write_label_model(fit: SparkLabelModel, path: str | Path, *, mode: str = "overwrite") -> None:
    """Write a Spark fit's rows as ``kd`` tables under ``path`` (one Parquet folder per table, the
    layout of :meth:`kdstore.Store.export_parquet`), for ``store.import_parquet(path, mode="append")``."""
    out = Path(path)
    for table, df in fit.tables.items():
        df.write.mode(mode).parquet(str(out / table))


# ---------------------------------------------------------------------------------------------
# ONNX teachers with mapInArrow
# ---------------------------------------------------------------------------------------------
#: Spark schema of :func:`run_onnx_teacher`'s result: the ``scores`` contract plus the embedding.
TEACHER_OUTPUT_SCHEMA = "teacher_id int, example_id bigint, scores array<float>, vector array<float>"
_DUCK_NAMES = {
    "float": "FLOAT", "double": "DOUBLE", "tinyint": "TINYINT", "smallint": "SMALLINT", "int": "INTEGER",
    "bigint": "BIGINT", "boolean": "BOOLEAN", "string": "VARCHAR",
}
#: One ONNX Runtime session per teacher configuration per Python worker, reused across tasks.
_SESSIONS: dict[tuple[str, str], Any] = {}
_MAX_SESSIONS = 8


@dataclass(frozen=True, slots=True)
class _InferSpec:
    """Everything an executor needs to rebuild the teacher and run it (pickled once per task)."""

    key: str
    teacher_id: int
    name: str
    labels: tuple[Any, ...]
    output_type: str
    output: str | None
    embedding: str | None
    inputs: dict[str, Any] | None
    scores: str
    bindings: tuple[Any, ...]
    threads: int
    tolerance: float


def _duck_type(spark_type: str) -> str:
    """The DuckDB type name of a Spark column type, for :func:`kdstore.teachers.spec.feature_column`."""
    t = spark_type.lower()
    if t.startswith("array<"):
        return _duck_type(t[6:-1]) + "[]"
    if t.startswith("decimal"):
        return t.upper()
    return _DUCK_NAMES.get(t, t.upper())


def _worker_session(spec: _InferSpec, model: Any) -> Any:
    """This worker's session for the model (built on first use from the broadcast bytes)."""
    import tempfile

    from kdstore.teachers.onnx import OnnxTeacher

    # The same model file may back several teachers (another output tensor, an embedding): one
    # session per teacher configuration, not per file.
    cache_key = (spec.key, repr((spec.name, spec.labels, spec.output_type, spec.output, spec.embedding,
                                 spec.inputs, spec.scores, spec.threads)))
    session = _SESSIONS.get(cache_key)
    if session is None:
        path = Path(tempfile.gettempdir()) / f"kdstore-teacher-{spec.key[:24]}.onnx"
        if not path.exists():
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(model.value)
            os.replace(tmp, path)  # atomic: concurrent workers see a whole file
        teacher = OnnxTeacher(
            path, name=spec.name, labels=spec.labels, output_type=spec.output_type, output=spec.output,
            embedding=spec.embedding, inputs=spec.inputs, scores=spec.scores,
        )
        session = teacher.open(threads=spec.threads)
        while len(_SESSIONS) >= _MAX_SESSIONS:  # a worker serving many teachers keeps the recent ones
            _SESSIONS.pop(next(iter(_SESSIONS))).close()
        _SESSIONS[cache_key] = session
    return session


def _infer_batches(batches: Iterator[pa.RecordBatch], *, spec: _InferSpec, model: Any) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: features -> (teacher_id, example_id, scores, vector) with kdstore's conversions."""
    import numpy as np
    import pyarrow as pa

    from kdstore.teachers.spec import as_rows, build_feed, convert_scores

    session = _worker_session(spec, model)
    schema = pa.schema([("teacher_id", pa.int32()), ("example_id", pa.int64()),
                        ("scores", pa.list_(pa.float32())), ("vector", pa.list_(pa.float32()))])
    for batch in batches:
        n = batch.num_rows
        if n == 0:
            continue
        ids = np.asarray(batch.column("example_id").to_numpy(zero_copy_only=False), dtype=np.int64)
        feeds = {b.spec.name: build_feed(b, batch, spec.name) for b in spec.bindings}
        out = session.run(feeds)
        cols: dict[str, pa.Array] = {}
        for col, tensor in (("scores", session.score_output), ("vector", session.embedding_output)):
            if tensor is None:
                cols[col] = pa.nulls(n, pa.list_(pa.float32()))
                continue
            if col == "scores":
                mat = convert_scores(out[tensor], teacher=spec.name, output=tensor, output_type=spec.output_type,
                                     n_labels=len(spec.labels), mode=spec.scores, ids=ids, tolerance=spec.tolerance)
            else:
                mat = as_rows(out[tensor], n, spec.name, tensor, ids)
            mat = np.ascontiguousarray(mat, dtype=np.float32)
            width = mat.shape[1]
            offsets = pa.array(np.arange(n + 1, dtype=np.int32) * width)
            cols[col] = pa.ListArray.from_arrays(offsets, pa.array(mat.reshape(-1)))
        yield pa.RecordBatch.from_arrays(
            [pa.array(np.full(n, spec.teacher_id, np.int32)), pa.array(ids), cols["scores"], cols["vector"]],
            schema=schema,
        )


def run_onnx_teacher(
    spark: SparkSession,
    teacher: Any,
    features: DataFrame,
    *,
    teacher_id: int,
    threads: int = 1,
    tolerance: float = 1e-3,
) -> DataFrame:
    """Run an :class:`~kdstore.teachers.onnx.OnnxTeacher` over a feature DataFrame on Spark.

    Args:
        teacher: the ONNX teacher (as registered in the store: same labels, output type, output
            tensor, input mapping, scores mode).
        features: a DataFrame with ``example_id`` and the teacher's feature columns (the same
            columns as the local feature source; bound by the same rules).
        teacher_id: the id the store gave the teacher (``kd.teachers.teacher_id``).
        threads: ONNX Runtime intra-op threads per task (match ``spark.task.cpus``).
        tolerance: how far a multiclass probability row may sum from 1 (the store's
            ``multiclass_tolerance`` setting).

    Returns a lazy DataFrame ``(teacher_id, example_id, scores array<float>, vector array<float>)``:
    ``scores`` in the ``kd.scores`` contract (NULL for an embedding teacher), ``vector`` the
    embedding when the teacher has one. The model bytes are broadcast once; each Python worker
    keeps one ONNX Runtime session per model. Bad outputs (NaN, wrong shape, probabilities outside
    [0, 1]) fail the Spark job with kdstore's :class:`~kdstore.errors.TeacherError` message.
    """
    from pyspark.sql import functions as F

    from kdstore.teachers.spec import bind_inputs, feature_column

    fields = {f.name: f.dataType.simpleString() for f in features.schema.fields}
    if "example_id" not in fields:
        raise SchemaError("the feature DataFrame has no example_id column", source=f"teacher {teacher.name!r}")
    columns = [feature_column(name, _duck_type(t)) for name, t in fields.items()]
    lists = [c.name for c in columns if c.kind == "list" and c.length is None]
    lengths: dict[str, int | None] = {}
    if lists:
        row = features.agg(*[x for c in lists for x in (F.min(F.size(c)), F.max(F.size(c)))]).collect()[0]
        for i, c in enumerate(lists):
            lo, hi = row[2 * i], row[2 * i + 1]
            lengths[c] = int(lo) if lo is not None and lo == hi else None
    bindings = bind_inputs(teacher.name, teacher.signature(), columns, "Spark DataFrame", teacher.input_map,
                           lengths.get)
    model_bytes = teacher.checked().model.SerializeToString()
    import hashlib

    spec = _InferSpec(
        key=hashlib.sha256(model_bytes).hexdigest(), teacher_id=int(teacher_id), name=teacher.name,
        labels=tuple(teacher.labels), output_type=teacher.output_type,
        output=teacher.output, embedding=teacher.embedding, inputs=teacher.input_map, scores=teacher.scores,
        bindings=tuple(bindings), threads=int(threads), tolerance=float(tolerance),
    )
    model = spark.sparkContext.broadcast(model_bytes)
    needed = ["example_id", *dict.fromkeys(c for b in bindings for c in b.columns)]
    return features.select(*[F.col(f"`{c}`") for c in needed]).mapInArrow(
        functools.partial(_infer_batches, spec=spec, model=model), TEACHER_OUTPUT_SCHEMA
    )


def write_outputs(df: DataFrame, path: str | Path, *, mode: str = "overwrite") -> None:
    """Write :func:`run_onnx_teacher` results as ``<path>/scores`` and ``<path>/embeddings`` (store contract).

    Bring them home with ``store.import_parquet(path, tables=["scores", "embeddings"], mode="upsert")``.
    """
    from pyspark import StorageLevel

    out = Path(path)
    df = df.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        df.where("scores IS NOT NULL").select("teacher_id", "example_id", "scores").write.mode(mode).parquet(str(out / "scores"))
        df.where("vector IS NOT NULL").select("teacher_id", "example_id", "vector").write.mode(mode).parquet(str(out / "embeddings"))
    finally:
        df.unpersist()


def _first_line(e: BaseException) -> str:
    return next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)


def to_arrow(df: DataFrame) -> pa.Table:
    """A Spark DataFrame as a ``pyarrow.Table`` (through Arrow, no pandas)."""
    return df.toArrow()


__all__ = [
    "Column",
    "SparkExecutor",
    "SparkLabelModel",
    "SparkView",
    "contract",
    "install_views",
    "label_model",
    "local_session",
    "register_tables",
    "run_onnx_teacher",
    "spark_views",
    "to_arrow",
    "to_spark_sql",
    "write_label_model",
    "write_outputs",
]
