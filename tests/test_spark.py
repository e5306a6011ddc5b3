"""kdstore on a local Spark: the same views, label model and teachers give DuckDB's answers.

One Spark session for the whole module (starting one costs ~7 s); the store is small.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow.compute as pc
import pytest

import kdstore
from kdstore import spark as ks
from kdstore.parquet_io import kd_tables
from tests import smallstore
from tests.frames import assert_same_rows

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = [
    pytest.mark.spark,
    # pyspark 4.3 warns once that pandas >= 3 is not fully supported; kdstore never goes through pandas.
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
]

#: Tiny tables, many short queries: interpreted expressions and a JVM that does not spend the test's
#: CPU on optimising compilers (measured on the shared 2-core box: setup 2-3x faster, queries ~2x).
SMALL_DATA_CONF = {
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
}
#: Views with no rows on the small store (none yet; a view listed here is still compared).
EMPTY_ON_SMALL_STORE: set[str] = set()
VIEWS = [name for name, _ in ks._view_asts()]


def test_import_kdstore_does_not_import_pyspark() -> None:
    code = "import sys, kdstore, kdstore.cli, kdstore.parquet_io, kdstore.spark; print('pyspark' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert out.stdout.strip() == "False"


def test_sql_folder_has_views() -> None:
    """The parametrised comparison below covers every view of sql/; there must be views to cover."""
    assert len(VIEWS) >= 5, VIEWS


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    session = ks.local_session(cores=2, driver_memory="1g", shuffle_partitions=1, conf=SMALL_DATA_CONF)
    yield session
    session.stop()


def build_small(store: kdstore.Store) -> None:
    """The small store, plus a label no teacher has and a min_recall only some labels' teachers
    reach: labels_without_expert gets a row for two of its reasons (with every label covered it is
    empty and would test nothing)."""
    smallstore.build(store, n=200)
    store.add_labels(["orphan"])
    store.settings.update(min_recall=0.81)


@pytest.fixture(scope="module")
def duck(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[kdstore.Store, Path]]:
    """The small store with its views installed in DuckDB, and its Parquet export."""
    with kdstore.connect() as store:
        build_small(store)
        store.fit_label_model(model="one_coin")  # so kd.label_model_posteriors has rows
        for name, _ in ks._view_asts():
            from kdstore.store.schema import sql_dir

            store.run((sql_dir() / f"{name}.sql").read_text())
        folder = tmp_path_factory.mktemp("spark") / "kd"
        store.export_parquet(folder)
        yield store, folder


@pytest.fixture(scope="module")
def installed(spark: SparkSession, duck: tuple[kdstore.Store, Path]) -> dict[str, str]:
    """The store's tables registered on Spark; views are installed by the tests, one at a time."""
    return ks.register_tables(spark, duck[1], cache=True)


@pytest.mark.parametrize("view", VIEWS)
def test_view_equals_duckdb(spark: SparkSession, duck: tuple[kdstore.Store, Path], installed: dict[str, str], view: str) -> None:
    # install_views(views=[v]) installs v and what it reads, so each view passes or fails on its own.
    name = ks.install_views(spark, views=[view])[-1]
    expected = duck[0].query(f"SELECT * FROM kd.{view}")
    got = ks.to_arrow(spark.table(name))
    assert expected.num_rows > 0 or view in EMPTY_ON_SMALL_STORE, f"{view} is empty on the test store: it tests nothing"
    assert_same_rows(expected, got, tol=1e-9, what=view)


