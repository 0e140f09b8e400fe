"""Exploration by Thompson sampling: the chances it draws with are the posterior's, and the probability
every explored row logs is the probability with which the plan really chose that row's action, checked by
running the sampler and the plan many times."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pytest

from core.catalogue import CATALOGUE
from core.settings import ValueSettings
from core.value import expected_values
from products.plan import Week, make_plan
from registry.models import VersionInfo
from store.plan_table import CHOSEN, EXPLORE, HELD_OUT
from training.causal.doubly_robust import Effect, RelativeEffect
from training.causal.posterior import Posterior, Prior
from training.causal.thompson import best_chances, explore
from training.causal.uplift import OUTCOMES, Inputs, Overlap, UpliftModel

#: cheap actions of similar worth and different certainty, and one that costs CSM hours
ACTIONS = ["in_app_nudge", "office_hours_invite", "training_session"]
SHARES = {
    "in_app_nudge": (-0.10, 0.06),
    "office_hours_invite": (-0.12, 0.02),
    "training_session": (-0.18, 0.1),
}
ARR = 20_000.0
RISK = 0.2


def model() -> UpliftModel:
    """An uplift model whose churn shares are known, with no effect on expansion."""
    overlap = Overlap(400, 10, 95.0, 0.0, {}, 40.0)
    relative = {(a, "churn"): RelativeEffect(*SHARES[a]) for a in ACTIONS} | {
        (a, "expansion"): RelativeEffect(0.0, 0.0) for a in ACTIONS
    }
    average = {(a, o): Effect(-0.01, 0.005, -0.02, 0.0, 0.0, 400, 9_000) for a in ACTIONS for o in OUTCOMES}
    overlaps = {a: overlap for a in ACTIONS}
    uplift = UpliftModel(
        "uplift", ["x"], {}, ACTIONS, 90, {"churn": RISK, "expansion": 0.1}, relative, overlaps, average
    )
    uplift.posterior = {k: _exact(s) for k, s in relative.items()}
    return uplift


def _exact(share: RelativeEffect) -> Posterior:
    """The share itself as the posterior: the test knows each action's distribution exactly."""
    return Posterior(share.value, share.se, 0.5, share, Prior(0.0, 1.0, "the test"), 1.0)


def value_of(churn: np.ndarray, expansion: np.ndarray, arr: np.ndarray) -> np.ndarray:
    return expected_values(churn, expansion, arr, ACTIONS, ValueSettings())


def inputs(n: int) -> Inputs:
    return Inputs(np.zeros((n, 1)), {"churn": np.full(n, RISK), "expansion": np.full(n, 0.1)})


def test_the_chances_are_the_probabilities_that_each_action_is_worth_most() -> None:
    """Two actions, one account: P(first is worth more) is a normal tail the test computes by hand."""
    uplift = model()
    allowed = np.array([[True, True, False]])
    chances = best_chances(
        uplift, inputs(1), np.array([ARR]), allowed, value_of, np.random.default_rng(3), 20_000
    )
    cost = [CATALOGUE[a].cost_hours * 150 + CATALOGUE[a].cost_usd for a in ACTIONS[:2]]
    means = [-SHARES[a][0] * RISK * ARR - c for a, c in zip(ACTIONS[:2], cost, strict=True)]
    sd = math.hypot(*(SHARES[a][1] * RISK * ARR for a in ACTIONS[:2]))
    first = 0.5 * math.erfc(-(means[0] - means[1]) / sd / math.sqrt(2))
    assert chances[0, 0] == pytest.approx(first, abs=0.01)
    assert chances[0, 2] == 0.0 and chances.sum() == pytest.approx(1.0)


def test_each_drawn_action_logs_the_probability_it_was_drawn_with() -> None:
    """Run the sampler over many seeds: how often it picks each action is the mean probability it logs."""
    uplift, allowed = model(), np.ones((1, 3), bool)
    picks, logged = np.zeros(3), np.zeros(3)
    for seed in range(2_000):
        drawn = explore(uplift, inputs(1), np.array([ARR]), allowed, value_of, np.random.default_rng(seed))
        picks[drawn.action[0]] += 1
        logged += drawn.chances[0]
    frequency, expected = picks / 2_000, logged / 2_000
    assert (expected > 0.05).sum() >= 2, "more than one action must be in play"
    assert np.abs(frequency - expected).max() < 3 * np.sqrt(0.25 / 2_000)


def week(n: int = 60) -> Week:
    """A week of `n` accounts, two CSMs, every action allowed, valued by the model's posterior means."""
    uplift = model()
    change = uplift.scaled(inputs(n))
    arr = np.full(n, ARR)
    info = VersionInfo("uplift", "1", None, "models:/m-1", ["champion"], {})
    return Week(
        week=date(2025, 9, 1),
        account_ids=[f"acc-{i:03d}" for i in range(n)],
        csm_ids=["csm-a" if i % 2 else "csm-b" for i in range(n)],
        actions=ACTIONS,
        arr=arr,
        values=value_of(change["churn"], change["expansion"], arr),
        allowed=np.ones((n, 3), bool),
        excluded=[],
        model=info,
        uplift=uplift,
        catalogue=CATALOGUE,
        unmodelled=[],
        inputs=inputs(n),
        value_of=value_of,
    )


def test_the_plans_logged_propensities_are_its_true_selection_probabilities() -> None:
    """Over many seeds, each (account, action) is explored as often as the probabilities logged with it
    say: summed inverse propensities of the explored rows count every pair with a chance once (Horvitz and
    Thompson), and the holdout and the plan's own choice keep their shares."""
    the_week, seeds, share = week(), 300, 0.2
    weights = np.zeros((60, 3))
    for seed in range(seeds):
        arms = make_plan(the_week, 8.0, 0.1, seed, explore_share=share).arms.to_pandas()
        assert set(arms["arm"]) <= {CHOSEN, EXPLORE, HELD_OUT, "none"}
        explored = arms[arms["arm"] == EXPLORE]
        rows = explored["account_id"].str[4:].astype(int).to_numpy()
        cols = [ACTIONS.index(a) for a in explored["action"]]
        np.add.at(weights, (rows, cols), 1.0 / explored["propensity"].to_numpy())
        held = arms["arm"] == HELD_OUT
        assert np.allclose(arms.loc[held, "propensity"], held.mean())
        assert np.allclose(
            arms.loc[arms["arm"] == CHOSEN, "propensity"], (1 - held.mean()) * (1 - share), atol=0.01
        )
    chances = best_chances(
        model(), inputs(1), np.array([ARR]), np.ones((1, 3), bool), value_of, np.random.default_rng(0), 50_000
    )
    in_play = chances[0] > 0.05
    assert in_play.sum() >= 2
    counted = weights[:, in_play].sum(axis=0) / seeds / 60
    assert counted == pytest.approx(np.ones(in_play.sum()), rel=0.1)
