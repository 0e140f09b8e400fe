"""The uplift model against the simulator's truth: its average effects beside the true ones, and its
ranking's true value at a fixed budget beside the oracle's, the rules' and "call the riskiest"'s."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from core.catalogue import ACTIONS
from training.causal import doubly_robust, policy, recency
from training.causal.uplift import UpliftModel, uplift_from_shares

#: folds of `fitted_ceiling`: each account's fit comes from a model that never saw the account
FIT_FOLDS = 2


def _keys(frame: pd.DataFrame) -> pd.MultiIndex:
    return pd.MultiIndex.from_arrays([frame["account_id"], pd.to_datetime(frame["cutoff"], utc=True)])


def true_effects(effects: pd.DataFrame, rows: pd.DataFrame, column: str = "churn_effect") -> pd.DataFrame:
    """The truth's (rows, actions) effects for the (account_id, cutoff) keys of `rows`, in row order;
    rows the truth has no entry for are dropped (the result is indexed by the kept rows' positions)."""
    cutoff = pd.to_datetime(effects["cutoff"], utc=True)
    wide = effects.assign(cutoff=cutoff).pivot_table(
        index=["account_id", "cutoff"], columns="action", values=column
    )[list(ACTIONS)]
    keys = _keys(rows)
    found = keys.isin(wide.index)
    return pd.DataFrame(wide.loc[keys[found]].to_numpy(), index=np.flatnonzero(found), columns=list(ACTIONS))


def true_risk(probabilities: pd.DataFrame, truth: pd.DataFrame, rows: pd.DataFrame) -> np.ndarray:
    """The truth's 90-day churn probability for the rows `truth` (`true_effects`) kept, in its order."""
    p_churn = pd.Series(probabilities["p_churn"].to_numpy(), index=_keys(probabilities))
    return p_churn.reindex(_keys(rows.iloc[truth.index])).to_numpy(float)


def ceilings(
    true: np.ndarray, offer: policy.Offer, risks: dict[str, np.ndarray], p_churn: np.ndarray, budget: int
) -> dict[str, float]:
    """Churn averted by rankings told part of the truth: each action's true average effect among the rows
    where it is eligible, as a constant, and as a relative cut (over the true risk `p_churn`) applied to
    each of `risks`.

    They show how far perfect knowledge of the average effects goes with that risk; the rest of the
    oracle's value is heterogeneity beyond risk."""
    eligible = offer.eligible
    effects = np.where(eligible, true, 0.0)
    counts = np.maximum(eligible.sum(axis=0), 1)
    average = effects.sum(axis=0) / counts
    relative = effects.sum(axis=0) / np.maximum((eligible * p_churn[:, None]).sum(axis=0), 1e-12)
    gains = {"true_average_effect": np.broadcast_to(-average, true.shape)} | {
        f"true_relative_effect_x_{name}": -relative * risk[:, None] for name, risk in risks.items()
    }
    return {name: policy.true_value(true, *policy.choose(g, offer, budget)) for name, g in gains.items()}


def fitted_ceiling(
    true: np.ndarray, offer: policy.Offer, x: doubly_robust.Matrix, groups: np.ndarray, budget: int
) -> float:
    """Churn averted by a ranking fitted to the true effects themselves: per action, a LightGBM regression
    of every eligible row's true effect on the model's features, cross-fitted across accounts.

    It is as far as a learner on these features could go with noise-free effect labels, which no data give
    (a row shows one 0/1 outcome, under one action): between it and the uplift ranking lies what noisy
    outcomes cost; between it and the oracle, what the features cannot tell."""
    fitted = np.zeros_like(true)
    splits = doubly_robust.folds(groups, FIT_FOLDS, seed=0)
    for j in range(true.shape[1]):
        for fold, (fit_rows, predict_rows) in enumerate(splits):
            model = doubly_robust.fit_regression(
                x, fit_rows[offer.eligible[fit_rows, j]], true[:, j], fold, threads=1
            )
            fitted[predict_rows, j] = doubly_robust.predict(model, x, predict_rows)
    return policy.true_value(true, *policy.choose(-fitted, offer, budget))


#: multiples of the model's standard errors `noise_budget` adds to the truth's shares; a quarter of the
#: noise is what sixteen times the accounts would leave
NOISE_SCALES = (0.0, 0.25, 0.5, 1.0)
NOISE_DRAWS = 20


def noise_budget(
    true: np.ndarray,
    offer: policy.Offer,
    shares: np.ndarray,
    ses: np.ndarray,
    risk: np.ndarray,
    budget: int,
    seed: int = 0,
) -> dict[str, float]:
    """Churn averted by the model's ranking (`uplift_from_shares` over `risk`) told the truth's shares,
    with Gaussian noise of each `NOISE_SCALES` multiple of the model's standard errors `ses` added, averaged
    over `NOISE_DRAWS` draws.

    It splits the gap to the oracle: at no noise, what the ranking's form costs even with each action's
    share known; at the model's own noise, what noise that large costs; between them, what more data
    would buy."""
    rng = np.random.default_rng(seed)
    out = {}
    for scale in NOISE_SCALES:
        values = [
            policy.true_value(true, *policy.choose(-uplift_from_shares(noisy, risk), offer, budget))
            for noisy in shares + scale * ses * rng.standard_normal((NOISE_DRAWS if scale else 1, len(ses)))
        ]
        out[f"true_share_noise_x{scale:g}"] = float(np.mean(values))
    return out


def policy_values(
    model: UpliftModel,
    rows: pd.DataFrame,
    truth: pd.DataFrame,
    interventions: pd.DataFrame,
    budget_share: float,
    p_churn: np.ndarray | None = None,
    peers: Mapping[str, Callable[[pd.DataFrame], np.ndarray]] | None = None,
) -> dict[str, Any]:
    """True churn averted by each policy treating `budget_share` of the rows, each choosing only what the
    next-best-actions endpoint would offer (`policy.Offer`): the catalogue's eligibility at each row's cutoff
    with the cool-downs of the team's takes in `interventions` before it, and of the policy's own picks.
    Given the rows' true risk (`true_risk`), the `ceilings`, the `fitted_ceiling` and the `noise_budget` of
    the truth's shares (each action's summed effects over the summed risk, as `churn_shares`) too.

    The truth's effects are against no action at all, while the team goes on acting: `taken_anyway_share`
    is the part of each policy's value on (row, action) pairs the team took within the horizon anyway, value
    the data, which compare an action this week with the usual course, credit only through the shares'
    scaling to never acting (`RelativeEffect.against_never_acting`). `peers` are other rankings judged
    alike: each maps the judged rows to their (rows, actions) changes in churn probability, in
    `model.actions` order."""
    kept = rows.iloc[truth.index].reset_index(drop=True)
    last = recency.last_taken(kept, interventions)
    kept = recency.with_recency(kept, last)
    true = truth[list(model.actions)].to_numpy()
    verdicts = policy.at_cutoffs(kept, last)
    offer = policy.Offer.of(kept, verdicts, model.actions)
    budget = max(1, round(budget_share * len(kept)))
    inputs = model.inputs(kept)
    predicted = model.scaled(inputs)["churn"]
    risk = inputs.risks["churn"]
    places = policy.play_places(kept["health_band"].tolist(), verdicts, model.actions)
    plain = policy.plain_orders(kept["health_score"], risk, places)
    chosen = (
        {"oracle": policy.choose(-true, offer, budget), "uplift": policy.choose(-predicted, offer, budget)}
        | {name: policy.choose(gain, offer, budget) for name, gain in plain.items()}
        | {name: policy.choose(-predict(kept), offer, budget) for name, predict in (peers or {}).items()}
    )
    values = {name: policy.true_value(true, *choice) for name, choice in chosen.items()}
    anyway = np.where(recency.taken_within(kept, interventions, model.horizon_days, model.actions), true, 0.0)
    if p_churn is not None:
        values |= ceilings(true, offer, {"true_risk": p_churn, "model_risk": risk}, p_churn, budget)
        ses = np.array([model.relative[(a, "churn")].se for a in model.actions])
        shares = true_shares(truth, p_churn)[list(model.actions)].to_numpy()
        values |= noise_budget(true, offer, shares, ses, risk, budget)
        x = doubly_robust.Matrix.of(kept, model.features, model.categories)
        values["true_effect_fit"] = fitted_ceiling(true, offer, x, kept["account_id"].to_numpy(), budget)
    oracle = values["oracle"]
    return {
        "rows": len(kept),
        "budget": budget,
        "churn_averted": values,
        "share_of_oracle": {k: (v / oracle if oracle > 0 else None) for k, v in values.items()},
        "taken_anyway_share": {
            name: (policy.true_value(anyway, *choice) / values[name] if values[name] > 0 else None)
            for name, choice in chosen.items()
        },
    }


def effect_coverage(model: UpliftModel, truth: pd.DataFrame, outcome: str) -> dict[str, Any]:
    """Per action: the estimated average effect and interval, the true average over `truth`'s rows, and
    whether the interval holds it."""
    out = {}
    for action in model.actions:
        estimate = model.average[(action, outcome)]
        true = float(truth[action].mean())
        out[action] = {
            "true_ate": true,
            "ate": estimate.ate,
            "ci_low": estimate.ci_low,
            "ci_high": estimate.ci_high,
            "naive_difference": estimate.naive_difference,
            "covered": bool(estimate.ci_low <= true <= estimate.ci_high),
        }
    return out


def true_shares(truth: pd.DataFrame, p_churn: np.ndarray) -> pd.Series:
    """Per action, the share of churn risk it truly removes over `truth`'s rows: its summed true effects
    over their summed true risk, what the model's shares estimate."""
    return truth.sum() / float(p_churn.sum())


def churn_shares(model: UpliftModel, truth: pd.DataFrame, p_churn: np.ndarray) -> dict[str, Any]:
    """Per action: the share of churn risk the data say it removes, with its interval, and its posterior
    (what ranks it), beside the truth's
    (its summed true effects over the summed true risk of `truth`'s rows): how well the data pin down what
    the ranking multiplies the risk by."""
    truths = true_shares(truth, p_churn)
    return {
        a: model.relative[(a, "churn")].as_dict()
        | {"true_share": float(truths[a]), "posterior": model.effect(a, "churn").value}
        for a in model.actions
    }
