"""An events table adopted in place (issue 54): a Delta or Parquet folder outside the store, in its own
column names and types, read through a column mapping rather than ingested, builds the feature table that
ingesting the same events builds, and incrementally as the adopted table grows."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from deltalake import write_deltalake
from typer.testing import CliRunner

from core.errors import RetainError
from core.settings import Settings, get_settings
from features.definitions import KEYS
from features.run import build_and_publish
from features.stored import TABLE as FEATURES
from ingest.column_mapping import adopted_events
from ingest.run import ingest_path
from retain.cli import app
from serving.cockpit.timeline import recent_events
from simulate import SimConfig, simulate_to
from store.delta import Store

CONFIG = SimConfig(accounts=40, days=120, seed=3, start=date(2025, 1, 1))
#: the adopted table's own names for the contract's fields
RENAMED = {"event_id": "id", "account_id": "customer", "ts": "occurred_at", "event_type": "kind"}
MAPPING = """\
events:
  table: {table}
  columns: {{event_id: id, account_id: customer, ts: occurred_at, event_type: kind}}
"""
#: the adopted table first holds the events before this day; the rest arrive later
SPLIT = date(2025, 4, 20)


@dataclass(frozen=True)
class World:
    simulation: Path
    ingested: Store
    root: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("adopted")
    simulate_to(CONFIG, root / "sim")
    ingested = Store(root / "ingested")
    ingest_path(ingested, root / "sim")
    build_and_publish(ingested, Settings(home=ingested.root), None, None, online=False)
    return World(root / "sim", ingested, root)


def their_events(world: World, before: date | None = None, since: date | None = None) -> pa.Table:
    """The simulated events as a lake might hold them: other column names, times without a zone."""
    events = ds.dataset(world.simulation / "events").to_table()
    ts = events["ts"]
    if before is not None:
        events = events.filter(pc.less(ts, pa.scalar(pd.Timestamp(before, tz="UTC"), ts.type)))
    if since is not None:
        events = events.filter(
            pc.greater_equal(events["ts"], pa.scalar(pd.Timestamp(since, tz="UTC"), ts.type))
        )
    events = events.set_column(
        events.schema.get_field_index("ts"), "ts", events["ts"].cast(pa.timestamp("us"))
    )
    return events.rename_columns([RENAMED.get(name, name) for name in events.column_names])


def adopting_store(world: World, name: str, table: Path) -> tuple[Store, Settings, Path]:
    """A store holding the simulated accounts and interventions but no events, and a mapping adopting
    `table` as them."""
    inputs = world.root / f"{name}-inputs"
    inputs.mkdir()
    for part in ("accounts", "interventions"):
        pq.write_table(pq.read_table(world.simulation / f"{part}.parquet"), inputs / f"{part}.parquet")
    store = Store(world.root / name)
    ingest_path(store, inputs)
    mapping = world.root / f"{name}.yaml"
    mapping.write_text(MAPPING.format(table=table))
    settings = Settings(home=store.root, events_source=mapping)
    return Store.at(store.root, store.root, adopted_events(mapping)), settings, mapping


def table(store: Store, version: int | None = None) -> pd.DataFrame:
    found = store.dataset(FEATURES, version)
    assert found is not None
    return found.to_table().to_pandas().sort_values(list(KEYS), ignore_index=True)


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    """The CLI's settings read anew from the environment the test sets, and forgotten after."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_an_adopted_parquet_folder_builds_what_ingesting_its_events_builds(
    world: World, monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    folder = world.root / "lake" / "product_events"
    folder.mkdir(parents=True)
    pq.write_table(their_events(world), folder / "part-0.parquet")
    store, _, mapping = adopting_store(world, "parquet", folder)
    monkeypatch.setenv("RETAIN_EVENTS_SOURCE", str(mapping))
    result = CliRunner().invoke(app, ["features", "build", "--store", str(store.root), "--no-online"])
    assert result.exit_code == 0, result.output
    assert store.version("events") is None
    pd.testing.assert_frame_equal(table(store), table(world.ingested), rtol=1e-9)


def test_an_adopted_delta_table_grows_and_builds_incrementally(world: World) -> None:
    lake = world.root / "lake" / "delta_events"
    write_deltalake(lake, their_events(world, before=SPLIT))
    store, settings, _ = adopting_store(world, "delta", lake)
    first = build_and_publish(store, settings, None, None, online=False)
    assert first.read["events"] == 0 and first.days_rolled_up > 100
    write_deltalake(lake, their_events(world, since=SPLIT), mode="append")
    grown = build_and_publish(store, settings, None, None, online=False)
    assert grown.read["events"] == 1
    assert 0 < grown.days_rolled_up <= (CONFIG.start.toordinal() + CONFIG.days) - SPLIT.toordinal()
    pd.testing.assert_frame_equal(table(store), table(world.ingested), rtol=1e-9)


def test_what_cannot_be_read_in_place_is_refused_in_one_line(world: World, tmp_path: Path) -> None:
    query = tmp_path / "query.yaml"
    query.write_text("events:\n  query: SELECT * FROM t\n")
    with pytest.raises(RetainError, match=r"query.yaml, line 2: events: an adopted table is read in place"):
        adopted_events(query)
    folder = world.root / "lake" / "product_events"
    renamed = tmp_path / "renamed.yaml"
    renamed.write_text(f"events:\n  table: {folder}\n  columns: {{ts: happened}}\n")
    store = Store.at(tmp_path / "s", tmp_path / "s", adopted_events(renamed))
    with pytest.raises(
        RetainError,
        match=r"no column for event_id \(column 'event_id'\), account_id \(column 'account_id'\), "
        r"ts \(column 'happened'\)$",
    ):
        build_and_publish(store, Settings(home=store.root), None, None, online=False)
    catalog = Store.at(tmp_path / "c", tmp_path / "c", adopted_events(_mapping(tmp_path, "sales.events")))
    with pytest.raises(RetainError, match="a catalog table is read by Spark: set RETAIN_ENGINE=spark"):
        build_and_publish(catalog, Settings(home=catalog.root), None, None, online=False)


def _mapping(folder: Path, table: str) -> Path:
    path = folder / "catalog.yaml"
    path.write_text(f"events:\n  table: {table}\n")
    return path


def test_the_timeline_reads_adopted_events_and_ingest_leaves_them_alone(world: World) -> None:
    folder = world.root / "lake" / "timeline_events"
    folder.mkdir(parents=True)
    pq.write_table(their_events(world), folder / "part-0.parquet")
    store, _, _ = adopting_store(world, "timeline", folder)
    as_of = datetime(2025, 4, 30, tzinfo=UTC)
    ours, theirs = (recent_events(s, as_of, 30) for s in (store, world.ingested))
    assert ours.spans == theirs.spans and ours.events.num_rows > 10
    keys = [(name, "ascending") for name in theirs.events.column_names]
    assert ours.events.sort_by(keys).equals(theirs.events.sort_by(keys))
    before = store.versions()
    with pytest.raises(RetainError, match=r"events are read in place from .*timeline_events; ingest its"):
        ingest_path(store, world.simulation)
    assert store.versions() == before