def test_outputs_derived_from_scores_equal_duckdb(spark: SparkSession, duck: tuple[kdstore.Store, Path]) -> None:
    """Without a materialised ``outputs`` folder, the posexplode twin of kd.outputs gives the same rows."""
    folder = duck[1]
    names = ks.register_tables(
        spark, {t: folder / t for t in ("labels", "examples", "gold", "teachers", "teacher_labels", "scores")},
        prefix="kdw_",
    )
    assert set(names) == set(ks.contract())  # absent optional tables are registered empty
    assert_same_rows(duck[0].query("SELECT * FROM kd.outputs"), ks.to_arrow(spark.table(names["outputs"])), what="outputs")
    # The materialised export of the same view agrees too.
    assert_same_rows(duck[0].query("SELECT * FROM kd.outputs"), ks.to_arrow(spark.read.parquet(str(folder / "outputs"))))
    assert spark.table(names["trust"]).count() == 0
    settings = dict(spark.table(names["settings"]).select("name", "value").collect())
    assert settings["threshold"] == 0.5  # no settings given: the defaults


def test_register_conforms_and_validates(spark: SparkSession, duck: tuple[kdstore.Store, Path]) -> None:
    folder = duck[1]
    base: dict[str, Any] = {t: folder / t for t in ("labels", "examples", "gold", "teachers", "teacher_labels", "outputs", "settings")}
    # A warehouse table with wider ints, a double score and an extra column is conformed.
    wide = spark.read.parquet(str(folder / "outputs")).selectExpr(
        "CAST(teacher_id AS BIGINT) AS teacher_id", "example_id", "CAST(label_id AS BIGINT) AS label_id",
        "CAST(score AS DOUBLE) AS score", "'x' AS note")
    names = ks.register_tables(spark, {**base, "outputs": wide}, prefix="kdc_")
    assert spark.table(names["outputs"]).schema.simpleString() == (
        "struct<teacher_id:int,example_id:bigint,label_id:int,score:float>")
    settings = dict(spark.table(names["settings"]).select("name", "value").collect())
    assert settings["threshold"] == 0.55 and settings["z_threshold"] == 2.0
    with pytest.raises(kdstore.SchemaError, match="required kd table 'gold' is missing"):
        ks.register_tables(spark, {k: v for k, v in base.items() if k != "gold"}, prefix="kdx_")
    bad = wide.withColumn("score", wide.score.cast("string"))
    with pytest.raises(kdstore.SchemaError, match="column 'score': type string does not match the contract's float"):
        ks.register_tables(spark, {**base, "outputs": bad}, prefix="kdx_")
    with pytest.raises(kdstore.SchemaError, match="column 'label_id': missing column"):
        ks.register_tables(spark, {**base, "outputs": wide.drop("label_id")}, prefix="kdx_")
    with pytest.raises(kdstore.SchemaError, match="unknown kd table 'nope'"):
        ks.register_tables(spark, {**base, "nope": wide}, prefix="kdx_")


def test_permanent_views_in_a_database(spark: SparkSession, duck: tuple[kdstore.Store, Path]) -> None:
    store, folder = duck
    names = ks.register_tables(spark, folder, database="kdperm")
    assert names["labels"] == "`kdperm`.`labels`"
    views = ks.install_views(spark, permanent=True, database="kdperm", views=VIEWS[:1])
    assert views[-1] == f"`kdperm`.`{VIEWS[0]}`"
    assert spark.catalog.getTable(f"kdperm.{VIEWS[0]}").tableType == "VIEW"
    assert_same_rows(store.query(f"SELECT * FROM kd.{VIEWS[0]}"), ks.to_arrow(spark.table(f"kdperm.{VIEWS[0]}")))


def test_untranslatable_sql_is_refused() -> None:
    import sqlglot

    tree = sqlglot.parse_one("SELECT k, first(v ORDER BY w DESC) AS v FROM kd.t GROUP BY k", read="duckdb")
    with pytest.raises(kdstore.TranspileError, match="ordered aggregate FIRST"):
        ks._spark_fixes(tree, "demo")
    fixed = ks._spark_fixes(sqlglot.parse_one("SELECT 2.0 * a / b FROM kd.t", read="duckdb"), "demo")
    assert fixed.sql(dialect="spark") == "SELECT CAST(2.0 AS DOUBLE) * a / b FROM kd.t"




