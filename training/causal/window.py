"""The window two uplift models are judged on before one replaces the other: the store's latest weeks,
with each (row, action)'s DR pseudo-outcome on churn, so a policy's churn averted can be estimated from
data alone (no truth needed) and compared between models on the same rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd

from features.definitions import KEYS
from retain.catalogue import ACTIONS
from retain.settings import Settings
from retain.store import Store
from training.causal import dr, policy
from training.causal.design import Design, store_design
from training.causal.uplift import UpliftModel
from training.config import UpliftConfig
from training.dataset import category_levels


@dataclass(frozen=True)
class PolicyWindow:
    rows: pd.DataFrame
    #: (rows, actions) pseudo-outcomes on churn: their sum over a policy's choices estimates its effect
    psi: np.ndarray
    eligible: np.ndarray
    budget: int
    groups: np.ndarray


def latest_weeks(design: Design, weeks: int) -> Design:
    cutoffs = np.sort(design.rows["cutoff"].unique())[-weeks:]
    keep = design.rows["cutoff"].isin(cutoffs).to_numpy()
    pick = {a: v[keep] for a, v in design.treated.items()}
    return Design(
        design.rows[keep].reset_index(drop=True),
        pick,
        {a: v[keep] for a, v in design.randomised.items()},
        {a: v[keep] for a, v in design.known_propensity.items()},
        {o: v[keep] for o, v in design.outcomes.items()},
    )


def policy_window(store: Store, settings: Settings, config: UpliftConfig, weeks: int = 12) -> PolicyWindow:
    config = config.resolved(settings)
    seed = int(config.seed or 0)
    design = latest_weeks(
        store_design(store, settings, int(config.horizon_days or 90), config.threads), weeks
    )
    features = [c for c in design.rows.columns if c not in KEYS]
    categories = category_levels(design.rows, [f for f in features if design.rows[f].dtype == object])
    x = dr.Matrix.of(design.rows, features, categories)
    splits = dr.folds(design.groups, config.folds, seed)
    y = design.outcomes["churn"]
    nobody = np.zeros(len(y), np.int8)
    baseline, _ = dr.fit_outcomes(x, nobody, y, splits, seed=seed, threads=config.threads)
    psi = np.empty((len(y), len(ACTIONS)))
    for j, action in enumerate(ACTIONS):
        t = design.treated[action]
        e, clipped = dr.fit_propensity(
            x,
            t,
            design.randomised[action],
            design.known_propensity[action],
            splits,
            clip=config.clip,
            seed=seed,
            threads=config.threads,
        )
        mu0, mu1 = dr.fit_outcomes(
            x, t, y, splits, seed=seed, threads=config.threads, baseline=baseline, propensity=e
        )
        psi[:, j] = dr.pseudo_outcomes(t, y, dr.Nuisance(mu0, mu1, e, clipped))
    records = cast(list[dict[str, Any]], design.rows.to_dict("records"))
    budget = max(1, round(config.budget_share * len(design.rows)))
    return PolicyWindow(design.rows, psi, policy.eligible_mask(records), budget, design.groups)


def averted(model: UpliftModel, window: PolicyWindow) -> np.ndarray:
    """Per row, the churn the model's policy is estimated to avert there (0 where it does nothing)."""
    gain = -model.uplift(window.rows)["churn"]
    usable = np.isin(np.array(model.actions), model.usable())
    columns = [ACTIONS.index(a) for a in model.actions]
    rows, actions = policy.choose(gain, window.eligible[:, columns] & usable[None, :], window.budget)
    out = np.zeros(len(window.rows))
    out[rows] = -window.psi[rows, np.array(columns)[actions]]
    return out
