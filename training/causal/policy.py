"""Policies at a fixed budget, and their true value where the simulator's effects are known.

A policy scores every (account, eligible action) pair, takes each account's best action, and treats the
`budget` accounts whose best is best. Its true value is the churn it really averts: minus the sum of the
true effects of what it chose. The oracle chooses by the true effects themselves, under the same
eligibility and budget, so "share of the oracle" is how much of the achievable reduction a policy finds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from retain.catalogue import ACTIONS
from retain.playbook import eligibility, rules_ranking


def eligible_mask(records: Sequence[Mapping[str, Any]], actions: Sequence[str] = ACTIONS) -> np.ndarray:
    """(rows, actions): which actions the catalogue's rules allow for each feature row (no cool-downs)."""
    never = datetime(1970, 1, 1, tzinfo=UTC)
    out = np.zeros((len(records), len(actions)), bool)
    index = {a: j for j, a in enumerate(actions)}
    for i, row in enumerate(records):
        for verdict in eligibility(row, {}, never):
            if verdict.eligible and verdict.action in index:
                out[i, index[verdict.action]] = True
    return out


def rules_choice(records: Sequence[Mapping[str, Any]], actions: Sequence[str] = ACTIONS) -> np.ndarray:
    """Each row's first action in its health band's play, or -1 when none is eligible."""
    index = {a: j for j, a in enumerate(actions)}
    never = datetime(1970, 1, 1, tzinfo=UTC)
    out = np.full(len(records), -1)
    for i, row in enumerate(records):
        band = row.get("health_band")
        ranked = rules_ranking(band if isinstance(band, str) else None, eligibility(row, {}, never))
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
