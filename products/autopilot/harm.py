"""Whether an action the autopilot executes raises churn: its executions against the plan's random
holdout, with no model involved (docs/methods/autopilot.md, "Harm").

For each plan week, the accounts it executed an action for are set against the held-out accounts it
would have executed that action for (the same guardrails held; recorded by each run as its comparison).
The holdout is drawn at random, so both are samples of the accounts the action can reach, and the
difference in the share that has churned since the week, times the executions, estimates the churns
the action added. Churned means no longer active: the feature build's one definition (a cancellation,
or a renewal date passed beyond the grace without a renewal). It is counted from the week to the run,
so it needs no mature labels and speaks within weeks; with each week it counts more.

The interval is the monitor's Poisson bootstrap over accounts (`products.monitor.impact`), one-sided: an
action is harmful when the lower bound of the churns it added, at `confidence`, is above zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from products.monitor.impact import HOLDOUT, Interval, plan_impact

#: the arm of an executed row in the comparison
EXECUTED = "executed"
#: accounts each side needs before the autopilot judges an action at all
MIN_ACCOUNTS = 20


@dataclass(frozen=True)
class HarmCheck:
    """One action's executions against its comparison: the churns it added, and whether that is harm."""

    action: str
    #: distinct accounts executed, and held out, over the weeks judged
    executed: int
    compared: int
    #: churns the action added among its executions, estimated with its one-sided interval (None: too few
    #: accounts to judge)
    added_churns: Interval | None
    churn_rate_executed: float | None
    churn_rate_compared: float | None
    harmful: bool


def judge(
    executed: pd.DataFrame,
    compared: pd.DataFrame,
    active: set[str],
    confidence: float,
    seed: int,
) -> list[HarmCheck]:
    """A check per action of `executed` (columns week, account_id, action; the comparison likewise):
    whether it is harmful with `confidence`, given the accounts `active` now."""
    checks = []
    for action in sorted(set(executed["action"])):
        mine = executed[executed["action"] == action].drop_duplicates(["week", "account_id"])
        held = compared[compared["action"] == action].drop_duplicates(["week", "account_id"])
        rows = pd.concat([mine.assign(arm=EXECUTED), held.assign(arm=HOLDOUT)], ignore_index=True)
        rows = rows[rows["week"].isin(set(mine["week"]) & set(held["week"]))]
        rows["churned"] = (~rows["account_id"].isin(active)).astype(float)
        counts = rows.groupby("arm")["account_id"].nunique()
        n_executed, n_held = int(counts.get(EXECUTED, 0)), int(counts.get(HOLDOUT, 0))
        rates = rows.groupby("arm")["churned"].mean()
        if min(n_executed, n_held) < MIN_ACCOUNTS:
            checks.append(HarmCheck(action, n_executed, n_held, None, None, None, False))
            continue
        impact = plan_impact(rows.assign(expanded=0.0, arr=0.0, matured=True), seed, level=2 * confidence - 1)
        prevented = impact.churn_prevented
        assert prevented is not None  # both arms are present in every week kept
        added = Interval(-prevented.estimate, -prevented.high, -prevented.low)
        checks.append(
            HarmCheck(
                action,
                n_executed,
                n_held,
                added,
                round(float(rates[EXECUTED]), 4),
                round(float(rates[HOLDOUT]), 4),
                bool(np.isfinite(added.low) and added.low > 0),
            )
        )
    return checks
