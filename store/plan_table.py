"""The store's table of recorded plans: every active account of each planned week with its arm, so that the
monitor, the digest, the alerts, the autopilot and the cockpit read one definition of what a plan said."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from core.contract import TS
from store.delta import Store

PLANS = "plans"
#: an account's arm in a week's plan: the plan's own choice, an explored draw, the random holdout, or none
CHOSEN, EXPLORE, HELD_OUT, NO_ACTION = "chosen", "explore", "holdout", "none"
#: the arms whose accounts the plan gives an action
ACTED = (CHOSEN, EXPLORE)
#: what plans recorded before exploration called the plan's own choice
_LEGACY_CHOSEN = "planned"
PLANS_SCHEMA = pa.schema(
    [
        pa.field("week", TS, nullable=False),
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("arm", pa.string(), nullable=False),
        pa.field("action", pa.string()),
        pa.field("csm_id", pa.string()),
        pa.field("expected_value", pa.float64()),
        #: the account's ARR when planned: what the plan's impact is counted in
        pa.field("arr", pa.float64()),
        pa.field("model_version", pa.string(), nullable=False),
        #: the probability of the account's arm and action (products.plan.propensities)
        pa.field("propensity", pa.float64()),
    ]
)


@dataclass(frozen=True)
class PlanArm:
    """One account's row of one week's plan."""

    week: datetime
    arm: str
    action: str | None
    expected_value: float | None
    propensity: float | None


def recorded_plans(store: Store) -> pd.DataFrame:
    """Every recorded plan's rows (PLANS_SCHEMA), oldest week first; empty before the first plan. A plan
    recorded before exploration names its own choice as it did then ("planned") and reads as `CHOSEN`."""
    plans = store.read(PLANS, PLANS_SCHEMA).to_pandas()
    plans["arm"] = plans["arm"].replace(_LEGACY_CHOSEN, CHOSEN)
    return plans.sort_values(["week", "account_id"], ignore_index=True)


def latest_arm(store: Store, account_id: str, since: datetime) -> PlanArm | None:
    """The account's row in the newest plan of a week starting at or after `since`, if it has one."""
    rows = store.read(
        PLANS, PLANS_SCHEMA, where=ds.field("account_id") == account_id, scan=ds.field("week") >= since
    ).to_pylist()
    if not rows:
        return None
    row = max(rows, key=lambda r: r["week"])
    arm = CHOSEN if row["arm"] == _LEGACY_CHOSEN else row["arm"]
    return PlanArm(row["week"], arm, row["action"], row["expected_value"], row["propensity"])
