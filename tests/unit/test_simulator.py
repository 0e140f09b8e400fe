"""The simulator: reproducible, in the contract's shape, with a truth that is informative but not perfect."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from core.catalogue import ACTIONS, CATALOGUE
from core.contract import (
    ACCOUNT_SCHEMA,
    EVENT_SCHEMA,
    EVENT_TYPES,
    HOLDOUT,
    INTERVENTION_SCHEMA,
    PROPERTIES,
    TIER_ARR,
    Tier,
)
from core.errors import RetainError
from simulate import Drift, PlanSchedule, SimConfig, Simulation, simulate_to
from simulate.dynamics import State, churn_hazard, initial_state, step
from simulate.effects import EFFECTS, apply_action
from simulate.interventions import draw_quarter_holdout
from simulate.population import draw_population
from simulate.truth import outlook

START = date(2025, 1, 1)
HORIZON = timedelta(days=90)


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Simulation]:
    out = tmp_path_factory.mktemp("sim")
    return out, simulate_to(SimConfig(accounts=1_000, days=240, seed=11, start=START, holdout_share=0.1), out)


@pytest.fixture(scope="module")
def events(sim: tuple[Path, Simulation]) -> pa.Table:
    return ds.dataset(sim[0] / "events", format="parquet", partitioning="hive").to_table()


def test_same_seed_same_bytes_and_different_seed_differs(tmp_path: Path) -> None:
    runs = {}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        simulate_to(SimConfig(accounts=150, days=45, seed=seed, start=START), tmp_path / name)
        runs[name] = _digest(tmp_path / name)
    assert runs["a"] == runs["b"]
    assert runs["a"].keys() >= {"accounts.parquet", "interventions.parquet", "truth/probabilities.parquet"}
    assert all(runs["a"][k] != runs["c"].get(k) for k in ("accounts.parquet", "truth/outcomes.parquet"))


@pytest.mark.slow
def test_bytes_do_not_depend_on_workers(tmp_path: Path) -> None:
    """Two chunks, with a drift and a plan naming accounts of both: a save offer for eight accounts of each,
    two of each held out."""
    config = SimConfig(accounts=5_050, days=31, seed=2, start=START, drift=Drift.parse("release@2025-01-20"))
    ids = [f"acc-{n:06d}" for first in (0, 5_000) for n in range(first + 10, first + 20)]
    held = [i % 5 == 4 for i in range(len(ids))]
    plans = PlanSchedule.from_frame(
        pd.DataFrame(
            {
                "week": date(2025, 1, 13),
                "account_id": ids,
                "action": [None if h else "save_offer" for h in held],
                "holdout": held,
            }
        )
    )
    simulate_to(config, tmp_path / "one", workers=1, plans=plans)
    simulate_to(config, tmp_path / "two", workers=2, plans=plans)
    assert _digest(tmp_path / "one") == _digest(tmp_path / "two")
    arms = pq.read_table(tmp_path / "one/truth/plan_arms.parquet").to_pandas().set_index("account_id").arm
    assert (arms[ids] == np.where(held, "holdout", arms[ids])).all() and len(arms) > 4_000
    planned = arms[arms == "planned"].index
    assert set(planned) <= set(ids) and planned.str.startswith("acc-0050").any()
    logged = pq.read_table(tmp_path / "one/interventions.parquet").to_pandas()
    monday = logged[logged.ts.dt.date == date(2025, 1, 13)]
    assert sorted(monday.account_id) == sorted(planned) and (monday.action == "save_offer").all()


def test_events_conform_to_the_contract(sim: tuple[Path, Simulation], events: pa.Table) -> None:
    out, summary = sim
    for path in (out / "events").rglob("*.parquet"):
        assert pq.read_schema(path).equals(EVENT_SCHEMA), path
    assert events.num_rows == summary.events
    assert pc.count_distinct(events["event_id"]).as_py() == events.num_rows
    accounts = pq.read_table(out / "accounts.parquet")
    assert pc.all(pc.is_in(events["account_id"], accounts["account_id"])).as_py()
    types = events["event_type"].to_numpy(zero_copy_only=False)
    assert set(types) <= set(EVENT_TYPES)
    for name, spec in EVENT_TYPES.items():
        rows = events.filter(pc.equal(events["event_type"], name))
        for prop, p in PROPERTIES.items():
            column = rows[prop]
            if prop in spec.required:
                assert column.null_count == 0, (name, prop)
            elif prop not in spec.allowed:
                assert column.null_count == rows.num_rows, (name, prop)
            values = column.drop_null()
            allowed = spec.statuses if prop == "status" else p.values
            if allowed is not None and len(values):
                assert set(values.to_pylist()) <= set(allowed), (name, prop)
            if p.low is not None and len(values):
                assert pc.min(values).as_py() >= p.low, (name, prop)
            if p.high is not None and len(values):
                assert pc.max(values).as_py() <= p.high, (name, prop)
    survey = events.filter(pc.equal(events["event_type"], "survey.response"))
    assert pc.all(pc.or_(pc.is_valid(survey["nps"]), pc.is_valid(survey["csat"]))).as_py()


def test_every_event_type_appears(sim: tuple[Path, Simulation]) -> None:
    counts = sim[1].event_types
    assert set(counts) == set(EVENT_TYPES)
    assert all(counts[name] > 0 for name in EVENT_TYPES), counts


def test_volume_late_and_missing_data(sim: tuple[Path, Simulation], events: pa.Table) -> None:
    arrived = pc.cast(events["date"], pa.date32()) if events["date"].type != pa.date32() else events["date"]
    happened = pc.cast(pc.floor_temporal(events["ts"], unit="day"), pa.date32())
    assert not pc.any(pc.greater(happened, arrived)).as_py(), "no event arrives before it happens"
    late = pc.less(happened, arrived)
    share = pc.mean(pc.cast(late, pa.float64())).as_py()
    assert 0.005 < share < 0.05
    surveys = events.filter(pc.equal(events["event_type"], "survey.response"))
    assert 0 < surveys["nps"].null_count < surveys.num_rows
    resolved = events.filter(pc.equal(events["event_type"], "ticket.resolved"))
    assert 0 < resolved["csat"].null_count < resolved.num_rows


def test_accounts_follow_the_tiers(sim: tuple[Path, Simulation]) -> None:
    accounts = pq.read_table(sim[0] / "accounts.parquet")
    assert accounts.schema.equals(ACCOUNT_SCHEMA)
    assert accounts.num_rows == 1_000
    for tier, (low, high) in TIER_ARR.items():
        arr = accounts.filter(pc.equal(accounts["tier"], tier.value))["arr"].to_numpy()
        assert len(arr) > 0 and (arr >= low).all() and (arr < high).all(), tier
    start = accounts["contract_start"].to_pandas()
    renewal = accounts["renewal_date"].to_pandas()
    assert (renewal > start).all() and (renewal > str(START)).all()
    assert 0.15 < (start >= str(START)).mean() < 0.5, "a good share of accounts starts during the window"
    assert set(accounts["tier"].to_pylist()) == {t.value for t in Tier}


def test_interventions_have_a_random_arm_with_known_propensity(sim: tuple[Path, Simulation]) -> None:
    table = pq.read_table(sim[0] / "interventions.parquet")
    assert table.schema.equals(INTERVENTION_SCHEMA)
    logged = table.to_pandas()
    assert logged.intervention_id.is_unique
    frame = logged[logged.assignment != HOLDOUT]
    random = frame[frame.assignment == "random"]
    assert len(random) / len(frame) >= 0.10
    assert random.propensity.between(0, 1, inclusive="neither").all()
    assert frame[frame.assignment == "targeted"].propensity.isna().all()
    assert set(frame.action) <= set(ACTIONS)
    assert (frame.channel == frame.action.map(lambda a: CATALOGUE[a].channel)).all()
    targeted = frame[frame.assignment == "targeted"].sort_values(["account_id", "action", "ts"])
    same = (targeted.account_id == targeted.account_id.shift()) & (targeted.action == targeted.action.shift())
    gaps = targeted.ts.dt.floor("D").diff().dt.days[same]
    assert (gaps >= targeted.action[same].map(lambda a: CATALOGUE[a].cooldown_days)).all(), "cool-downs hold"


def _held(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A simulation's holdout rows from the interventions log, and the truth's record of them."""
    logged = pq.read_table(out / "interventions.parquet").to_pandas()
    return logged[logged.assignment == HOLDOUT], pq.read_table(out / "truth/holdouts.parquet").to_pandas()


