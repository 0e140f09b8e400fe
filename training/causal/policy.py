"""Policies at a fixed budget, and their true value where the simulator's effects are known.

A policy scores every (account, eligible action) pair, takes each account's best action, and treats the
`budget` accounts whose best is best. Its true value is the churn it really averts: minus the sum of the
true effects of what it chose. The oracle chooses by the true effects themselves, under the same
eligibility (the catalogue's triggers, gates and cool-downs, as served) and budget, so "share of the
oracle" is how much of the achievable reduction a policy finds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

import numpy as np
import pandas as pd

from features.playbook import Verdict, eligibility, rules_ranking
from retain.core.catalogue import ACTIONS
from training.causal import recency


def verdicts(
    records: Sequence[Mapping[str, Any]], taken: Sequence[Mapping[str, datetime]], as_of: Sequence[datetime]
) -> list[list[Verdict]]:
    """Each feature row's catalogue verdicts at its own `as_of`, cool-downs from `taken` included: the
    eligibility serving applies, so a judged policy can choose only what the served ranking could."""
    return [eligibility(row, last, when) for row, last, when in zip(records, taken, as_of, strict=True)]


def at_cutoffs(rows: pd.DataFrame, last: Mapping[str, np.ndarray]) -> list[list[Verdict]]:
    """`verdicts` of feature rows, each at its own cutoff, with `last` (`recency.last_taken` over the same
    rows) as the takes the cool-downs count from."""
    records = cast(list[dict[str, Any]], rows.to_dict("records"))
    return verdicts(records, recency.latest_takes_per_row(last), recency.cutoff_instants(rows["cutoff"]))


def eligible_mask(per_row: Sequence[Sequence[Verdict]], actions: Sequence[str] = ACTIONS) -> np.ndarray:
    """(rows, actions): which actions each row's verdicts allow."""
    out = np.zeros((len(per_row), len(actions)), bool)
    index = {a: j for j, a in enumerate(actions)}
    for i, row in enumerate(per_row):
        for verdict in row:
            if verdict.eligible and verdict.action in index:
                out[i, index[verdict.action]] = True
    return out


def rules_choice(
    bands: Sequence[Any], per_row: Sequence[Sequence[Verdict]], actions: Sequence[str] = ACTIONS
) -> np.ndarray:
    """Each row's first action in its health band's play, or -1 when none is eligible."""
    index = {a: j for j, a in enumerate(actions)}
    out = np.full(len(per_row), -1)
    for i, (band, verdicts_now) in enumerate(zip(bands, per_row, strict=True)):
        ranked = rules_ranking(band if isinstance(band, str) else None, verdicts_now)
        if ranked:
            out[i] = index[ranked[0].action]
    return out


def choose(gain: np.ndarray, eligible: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, actions) of the `budget` accounts with the largest best eligible `gain`."""
    masked = np.where(eligible, gain, -np.inf)
    best = masked.argmax(axis=1)
    top = masked[np.arange(len(gain)), best]
    ranked = np.argsort(-top, kind="stable")
    ranked = ranked[np.isfinite(top[ranked])][:budget]
    return ranked, best[ranked]


def by_account_order(order: np.ndarray, action: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `budget` rows of `order` that have an action (`action` >= 0), with that action."""
    kept = order[action[order] >= 0][:budget]
    return kept, action[kept]


def true_value(true_churn_effect: np.ndarray, rows: np.ndarray, actions: np.ndarray) -> float:
    """Expected churned accounts averted: minus the summed true effects on churn probability."""
    return float(-true_churn_effect[rows, actions].sum())
