"""The stepped simulation: the world of `simulate_to`, written in increments ingest stacks, with plans given
between steps."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from core.contract import ACCOUNT_SCHEMA, EVENT_SCHEMA, INTERVENTION_SCHEMA
from core.errors import RetainError
from ingest.run import ingest_path
from simulate import Drift, PlanSchedule, SimConfig, simulate_to
from simulate.stepped import Increment, SteppedSimulation
from store.delta import Store

CONFIG = SimConfig(accounts=300, days=120, seed=3, drift=Drift.parse("release@2025-03-01"))
#: step ends: weekly, a single day, one ending on a plan week's Monday, then long steps to the run's end
STEPS = (date(2025, 1, 8), date(2025, 1, 15), date(2025, 1, 16), date(2025, 2, 3), date(2025, 2, 10))
LONG_STEPS = (date(2025, 3, 12), date(2025, 4, 2), date(2025, 5, 1))
#: the first plan week starts on its Monday, the second on a Thursday (applied the Monday after, 10 March)
PLAN_WEEKS = (date(2025, 2, 3), date(2025, 3, 6))


def _plan(week: date) -> pd.DataFrame:
    """Sixty accounts: every fifth held out, the others given a save offer or an executive call."""
    n = range(60) if week == PLAN_WEEKS[0] else range(100, 160)
    return pd.DataFrame(
        {
            "account_id": [f"acc-{i:06d}" for i in n],
            "action": [None if i % 5 == 0 else ("save_offer", "exec_sponsor_call")[i % 2] for i in n],
            "holdout": [i % 5 == 0 for i in n],
        }
    )


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): _sha(p) for p in sorted(folder.rglob("*.parquet"))}


def _advance(sim: SteppedSimulation, steps: tuple[date, ...]) -> list[Increment]:
    """Step to each date, following a plan before the step holding its intervention day."""
    done = []
    for to in steps:
        for week in PLAN_WEEKS:
            if sim.today <= week + timedelta(days=(7 - week.weekday()) % 7) < to:
                sim.follow(week, _plan(week))
        done.append(sim.advance(to))
    return done


@dataclass(frozen=True)
class Runs:
    whole: Path
    stepped: SteppedSimulation
    increments: list[Increment]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    root = tmp_path_factory.mktemp("stepped")
    schedule = PlanSchedule.from_frame(pd.concat([_plan(w).assign(week=w) for w in PLAN_WEEKS]))
    simulate_to(CONFIG, root / "whole", workers=1, plans=schedule)
    sim = SteppedSimulation.start(CONFIG, root / "stepped")
    increments = _advance(sim, (*STEPS, *LONG_STEPS))
    sim.write_truth()
    return Runs(root / "whole", sim, increments)


def test_stepping_with_the_same_plans_gives_simulate_tos_world_byte_for_byte(runs: Runs) -> None:
    whole = _digest(runs.whole / "events")
    stepped = {k: v for i in runs.increments for k, v in _digest(i.path / "events").items()}
    assert stepped == whole and len(whole) == CONFIG.days
    assert _digest(runs.whole / "truth") == _digest(runs.stepped.out / "truth")
    assert _sha(runs.whole / "truth/drift.json") == _sha(runs.stepped.out / "truth/drift.json")
    for name, key in (("accounts", "account_id"), ("interventions", "intervention_id")):
        parts = pa.concat_tables([pq.read_table(i.path / f"{name}.parquet") for i in runs.increments])
        assert parts.sort_by(key).equals(pq.read_table(runs.whole / f"{name}.parquet").sort_by(key))
    truth = runs.stepped.truth()
    assert truth.plan_effects.equals(pq.read_table(runs.whole / "truth/plan_effects.parquet"))
    assert truth.plan_effects.num_rows > 60 and set(truth.plan_arms["arm"].to_pylist()) >= {
        "planned",
        "holdout",
    }


def test_an_increment_holds_what_arrived_in_its_days_late_events_included(runs: Runs) -> None:
    late = 0
    for increment in runs.increments:
        events = ds.dataset(increment.path / "events", partitioning="hive").to_table().to_pandas()
        arrived = pd.to_datetime(events["date"]).dt.date
        assert arrived.between(increment.start, increment.end - timedelta(days=1)).all()
        assert len(events) == increment.events
        late += int((events.ts.dt.date < increment.start).sum())
        accounts = pq.read_table(increment.path / "accounts.parquet").to_pandas()
        assert len(accounts) == increment.accounts
        if increment.start > CONFIG.start:
            assert accounts.contract_start.dt.date.between(
                increment.start, increment.end - timedelta(days=1)
            ).all()
    assert late > 0, "some events happened in one increment's days and arrived in the next's"


def test_ingesting_the_increments_one_by_one_gives_the_store_of_the_whole_run(
    runs: Runs, tmp_path: Path
) -> None:
    stacked, whole = Store(tmp_path / "stacked"), Store(tmp_path / "whole")
    for increment in runs.increments:
        summary = ingest_path(stacked, increment.path)
        assert summary.quarantined.total == 0
        assert summary.accepted["events"] == increment.events
    again = ingest_path(stacked, runs.increments[2].path)
    assert sum(again.accepted.values()) == 0, "an increment ingested twice adds nothing"
    ingest_path(whole, runs.whole)
    for table, schema, key in (
        ("accounts", ACCOUNT_SCHEMA, "account_id"),
        ("interventions", INTERVENTION_SCHEMA, "intervention_id"),
        ("events", EVENT_SCHEMA, "event_id"),
    ):
        assert stacked.read(table, schema).sort_by(key).equals(whole.read(table, schema).sort_by(key)), table


def test_a_plan_must_come_before_its_monday_once_and_with_rows_of_its_week(tmp_path: Path) -> None:
    sim = SteppedSimulation.start(SimConfig(accounts=80, days=40, seed=1), tmp_path)
    sim.advance(date(2025, 1, 14))
    rows = _plan(PLAN_WEEKS[0]).head(10)
    for week, given, message in (
        (date(2025, 1, 13), rows, "simulated already"),
        (date(2025, 1, 20), rows.head(0), "needs rows"),
        (date(2025, 1, 20), rows.assign(week=date(2025, 1, 27)), "all of that week"),
        (date(2025, 3, 3), rows, "no intervention day"),
        (date(2025, 1, 20), rows.head(1).assign(account_id="acc-000200"), "does not have"),
    ):
        with pytest.raises(RetainError, match=message):
            sim.follow(week, given)
    sim.follow(date(2025, 1, 16), rows)
    with pytest.raises(RetainError, match="has a plan already"):
        sim.follow(date(2025, 1, 20), rows)
    for to in (date(2025, 1, 14), date(2025, 2, 15)):
        with pytest.raises(RetainError, match="advance to a date after it"):
            sim.advance(to)
    increment = sim.advance(date(2025, 1, 21))
    executed = sim.truth().plan_effects
    assert increment.interventions == executed.num_rows > 0, "the plan's week is the step's only Monday"