def test_a_quarter_holds_out_the_configured_share_of_the_active_accounts(
    sim: tuple[Path, Simulation],
) -> None:
    """Each quarter's draw holds out each account live at its start with the configured probability (10%
    here): pooled over the run's draws, within three standard errors."""
    out, summary = sim
    rows, truth = _held(out)
    accounts = pq.read_table(out / "accounts.parquet").to_pandas()
    churn = pq.read_table(out / "truth/outcomes.parquet").to_pandas().set_index("account_id")["churn_date"]
    starts = pd.to_datetime([START, date(2025, 4, 1), date(2025, 7, 1)], utc=True)
    live = [
        int(((accounts.contract_start <= q) & ~(accounts.account_id.map(churn) < q)).sum()) for q in starts
    ]
    share, n = len(rows) / sum(live), sum(live)
    assert sorted(rows.ts.unique()) == list(starts)
    assert abs(share - 0.10) < 3 * np.sqrt(0.1 * 0.9 / n), share
    assert (rows.propensity == 0.10).all() and rows.channel.isna().all()
    assert summary.held_out == len(rows)
    assert sorted(zip(truth.account_id, truth.start, strict=True)) == sorted(
        zip(rows.account_id, rows.ts, strict=True)
    )
    assert (truth.end > truth.start).all() and truth.end.max() == pd.Timestamp(
        START + timedelta(days=240), tz="UTC"
    )


