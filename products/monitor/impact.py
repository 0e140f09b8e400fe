"""What the weekly plans kept: the plan's accounts against its random holdout, once the labels mature.

Each recorded plan splits the week's active accounts at random into the holdout and the rest (planned
or not: the plan arm). Both are random samples of the same accounts, so the difference in their realised
90-day churn rates, times the accounts in the plan arm, estimates the churns the plan prevented, with no
model involved (intention to treat: the plan as given, whether or not the CSMs acted on it). Weighting
each account by its ARR gives the ARR kept; expansions are counted the same way.

The interval over several weeks comes from a Poisson bootstrap over accounts: an account appears in
many weeks and its outcomes are correlated across them, so weeks are not independent draws, but the
accounts are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from store.plan_table import ACTED

BOOTSTRAP = 1_000
HOLDOUT, PLAN = "holdout", "plan"


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float


@dataclass(frozen=True)
class WeekImpact:
    """One plan's week: the arms' sizes and realised rates, and what the plan kept."""

    week: str
    accounts: int
    planned_actions: int
    holdout: int
    churn_rate_plan: float
    churn_rate_holdout: float
    churn_prevented: Interval
    arr_kept: Interval
    extra_expansions: Interval


@dataclass(frozen=True)
class PlanImpact:
    """The weeks whose labels matured, each and together; `pending` weeks await their labels."""

    weeks: list[WeekImpact]
    churn_prevented: Interval | None
    arr_kept: Interval | None
    extra_expansions: Interval | None
    pending: list[str]
    sentence: str


def _kept(outcome: np.ndarray, in_plan: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per bootstrap row of `weights` (draws x accounts): (holdout mean - plan mean) x plan accounts."""
    held = ~in_plan
    plan_n = weights[:, in_plan].sum(axis=1)
    held_n = weights[:, held].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        plan_mean = weights[:, in_plan] @ outcome[in_plan] / plan_n
        held_mean = weights[:, held] @ outcome[held] / held_n
    return (held_mean - plan_mean) * in_plan.sum()


def _interval(point: float, draws: np.ndarray, level: float) -> Interval:
    """The central `level` interval of the bootstrap draws around the point estimate."""
    tail = 50 * (1 - level)
    low, high = np.nanpercentile(draws, [tail, 100 - tail])
    return Interval(round(point, 2), round(float(low), 2), round(float(high), 2))


def plan_impact(rows: pd.DataFrame, seed: int, draws: int = BOOTSTRAP, level: float = 0.95) -> PlanImpact:
    """`rows`: one per (week, account) of the recorded plans, with `arm`, `arr`, and the account's realised
    `churned` and `expanded` (0/1) after the week and `matured` (bool); central intervals at `level`."""
    matured = rows["matured"].astype(bool)
    pending = sorted({str(pd.Timestamp(w).date()) for w in rows.loc[~matured, "week"]})
    done = rows[matured]
    weeks_found = sorted(done["week"].unique())
    both_arms = done.groupby("week")["arm"].agg(lambda a: (a == HOLDOUT).any() and (a != HOLDOUT).any())
    done = done[done["week"].isin(both_arms[both_arms].index)]
    if done.empty:
        return PlanImpact([], None, None, None, pending, _sentence(None, None, 0, pending))
    accounts = sorted(done["account_id"].unique())
    index = {a: i for i, a in enumerate(accounts)}
    rng = np.random.default_rng(seed)
    weights = rng.poisson(1.0, (draws, len(accounts))).astype(float)
    totals = {"churn": np.zeros(draws), "arr": np.zeros(draws), "expansion": np.zeros(draws)}
    points = {"churn": 0.0, "arr": 0.0, "expansion": 0.0}
    weeks = []
    for week in weeks_found:
        part = done[done["week"] == week]
        if part.empty:
            continue
        columns = part["account_id"].map(index).to_numpy()
        in_plan = (part["arm"] != HOLDOUT).to_numpy()
        churned = part["churned"].to_numpy(float)
        outcomes = {
            "churn": churned,
            "arr": churned * part["arr"].fillna(0.0).to_numpy(float),
            "expansion": -part["expanded"].to_numpy(float),
        }
        kept = {}
        for name, outcome in outcomes.items():
            point = float(_kept(outcome, in_plan, np.ones((1, len(part))))[0])
            spread = _kept(outcome, in_plan, weights[:, columns])
            points[name] += point
            totals[name] += spread
            kept[name] = _interval(point, spread, level)
        weeks.append(
            WeekImpact(
                week=str(pd.Timestamp(week).date()),
                accounts=len(part),
                planned_actions=int(part["arm"].isin(ACTED).sum()),
                holdout=int((~in_plan).sum()),
                churn_rate_plan=round(float(churned[in_plan].mean()), 4),
                churn_rate_holdout=round(float(churned[~in_plan].mean()), 4),
                churn_prevented=kept["churn"],
                arr_kept=kept["arr"],
                extra_expansions=kept["expansion"],
            )
        )
    churn = _interval(points["churn"], totals["churn"], level)
    arr = _interval(points["arr"], totals["arr"], level)
    return PlanImpact(
        weeks,
        churn,
        arr,
        _interval(points["expansion"], totals["expansion"], level),
        pending,
        _sentence(churn, arr, len(weeks), pending),
    )


def money(value: float) -> str:
    """Whole dollars, signed: `-$1,234`."""
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.0f}"


def _sentence(churn: Interval | None, arr: Interval | None, weeks: int, pending: list[str]) -> str:
    waiting = f"; {len(pending)} later plan(s) await their 90-day labels" if pending else ""
    if churn is None or arr is None:
        return f"No plan's labels have matured yet{waiting}."
    return (
        f"The plans of the last {weeks} week(s) kept an estimated {money(arr.estimate)} of ARR "
        f"(95% interval {money(arr.low)} to {money(arr.high)}) and prevented {churn.estimate:.1f} churned "
        f"accounts (95% interval {churn.low:.1f} to {churn.high:.1f}) against their random holdouts{waiting}."
    )
