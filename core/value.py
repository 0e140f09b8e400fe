"""What an action is worth for an account, in dollars over the horizon: the ARR its churn uplift saves,
plus the expansion it brings, minus its cost (CSM hours at a rate, plus money such as a concession); and
what the account's risk is worth before any action, its ARR at risk."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from core.catalogue import CATALOGUE, Action
from core.settings import ValueSettings


def arr_at_risk(churn_probability: float | None, arr: float | None) -> float | None:
    """The ARR a churn would lose, weighted by its probability: what the cockpit's book sorts by and the
    weekly digest sums; unknown when either is."""
    if churn_probability is None or arr is None:
        return None
    return churn_probability * arr


def action_costs(
    actions: Sequence[str], value: ValueSettings, catalogue: Mapping[str, Action] = CATALOGUE
) -> np.ndarray:
    """Each action's cost in dollars; NaN for one the catalogue no longer has (a model trained under an
    earlier playbook knows it, but nothing offers it)."""
    costs = [
        catalogue[a].cost_hours * value.csm_hour_usd + catalogue[a].cost_usd if a in catalogue else np.nan
        for a in actions
    ]
    return np.array(costs, float)


def expected_values(
    churn_uplift: np.ndarray,
    expansion_uplift: np.ndarray,
    arr: np.ndarray,
    actions: Sequence[str],
    value: ValueSettings,
    catalogue: Mapping[str, Action] = CATALOGUE,
) -> np.ndarray:
    """(accounts, actions) dollars: a churn uplift is a change in churn probability, so lowering it saves
    that share of the account's ARR; unknown ARR counts as none."""
    at_risk = np.nan_to_num(np.asarray(arr, float), nan=0.0)[:, None]
    saved = -churn_uplift * at_risk
    grown = expansion_uplift * at_risk * value.expansion_share
    return saved + grown - action_costs(actions, value, catalogue)[None, :]
