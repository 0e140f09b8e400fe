"""What a policy's plans kept in the closed loop, twice over: the simulator's truth and the plan's holdout.

The truth sums `TruthSoFar.plan_effects`: each executed plan action's exact change in its account's 90-day
churn probability (and the ARR at stake: that change times the account's ARR when planned), so churn
averted is an expected count, not a realised one. The holdout estimate is what a team sees without the
truth: `products.monitor.impact.plan_impact` over the quarter's recorded plans and their realised labels,
exactly as `retain monitor` computes it (the same label SQL, the same bootstrap), with its 95% interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa

from core.settings import Settings
from products.monitor.impact import Interval, plan_impact
from products.monitor.run import with_outcomes
from store.delta import Store
from store.plan_table import recorded_plans


@dataclass(frozen=True)
class WeekTruth:
    """One plan week's executed actions and what they truly kept."""

    week: date
    actions: int
    churn_averted: float
    arr_kept: float
    #: CSM hours the plan used, of the hours its CSMs had (the capacity times the CSMs)
    hours_used: float
    hours_available: float


@dataclass(frozen=True)
class Quarter:
    """One policy's quarter: the truth beside the holdout's estimate and whether its interval holds it."""

    quarter: int
    first_week: date
    last_week: date
    actions: int
    #: the share of the quarter's CSM hours the plans used
    hours_used_share: float
    true_churn_averted: float
    true_arr_kept: float
    holdout_churn_averted: Interval | None
    holdout_arr_kept: Interval | None
    #: the holdout's 95% interval holds the true churn averted (None: no matured week to judge)
    covered: bool | None


def weekly_truth(
    plan_effects: pa.Table, plans: pd.DataFrame, hours: Sequence[tuple[date, float, float]]
) -> list[WeekTruth]:
    """Per plan week (with the hours its plan used and had), the executed actions' summed true effects; ARR
    from the recorded plan's rows."""
    effects = plan_effects.to_pandas()
    effects["week"] = pd.to_datetime(effects["week"], utc=True).dt.date
    arr = plans.assign(week=pd.to_datetime(plans["week"], utc=True).dt.date)[["week", "account_id", "arr"]]
    effects = effects.merge(arr, on=["week", "account_id"], how="left")
    effects["arr_kept"] = -effects["churn_effect"] * effects["arr"].fillna(0.0)
    out = []
    for week, used, available in hours:
        part = effects[effects["week"] == week]
        out.append(
            WeekTruth(
                week,
                len(part),
                float(-part["churn_effect"].sum()),
                float(part["arr_kept"].sum()),
                round(used, 2),
                available,
            )
        )
    return out


def holdout_rows(store: Store, settings: Settings, weeks: Sequence[date]) -> pd.DataFrame:
    """The recorded plans of `weeks` with their realised outcomes: the rows `plan_impact` reads, built as
    `retain monitor` builds them."""
    plans = recorded_plans(store)
    return with_outcomes(
        store, settings, plans[pd.to_datetime(plans["week"], utc=True).dt.date.isin(list(weeks))]
    )


def quarter(number: int, truth: Sequence[WeekTruth], store: Store, settings: Settings, seed: int) -> Quarter:
    """The quarter of the weeks `truth` holds: their true sums and the holdout's estimate over them."""
    weeks = [w.week for w in truth]
    found = plan_impact(holdout_rows(store, settings, weeks), seed)
    churn = float(np.sum([w.churn_averted for w in truth]))
    covered = (
        None
        if found.churn_prevented is None
        else found.churn_prevented.low <= churn <= found.churn_prevented.high
    )
    return Quarter(
        quarter=number,
        first_week=weeks[0],
        last_week=weeks[-1],
        actions=sum(w.actions for w in truth),
        hours_used_share=round(sum(w.hours_used for w in truth) / sum(w.hours_available for w in truth), 3),
        true_churn_averted=round(churn, 3),
        true_arr_kept=round(float(np.sum([w.arr_kept for w in truth])), 2),
        holdout_churn_averted=found.churn_prevented,
        holdout_arr_kept=found.arr_kept,
        covered=covered,
    )
