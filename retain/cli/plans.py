"""`retain plan`: the week's actions within each CSM's hours, and a random holdout."""

from __future__ import annotations

from typing import Annotated

import typer

from retain import api
from retain.cli import summaries
from retain.cli.common import JsonOpt, StoreOpt, emit, one_date, open_store, stage


def plan(
    week: Annotated[str, typer.Option(help="the week's first day, e.g. 2025-07-28 (features as of 00:00)")],
    capacity_hours: Annotated[float, typer.Option(help="hours each CSM has for planned actions this week")],
    out: Annotated[
        str,
        typer.Option(
            help="the plan: a CSV, or a database table whose rows of the week it replaces: "
            "'postgresql://USER@HOST:PORT/DB#TABLE', 'sqlite:///PATH#TABLE'"
        ),
    ],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The weekly plan: actions where the uplift champion expects most value within each CSM's hours; a
    random holdout (setting value.holdout_share) gets none, so the effects stay measurable."""
    day = one_date(week, "--week")
    stage(f"planning the week of {day}: features, the uplift champion's values, then each CSM's hours")
    emit(api.plan(day, capacity_hours, out, store=open_store(store)), as_json, summaries.planned)
