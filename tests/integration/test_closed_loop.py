"""The closed loop end to end on a tiny world: the real simulator stepped week by week, the store, MLflow, the
uplift training and the planner, for the oracle and Retain with exploration, which retrains at the month's
turn. What the JSON says each plan truly kept must be the simulator's own sums, and the oracle, told the true
effects, must avert at least as much churn as the plan that learns them."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from experiments.closed_loop import main

SEED = 3
#: two quarters of one week each: 31 March plans from the warm-up's model, 7 April after the monthly retrain
ARGS = [
    "--accounts", "300", "--quarters", "2", "--weeks-per-quarter", "1", "--warmup-days", "273",
    "--seeds", str(SEED), "--capacity-hours", "8", "--policies", "retain_explore,oracle",
    "--min-effective-treated", "20", "--folds", "2",
]  # fmt: skip


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    root = tmp_path_factory.mktemp("closed-loop")
    assert main([*ARGS, "--out", str(root / "loop.json"), "--keep", str(root / "worlds")]) == 0
    return json.loads((root / "loop.json").read_text()), root / "worlds" / f"seed-{SEED}"


def test_the_json_holds_each_policy_quarter_by_the_truth_and_by_its_holdout(ran: tuple[dict, Path]) -> None:
    payload, _ = ran
    assert payload["command"].startswith("python -m experiments.closed_loop")
    figures = payload["figures"]
    assert figures["seeds"] == [SEED] and figures["quarters"] == 2
    runs = {r["policy"]: r for r in figures["runs"]}
    assert set(runs) == {"retain_explore", "oracle"}
    assert runs["retain_explore"]["seconds"]["retrains"] == 1 and runs["oracle"]["seconds"]["retrains"] == 0
    for run in runs.values():
        assert [q["quarter"] for q in run["quarters"]] == [1, 2]
        assert [w["week"] for w in run["weeks"]] == ["2025-03-31", "2025-04-07"]
        for q in run["quarters"]:
            assert q["actions"] > 0 and q["true_arr_kept"] > 0 and 0 < q["hours_used_share"] <= 1
            held = q["holdout_churn_averted"]
            assert held is not None and held["low"] <= held["estimate"] <= held["high"]
            assert q["covered"] == (held["low"] <= q["true_churn_averted"] <= held["high"])
    assert {p["policy"] for p in figures["policies"]} == set(runs)
    assert figures["must_hold"]["explore_share_of_oracle"] is not None


def test_the_truth_figures_are_the_simulators_sums_of_the_executed_plan_actions(
    ran: tuple[dict, Path],
) -> None:
    payload, worlds = ran
    for run in payload["figures"]["runs"]:
        effects = pd.read_parquet(worlds / run["policy"] / "sim" / "truth" / "plan_effects.parquet")
        weeks = pd.to_datetime(effects["week"], utc=True).dt.date.astype(str)
        for q, week in zip(run["quarters"], run["weeks"], strict=True):
            mine = effects[weeks == week["week"]]
            assert q["actions"] == week["actions"] == len(mine) > 0
            assert q["true_churn_averted"] == pytest.approx(-mine["churn_effect"].sum(), abs=1e-3)


def test_the_oracle_averts_at_least_the_churn_of_the_learning_plan(ran: tuple[dict, Path]) -> None:
    payload, _ = ran
    averted = {p["policy"]: sum(p["true_churn_averted"]) for p in payload["figures"]["policies"]}
    assert averted["oracle"] >= averted["retain_explore"] > 0, averted