def test_a_held_out_account_gets_no_action_in_its_quarter(sim: tuple[Path, Simulation]) -> None:
    """Neither the team nor the experiment arm acts on a held-out account until the next draw; after it the
    account is back in the usual course."""
    out, _ = sim
    logged = pq.read_table(out / "interventions.parquet").to_pandas()
    _, truth = _held(out)
    taken = logged[logged.assignment != HOLDOUT].merge(truth, on="account_id")
    inside = (taken.ts >= taken.start) & (taken.ts < taken.end)
    assert len(taken) > 0 and not inside.any()
    assert (taken.ts >= taken.end).any(), "held-out accounts get actions again after their quarter"


def test_the_holdout_draw_is_seeded_and_zero_turns_it_off(tmp_path: Path) -> None:
    active = np.random.default_rng(0).random(20_000) < 0.8
    drawn = draw_quarter_holdout(7, 0, 90, active, 0.1)
    assert np.array_equal(drawn, draw_quarter_holdout(7, 0, 90, active, 0.1))
    assert not np.array_equal(drawn, draw_quarter_holdout(7, 0, 181, active, 0.1)), (
        "each quarter draws afresh"
    )
    assert not (drawn & ~active).any() and abs(drawn.sum() / active.sum() - 0.1) < 3 * np.sqrt(0.09 / 16_000)
    assert not draw_quarter_holdout(7, 0, 90, active, 0.0).any()
    summary = simulate_to(SimConfig(accounts=150, days=100, seed=5, start=START, holdout_share=0.0), tmp_path)
    held, truth = _held(tmp_path)
    assert summary.held_out == 0 and held.empty and truth.empty
    with pytest.raises(RetainError, match="holdout_share"):
        SimConfig(accounts=10, days=10, seed=0, holdout_share=0.5)


