"""The digest's week: its bounds, the plan recorded for it, its alerts by type (pure)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, timedelta

import pandas as pd

from core.errors import RetainError
from features.cutoffs import cutoff_instant
from products.digest.schema import AlertCount, AlertExample, PlannedAction, WeekPlan
from serving.webhooks.outbox import AlertBrief
from store.plan_table import ACTED, HELD_OUT

#: the alerts quoted for each type
EXAMPLES = 3


def week_bounds(week: date) -> tuple[datetime, datetime]:
    """The week from its Monday 00:00 UTC to the next Monday's. Any other day is refused rather than
    moved to its Monday: a digest named for a day it does not start on would mislead its readers."""
    if week.weekday() != 0:
        monday = week - timedelta(days=week.weekday())
        raise RetainError(
            f"--week {week.isoformat()} is a {week:%A}: a digest's week starts on a Monday "
            f"(that week's is {monday.isoformat()})"
        )
    start = cutoff_instant(week)
    return start, start + timedelta(days=7)


def week_plan(rows: pd.DataFrame) -> WeekPlan | None:
    """The latest plan among `rows` (the `plans` table's rows of the week's days); None: none recorded."""
    if rows.empty:
        return None
    latest = rows[rows["week"] == rows["week"].max()]
    planned = latest[latest["arm"].isin(ACTED)]
    actions = planned.groupby("action").agg(accounts=("account_id", "size"), value=("expected_value", "sum"))
    return WeekPlan(
        week=str(pd.Timestamp(latest["week"].iloc[0]).date()),
        model_version=str(latest["model_version"].iloc[0]),
        accounts=len(latest),
        planned=len(planned),
        holdout=int((latest["arm"] == HELD_OUT).sum()),
        expected_value=round(float(planned["expected_value"].sum()), 2),
        actions=[
            PlannedAction(
                action=str(action), accounts=int(row["accounts"]), expected_value=round(row["value"], 2)
            )
            for action, row in actions.sort_values(["accounts", "value"], ascending=False).iterrows()
        ],
    )


def alert_counts(alerts: Sequence[AlertBrief], examples: int = EXAMPLES) -> list[AlertCount]:
    """The alerts by type, the most frequent first, each with its first few as examples."""
    by_type: dict[str, list[AlertBrief]] = defaultdict(list)
    for alert in alerts:
        by_type[alert.type].append(alert)
    return [
        AlertCount(
            type=type_,
            count=len(found),
            examples=[
                AlertExample(account_id=a.account_id, at=a.at.date().isoformat(), summary=a.summary)
                for a in found[:examples]
            ],
        )
        for type_, found in sorted(by_type.items(), key=lambda item: (-len(item[1]), item[0]))
    ]
