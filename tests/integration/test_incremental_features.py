"""An incremental feature build equals a full one (issue 54): a store fed in parts, as days arrive, with a
late event for an old day, builds from its stored per-day roll-ups plus only the days they lack, keeps
the last build's rows where nothing changed before a cutoff, computes a new month end over only the
windowed roll-ups' days its lookback reaches, and yields the table `--full` rebuilds."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from core.settings import Settings
from features.cutoffs import window_start
from features.definitions import KEYS
from features.rollups import TABLE as ROLLUPS
from features.run import FeatureBuild, build_and_publish
from features.stored import TABLE as FEATURES
from ingest.run import ingest_path
from retain.cli import app
from simulate import SimConfig, simulate_to
from store.delta import Store

START = date(2025, 1, 1)
#: the first part's events end the day before this (its cutoffs: the month ends Jan 31 to Apr 30)
FIRST_END = date(2025, 5, 25)
#: the second part's events end the day before this: May 31 becomes a cutoff, whose lookback starts
#: after the first event day
SECOND_END = date(2025, 6, 6)
#: the month ends of the first part
FIRST_CUTOFFS = [date(2025, 1, 31), date(2025, 2, 28), date(2025, 3, 31), date(2025, 4, 30)]
#: the day a late event arrives for, after both parts
LATE_DAY = date(2025, 2, 10)


@dataclass(frozen=True)
class Fed:
    """A simulated world's output, and a store fed from it part by part."""

    simulation: Path
    parts: Path
    store: Store
    settings: Settings


def _instant(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _part(fed: Fed, name: str, events: pa.Table, until: date) -> Path:
    """A folder holding `events`, the accounts snapshot and the interventions before `until`."""
    folder = fed.parts / name
    (folder / "events").mkdir(parents=True)
    pq.write_table(events, folder / "events" / "part.parquet")
    pq.write_table(pq.read_table(fed.simulation / "accounts.parquet"), folder / "accounts.parquet")
    interventions = pq.read_table(fed.simulation / "interventions.parquet")
    kept = interventions.filter(
        pc.less(interventions["ts"], pa.scalar(_instant(until), interventions["ts"].type))
    )
    pq.write_table(kept, folder / "interventions.parquet")
    return folder


def _between(events: pa.Table, first: date | None, end: date) -> pa.Table:
    ts = events["ts"]
    before = pc.less(ts, pa.scalar(_instant(end), ts.type))
    return events.filter(
        before
        if first is None
        else pc.and_(before, pc.greater_equal(ts, pa.scalar(_instant(first), ts.type)))
    )


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Fed:
    root = tmp_path_factory.mktemp("incremental")
    simulate_to(SimConfig(accounts=50, days=160, seed=7, start=START), root / "sim")
    store = Store(root / "store")
    return Fed(root / "sim", root / "parts", store, Settings(home=store.root))


def _events(fed: Fed) -> pa.Table:
    return pq.read_table(fed.simulation / "events")


def _table(store: Store, version: int | None) -> pd.DataFrame:
    found = store.dataset(FEATURES, version)
    assert found is not None
    return found.to_table().to_pandas().sort_values(list(KEYS), ignore_index=True)


def _same_as_full(fed: Fed, built: FeatureBuild) -> None:
    """`built`'s table equals the one a full build makes of the same store: rows, counts, flags and text
    exactly, floats to 1e-9 (DuckDB sums floats in whatever order its threads finish)."""
    full = build_and_publish(fed.store, fed.settings, None, None, online=False, full=True)
    assert full.cutoffs_computed == full.cutoffs and full.read == built.read
    pd.testing.assert_frame_equal(
        _table(fed.store, built.version), _table(fed.store, full.version), rtol=1e-9
    )


def test_a_build_after_new_days_reads_only_them_and_equals_a_full_build(fed: Fed) -> None:
    events = _events(fed)
    late = _between(events, LATE_DAY, LATE_DAY.replace(day=LATE_DAY.day + 1))
    held_back = pc.is_in(events["event_id"], value_set=late["event_id"].slice(0, 5))
    first = _between(events.filter(pc.invert(held_back)), None, FIRST_END)
    ingest_path(fed.store, _part(fed, "first", first, FIRST_END))
    built = build_and_publish(fed.store, fed.settings, None, None, online=False)
    assert built.cutoffs == FIRST_CUTOFFS == built.cutoffs_computed
    assert built.days_rolled_up == (FIRST_END - START).days

    # twelve new days, May 31 among them: only they are rolled up, only the new month end computed, its
    # windowed roll-ups read from its lookback's first day on, the others over all history
    ingest_path(fed.store, _part(fed, "second", _between(events, FIRST_END, SECOND_END), SECOND_END))
    grown = build_and_publish(fed.store, fed.settings, None, None, online=False)
    assert grown.cutoffs == [*built.cutoffs, date(2025, 5, 31)]
    assert (grown.cutoffs_computed, grown.days_rolled_up) == (
        [date(2025, 5, 31)],
        (SECOND_END - FIRST_END).days,
    )
    assert window_start(grown.cutoffs_computed) > START
    _same_as_full(fed, grown)

    # a late event for February 10: that day rolled up again, the cutoffs after it computed again
    ingest_path(fed.store, _part(fed, "late", events.filter(held_back), SECOND_END))
    late_built = build_and_publish(fed.store, fed.settings, None, None, online=False)
    assert late_built.days_rolled_up == 1
    assert late_built.cutoffs_computed == [*FIRST_CUTOFFS[1:], date(2025, 5, 31)]
    _same_as_full(fed, late_built)


def test_nothing_new_computes_nothing_and_full_rebuilds_everything_through_the_cli(fed: Fed) -> None:
    again = build_and_publish(fed.store, fed.settings, None, None, online=False)
    assert (again.cutoffs_computed, again.days_rolled_up) == ([], 0)
    rollup_version = fed.store.version(ROLLUPS)

    command = ["features", "build", "--store", str(fed.store.root), "--no-online", "--full", "--json"]
    result = CliRunner().invoke(app, command)

    assert result.exit_code == 0, result.output
    said = json.loads(result.stdout)
    assert said["cutoffs_computed"] == said["cutoffs"] and said["days_rolled_up"] == (SECOND_END - START).days
    writes = [
        c for c in fed.store.history(ROLLUPS) if c.version > (rollup_version or 0) and c.operation == "WRITE"
    ]
    assert len(writes) == 1, "a full build rewrites every roll-up in one transaction"
    pd.testing.assert_frame_equal(
        _table(fed.store, said["version"]), _table(fed.store, again.version), rtol=1e-9
    )
