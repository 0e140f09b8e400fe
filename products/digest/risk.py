"""Who entered and left high risk between two scored cutoffs, and the ARR at risk by group: pure over
the scored frames `run.py` reads (one row per account scored at a cutoff, with its `churn_probability`,
top `reason`, `arr` and `tier` at that cutoff, and its `name` and `csm_id`)."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from core import value
from core.settings import Settings
from features.definitions import known
from products.digest.schema import AccountMove, GroupRisk
from serving.assess import risk_band
from serving.schemas import RiskBand

#: the bands a CSM lead acts on
HIGH: frozenset[RiskBand] = frozenset({"high", "critical"})
#: the group of an account whose tier or CSM is unknown
UNKNOWN = {"tier": "unknown", "csm_id": "unassigned"}
ATTRIBUTES = ("name", "tier", "csm_id", "arr", "reason")


def or_none(x: Any) -> Any:
    """None for a missing value (`features.definitions.known`), else the value."""
    return x if known(x) else None


def top_reason(reasons: str | None) -> str | None:
    """The first of a score's reasons (the `reasons` column: JSON of {feature, text, ...}), in words."""
    found = json.loads(reasons) if isinstance(reasons, str) else []
    return str(found[0]["text"]) if found else None


def band(probability: float | None, settings: Settings) -> RiskBand | None:
    p = or_none(probability)
    return None if p is None else risk_band(float(p), settings)


def _latest(row: pd.Series, column: str) -> Any:
    """The row's value of `column` at the latest cutoff, else at the one before."""
    now = or_none(row[column])
    return now if now is not None else or_none(row[f"{column}_before"])


def moves(
    before: pd.DataFrame, after: pd.DataFrame, settings: Settings
) -> tuple[list[AccountMove], list[AccountMove]]:
    """The accounts entering high risk (high now, not before: lower then, or not scored then) and leaving
    it (high before, not now: lower now, or no longer scored, having churned or cancelled), each largest
    ARR first. An account's details are the latest cutoff's, else the earlier one's."""
    both = after.set_index("account_id").join(before.set_index("account_id"), how="outer", rsuffix="_before")
    now = both["churn_probability"].map(lambda p: band(p, settings))
    then = both["churn_probability_before"].map(lambda p: band(p, settings))
    high_now, high_then = now.isin(HIGH), then.isin(HIGH)
    entering: list[AccountMove] = []
    leaving: list[AccountMove] = []
    for account in both.index[high_now != high_then]:
        row = both.loc[account]
        move = AccountMove(
            account_id=str(account),
            **{a: _latest(row, a) for a in ATTRIBUTES},
            probability_before=or_none(row["churn_probability_before"]),
            probability_after=or_none(row["churn_probability"]),
            band_before=then[account],
            band_after=now[account],
        )
        (entering if high_now[account] else leaving).append(move)

    def largest_first(m: AccountMove) -> tuple[float, str]:
        return (-(m.arr or 0.0), m.account_id)

    return sorted(entering, key=largest_first), sorted(leaving, key=largest_first)


def _sums(scored: pd.DataFrame, by: str | None) -> pd.DataFrame:
    """Per group: accounts scored, their known ARR, and their ARR at risk (unknown ARR counts as none)."""
    at_risk = [
        value.arr_at_risk(or_none(p), or_none(a))
        for p, a in zip(scored["churn_probability"], scored["arr"], strict=True)
    ]
    groups = "all" if by is None else scored[by].astype(object).map(or_none).fillna(UNKNOWN[by]).astype(str)
    frame = pd.DataFrame(
        {
            "group": groups,
            "arr": pd.to_numeric(scored["arr"], errors="coerce").fillna(0.0),
            "at_risk": [0.0 if v is None else v for v in at_risk],
        },
        index=scored.index,
    )
    return frame.groupby("group").agg(
        accounts=("arr", "size"), arr=("arr", "sum"), at_risk=("at_risk", "sum")
    )


def risk_by(now: pd.DataFrame, before: pd.DataFrame | None, by: str | None) -> list[GroupRisk]:
    """ARR at risk per group (`by`: "tier", "csm_id", or None for all accounts) at the latest cutoff and
    its change from the cutoff before, largest first. A group with no account now (a CSM whose accounts
    all left) is kept with none at risk, so the groups always sum to the total."""
    current = _sums(now, by)
    earlier = None if before is None else _sums(before, by)
    if earlier is not None:
        gone = earlier.index.difference(current.index)
        current = pd.concat([current, pd.DataFrame(0.0, index=gone, columns=current.columns)])
    then = {} if earlier is None else {str(g): float(v) for g, v in earlier["at_risk"].items()}
    out = []
    for group, row in current.sort_values(["at_risk", "arr"], ascending=False).iterrows():
        prior = round(then[str(group)], 2) if str(group) in then else None
        out.append(
            GroupRisk(
                group=str(group),
                accounts=int(row["accounts"]),
                arr=round(float(row["arr"]), 2),
                arr_at_risk=round(float(row["at_risk"]), 2),
                arr_at_risk_before=prior,
                change=None if prior is None else round(float(row["at_risk"]) - prior, 2),
            )
        )
    return out
