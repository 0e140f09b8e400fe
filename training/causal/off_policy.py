"""Off-policy evaluation: a policy's churn averted estimated from the logged data alone, no truth needed.

Promotion compares two uplift models on the same rows, the store's latest weeks of the uplift design, where
each (row, action) carries its DR pseudo-outcome on churn: the sum over a policy's choices estimates the
churn it would avert."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.playbook_file import store_playbook
from retain.core.settings import Settings
from retain.core.store import Store
from training.causal import dr, policy
from training.causal.design import Design, store_design
from training.causal.train import CrossFit
from training.causal.uplift import UpliftModel
from training.config import UpliftConfig


@dataclass(frozen=True)
class EvaluationWeeks:
    """The latest weeks of the design, what a policy may choose there, and the evidence to score it by."""

    rows: pd.DataFrame
    #: (rows, actions) pseudo-outcomes on churn: their sum over a policy's choices estimates its effect
    psi: np.ndarray
    offer: policy.Offer
    budget: int
    groups: np.ndarray


def latest_weeks(design: Design, weeks: int) -> Design:
    """The design's rows at its latest `weeks` cutoffs."""
    cutoffs = np.sort(design.rows["cutoff"].unique())[-weeks:]
    return design.take(design.rows["cutoff"].isin(cutoffs).to_numpy())


def evaluation_weeks(
    store: Store, settings: Settings, config: UpliftConfig, weeks: int = 12
) -> EvaluationWeeks:
    """The store's latest `weeks` of the uplift design with every action's pseudo-outcome on churn
    (cross-fitted as training fits them), what the endpoint would offer at each row (`policy.Offer`) and the
    budget (`config.budget_share` of the rows)."""
    config = config.resolved(settings)
    design = latest_weeks(
        store_design(store, settings, int(config.horizon_days or 90), config.threads).usual_course(), weeks
    )
    fit = CrossFit.of(design, config, outcomes=("churn",))
    actions = list(design.actions)
    psi = np.empty((len(design.rows), len(actions)))
    for j, action in enumerate(actions):
        nuisance = fit.nuisance(action, "churn")
        psi[:, j] = dr.pseudo_outcomes(design.treated[action], design.outcomes["churn"], nuisance)
    verdicts = policy.at_cutoffs(design.rows, design.last_taken, store_playbook(store, settings))
    offer = policy.Offer.of(design.rows, verdicts, actions, design.actions)
    budget = max(1, round(config.budget_share * len(design.rows)))
    return EvaluationWeeks(design.rows, psi, offer, budget, design.groups)


def estimated_averted(model: UpliftModel, weeks: EvaluationWeeks) -> np.ndarray:
    """Per row, the churn the model's policy is estimated to avert there (0 where it does nothing)."""
    gain = -model.uplift(weeks.rows)["churn"]
    rows, actions = policy.choose(gain, weeks.offer.over(model.actions, model.usable()), weeks.budget)
    # a chosen action is one the offer has (`Offer.over`): the others' columns are never read
    columns = np.array(
        [weeks.offer.actions.index(a) if a in weeks.offer.actions else -1 for a in model.actions]
    )
    out = np.zeros(len(weeks.rows))
    out[rows] = -weeks.psi[rows, columns[actions]]
    return out
