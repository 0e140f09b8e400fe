"""History stays on Spark's executors: with `--engine spark`, ingest's duplicate check, the feature build's
roll-ups (of events adopted in place from a catalog table) and the uplift design run on a driver that may
collect only `LIMIT` (`spark.driver.maxResultSize`), less than the store's event ids alone, and store and
build what DuckDB does.

The module starts its own classic session, since the limit is fixed when a session starts: another
module's session is stopped first, and this one after (the next module starts its own again).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from core.contract import EVENT_SCHEMA
from core.settings import Settings, SparkSettings
from core.spark import SparkFailure, read_delta, session, spark_errors
from features.rollups import TABLE as ROLLUPS
from features.run import build_and_publish
from features.stored import TABLE as FEATURES
from ingest.column_mapping import adopted_events
from ingest.run import ingest_path
from simulate import SimConfig, simulate_to
from store.delta import Store
from tests.integration.test_spark import assert_same_table
from training.causal.design import Design, store_design

pytestmark = pytest.mark.slow

#: what the driver may collect per action: above the design's rows (about 0.5 MB here), below the stored
#: event ids (about 2.5 MB: 115,000 events)
LIMIT = "2m"
SPARK = SparkSettings(
    conf={
        "spark.sql.shuffle.partitions": "2",
        "spark.sql.codegen.wholeStage": "false",
        "spark.driver.maxResultSize": LIMIT,
    }
)
CONFIG = SimConfig(accounts=200, days=240, seed=9, start=date(2025, 1, 1))
#: a long horizon leaves a few weekly cutoffs: the design stays small while the events are many
HORIZON_DAYS = 180
#: the adopted events' own names for two contract fields
RENAMED = {"event_id": "id", "ts": "occurred_at"}
#: the increment re-sends the events of the last week, half of them under new ids
WEEK = CONFIG.start + timedelta(days=CONFIG.days - 7)


@pytest.fixture(scope="module")
def limited() -> Iterator[SparkSettings]:
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()
    started = session(SPARK)
    yield SPARK
    started.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Store:
    root = tmp_path_factory.mktemp("scale")
    simulate_to(CONFIG, root / "sim")
    store = Store(root / "store")
    ingest_path(store, root / "sim")
    return store


def _copy(store: Store, to: Path) -> Store:
    shutil.copytree(store.root, to)
    return Store(to)


def test_the_driver_cannot_collect_the_stored_event_ids(limited: SparkSettings, world: Store) -> None:
    """What the old paths brought to the driver (every stored id, or every event) fails under the limit."""
    found = world.delta("events")
    assert found is not None
    ids = read_delta(
        session(limited), found, world.uri("events"), pa.schema([("event_id", pa.string())]), limited
    )
    with pytest.raises(SparkFailure) as failed, spark_errors("collecting every stored event id"):
        ids.toArrow()
    assert "maxResultSize" in str(failed.value.__cause__)


def _increment(store: Store, path: Path) -> tuple[int, int]:
    """The last week's events again, then half of them under new ids, twice (the input's first copy of an
    id wins): a file to ingest; its rows, and how many of its ids are new."""
    week = store.read("events", EVENT_SCHEMA, scan=ds.field("event_date") >= WEEK)
    half = week.slice(0, week.num_rows // 2)
    at, field = half.schema.get_field_index, half.schema.field
    renamed = pc.binary_join_element_wise(half["event_id"], "-again", "")
    fresh = half.set_column(at("event_id"), field("event_id"), renamed)
    later = fresh.set_column(at("user_id"), field("user_id"), pa.nulls(half.num_rows, pa.string()))
    pq.write_table(pa.concat_tables([week, fresh, later]), path)
    return week.num_rows + 2 * half.num_rows, half.num_rows


def test_spark_ingest_checks_duplicates_on_the_executors_as_duckdb_does(
    limited: SparkSettings, world: Store, tmp_path: Path
) -> None:
    rows, fresh = _increment(world, tmp_path / "increment.parquet")
    on_spark, on_duckdb = _copy(world, tmp_path / "spark"), _copy(world, tmp_path / "duckdb")
    ingested = ingest_path(on_spark, tmp_path / "increment.parquet", spark=limited)
    assert ingested.accepted["events"] == fresh > 1_000
    assert ingested.duplicates["events"] == rows - fresh
    ingest_path(on_duckdb, tmp_path / "increment.parquet")
    ours, theirs = (
        s.read("events", EVENT_SCHEMA, scan=ds.field("event_date") >= WEEK).sort_by("event_id")
        for s in (on_duckdb, on_spark)
    )
    assert theirs.equals(ours)
    again = ingest_path(on_spark, tmp_path / "increment.parquet", spark=limited)
    assert again.accepted["events"] == 0 and on_spark.version("events") == ingested.versions["events"]


def test_a_failed_spark_lookup_writes_nothing(limited: SparkSettings, world: Store, tmp_path: Path) -> None:
    _increment(world, tmp_path / "increment.parquet")
    store = _copy(world, tmp_path / "store")
    before = store.version("events")
    next((store.root / "lake" / "events" / f"event_date={WEEK}").glob("*.parquet")).unlink()
    with pytest.raises(SparkFailure, match=r"Spark failed while looking up the staged ids in .*events"):
        ingest_path(store, tmp_path / "increment.parquet", spark=limited)
    assert store.version("events") == before


def assert_same_design(duck: Design, spark: Design) -> None:
    """The rows' floats to 1e-9 relative (as the feature tables), everything else exactly; except that the
    health score is rounded to a tenth, so a score that sits on a half within rounding dust of the sums
    below it may round to the neighbouring tenth (and its band follow)."""
    health = ["health_score", "health_band"]
    pd.testing.assert_frame_equal(
        duck.rows.drop(columns=health),
        spark.rows.drop(columns=health),
        check_exact=False,
        rtol=1e-9,
        atol=1e-12,
    )
    apart = (duck.rows["health_score"] - spark.rows["health_score"]).abs()
    assert apart.max() <= 0.1 + 1e-9 and (apart > 1e-9).mean() < 0.01
    same = apart <= 1e-9
    assert (duck.rows.loc[same, "health_band"] == spark.rows.loc[same, "health_band"]).all()
    assert spark.actions.keys() == duck.actions.keys()
    for part in ("treated", "randomised", "known_propensity", "outcomes", "last_taken", "horizon_left"):
        ours, theirs = getattr(duck, part), getattr(spark, part)
        assert theirs.keys() == ours.keys(), part
        for key, values in ours.items():
            np.testing.assert_array_equal(theirs[key], values, err_msg=f"{part} {key}")
    np.testing.assert_array_equal(spark.holdout.held_out, duck.holdout.held_out)
    np.testing.assert_array_equal(spark.holdout.days_since_draw, duck.holdout.days_since_draw)


def test_the_uplift_design_on_spark_equals_duckdbs_under_the_limit(
    limited: SparkSettings, world: Store
) -> None:
    settings = Settings(home=world.root)
    duck = store_design(world, settings, HORIZON_DAYS)
    on_spark = store_design(
        world, settings.model_copy(update={"engine": "spark", "spark": limited}), HORIZON_DAYS
    )
    assert len(duck.rows) > 300 and duck.actions and duck.outcomes["churn"].any()
    assert_same_design(duck, on_spark)


def test_a_spark_build_of_an_adopted_catalog_table_keeps_its_rollups_on_the_executors(
    limited: SparkSettings, world: Store, tmp_path: Path
) -> None:
    """The events as a table of Spark's catalog, in its own column names, read in place: every day's
    roll-ups, more than the driver may collect, written by the executors into each day's folder at the
    table's top (as delta-rs lays its own out); the table DuckDB builds of the same files."""
    folder = tmp_path / "product_events"
    folder.mkdir()
    events = world.dataset("events").to_table().drop_columns(["event_date"])
    pq.write_table(
        events.rename_columns([RENAMED.get(c, c) for c in events.column_names]), folder / "0.parquet"
    )
    session(limited).sql(f"CREATE TABLE product_events USING parquet LOCATION '{folder}'")
    for name, source in (("catalog", "product_events"), ("files", str(folder))):
        mapping = tmp_path / f"{name}.yaml"
        mapping.write_text(f"events:\n  table: {source}\n  columns: {{event_id: id, ts: occurred_at}}\n")
        store = Store.at(tmp_path / name, tmp_path / name, adopted_events(mapping))
        for table in ("accounts", "interventions"):
            shutil.copytree(world.root / "lake" / table, store.root / "lake" / table)
        settings = Settings(home=store.root)
        engine = (
            settings.model_copy(update={"engine": "spark", "spark": limited})
            if name == "catalog"
            else settings
        )
        build_and_publish(store, engine, None, None, online=False)
        assert store.version("events") is None
    on_spark = Store(tmp_path / "catalog")
    rollups = on_spark.delta(ROLLUPS)
    assert rollups is not None and on_spark.dataset(ROLLUPS).to_table().nbytes > 2 * 1024**2
    assert {Path(uri).parent.parent for uri in rollups.file_uris()} == {Path(on_spark.uri(ROLLUPS))}
    assert not [p for p in Path(on_spark.uri(ROLLUPS)).iterdir() if p.name.startswith("spark-")]
    assert_same_table(*(Store(tmp_path / name).dataset(FEATURES).to_table() for name in ("files", "catalog")))
