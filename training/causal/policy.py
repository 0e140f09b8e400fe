"""Policies at a fixed budget, and their true value where the simulator's effects are known.

A policy scores every (row, action) pair; the pairs the next-best-actions endpoint would offer are taken
best first, one action per row, until `budget` rows are treated. Its true value is the churn it really
averts: minus the sum of the true effects of what it chose. The oracle chooses by the true effects
themselves, under the same offer and budget, so "share of the oracle" is how much of the achievable
reduction a policy finds.

The offer is what serving would answer at each row's cutoff: the catalogue's triggers and gates, the
cool-downs of the team's own takes before the cutoff, and the cool-downs the policy's own picks start
(serving records a take at once, `LastTaken.record`), so no policy is credited twice for one action within
its cool-down.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import numpy as np
import pandas as pd

from core.catalogue import ACTIONS, CATALOGUE, Action
from features.playbook import Verdict, eligibility, rules_ranking
from features.playbook_file import BUILT_IN, Playbook
from training.causal import recency


@dataclass(frozen=True)
class Offer:
    """What the endpoint would offer at each row's cutoff, and whose cool-downs a policy's picks start."""

    #: (rows, actions): eligible at the row's cutoff, the team's cool-downs included
    eligible: np.ndarray
    #: per row, the account: a pick cools its action down for this account only
    accounts: np.ndarray
    #: per row, the cutoff in days (float): how far apart two picks of one account's action lie
    days: np.ndarray
    actions: tuple[str, ...]
    #: per action, its cool-down: how far apart two picks of one account's action must lie
    cooldown_days: np.ndarray

    @classmethod
    def of(
        cls,
        rows: pd.DataFrame,
        per_row: Sequence[Sequence[Verdict]],
        actions: Sequence[str],
        catalogue: Mapping[str, Action] = CATALOGUE,
    ) -> Offer:
        """The offer of feature rows (`account_id`, `cutoff`) given their verdicts (`at_cutoffs`)."""
        cutoffs = pd.to_datetime(rows["cutoff"], utc=True).dt.tz_localize(None).to_numpy("datetime64[us]")
        return cls(
            eligible_mask(per_row, actions),
            rows["account_id"].to_numpy(),
            (cutoffs - np.datetime64(0, "us")) / recency.DAY,
            tuple(actions),
            np.array([catalogue[a].cooldown_days for a in actions], float),
        )

    def over(self, actions: Sequence[str], usable: Collection[str]) -> Offer:
        """The same rows over `actions`, in their order, offering only the `usable` ones (those a model can
        rank: serving puts the others after them, by the rules) that this offer has (a model trained under
        an earlier playbook may know an action it no longer holds)."""
        columns = [self.actions.index(a) if a in self.actions else 0 for a in actions]
        kept = np.isin(np.asarray(actions), [a for a in usable if a in self.actions])
        return Offer(
            self.eligible[:, columns] & kept[None, :],
            self.accounts,
            self.days,
            tuple(actions),
            self.cooldown_days[columns],
        )


def verdicts(
    records: Sequence[Mapping[str, Any]],
    taken: Sequence[Mapping[str, datetime]],
    as_of: Sequence[datetime],
    playbook: Playbook = BUILT_IN,
) -> list[list[Verdict]]:
    """Each feature row's playbook verdicts at its own `as_of`, cool-downs from `taken` included: the
    eligibility serving applies, so a judged policy can choose only what the served ranking could."""
    return [
        eligibility(row, last, when, playbook) for row, last, when in zip(records, taken, as_of, strict=True)
    ]


def at_cutoffs(
    rows: pd.DataFrame, last: Mapping[str, np.ndarray], playbook: Playbook = BUILT_IN
) -> list[list[Verdict]]:
    """`verdicts` of feature rows, each at its own cutoff, with `last` (`recency.last_taken` over the same
    rows) as the takes the cool-downs count from."""
    records = cast(list[dict[str, Any]], rows.to_dict("records"))
    taken = recency.latest_takes_per_row(last)
    return verdicts(records, taken, recency.cutoff_instants(rows["cutoff"]), playbook)


def eligible_mask(per_row: Sequence[Sequence[Verdict]], actions: Sequence[str] = ACTIONS) -> np.ndarray:
    """(rows, actions): which actions each row's verdicts allow."""
    out = np.zeros((len(per_row), len(actions)), bool)
    index = {a: j for j, a in enumerate(actions)}
    for i, row in enumerate(per_row):
        for verdict in row:
            if verdict.eligible and verdict.action in index:
                out[i, index[verdict.action]] = True
    return out