# ---------------------------------------------------------------------------------------------
# ONNX teachers on Spark
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def teachers_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[kdstore.Store, Path, list[Any]]]:
    """A store whose ONNX teachers ran locally (run_teachers), exported with its feature sources."""
    from kdstore.teachers import OnnxTeacher
    from tests import onnx_models as om

    tmp = tmp_path_factory.mktemp("onnx")
    x = np.random.default_rng(7).normal(size=(300, 4)).astype(np.float32)
    with kdstore.connect() as store:
        om.populate(store, x)
        om.populate(store, x, name="flist", list_column=True)
        mlp = om.mlp(hidden=(8, 6))
        mlp_path = om.save(mlp.model, tmp / "mlp.onnx")
        lr, _, _ = om.logistic_regression(4)
        lr_path = om.save(lr, tmp / "lr.onnx")
        teachers = [
            OnnxTeacher(mlp_path, name="clf", labels=["a", "b", "c"], embedding="hidden1"),
            OnnxTeacher(mlp_path, name="h2", output_type="embedding", output="hidden2"),
            OnnxTeacher(lr_path, name="lr", labels=["b"], output_type="binary"),
        ]
        store.run_teachers(teachers, features="f")
        store.run_teachers([OnnxTeacher(mlp_path, name="clf_list", labels=["a", "b", "c"])], features="flist")
        teachers.append(OnnxTeacher(mlp_path, name="clf_list", labels=["a", "b", "c"]))
        folder = tmp / "kd"
        store.export_parquet(folder)
        yield store, folder, teachers


def test_onnx_teachers_on_spark_equal_local_run(spark: SparkSession, teachers_run: tuple[kdstore.Store, Path, list[Any]],
                                               tmp_path: Path) -> None:
    store, folder, teachers = teachers_run
    ids = {n: i for i, n in store.execute("SELECT teacher_id, name FROM kd.teachers").fetchall()}
    feats = {name: spark.read.parquet(str(folder / "features" / name)) for name in ("f", "flist")}
    frames = [ks.run_onnx_teacher(spark, t, feats["flist" if t.name == "clf_list" else "f"], teacher_id=ids[t.name])
              for t in teachers]
    result = frames[0]
    for f in frames[1:]:
        result = result.unionByName(f)
    ks.write_outputs(result, tmp_path / "out")
    # Spark's Parquet in the store contract, imported into a copy of the store without these outputs.
    with kdstore.connect() as home:
        home.import_parquet(folder, tables=[t for t in kd_tables(home) if t not in ("scores", "embeddings")])
        home.import_parquet(tmp_path / "out", tables=["scores", "embeddings"], mode="upsert")
        for table in ("scores", "embeddings"):
            col = "scores" if table == "scores" else "vector"
            sql = f"SELECT teacher_id, example_id, {col} FROM kd.{table} ORDER BY 1, 2"
            local, remote = store.query(sql), home.query(sql)
            assert remote.num_rows == local.num_rows > 0, table
            assert remote.column(0).equals(local.column(0)) and remote.column(1).equals(local.column(1))
            assert pc.list_value_length(remote.column(2)).equals(pc.list_value_length(local.column(2)))
            np.testing.assert_allclose(pc.list_flatten(remote.column(2)).to_numpy(),
                                       pc.list_flatten(local.column(2)).to_numpy(), rtol=1e-6, atol=1e-7, err_msg=table)


def test_onnx_binding_errors_are_raised_before_any_job(spark: SparkSession,
                                                     teachers_run: tuple[kdstore.Store, Path, list[Any]]) -> None:
    _, folder, teachers = teachers_run
    feats = spark.read.parquet(str(folder / "features" / "f"))
    with pytest.raises(kdstore.TeacherError, match="needs 4 values per example"):
        ks.run_onnx_teacher(spark, teachers[0], feats.drop("c3"), teacher_id=0)
    with pytest.raises(kdstore.SchemaError, match="no example_id column"):
        ks.run_onnx_teacher(spark, teachers[0], feats.drop("example_id"), teacher_id=0)


