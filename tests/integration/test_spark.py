"""The Spark engine on a real local session (`local[2]`): the same feature table, scores and uplift fits
as DuckDB and the single process, and a failure that says so and changes nothing. The parity assertions
are shared with the standalone cluster's tests (Spark Connect), test_spark_cluster.py."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pyspark
import pytest

from core.contract import EVENT_SCHEMA
from core.parallel import Workers, side_by_side
from core.settings import Settings, SparkSettings
from core.spark import SparkFailure, session
from features.cutoffs import cutoff_instant
from features.dialect import to_spark
from features.feast_repo import feature_store, historical_features
from features.rollups import TABLE as ROLLUPS
from features.run import FeatureBuild, build_and_publish
from features.stored import TABLE as FEATURES
from ingest.run import ingest_path
from serving.batch import score_store
from simulate import SimConfig, simulate_to
from store.delta import Store
from tests.support.served import World
from tests.support.worlds import UpliftWorld
from training.causal.run import fit_uplift
from training.config import UpliftConfig

#: small data: a few shuffle partitions, and no whole-stage code generation (compiling it costs more
#: than running a few thousand rows); and a limit on the results the driver collects that the uplift
#: fits pass only if a task sends back its result without its inputs (the design matrix: 13.5 MB a task)
SPARK = SparkSettings(
    conf={
        "spark.sql.shuffle.partitions": "2",
        "spark.sql.codegen.wholeStage": "false",
        "spark.driver.maxResultSize": "64m",
    }
)


def _spark(settings: Settings) -> Settings:
    return settings.model_copy(update={"engine": "spark", "spark": SPARK})


@pytest.fixture(scope="module")
def spark_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Settings]]:
    root = tmp_path_factory.mktemp("spark")
    simulate_to(SimConfig(accounts=80, days=150, seed=5, start=date(2025, 1, 1)), root / "sim")
    store = Store(root / "store")
    ingest_path(store, root / "sim")
    session(SPARK)
    yield store, Settings(home=store.root)


def assert_same_table(duck: pa.Table, spark: pa.Table) -> None:
    """Counts, flags and text exactly; floats to 1e-9 relative (1e-12 absolute where a sum of
    floats cancels to zero, which summing in another order leaves as rounding dust)."""
    assert spark.schema == duck.schema
    assert spark.num_rows == duck.num_rows
    for name in duck.column_names:
        ours, theirs = duck[name].to_pylist(), spark[name].to_pylist()
        if not pa.types.is_floating(duck.schema.field(name).type):
            assert theirs == ours, name
            continue
        for a, b in zip(ours, theirs, strict=True):
            assert (a is None) == (b is None), name
            if a is not None:
                assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b)), (
                    name,
                    a,
                    b,
                )


@pytest.fixture(scope="module")
def spark_built(spark_store: tuple[Store, Settings]) -> tuple[FeatureBuild, FeatureBuild]:
    """The store's feature table built by DuckDB, then by Spark from every day's events (`full`: rolling
    every day up itself rather than reading the roll-ups DuckDB just stored)."""
    store, settings = spark_store
    duck = build_and_publish(store, settings, None, None, online=False)
    return duck, build_and_publish(store, _spark(settings), None, None, online=False, full=True)


def test_spark_builds_the_feature_table_duckdb_builds(
    spark_store: tuple[Store, Settings], spark_built: tuple[FeatureBuild, FeatureBuild]
) -> None:
    store, (duck, on_spark) = spark_store[0], spark_built
    assert (on_spark.version, on_spark.read, on_spark.cutoffs) == (duck.version + 1, duck.read, duck.cutoffs)
    tables = [store.dataset(FEATURES, v).to_table() for v in (duck.version, on_spark.version)]
    assert tables[0].num_rows > 200
    assert_same_table(*tables)
    # the executors wrote the roll-ups DuckDB wrote before, moved beside delta-rs's in each day's folder
    rollups = store.delta(ROLLUPS)
    assert rollups is not None and all("/spark-" in uri for uri in rollups.file_uris())
    assert {Path(uri).parent.parent for uri in rollups.file_uris()} == {Path(store.uri(ROLLUPS))}
    assert_same_table(*(_sorted_rollups(store, v) for v in (rollups.version() - 1, rollups.version())))


def test_a_spark_build_rolls_up_a_changed_day_alone(
    spark_store: tuple[Store, Settings], spark_built: tuple[FeatureBuild, FeatureBuild], tmp_path: Path
) -> None:
    """After the full Spark build, a late event in the last cutoff's month: the executors roll up its day
    alone and replace that day's roll-ups, every other day's files kept; DuckDB, building every cutoff
    over those roll-ups, builds the table Spark did."""
    store, settings = Store(tmp_path / "store"), spark_store[1]
    shutil.copytree(spark_store[0].root / "lake", store.root / "lake")
    before, cutoffs = store.delta(ROLLUPS), spark_built[1].cutoffs
    assert before is not None
    month = (ds.field("ts") > cutoff_instant(cutoffs[-2])) & (ds.field("ts") <= cutoff_instant(cutoffs[-1]))
    late = store.read("events", EVENT_SCHEMA, scan=month).slice(0, 1)
    (tmp_path / "late" / "events").mkdir(parents=True)
    pq.write_table(
        late.set_column(0, "event_id", pa.array(["late-1"])), tmp_path / "late" / "events" / "0.parquet"
    )
    ingest_path(store, tmp_path / "late")
    built = build_and_publish(store, _spark(settings), None, None, online=False)
    assert built.days_rolled_up == 1 and built.cutoffs_computed == cutoffs[-1:]
    after = store.delta(ROLLUPS)
    assert after is not None and after.version() == before.version() + 1
    day = f"event_date={late['ts'][0].as_py().date().isoformat()}/"
    assert {u for u in before.file_uris() if day not in u} == {u for u in after.file_uris() if day not in u}
    assert len(set(after.file_uris()) - set(before.file_uris())) == 1
    again = build_and_publish(store, settings, None, None, online=False)
    assert again.days_rolled_up == 0 and again.cutoffs_computed == cutoffs
    assert_same_table(*(store.dataset(FEATURES, v).to_table() for v in (built.version, again.version)))


def _sorted_rollups(store: Store, version: int) -> pa.Table:
    table = store.dataset(ROLLUPS, version).to_table()
    keys = [f.name for f in table.schema if not pa.types.is_floating(f.type)]
    return table.select(sorted(table.column_names)).sort_by([(k, "ascending") for k in keys])


def test_decimal_literals_divide_as_doubles_on_spark() -> None:
    text = to_spark("SELECT x / 7.0 AS y FROM t WHERE d > $grace", {"grace": 7})
    assert "CAST(7.0 AS DOUBLE)" in text and "> 7" in text


def test_feast_reads_training_sets_through_spark(spark_store: tuple[Store, Settings]) -> None:
    """Feast's Spark offline store, configured in feature_store.yaml, answers the point-in-time join
    with the rows of the latest cutoff before each time."""
    store, settings = spark_store
    chosen = settings.model_copy(update={"offline_store": "spark", "spark": SPARK})
    built = build_and_publish(store, chosen, None, None, online=True)
    assert "type: spark" in (store.feast_dir / "feature_store.yaml").read_text()
    at = pd.Timestamp("2025-05-15", tz="UTC")
    table = store.dataset(FEATURES, built.version).to_table().to_pandas()
    latest = table[table["cutoff"] == table.loc[table["cutoff"] < at, "cutoff"].max()].head(5)
    entities = pd.DataFrame({"account_id": latest["account_id"].tolist(), "event_timestamp": at})
    joined = historical_features(feature_store(store, chosen), entities, ["sessions_30d", "tier"])
    assert joined["event_timestamp"].dtype == "datetime64[us, UTC]"
    assert joined["sessions_30d"].tolist() == latest["sessions_30d"].astype(float).tolist()
    assert joined["tier"].tolist() == latest["tier"].tolist()


def assert_scores_as_the_single_process_batch(world: World, spark: SparkSettings, tmp_path: Path) -> None:
    """Scoring on the Spark session `spark` describes writes the single-process batch's scores and reasons
    (the cluster's tests run it through Spark Connect)."""
    chosen = world.settings.model_copy(update={"engine": "spark", "spark": spark})
    local = score_store(world.store, world.settings, world.latest, tmp_path / "local.parquet")
    on_spark = score_store(world.store, chosen, world.latest, tmp_path / "spark.parquet")
    assert on_spark.rows == local.rows == len(world.active)
    assert on_spark.scores_version == local.scores_version + 1
    ours, theirs = (
        pq.read_table(p).to_pandas().sort_values("account_id").reset_index(drop=True)
        for p in (local.out, on_spark.out)
    )
    pd.testing.assert_frame_equal(ours, theirs, check_exact=False, rtol=1e-12)
    assert (theirs["reasons"] == ours["reasons"]).all() and theirs["reasons"].str.contains("text").all()


def assert_uplift_fits_as_the_local_ones(world: UpliftWorld, spark: SparkSettings) -> None:
    """The uplift fits on the executors of `spark`'s session equal the local sequential ones exactly."""
    config = UpliftConfig(truth_dir=world.simulation, min_effective_treated=20).resolved(world.settings)
    on_spark = fit_uplift(world.design, config, "uplift", workers=Workers(2, spark))
    local = world.result.model
    assert on_spark.average.keys() == local.average.keys() and len(local.average) == 24
    for key, effect in local.average.items():
        assert on_spark.average[key] == effect, key
    for key, share in local.relative.items():
        assert on_spark.relative[key] == share, key


def test_spark_scores_and_words_reasons_as_the_single_process_batch(
    served_world: World, tmp_path: Path
) -> None:
    assert_scores_as_the_single_process_batch(served_world, SPARK, tmp_path)


def test_uplift_fits_on_spark_executors_equal_the_local_ones(uplift_world: UpliftWorld) -> None:
    assert_uplift_fits_as_the_local_ones(uplift_world, SPARK)


def test_a_lost_executor_is_a_clear_error() -> None:
    with pytest.raises(
        SparkFailure, match=r"Spark failed while running 2 fits on Spark's executors: .*Python worker exited"
    ):
        list(side_by_side([(abs, (-1,)), (os._exit, (3,))], Workers(2, SPARK)))


def test_a_failed_spark_build_leaves_the_feature_table_as_it_was(
    spark_store: tuple[Store, Settings], tmp_path: Path
) -> None:
    store, _ = spark_store
    copy = Store(tmp_path / "store")
    shutil.copytree(store.root, copy.root)
    before = copy.version(FEATURES)
    next(p for p in (copy.root / "lake" / "events").rglob("*.parquet")).unlink()
    with pytest.raises(SparkFailure, match=r"Spark failed while .*Path does not exist.*nothing was written"):
        # full: an incremental build would read the stored roll-ups, not the vanished events file
        build_and_publish(copy, _spark(Settings(home=copy.root)), None, None, online=False, full=True)
    assert copy.version(FEATURES) == before


def test_without_java_the_cli_says_what_spark_needs(spark_store: tuple[Store, Settings]) -> None:
    store, _ = spark_store
    before = store.version(FEATURES)
    env = {**os.environ, "JAVA_HOME": "/nonexistent", "PATH": os.path.dirname(sys.executable)}
    command = [sys.executable, "-m", "retain", "features", "build", "--no-online", "--engine", "spark"]
    done = subprocess.run([*command, "--store", str(store.root)], env=env, capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert "Spark failed while starting a Spark session" in done.stderr
    assert "openjdk-17-jre-headless" in done.stderr
    assert store.version(FEATURES) == before


def test_spark_submit_runs_a_command_on_the_session_it_launched(served_world: World, tmp_path: Path) -> None:
    """`retain score` through spark-submit: the accounts scored on the executors of the session it launched
    (a scoring run, the lightest command that runs on Spark: a feature build on a cold JVM takes a minute)."""
    entry = subprocess.run(
        [sys.executable, "-m", "retain.submit", "--path"], capture_output=True, text=True, check=True
    ).stdout.strip()
    submit = Path(sys.executable).parent / "spark-submit"
    out = tmp_path / "scores.parquet"
    settings = [f"--conf={key}={value}" for key, value in SPARK.conf.items()]
    command = [str(submit), "--master", "local[2]", *settings, entry, "score"]
    where = ["--store", str(served_world.store.root), "--cutoff", served_world.latest.isoformat()]
    # spark-submit finds Spark and runs the driver with `python`, which need not be this venv's
    home = {"SPARK_HOME": str(Path(pyspark.__file__).parent), "PYSPARK_PYTHON": sys.executable}
    done = subprocess.run(
        [*command, *where, "--out", str(out), "--json"],
        env={**os.environ, **home},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    # spark-submit merges the driver's stderr (the stage line) into its stdout, ahead of the JSON
    result = json.loads(done.stdout[done.stdout.index("{\n") :])
    assert result["rows"] == pq.read_metadata(out).num_rows == len(served_world.active)


def test_every_spark_path_uses_the_dataframe_api_only() -> None:
    """Spark Connect has no SparkContext: no Spark module may reach for it, an RDD or a broadcast."""
    root = Path(__file__).resolve().parents[2]
    for module in ("core/spark.py", "core/parallel.py", "serving/batch_spark.py", "features/spark_build.py"):
        code = (root / module).read_text()
        for word in (".sparkContext", ".broadcast(", ".parallelize(", ".rdd", "setLogLevel"):
            assert word not in code, (module, word)


def test_a_remote_must_be_a_spark_connect_url() -> None:
    assert SparkSettings(remote="sc://127.0.0.1:15002").remote == "sc://127.0.0.1:15002"
    with pytest.raises(ValueError, match="remote must be a Spark Connect URL"):
        SparkSettings(remote="spark://127.0.0.1:7077")
