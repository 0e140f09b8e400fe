"""Days since each catalogue action was last taken: what the CS team has already done, as the uplift models
see it. An action's effect depends on it (a second QBR before the same renewal adds nothing; training
helps less the second time), and the feature table, built from telemetry alone, cannot show it.

Design rows, the judgement against the truth (`against_truth`) and the weekly plan take the timestamps from
the interventions table, strictly before a row's cutoff (a take at the cutoff is that week's treatment, not
an input); serving takes them from its cool-down register, every take up to its clock. The judgement and
the design also look forward (`taken_within`, `horizon_left`): what the team went on to do after a cutoff,
and how soon.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import pandas as pd

from core.catalogue import ACTIONS

DAY = np.timedelta64(1, "D")


def days_since_column(action: str) -> str:
    """The feature column holding the days since `action` was last taken."""
    return f"days_since_{action}"


def days_since(as_of: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Fractional days from `last` to `as_of` (datetime64 arrays); NaN where never taken."""
    return (as_of.astype("datetime64[us]") - last.astype("datetime64[us]")) / DAY


def last_taken(
    keys: pd.DataFrame, interventions: pd.DataFrame, actions: Sequence[str] = ACTIONS
) -> dict[str, np.ndarray]:
    """action -> for each (account_id, cutoff) row of `keys`, in order, the latest take strictly before the
    cutoff as naive UTC datetime64[us] (NaT where none)."""
    return _nearest_take(keys, interventions, actions, "backward")


def horizon_left(
    keys: pd.DataFrame, interventions: pd.DataFrame, days: float, actions: Sequence[str] = ACTIONS
) -> np.ndarray:
    """(rows, actions): the share of the `days` from each row's cutoff still ahead when each action was first
    taken from the cutoff on: 1 for a take at the cutoff, 0 where none came within the `days`. How long the
    team's own course leaves an action to work within the horizon."""
    first = _nearest_take(keys, interventions, actions, "forward")
    cutoffs = _naive_utc(keys["cutoff"])
    return np.column_stack(
        [np.nan_to_num(1.0 - days_since(first[a], cutoffs) / days, nan=0.0) for a in actions]
    ).clip(0.0)


def taken_within(
    keys: pd.DataFrame, interventions: pd.DataFrame, days: float, actions: Sequence[str] = ACTIONS
) -> np.ndarray:
    """(rows, actions): whether each action was taken in the `days` from each row's cutoff on (the cutoff
    included): what the team went on to do anyway."""
    return horizon_left(keys, interventions, days, actions) > 0


def _nearest_take(
    keys: pd.DataFrame,
    interventions: pd.DataFrame,
    actions: Sequence[str],
    direction: Literal["backward", "forward"],
) -> dict[str, np.ndarray]:
    left = pd.DataFrame(
        {
            "account_id": keys["account_id"].to_numpy(),
            "cutoff": _naive_utc(keys["cutoff"]),
            "row": np.arange(len(keys)),
        }
    ).sort_values("cutoff", kind="stable")
    taken = pd.DataFrame(
        {
            "account_id": interventions["account_id"].to_numpy(),
            "action": interventions["action"].to_numpy(),
            "ts": _naive_utc(interventions["ts"]),
        }
    ).sort_values("ts", kind="stable")
    out = {}
    for action in actions:
        mine = taken.loc[taken["action"] == action, ["account_id", "ts"]]
        matched = pd.merge_asof(
            left,
            mine.assign(when=mine["ts"]),
            left_on="cutoff",
            right_on="ts",
            by="account_id",
            direction=direction,
            allow_exact_matches=direction == "forward",
        )
        when = np.full(len(keys), np.datetime64("NaT"), "datetime64[us]")
        when[matched["row"].to_numpy()] = matched["when"].to_numpy("datetime64[us]")
        out[action] = when
    return out


def with_recency(rows: pd.DataFrame, last: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """`rows` with a days-since column per action, from `last_taken` over the same rows."""
    cutoffs = _naive_utc(rows["cutoff"])
    return rows.assign(**{days_since_column(a): days_since(cutoffs, taken) for a, taken in last.items()})


def for_account(
    last: Mapping[str, datetime], as_of: datetime, actions: Sequence[str] = ACTIONS
) -> dict[str, float]:
    """One account's days-since columns at `as_of`, from its latest take of each action up to then (aware
    datetimes; a never-taken action is absent)."""
    stamps = np.array([_naive(last[a]) if a in last else None for a in actions], "datetime64[us]")
    days = days_since(np.full(len(actions), _naive(as_of), "datetime64[us]"), stamps)
    return {days_since_column(a): float(d) for a, d in zip(actions, days, strict=True)}


def latest_takes_per_row(last: Mapping[str, np.ndarray]) -> list[dict[str, datetime]]:
    """Per row, each action's latest take as an aware datetime (the playbook's cool-down input); never-taken
    actions left out."""
    rows: list[dict[str, datetime]] = [{} for _ in range(len(next(iter(last.values()), ())))]
    for action, taken in last.items():
        for row, ts in zip(rows, taken.astype(object), strict=True):
            if ts is not None:
                row[action] = ts.replace(tzinfo=UTC)
    return rows


def cutoff_instants(cutoffs: pd.Series) -> list[datetime]:
    """Cutoffs as aware datetimes: the `as_of` of each row's eligibility."""
    return list(pd.DatetimeIndex(pd.to_datetime(cutoffs, utc=True)).to_pydatetime())


def _naive_utc(values: pd.Series) -> np.ndarray:
    return pd.to_datetime(values, utc=True).dt.tz_localize(None).to_numpy("datetime64[us]")


def _naive(t: datetime) -> datetime:
    return pd.Timestamp(t).tz_convert("UTC").tz_localize(None).to_pydatetime()