def test_oracle_auc_is_high_but_not_perfect(sim: tuple[Path, Simulation]) -> None:
    out, summary = sim
    probs = pq.read_table(out / "truth/probabilities.parquet").to_pandas()
    outcomes = pq.read_table(out / "truth/outcomes.parquet").to_pandas()
    end = pd.Timestamp(START, tz="UTC") + timedelta(days=summary.days)
    rows = probs[probs.cutoff + HORIZON <= end].merge(outcomes, on="account_id")
    churned = (rows.churn_date > rows.cutoff) & (rows.churn_date <= rows.cutoff + HORIZON)
    assert rows.cutoff.nunique() >= 3 and churned.sum() >= 50
    auc = roc_auc_score(churned, rows.p_churn)
    assert 0.75 <= auc <= 0.92, auc
    assert rows.p_churn.mean() == pytest.approx(churned.mean(), abs=0.02), "probabilities are calibrated"


def test_churn_shows_in_telemetry_as_in_a_real_product(
    sim: tuple[Path, Simulation], events: pa.Table
) -> None:
    outcomes = pq.read_table(sim[0] / "truth/outcomes.parquet").to_pandas().dropna(subset=["churn_date"])
    frame = events.select(["account_id", "ts", "event_type"]).to_pandas()
    last = frame.groupby("account_id").ts.max()
    churned = outcomes.set_index("account_id").churn_date
    assert (
        last.reindex(churned.index).dropna() <= churned.reindex(last.reindex(churned.index).dropna().index)
    ).all()
    cancelled = frame[frame.event_type == "subscription.cancelled"].set_index("account_id").ts
    assert (cancelled == churned.reindex(cancelled.index)).all()
    lapsed = churned.drop(cancelled.index)
    assert len(lapsed) > 0 and (lapsed.dt.hour == 0).all()


def test_truth_tables_cover_every_active_account_and_action(sim: tuple[Path, Simulation]) -> None:
    out = sim[0]
    probs = pq.read_table(out / "truth/probabilities.parquet").to_pandas()
    effects = pq.read_table(out / "truth/action_effects.parquet").to_pandas()
    assert probs[["p_churn", "p_expand"]].stack().between(0, 1).all()
    assert len(effects) == len(probs) * len(ACTIONS)
    by_action = effects.groupby("action")
    assert (by_action.get_group("reference_ask")[["churn_effect", "expansion_effect"]] == 0).all().all()
    assert (by_action.get_group("save_offer").churn_effect <= 0).all()
    upgrade = by_action.get_group("upgrade_offer")
    assert upgrade.expansion_effect.max() > 0.01 and upgrade.churn_effect.max() > 0.001
    spread = by_action.churn_effect.agg(["min", "max"])
    assert (spread.drop("reference_ask")["min"] < spread.drop("reference_ask")["max"]).all(), "effects vary"


def test_effects_and_truth_share_one_implementation() -> None:
    rng = np.random.default_rng(0)
    pop = draw_population(rng, SimConfig(accounts=400, days=60, seed=0), 0, 400)
    s = initial_state(rng, pop)
    to_renewal = np.full(pop.size, 400)
    assert set(EFFECTS) == set(ACTIONS)
    calm = apply_action("reference_ask", pop.traits, s, to_renewal)
    assert all(np.array_equal(getattr(calm, f), getattr(s, f)) for f in State.__dataclass_fields__)
    churn, _ = outlook(pop.traits, s, to_renewal)
    stacked, _ = outlook(pop.traits, State.stack([s, s]), to_renewal)
    np.testing.assert_allclose(stacked[1], churn)
    daily = churn_hazard(pop.traits, s)
    assert (churn >= daily).all() and (churn < 1).all()
    due, _ = outlook(pop.traits, s, np.full(pop.size, 30))
    assert (due > churn).all(), "a renewal inside the window adds the risk of lapsing"