def play_places(
    bands: Sequence[Any], per_row: Sequence[Sequence[Verdict]], actions: Sequence[str] = ACTIONS
) -> np.ndarray:
    """(rows, actions): each eligible action's place in its row's health-band play (0 first), NaN for the
    others: the rules ranking, which serving falls back to, as numbers."""
    index = {a: j for j, a in enumerate(actions)}
    out = np.full((len(per_row), len(actions)), np.nan)
    for i, (band, verdicts_now) in enumerate(zip(bands, per_row, strict=True)):
        for ranked in rules_ranking(band if isinstance(band, str) else None, verdicts_now):
            if ranked.action in index:
                out[i, index[ranked.action]] = ranked.rank - 1
    return out


def by_account_order(order: np.ndarray, places: np.ndarray) -> np.ndarray:
    """(rows, actions) gains that treat rows in `order` (first is best), each with its best `places`
    (lowest first): a fixed order of accounts, such as the rules' or the riskiest first, as a policy."""
    rank = np.empty(len(order))
    rank[order] = np.arange(len(order))
    return -(rank[:, None] * places.shape[1] + places)


def plain_orders(health_score: pd.Series, risk: np.ndarray, places: np.ndarray) -> dict[str, np.ndarray]:
    """(rows, actions) gains of the plain policies a ranking is judged beside: the rules (lowest health
    score first, unknown last) and the riskiest first (by `risk`), each row with its band's play
    (`play_places`)."""
    health = pd.to_numeric(health_score, errors="coerce").fillna(np.inf).to_numpy()
    return {
        "rules": by_account_order(np.argsort(health, kind="stable"), places),
        "highest_risk": by_account_order(np.argsort(-risk, kind="stable"), places),
    }


def choose(gain: np.ndarray, offer: Offer, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, actions) of up to `budget` rows: the offered pairs with the largest `gain` first, one action
    per row, skipping a pair inside the cool-down of an already chosen pick of the same account and action.

    Picks are taken by gain, not by date, so the cool-down is kept both ways: any two picks of one account's
    action then lie a cool-down apart, and the whole set is one the endpoint could have offered cutoff by
    cutoff."""
    masked = np.where(offer.eligible, gain, -np.inf)
    cooldown = offer.cooldown_days
    picked: dict[tuple[Any, int], list[float]] = defaultdict(list)
    treated = np.zeros(len(gain), bool)
    rows: list[int] = []
    actions: list[int] = []
    for flat in np.argsort(-masked, axis=None, kind="stable"):
        i, j = divmod(int(flat), masked.shape[1])
        if len(rows) == budget or not np.isfinite(masked[i, j]):
            break
        day, earlier = offer.days[i], picked[(offer.accounts[i], j)]
        if treated[i] or any(abs(day - other) < cooldown[j] for other in earlier):
            continue
        treated[i] = True
        earlier.append(day)
        rows.append(i)
        actions.append(j)
    return np.array(rows, int), np.array(actions, int)


def true_value(true_churn_effect: np.ndarray, rows: np.ndarray, actions: np.ndarray) -> float:
    """Expected churned accounts averted: minus the summed true effects on churn probability."""
    return float(-true_churn_effect[rows, actions].sum())
