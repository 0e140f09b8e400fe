"""Off-policy evaluation: a policy's churn averted estimated from the logged data alone, no truth needed.

Policies are judged on the same rows, the store's latest weeks of the uplift design, where each (row,
action) carries whether the team took it, the probability that it would (the propensity: learnt where the
team targeted, known where the experiment arm drew) and the row's churn outcome. Against the usual course
(what the team did anyway), a policy's churn averted is estimated two ways over the pairs it chooses:

- DR: minus the summed doubly robust pseudo-outcomes, with an account-clustered standard error; unbiased
  when either the outcome models or the propensities are right. Promotion's gate uses it.
- Self-normalised IPW: the chosen pairs' treated outcome rate less their untreated rate, each weighted by
  the inverse of its probability and normalised by the weights' sum, times the number of pairs; it needs
  the propensities only, and its interval comes from a bootstrap of the accounts.

Two estimates that agree within their intervals are a check that neither the outcome models nor the
propensities drive the answer alone."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.settings import Settings
from features.playbook_file import store_playbook
from store.delta import Store
from training.causal import doubly_robust, policy
from training.causal.design import Design, store_design
from training.causal.run import CrossFit
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
    #: (rows, actions): 1 where the team took the action that week
    treated: np.ndarray
    #: (rows, actions): the probability that it would (clipped as training clips it)
    propensity: np.ndarray
    #: per row: churned within the horizon
    churned: np.ndarray
    #: (rows, actions): each eligible action's place in its row's health-band play (the rules' order)
    places: np.ndarray


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
        psi[:, j] = doubly_robust.pseudo_outcomes(design.treated[action], design.outcomes["churn"], nuisance)
    verdicts = policy.at_cutoffs(design.rows, design.last_taken, store_playbook(store, settings))
    offer = policy.Offer.of(design.rows, verdicts, actions, design.actions)
    budget = max(1, round(config.budget_share * len(design.rows)))
    return EvaluationWeeks(
        design.rows,
        psi,
        offer,
        budget,
        design.groups,
        np.column_stack([design.treated[a] for a in actions]),
        np.column_stack([fit.propensities[a][0] for a in actions]),
        design.outcomes["churn"],
        policy.play_places(design.rows["health_band"].tolist(), verdicts, actions),
    )


def model_choices(model: UpliftModel, weeks: EvaluationWeeks) -> tuple[np.ndarray, np.ndarray]:
    """The (rows, offer columns) the model's policy chooses at the budget: by its expected churn change."""
    gain = -model.uplift(weeks.rows)["churn"]
    rows, actions = policy.choose(gain, weeks.offer.over(model.actions, model.usable()), weeks.budget)
    # a chosen action is one the offer has (`Offer.over`): the others' columns are never read
    columns = np.array(
        [weeks.offer.actions.index(a) if a in weeks.offer.actions else -1 for a in model.actions]
    )
    return rows, columns[actions]


def estimated_averted(model: UpliftModel, weeks: EvaluationWeeks) -> np.ndarray:
    """Per row, the churn the model's policy is estimated to avert there (0 where it does nothing)."""
    return _averted(weeks, *model_choices(model, weeks))


def _averted(weeks: EvaluationWeeks, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Per row, minus the pseudo-outcome of the pair chosen there (0 where none is): the DR estimate."""
    out = np.zeros(len(weeks.rows))
    out[rows] = -weeks.psi[rows, columns]
    return out


def account_orders(model: UpliftModel, weeks: EvaluationWeeks) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The plain policies' choices on the same offer and budget: the rules (lowest health score first, each
    with its band's play) and the riskiest first (by the model's baseline), each with its best place."""
    plain = policy.plain_orders(weeks.rows["health_score"], model.risk(weeks.rows)["churn"], weeks.places)
    return {name: policy.choose(gain, weeks.offer, weeks.budget) for name, gain in plain.items()}


#: bootstrap draws of the accounts behind the self-normalised IPW interval
DRAWS = 200


@dataclass(frozen=True)
class PolicyEstimate:
    """A policy's churn averted against the usual course on the evaluation weeks, estimated two ways."""

    policy: str
    pairs: int
    dr: float
    dr_low: float
    dr_high: float
    snipw: float
    snipw_low: float
    snipw_high: float


def _snipw(weeks: EvaluationWeeks, rows: np.ndarray, columns: np.ndarray, weight: np.ndarray) -> float:
    """Churn averted by the chosen pairs by self-normalised IPW, each row counted `weight[row]` times."""
    t = weeks.treated[rows, columns] == 1
    e = weeks.propensity[rows, columns]
    y, w = weeks.churned[rows].astype(float), weight[rows]
    treated, untreated = w * t / e, w * ~t / (1.0 - e)
    if treated.sum() == 0 or untreated.sum() == 0:
        return float("nan")
    effect = (treated * y).sum() / treated.sum() - (untreated * y).sum() / untreated.sum()
    return float(-effect * w.sum())


def estimate(
    name: str, rows: np.ndarray, columns: np.ndarray, weeks: EvaluationWeeks, seed: int = 0
) -> PolicyEstimate:
    """`name`'s chosen (rows, offer columns) judged by DR and by self-normalised IPW, with 95% intervals."""
    averted = _averted(weeks, rows, columns)
    total = float(averted.sum())
    se = doubly_robust.clustered_norm(averted - averted.mean(), weeks.groups)
    ones = np.ones(len(weeks.rows))
    snipw = _snipw(weeks, rows, columns, ones)
    _, codes = np.unique(weeks.groups, return_inverse=True)
    rng = np.random.default_rng(seed)
    draws = [_snipw(weeks, rows, columns, doubly_robust.resampled_accounts(codes, rng)) for _ in range(DRAWS)]
    low, high = np.nanpercentile(draws, [2.5, 97.5]) if len(rows) else (np.nan, np.nan)
    return PolicyEstimate(
        name,
        len(rows),
        total,
        total - doubly_robust.Z95 * se,
        total + doubly_robust.Z95 * se,
        snipw,
        float(low),
        float(high),
    )