class SharedDraws:
    """A generator whose draws every variant of a path shares (axis 1), so drawn variants differ only by
    their action, as the truth's expected variants do."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def standard_normal(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.broadcast_to(self.rng.standard_normal((shape[0], 1, *shape[2:])), shape)

    def random(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.broadcast_to(self.rng.random((shape[0], 1, *shape[2:])), shape)


def test_the_expected_path_stands_for_the_drawn_paths_risk_and_effects() -> None:
    """The oracle follows each account's expected path; 100 drawn paths of the same dynamics (engagement
    noise, sponsor turnover, stalls, failures, payment trouble) must give the same effects and nearly
    the same risk (drawn risk runs a little higher: the hazards are convex in the noise)."""
    n, paths = 400, 100
    rng = np.random.default_rng(0)
    pop = draw_population(rng, SimConfig(accounts=n, days=60, seed=0), 0, n)
    s = initial_state(rng, pop)
    for _ in range(30):
        s = step(pop.traits, s, rng)
    s = s.replace(damage=np.where(rng.random(n) < 0.3, rng.exponential(1.0, n), 0.0))
    to_renewal = rng.integers(1, 366, n)
    variants = State.stack([s, *(apply_action(a, pop.traits, s, to_renewal) for a in ACTIONS)])
    expected, _ = outlook(pop.traits, variants, to_renewal)
    fanned = State(
        *(
            np.broadcast_to(getattr(variants, f), (paths, *getattr(variants, f).shape))
            for f in State.__dataclass_fields__
        )
    )
    drawn = outlook(pop.traits, fanned, to_renewal, SharedDraws(rng))[0].mean(axis=0)  # type: ignore[arg-type]
    assert 1.0 < drawn[0].mean() / expected[0].mean() < 1.2
    assert np.corrcoef(expected[0], drawn[0])[0, 1] > 0.98
    for j, action in enumerate(ACTIONS, start=1):
        truth, sampled = expected[j] - expected[0], drawn[j] - drawn[0]
        if action == "reference_ask":
            assert not truth.any() and not sampled.any()
        elif abs(truth.mean()) > 1e-3:
            assert 0.85 < sampled.mean() / truth.mean() < 1.2, action
            assert np.corrcoef(truth, sampled)[0, 1] > 0.95, action


# -- drift and applied plans ----------------------------------------------------------------------------

SMALL = SimConfig(accounts=200, days=120, seed=9, start=START)
#: day 59 of SMALL, a Saturday: the drift date
DRIFT_ON = date(2025, 3, 1)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SMALL, as it runs without drift or plans."""
    out = tmp_path_factory.mktemp("small")
    simulate_to(SMALL, out, workers=1)
    return out


def _partitions_before(folder: Path, day: date) -> dict[str, str]:
    return {k: v for k, v in _digest(folder / "events").items() if k < f"date={day.isoformat()}"}


def _events(folder: Path) -> pd.DataFrame:
    return ds.dataset(folder / "events", format="parquet", partitioning="hive").to_table().to_pandas()


def test_a_drift_is_read_from_kind_at_date_and_must_fall_inside_the_run() -> None:
    assert Drift.parse(" tier_mix@2025-09-01") == Drift("tier_mix", date(2025, 9, 1))
    for text in ("release", "release@", "surge@2025-09-01", "release@2025-13-01", "release@yesterday"):
        with pytest.raises(RetainError, match="KIND@YYYY-MM-DD"):
            Drift.parse(text)
    with pytest.raises(RetainError, match="drift kind"):
        Drift("surge", DRIFT_ON)  # type: ignore[arg-type]
    for on in (START, START + timedelta(days=SMALL.days)):
        with pytest.raises(RetainError, match="must fall after"):
            dataclasses.replace(SMALL, drift=Drift("release", on))


