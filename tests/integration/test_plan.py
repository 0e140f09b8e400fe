"""The weekly plan: the greedy on hand-made numbers, then plans over the uplift world checked against the
store itself (eligibility, cool-downs, values), capacity, the holdout, reproducibility and the CLI."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any, cast

import duckdb
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from core.catalogue import CATALOGUE
from core.value import expected_values
from features.playbook import eligibility
from features.playbook_file import BUILT_IN
from features.run import build_feature_table, register_store
from features.stored import read_features
from products.alerting import plan_alerts
from products.plan import (
    COLUMNS,
    Week,
    action_hours,
    allowed_actions,
    assign,
    draw_plan_holdout,
    make_plan,
    plan_store,
    read_week,
    write_plan,
)
from registry.models import load_uplift_model
from retain.api import as_json
from retain.cli import app, main
from store.plan_table import ACTED, EXPLORE, HELD_OUT, recorded_plans
from tests.support.playbooks import own, with_workshop
from tests.support.rows import QUIET
from tests.support.worlds import UpliftWorld
from training.causal import recency

CAPACITY = 6.0
SHARE = 0.1


# -- the pure parts -----------------------------------------------------------------------------------


def test_a_free_action_does_not_block_a_better_paid_one_and_capacity_is_per_csm() -> None:
    actions = ["in_app_nudge", "health_check_call", "hypercare_onboarding"]  # 0, 1 and 6 hours
    values = np.array(
        [
            [100.0, 5_000.0, 9_000.0],  # a: the call is worth far more than the nudge
            [300.0, 200.0, -1.0],  # b: the nudge beats the call, and is free
            [50.0, 4_000.0, 0.0],  # c: same CSM as a, one hour left after a's call
            [80.0, 9_999.0, 0.0],  # d: no CSM, so nothing that takes hours
        ]
    )
    allowed = np.ones_like(values, bool)
    owners = ["csm-1", "csm-1", "csm-1", None]
    choice = assign(values, allowed, action_hours(actions, CATALOGUE), owners, capacity=2.0)
    assert [actions[j] for j in choice] == [
        "health_check_call",
        "in_app_nudge",
        "health_check_call",
        "in_app_nudge",
    ]
    # with seven hours, a's call is later upgraded to hypercare: five more hours for $4,000 more
    assert assign(values, allowed, action_hours(actions, CATALOGUE), owners, capacity=7.0).tolist()[:3] == [
        2,
        0,
        1,
    ]
    nothing = assign(values, np.zeros_like(allowed), action_hours(actions, CATALOGUE), owners, capacity=6.0)
    assert nothing.tolist() == [-1, -1, -1, -1]


def test_allowed_actions_apply_cool_downs_overlap_and_the_renewal_grace_week() -> None:
    as_of = datetime(2025, 6, 2, tzinfo=UTC)
    actions = ["in_app_nudge", "billing_outreach"]
    row = {**QUIET, "account_id": "a", "core_features_unused_7d": 2.0, "invoices_overdue": 1}
    assert allowed_actions([row], {}, as_of, actions, actions, BUILT_IN).tolist() == [[True, True]]
    cooling = {"a": {"in_app_nudge": as_of - timedelta(days=3)}}
    assert allowed_actions([row], cooling, as_of, actions, actions, BUILT_IN).tolist() == [[False, True]]
    assert allowed_actions([row], {}, as_of, actions, ["billing_outreach"], BUILT_IN).tolist() == [
        [False, True]
    ]
    lapsed = {**row, "days_to_renewal": -2.0}
    assert allowed_actions([lapsed], {}, as_of, actions, actions, BUILT_IN).tolist() == [[False, False]]


def test_the_holdout_draw_depends_on_seed_and_week_not_on_row_order() -> None:
    ids = [f"acc-{i:03d}" for i in range(200)]
    held = draw_plan_holdout(ids, SHARE, 7, date(2025, 7, 28))
    assert held.sum() == 20
    reordered = draw_plan_holdout(ids[::-1], SHARE, 7, date(2025, 7, 28))[::-1]
    assert (reordered == held).all()
    assert (draw_plan_holdout(ids, SHARE, 8, date(2025, 7, 28)) != held).any()
    assert (draw_plan_holdout(ids, SHARE, 7, date(2025, 8, 4)) != held).any()


# -- plans over the uplift world ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def monday(uplift_world: UpliftWorld) -> date:
    """The Monday on or before the feature table's latest cutoff: inside the store's span."""
    latest = read_features(uplift_world.store, columns=["cutoff"])["cutoff"].to_pandas().max()
    day = latest.date()
    return day - timedelta(days=day.weekday())


@pytest.fixture(scope="module")
def week(uplift_world: UpliftWorld, monday: date) -> Week:
    return read_week(uplift_world.store, uplift_world.settings, monday)


@pytest.fixture(scope="module")
def truth(uplift_world: UpliftWorld, monday: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What the plan must agree with, read apart from the planner: feature rows at the week and the
    interventions log."""
    with duckdb.connect() as con:
        register_store(con, uplift_world.store)
        rows = build_feature_table(con, [monday], uplift_world.settings).to_pandas()
        log = con.execute("SELECT account_id, action, ts FROM interventions").df()
    log["ts"] = pd.to_datetime(log["ts"], utc=True)
    return rows.set_index("account_id", drop=False), log


