"""The simulator: reproducible, in the contract's shape, with a truth that is informative but not perfect."""

from __future__ import annotations

import hashlib
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

from retain.core.catalogue import ACTIONS, CATALOGUE
from retain.core.contract import (
    ACCOUNT_SCHEMA,
    EVENT_SCHEMA,
    EVENT_TYPES,
    HOLDOUT,
    INTERVENTION_SCHEMA,
    PROPERTIES,
    TIER_ARR,
    Tier,
)
from retain.core.errors import RetainError
from retain.simulate import SimConfig, Simulation, simulate_to
from retain.simulate.dynamics import State, churn_hazard, initial_state, step
from retain.simulate.effects import EFFECTS, apply_action
from retain.simulate.interventions import draw_holdout
from retain.simulate.population import draw_population
from retain.simulate.truth import outlook

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
    config = SimConfig(accounts=5_050, days=31, seed=2, start=START)
    simulate_to(config, tmp_path / "one", workers=1)
    simulate_to(config, tmp_path / "two", workers=2)
    assert _digest(tmp_path / "one") == _digest(tmp_path / "two")


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
    drawn = draw_holdout(7, 0, 90, active, 0.1)
    assert np.array_equal(drawn, draw_holdout(7, 0, 90, active, 0.1))
    assert not np.array_equal(drawn, draw_holdout(7, 0, 181, active, 0.1)), "each quarter draws afresh"
    assert not (drawn & ~active).any() and abs(drawn.sum() / active.sum() - 0.1) < 3 * np.sqrt(0.09 / 16_000)
    assert not draw_holdout(7, 0, 90, active, 0.0).any()
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
