"""The autopilot's guardrails as pure choices: which barrier a row meets first, the caps most valuable
first and counting the day's earlier runs, and the harm judge on outcomes a test knows."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from products.autopilot import guardrails
from products.autopilot.guardrails import Candidate, Caps, Guards
from products.autopilot.harm import judge

WEEK = datetime(2025, 6, 2, tzinfo=UTC)


def candidate(account: str, action: str = "in_app_nudge", value: float = 100.0) -> Candidate:
    return Candidate(account, action, "chosen", value, 0.9, "3")


def guards(**changes: object) -> Guards:
    fields: dict[str, object] = {
        "paused": False,
        "paused_actions": frozenset(),
        "stopped": frozenset(),
        "held_out": frozenset(),
        "approval_pending": frozenset(),
        "executed": frozenset(),
        "blocked": {},
    }
    return Guards(**{**fields, **changes})  # type: ignore[arg-type]


def test_the_first_barrier_met_is_the_reason_and_the_whole_autopilot_s_pause_comes_first() -> None:
    every = guards(
        paused=True,
        paused_actions=frozenset({"in_app_nudge"}),
        stopped=frozenset({"a"}),
        held_out=frozenset({"a"}),
        blocked={("a", "in_app_nudge"): guardrails.COOLING},
    )
    assert guardrails.barrier("a", "in_app_nudge", every) == "autopilot paused"
    assert guardrails.barrier("a", "in_app_nudge", guards(held_out=frozenset({"a"}))) == guardrails.HELD_OUT
    cooling = guards(blocked={("a", "in_app_nudge"): guardrails.COOLING})
    assert guardrails.barrier("a", "in_app_nudge", cooling) == guardrails.COOLING
    assert guardrails.barrier("a", "billing_outreach", cooling) is None


def test_caps_take_the_most_valuable_rows_first_and_count_the_day_s_earlier_runs() -> None:
    rows = [candidate(f"a{i}", value=float(i)) for i in range(6)] + [candidate("b", "billing_outreach", 50.0)]
    chosen = guardrails.select(rows, guards(), Caps(per_action=3, per_day=10, done_today={"in_app_nudge": 1}))
    assert [c.account_id for c in chosen.chosen] == ["b", "a5", "a4"]
    assert chosen.skipped == {guardrails.ACTION_CAP: 4}
    day = guardrails.select(
        rows, guards(), Caps(per_action=10, per_day=3, done_today={"billing_outreach": 2})
    )
    assert [c.account_id for c in day.chosen] == ["b"] and day.skipped == {guardrails.DAY_CAP: 6}


def _weekly(n: int, first: int, action: str) -> pd.DataFrame:
    return pd.DataFrame(
        {"week": [WEEK] * n, "account_id": [f"x{first + i}" for i in range(n)], "action": action}
    )


def test_harm_needs_enough_accounts_and_a_lower_bound_above_zero() -> None:
    executed, compared = _weekly(100, 0, "in_app_nudge"), _weekly(100, 100, "in_app_nudge")
    churned_executed, churned_compared = {f"x{i}" for i in range(30)}, {f"x{i}" for i in range(100, 105)}
    active = {f"x{i}" for i in range(200)} - churned_executed - churned_compared
    (check,) = judge(executed, compared, active, 0.95, seed=7)
    assert check.harmful and check.added_churns is not None and check.added_churns.estimate == 25.0
    assert (check.churn_rate_executed, check.churn_rate_compared) == (0.3, 0.05)
    (same,) = judge(executed, compared, {f"x{i}" for i in range(200)} - {"x1", "x101"}, 0.95, seed=7)
    assert not same.harmful
    (few,) = judge(executed.head(10), compared, active, 0.95, seed=7)
    assert not few.harmful and few.added_churns is None