def test_a_plan_keeps_to_capacity_eligibility_cool_downs_and_one_action_per_account(
    uplift_world: UpliftWorld, week: Week, monday: date, truth: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    rows, log = truth
    plan = make_plan(week, CAPACITY, SHARE, seed=7).rows
    assert list(plan.columns) == COLUMNS
    assert plan["account_id"].is_unique
    assert set(plan["account_id"]) <= set(rows.index)
    work = plan[~plan["holdout"]]
    assert len(work) > 30 and work["action"].nunique() > 3
    hours = work["action"].map(lambda a: CATALOGUE[a].cost_hours)
    assert hours.groupby(work["csm_id"]).sum().max() <= CAPACITY
    assert (hours > 0).sum() > 10  # the capacity is used, not only free actions
    model, _ = load_uplift_model(uplift_world.store, uplift_world.settings)
    assert set(work["action"]) <= set(model.usable())
    as_of = datetime(monday.year, monday.month, monday.day, tzinfo=UTC)
    before = log[log["ts"] < as_of].groupby(["account_id", "action"])["ts"].max()
    last_taken: dict[str, dict[str, datetime]] = {}
    for taker, taken, ts in before.reset_index().itertuples(index=False):
        last_taken.setdefault(taker, {})[taken] = ts.to_pydatetime()
    records = cast(list[dict[str, Any]], rows.to_dict("records"))
    without_log = allowed_actions(records, {}, as_of, week.actions, week.actions, BUILT_IN)
    assert (without_log & ~week.allowed).any()  # cool-downs from the log bite this week
    for account, action in zip(work["account_id"], work["action"], strict=True):
        last = last_taken.get(account, {})
        assert action not in last or as_of - last[action] >= timedelta(days=CATALOGUE[action].cooldown_days)
        verdict = {v.action: v for v in eligibility(rows.loc[account].to_dict(), last, as_of)}[action]
        assert verdict.eligible, (account, action, verdict.reasons)


def test_planned_values_are_the_expected_values_of_the_chosen_pairs(
    uplift_world: UpliftWorld, week: Week, truth: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    rows, log = truth
    model, _ = load_uplift_model(uplift_world.store, uplift_world.settings)
    at_week = rows.reset_index(drop=True)
    uplift = model.uplift(recency.with_recency(at_week, recency.last_taken(at_week, log)))
    values = expected_values(
        uplift["churn"],
        uplift["expansion"],
        rows["arr"].to_numpy(float),
        model.actions,
        uplift_world.settings.value.model_copy(update={"csm_hour_usd": 0.0}),  # hours are the budget
    )
    plan = make_plan(week, CAPACITY, SHARE, seed=7)
    work = plan.rows[~plan.rows["holdout"]]
    where = rows.index.get_indexer(pd.Index(work["account_id"]))
    chosen = values[where, [model.actions.index(a) for a in work["action"]]]
    np.testing.assert_allclose(work["expected_value"], chosen, atol=0.01)
    assert (chosen > 0).all()  # the CSV rounds to cents: a value under half a cent shows as 0.00
    assert plan.summary.expected_value == pytest.approx(chosen.sum(), abs=1.0)
    # by CSM, best first
    for _, group in work.groupby("csm_id", sort=False):
        assert group["expected_value"].is_monotonic_decreasing
    assert work["csm_id"].is_monotonic_increasing


def test_the_holdout_is_a_tenth_of_the_active_accounts_and_gets_nothing(week: Week) -> None:
    plan = make_plan(week, CAPACITY, SHARE, seed=7)
    held = plan.rows[plan.rows["holdout"]]
    assert abs(len(held) - SHARE * len(week.account_ids)) <= 1
    assert (held["action"] == "").all() and held["expected_value"].isna().all()
    assert plan.rows["holdout"].tolist() == sorted(plan.rows["holdout"])  # holdout rows last
    assert plan.summary.holdout == len(held)
    other = make_plan(week, CAPACITY, SHARE, seed=8).rows
    assert set(other.loc[other["holdout"], "account_id"]) != set(held["account_id"])


def test_a_csm_id_a_spreadsheet_would_run_is_written_inert(week: Week, monday: date, tmp_path: Path) -> None:
    """An ingested csm_id of `=cmd|' /C calc'!A0` went raw into the plan's CSV (issue 51), where the
    cockpit's export already prefixed it with `'`."""
    formula = "=cmd|' /C calc'!A0"
    hostile = replace(week, csm_ids=[formula if c is not None else None for c in week.csm_ids])
    plan = make_plan(hostile, CAPACITY, SHARE, seed=7)
    write_plan(plan.rows, tmp_path / "plan.csv", monday)
    csv = pd.read_csv(tmp_path / "plan.csv", keep_default_na=False, dtype=str)
    assert set(csv["csm_id"]) - {""} == {f"'{formula}"}
    text = csv[["account_id", "action", "csm_id", "arm"]].to_numpy().ravel()
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in text)
    assert csv["expected_value"].ne("").any(), "figures stay numbers"


def test_every_row_and_arm_logs_the_probability_of_its_arm(week: Week) -> None:
    """A held-out account was drawn with the holdout's share; any other reached the plan with one less that,
    where the greedy picks its action deterministically. Checked against the draw itself, over weeks."""
    plan = make_plan(week, CAPACITY, SHARE, seed=7)
    share = plan.summary.holdout / len(week.account_ids)
    assert plan.rows.loc[plan.rows["holdout"], "propensity"].eq(share).all()
    assert plan.rows.loc[~plan.rows["holdout"], "propensity"].eq(1 - share).all()
    arms = plan.arms.to_pandas()
    assert np.allclose(arms["propensity"], np.where(arms["arm"] == HELD_OUT, share, 1 - share))
    # the logged probability is the draw's: over many weeks each account is held out that often
    held = np.mean(
        [
            draw_plan_holdout(week.account_ids, SHARE, 7, date(2025, 1, 6) + timedelta(weeks=k))
            for k in range(400)
        ],
        axis=0,
    )
    assert abs(held.mean() - share) < 1e-9 and np.abs(held - share).max() < 0.06


def test_the_summary_says_how_sure_the_most_planned_action_is_and_why_if_unsure(week: Week) -> None:
    plan = make_plan(week, CAPACITY, SHARE, seed=7)
    most = plan.summary.most_planned
    assert most is not None and most.count == max(plan.summary.by_action.values())
    assert most.p_helps == pytest.approx(week.uplift.p_helps(most.action), abs=1e-3)
    if most.p_helps >= 0.9:
        assert most.why_anyway is None
    else:
        assert most.why_anyway is not None and "highest expected value" in most.why_anyway


def test_more_capacity_never_lowers_the_total_and_a_tiny_one_plans_only_free_actions(week: Week) -> None:
    totals = [make_plan(week, float(h), SHARE, 7).summary.expected_value for h in np.arange(0.25, 24.1, 0.25)]
    assert all(b >= a for a, b in pairwise(totals)), totals
    assert totals[-1] > totals[0]
    tiny = make_plan(week, 0.1, SHARE, 7)
    actions = tiny.rows.loc[~tiny.rows["holdout"], "action"]
    assert len(actions) > 0 and all(CATALOGUE[a].cost_hours == 0 for a in actions)
    assert all(used == 0 for used in tiny.summary.hours_used.values())


def test_a_playbook_action_no_uplift_model_knows_is_not_planned_and_is_said(
    uplift_world: UpliftWorld, monday: date, week: Week, tmp_path: Path
) -> None:
    settings = uplift_world.settings.model_copy(update={"playbook": own(tmp_path, with_workshop())})
    mine = read_week(uplift_world.store, settings, monday)
    assert mine.unmodelled == ["success_plan_workshop"] and week.unmodelled == []
    assert mine.actions == week.actions and "success_plan_workshop" in mine.catalogue
    assert (mine.allowed == week.allowed).all(), "the built-in actions' rules are the same"


def test_the_cli_writes_the_same_plan_as_the_function_and_reports_it(
    uplift_world: UpliftWorld, monday: date, tmp_path: Path
) -> None:
    store, settings = uplift_world.store, uplift_world.settings
    direct = plan_store(store, settings, monday, CAPACITY, tmp_path / "direct.csv")
    args = ["plan", "--store", str(store.root), "--week", monday.isoformat()]
    result = CliRunner().invoke(
        app, [*args, "--capacity-hours", str(CAPACITY), "--out", str(tmp_path / "cli.csv"), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cli.csv").read_bytes() == (tmp_path / "direct.csv").read_bytes()
    summary = json.loads(result.stdout)
    expected = as_json(direct)
    assert isinstance(expected, dict)
    assert {k: v for k, v in summary.items() if k not in ("out", "alerts")} == {
        k: v for k, v in expected.items() if k not in ("out", "alerts")
    }
    assert summary["rows"] == summary["planned_actions"] + summary["holdout"]
    # an action whose overlap is too poor to trust is not planned, and the summary names it
    model, _ = load_uplift_model(store, settings)
    assert summary["excluded_actions"] == [a for a in model.actions if model.overlap[a].poor]
    assert summary["model"]["name"] == "uplift"
    csv = pd.read_csv(tmp_path / "cli.csv", keep_default_na=False, dtype=str)
    assert list(csv.columns) == COLUMNS and set(csv["holdout"]) == {"true", "false"}
    assert summary["most_planned"]["action"] in summary["by_action"]
    assert set(csv["csm_id"]) <= set(summary["hours_used"])
    assert all(used <= CAPACITY for used in summary["hours_used"].values())
    # recorded for the monitor: every active account once with its arm (planning the week twice replaced
    # the first recording), the planned ones with the CSV's action
    recorded = recorded_plans(store)
    recorded = recorded[recorded["week"].dt.date == monday]
    assert recorded["account_id"].is_unique and len(recorded) >= len(csv)
    arms = recorded.set_index("account_id")["arm"]
    assert set(arms[csv.loc[csv["holdout"] == "true", "account_id"]]) == {HELD_OUT}
    planned = csv[csv["holdout"] == "false"].set_index("account_id")["action"]
    assert set(arms[planned.index]) == set(ACTED), "the settings explore by default"
    assert recorded.set_index("account_id").loc[planned.index, "action"].equals(planned)
    assert arms.isin(ACTED).sum() == len(planned) and (arms == HELD_OUT).sum() == summary["holdout"]
    assert (csv.set_index("account_id")["arm"] == arms[csv["account_id"]]).all()
    assert (csv["arm"] == EXPLORE).sum() == summary["explored"] > 0
    # alerted: each planned account whose action differs from the plan of the week recorded before
    plans = recorded_plans(store)
    earlier = plans[(plans["week"].dt.date < monday) & plans["arm"].isin(ACTED)]
    previous = earlier[earlier["week"] == earlier["week"].max()].set_index("account_id")["action"]
    alerts = {a.account_id: a for a in plan_alerts(plans, monday)}
    assert set(alerts) == {a for a in planned.index if previous.get(a) != planned[a]}
    assert all(alerts[a].actions == (planned[a],) for a in alerts)
    assert summary["alerts"]["raised"] == len(alerts) and summary["alerts"]["error"] is None


@pytest.mark.parametrize(
    ("week", "capacity", "message"),
    [
        ("2025-02-30", "6", "--week"),
        ("2031-01-06", "6", "outside the store's data"),
        (None, "0", "capacity must be a positive number"),
    ],
)
def test_cli_bad_input_exits_2_naming_the_problem(
    uplift_world: UpliftWorld,
    monday: date,
    week: str | None,
    capacity: str,
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["plan", "--store", str(uplift_world.store.root), "--week", week or monday.isoformat()]
    monkeypatch.setattr(
        sys, "argv", ["retain", *args, "--capacity-hours", capacity, "--out", str(tmp_path / "p.csv")]
    )
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    assert message in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "p.csv").exists()


def test_cli_without_a_store_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--week", "2025-07-28", "--capacity-hours", "6", "--out", str(tmp_path / "p.csv")]
    monkeypatch.setattr(sys, "argv", ["retain", "plan", "--store", str(tmp_path / "nowhere"), *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    assert f"no events in the store {tmp_path / 'nowhere'}" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "nowhere").exists()