def test_a_release_relabels_feature_use_from_its_date_and_nothing_else(small: Path, tmp_path: Path) -> None:
    """Same seed, same drift, same bytes; against the undrifted run, only events from the date differ, and
    only in the features they name and the uses they count: churn, CS and the truth are untouched."""
    config = dataclasses.replace(SMALL, drift=Drift.parse("release@2025-03-01"))
    summary = simulate_to(config, tmp_path / "a", workers=1)
    simulate_to(config, tmp_path / "b", workers=1)
    drifted, plain = _digest(tmp_path / "a"), _digest(small)
    assert drifted == _digest(tmp_path / "b") and summary.drift == config.drift
    changed = {k for k in plain if drifted[k] != plain[k]}
    assert changed and all(k >= f"events/date={DRIFT_ON}" for k in changed), "nothing before the date moves"
    assert set(drifted) - set(plain) == {"truth/drift.json"}
    record = json.loads((tmp_path / "a/truth/drift.json").read_text())
    assert record["kind"] == "release" and record["date"] == "2025-03-01"
    assert record["retired_features"] == {"reports": "dashboards", "alerts": "pipelines"}

    before, after = _events(small).set_index("event_id"), _events(tmp_path / "a").set_index("event_id")
    assert before.index.equals(after.index) and before.event_type.equals(after.event_type)
    late = before.ts >= pd.Timestamp(DRIFT_ON, tz="UTC")
    used = late & (before.event_type == "feature.used")
    assert before[~late].equals(after[~late])
    assert set(after[used].feature) == set(before[used].feature) - {"reports", "alerts"}
    moved = before[used].feature.replace({"reports": "dashboards", "alerts": "pipelines"})
    assert (after[used].feature == moved).all()
    assert (after[used]["count"] == np.ceil(1.5 * before[used]["count"])).all()
    assert (after[used].core == moved.isin(["dashboards", "reports", "datasets", "pipelines"])).all()
    named = after[late & after.event_type.isin(["error.raised", "nudge.sent", "nudge.acted"])].feature
    assert named.notna().any() and not named.isin(["reports", "alerts"]).any()


def test_a_tier_mix_drift_changes_the_tiers_of_new_accounts_only(small: Path, tmp_path: Path) -> None:
    config = dataclasses.replace(SMALL, drift=Drift("tier_mix", DRIFT_ON))
    simulate_to(config, tmp_path, workers=1)
    plain = pq.read_table(small / "accounts.parquet").to_pandas()
    drifted = pq.read_table(tmp_path / "accounts.parquet").to_pandas()
    new = plain.contract_start >= pd.Timestamp(DRIFT_ON, tz="UTC")
    assert plain[~new].equals(drifted[~new]) and 15 <= new.sum() <= 40
    assert plain.contract_start.equals(drifted.contract_start)
    small_share = drifted[new].tier.isin(["small_business", "trial"]).mean()
    assert small_share >= 0.85 > plain[new].tier.isin(["small_business", "trial"]).mean()
    for tier, (low, high) in TIER_ARR.items():
        arr = drifted[new & (drifted.tier == tier.value)].arr
        assert arr.between(low, high, inclusive="left").all(), tier
    record = json.loads((tmp_path / "truth/drift.json").read_text())
    assert record["kind"] == "tier_mix" and record["tier_share_after"]["trial"] == 0.6
    assert not (small / "truth/drift.json").exists()


#: a plan week starting on its Monday, and one starting on a Thursday (applied the Monday after)
PLAN_WEEKS = (date(2025, 3, 10), date(2025, 3, 20))


def _schedule(accounts: int) -> pd.DataFrame:
    """Each week, 60 accounts at random: 36 planned with actions in catalogue order, 24 held out."""
    rng = np.random.default_rng(3)
    rows = []
    for week in PLAN_WEEKS:
        for i, n in enumerate(rng.choice(accounts, 60, replace=False)):
            held = i >= 36
            action = None if held else ACTIONS[i % len(ACTIONS)]
            rows.append({"week": week, "account_id": f"acc-{n:06d}", "action": action, "holdout": held})
    return pd.DataFrame(rows)


def _rows_before(logged: pd.DataFrame, ts: pd.Timestamp) -> pd.DataFrame:
    return logged[logged.ts < ts].reset_index(drop=True)


