"""The weekly plan: each account's action where the uplift champion expects most value within the CSMs'
hours, and the alerts of what it changed."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from core.settings import Settings
from retain.api.common import StoreLike, open_store, settings_or_default

if TYPE_CHECKING:
    from products.plan import PlanSummary


def plan(
    week: date,
    capacity_hours: float,
    out: Path | str,
    *,
    store: StoreLike = None,
    settings: Settings | None = None,
) -> PlanSummary:
    """The week's plan as a CSV, or a database table (`postgresql://...#TABLE`, `sqlite:///PATH#TABLE`)
    whose rows of the week it replaces: the actions where the uplift champion expects most value within
    each CSM's `capacity_hours`, and a random holdout that gets none."""
    from core.sql_out import destination  # deferred: SQLAlchemy
    from products import alerting
    from products.plan import plan_store  # deferred: MLflow and the uplift model
    from store.plan_table import recorded_plans

    target = destination(out)
    settings = settings_or_default(settings)
    where = open_store(store, settings)
    planned = plan_store(where, settings, week, capacity_hours, target)
    return dataclasses.replace(
        planned,
        alerts=alerting.record(where, settings, alerting.plan_alerts(recorded_plans(where), week)),
    )