# ---------------------------------------------------------------------------------------------
# label-free EM on Spark
# ---------------------------------------------------------------------------------------------
def _assert_spark_fit_equals(store: kdstore.Store, local: Any, fit: Any, tmp_path: Path) -> None:
    """Spark's fit (written as Parquet, imported into ``store``) equals ``local``, DuckDB's fit in ``store``."""
    got = fit.result
    np.testing.assert_allclose(got.log_likelihood, local.log_likelihood, rtol=1e-12)
    ks.write_label_model(fit, tmp_path / "lm")
    store.import_parquet(tmp_path / "lm", mode="append")
    for table in ("label_model_priors", "label_model_accuracy", "label_model_fit_posteriors"):
        def rows(run: int, table: str = table) -> Any:
            return store.query(f"SELECT * EXCLUDE (run_id) FROM kd.{table} WHERE run_id = {run}")
        assert rows(local.run_id).num_rows > 0
        assert_same_rows(rows(local.run_id), rows(got.run_id), tol=1e-9, what=table)


@pytest.mark.slow
@pytest.mark.parametrize(("model", "max_iter", "tol"), [("one_coin", None, 1e-2), ("class_conditional", 2, None)])
def test_label_model_on_spark_equals_duckdb(spark: SparkSession, installed: dict[str, str], tmp_path: Path,
                                            model: str, max_iter: int | None, tol: float | None) -> None:
    """The one EM driver (labelmodel.fit_em) on both engines. The one-coin fit runs to convergence
    (tol 1e-2: 5 iterations here, each ~15 Spark jobs); the class-conditional one (observed abstains,
    the longer statement set) for two iterations. Spark's fit, imported into a copy of the store,
    equals the fit DuckDB made there. The class-conditional fit runs the wide steps (generated
    statements, ``Executor.run_sql``)."""
    import json

    with kdstore.connect() as store:
        build_small(store)  # the store registered on Spark (`installed`)
        local = store.fit_label_model(model=model, max_iter=max_iter, tol=tol)
        # hard class-conditional votes take the wide steps (kdstore/labelmodel_wide.py) on both engines
        wide = store.one("SELECT COUNT(*) FROM duckdb_tables() WHERE table_name = 'kd_lm_wp'")
        assert wide == ((1,) if model == "class_conditional" else (0,))
        fit = ks.label_model(spark, model=model, max_iter=max_iter, tol=tol, run_id=local.run_id + 1)
        got = fit.result
        assert got.run_id == local.run_id + 1
        assert (got.iterations, got.converged, got.n_examples, got.n_teachers) == (
            local.iterations, local.converged, local.n_examples, local.n_teachers)
        assert local.converged == (max_iter is None) and local.n_examples > 0
        _assert_spark_fit_equals(store, local, fit, tmp_path)
        lm_runs = store.query("SELECT * EXCLUDE (run_id, created_at, log_likelihood) FROM kd.label_model_runs "
                              "ORDER BY run_id").to_pylist()
        assert len(lm_runs) == 2 and lm_runs[0] == lm_runs[1]
        runs = store.query("SELECT run_id, params, metrics FROM kd.runs WHERE kind = 'label_model' ORDER BY run_id").to_pylist()
        assert [r["run_id"] for r in runs] == [local.run_id, got.run_id]
        assert json.loads(runs[0]["params"]) == json.loads(runs[1]["params"])
        m0, m1 = (json.loads(r["metrics"]) for r in runs)
        assert (m0["iterations"], m0["converged"]) == (m1["iterations"], m1["converged"])
        np.testing.assert_allclose(m1["log_likelihood"], m0["log_likelihood"], rtol=1e-12)


