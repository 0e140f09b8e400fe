"""The monitor's measure of what the plans kept, against the simulator's truth: plans made by the real
planner on the uplift world are handed to a simulated CS team that carries them out, and the holdout
comparison's 95% interval must hold the churn the executed actions truly prevented."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pyarrow as pa
import pytest

from core.settings import Settings
from ingest.run import ingest_path
from products.monitor.run import plan_section
from products.plan import make_plan, read_week, record_plan
from simulate import PlanSchedule, simulate_to
from store.delta import Store
from store.plan_table import ACTED, CHOSEN, EXPLORE, HELD_OUT, NO_ACTION, PLANS, recorded_plans
from tests.support.worlds import UpliftWorld

#: four Mondays whose 90-day labels mature inside the re-run world
WEEKS = [date(2025, 3, 3) + timedelta(weeks=k) for k in range(4)]
#: a larger holdout than the default tenth, so that four weeks of 600 accounts say something
HOLDOUT_SHARE = 0.3
CAPACITY = 40.0


@pytest.fixture(scope="module")
def applied(
    uplift_world: UpliftWorld, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Store, Settings, pd.DataFrame]:
    """The uplift world's plans for WEEKS, carried out in a re-run of its simulation, ingested anew, the
    plans recorded in that store; with the simulator's truth of each executed action."""
    plans = [
        make_plan(
            read_week(uplift_world.store, uplift_world.settings, week), CAPACITY, HOLDOUT_SHARE, 8, 0.05
        )
        for week in WEEKS
    ]
    arms = pa.concat_tables([p.arms for p in plans]).to_pandas()
    given = arms[arms["arm"] != "none"]
    schedule = PlanSchedule.from_frame(
        pd.DataFrame(
            {
                "week": pd.to_datetime(given["week"]).dt.date,
                "account_id": given["account_id"],
                "action": given["action"],
                "holdout": given["arm"] == "holdout",
            }
        )
    )
    root = tmp_path_factory.mktemp("applied")
    simulate_to(uplift_world.config, root / "sim", plans=schedule)
    store = Store(root / "store")
    settings = Settings(home=store.root)
    ingest_path(store, root / "sim")
    for plan in plans:
        record_plan(store, plan)
    truth = pd.read_parquet(root / "sim" / "truth" / "plan_effects.parquet")
    return store, settings, truth


def test_plans_are_recorded_with_every_active_account_and_its_arm(
    applied: tuple[Store, Settings, pd.DataFrame],
) -> None:
    store, _, _ = applied
    rows = recorded_plans(store)
    assert store.version(PLANS) == len(WEEKS) - 1
    assert sorted(rows["week"].dt.date.unique()) == WEEKS
    assert set(rows["arm"]) == {CHOSEN, EXPLORE, HELD_OUT, NO_ACTION}
    for _, week in rows.groupby("week"):
        assert week["account_id"].is_unique
        assert week.loc[week["arm"].isin(ACTED), "action"].notna().all()
        assert week.loc[~week["arm"].isin(ACTED), "action"].isna().all()
        assert week["arm"].eq("holdout").mean() == pytest.approx(HOLDOUT_SHARE, abs=0.01)


def test_the_holdout_comparison_covers_the_churn_the_plans_truly_prevented(
    applied: tuple[Store, Settings, pd.DataFrame],
) -> None:
    store, settings, truth = applied
    found = plan_section(store, settings)
    assert [w.week for w in found.weeks] == [str(w) for w in WEEKS] and not found.pending
    truth["week"] = pd.to_datetime(truth["week"], utc=True).dt.date
    prevented = -truth.groupby("week")["churn_effect"].sum()
    assert found.churn_prevented is not None
    total = float(prevented.sum())
    assert found.churn_prevented.low <= total <= found.churn_prevented.high, (found.churn_prevented, total)
    covered = [
        w.churn_prevented.low <= prevented[date.fromisoformat(w.week)] <= w.churn_prevented.high
        for w in found.weeks
    ]
    assert sum(covered) >= 3, (found.weeks, prevented)
    assert "kept an estimated" in found.sentence