def test_a_plan_replaces_the_teams_week_and_its_truth_matches_what_was_done(
    small: Path, tmp_path: Path
) -> None:
    schedule = _schedule(SMALL.accounts)
    plans = PlanSchedule.from_frame(schedule)
    summary = simulate_to(SMALL, tmp_path / "a", workers=1, plans=plans)
    from_arrow = PlanSchedule.from_frame(pa.Table.from_pandas(schedule))
    assert from_arrow == plans
    simulate_to(SMALL, tmp_path / "b", workers=1, plans=from_arrow)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b"), "same schedule and seed, same bytes"
    first = pd.Timestamp(PLAN_WEEKS[0], tz="UTC")
    assert _partitions_before(tmp_path / "a", PLAN_WEEKS[0]) == _partitions_before(small, PLAN_WEEKS[0])
    logged = pq.read_table(tmp_path / "a/interventions.parquet").to_pandas()
    usual = pq.read_table(small / "interventions.parquet").to_pandas()
    assert _rows_before(logged, first).equals(_rows_before(usual, first))

    effects = pq.read_table(tmp_path / "a/truth/plan_effects.parquet").to_pandas()
    arms = pq.read_table(tmp_path / "a/truth/plan_arms.parquet").to_pandas()
    assert summary.plan_actions == len(effects) > 40
    for week, monday in zip(PLAN_WEEKS, (date(2025, 3, 10), date(2025, 3, 24)), strict=True):
        applied = pd.Timestamp(monday, tz="UTC")
        plan = schedule[schedule.week == week]
        done = logged[(logged.ts >= applied) & (logged.ts < applied + timedelta(days=1))]
        assert (done.assignment == "targeted").all() and done.propensity.isna().all()
        assert not done.account_id.isin(plan[plan.holdout].account_id).any()
        mine = effects[effects.week == pd.Timestamp(week, tz="UTC")]
        assert (mine.applied == applied).all()
        assert sorted(zip(done.account_id, done.action, strict=True)) == sorted(
            zip(mine.account_id, mine.action, strict=True)
        )
        assert set(mine.account_id) <= set(plan.account_id)
        week_arms = arms[arms.week == pd.Timestamp(week, tz="UTC")].set_index("account_id")
        counts = week_arms.arm.value_counts()
        assert counts["planned"] == len(mine) and counts["holdout"] == plan.holdout.sum()
        assert counts["planned"] + counts.get("skipped", 0) == (~plan.holdout).sum()
        assert not week_arms[week_arms.arm == "none"].index.isin(plan.account_id).any()
        assert week_arms.loc[mine.account_id, "p_churn"].to_numpy() == pytest.approx(mine.p_churn.to_numpy())
    assert effects[["p_churn", "p_expand"]].stack().between(0, 1).all()
    assert (effects[effects.action == "reference_ask"][["churn_effect", "expansion_effect"]] == 0).all().all()
    assert (effects[effects.action == "save_offer"].churn_effect <= 0).all()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns="holdout"), "missing"),
        (lambda f: f.assign(action=f.action.where(f.holdout, "free_lunch")), "not in the catalogue"),
        (lambda f: f.assign(action="reference_ask"), "holdout rows must have no action"),
        (lambda f: f.assign(action=f.action.where(f.holdout, "")), "need an action"),
        (lambda f: pd.concat([f, f.iloc[:1]]), "one row per"),
        (lambda f: f.assign(week="next monday"), "dates like"),
        (lambda f: f.assign(account_id=None), "account_id"),
    ],
)
def test_a_malformed_plan_schedule_is_refused(
    change: Callable[[pd.DataFrame], pd.DataFrame], message: str
) -> None:
    with pytest.raises(RetainError, match=message):
        PlanSchedule.from_frame(change(_schedule(SMALL.accounts)))


def test_a_plan_schedule_must_fit_the_simulation(tmp_path: Path) -> None:
    schedule = _schedule(SMALL.accounts)
    first = schedule.account_id[0]
    for frame, message in (
        (schedule.replace({"account_id": {first: "acc-000200"}}), "does not have"),
        (schedule.replace({"account_id": {first: "acc-7"}}), "does not have"),
        (schedule.replace({"week": {PLAN_WEEKS[1]: date(2025, 6, 1)}}), "no intervention day"),
        (schedule.replace({"week": {PLAN_WEEKS[1]: date(2025, 3, 8)}}), "share"),
    ):
        with pytest.raises(RetainError, match=message):
            simulate_to(SMALL, tmp_path, plans=PlanSchedule.from_frame(frame))
    assert not (tmp_path / "events").exists(), "a refused schedule writes nothing"