@pytest.mark.slow
def test_wide_label_model_with_many_keys_on_spark_equals_duckdb(spark: SparkSession, tmp_path: Path) -> None:
    """32 vote teachers of 30 classes: the wide EM packs each example's votes into 3 BIGINT keys (12 base-32
    digits each, the top digit in use). Spark's generated statements (BIGINT arithmetic, the keys decoded
    back into 32 vote columns) give DuckDB's fit."""
    votes, k = smallstore.many_key_votes()
    options: dict[str, Any] = {"model": "class_conditional", "abstain": "observe", "max_iter": 3}
    with smallstore.votes_store(votes, n_classes=k) as store:
        local = store.fit_label_model(**options)
        keys = [c for (c,) in store.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = 'kd_lm_wv' "
                                            "AND column_name LIKE 'key%' ORDER BY ALL").fetchall()]
        assert keys == ["key0", "key1", "key2"]
        store.export_parquet(tmp_path / "kd")
        ks.register_tables(spark, tmp_path / "kd", prefix="kdw_")
        fit = ks.label_model(spark, prefix="kdw_", run_id=local.run_id + 1, **options)
        got = fit.result
        assert (got.iterations, got.n_examples, got.n_teachers) == (local.iterations, 40, 32)
        _assert_spark_fit_equals(store, local, fit, tmp_path)


def test_label_model_on_spark_checks_options(spark: SparkSession, installed: dict[str, str]) -> None:
    """The driver's checks are the same on Spark (they are the same code)."""
    with pytest.raises(kdstore.SchemaError, match="one-coin model needs abstain='ignore'"):
        ks.label_model(spark, model="one_coin", abstain="observe")
    with pytest.raises(kdstore.SchemaError, match="unknown teacher 'nope'"):
        ks.label_model(spark, teachers=["nope"])


@pytest.mark.slow
def test_grouped_one_coin_em_on_spark(spark: SparkSession, tmp_path: Path) -> None:
    """Vote teachers with every label: the driver picks the grouped one-coin steps (``*_oc_*.sql``,
    bit masks of voters); Spark runs those too and gets DuckDB's fit."""
    import pyarrow as pa

    from kdstore import labelmodel as lm

    rng = np.random.default_rng(3)
    truth = rng.integers(0, 3, 60)
    votes = {f"v{j}": np.where(rng.random(60) < 0.2, -1, np.where(rng.random(60) < 0.7 - 0.1 * j, truth,
                                                                   rng.integers(0, 3, 60))) for j in range(4)}
    with kdstore.connect() as store:
        store.add_labels(["a", "b", "c"])
        store.add_examples(pa.table({"example_id": np.arange(60), "split": ["train"] * 60}))
        store.ingest_votes(pa.table({"example_id": np.arange(60), **votes}))
        store.export_parquet(tmp_path / "kd")
        ks.register_tables(spark, tmp_path / "kd", prefix="kdg_")
        local = store.fit_label_model(model="one_coin", tol=1e-2)
        # the grouped path is what ran (the fit's temp tables are still there to ask)
        assert lm._grouped_ok(lm._Runner(store), "one_coin", "hard", 3, 60, 1.0, 1.0)
        fit = ks.label_model(spark, prefix="kdg_", model="one_coin", tol=1e-2, run_id=local.run_id + 1)
        assert (fit.result.iterations, fit.result.converged) == (local.iterations, local.converged)
        np.testing.assert_allclose(fit.result.log_likelihood, local.log_likelihood, rtol=1e-12)
        ks.write_label_model(fit, tmp_path / "lm")
        store.import_parquet(tmp_path / "lm", mode="append")
        for table in ("label_model_accuracy", "label_model_fit_posteriors"):
            def rows(run: int, table: str = table) -> Any:
                return store.query(f"SELECT * EXCLUDE (run_id) FROM kd.{table} WHERE run_id = {run}")
            assert rows(local.run_id).num_rows > 0
            assert_same_rows(rows(local.run_id), rows(fit.result.run_id), tol=1e-9, what=table)
