"""Posterior effects on synthetic problems whose true effects are known: ranking by the posterior loses less
than ranking by the raw estimates, and the probability of helping means what it says."""

from __future__ import annotations

import numpy as np
import pytest

from core.catalogue import ActionPrior, Belief
from serving.ranking import chance_of, how_sure
from training.causal.doubly_robust import RelativeEffect
from training.causal.posterior import LEARNT, Prior, pooled, posteriors, with_prior

ACTIONS = 12
SEEDS = 400


def _world(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A dozen actions as a deployment's playbook holds them: true shares spread around a centre, both of
    which differ by deployment (each seed is one), and estimates whose noise differs by action (a cheap,
    frequent action is estimated more precisely than a rare one)."""
    true = rng.normal(rng.uniform(-0.2, 0.1), rng.uniform(0.05, 0.25), ACTIONS)
    se = rng.uniform(0.05, 0.3, ACTIONS)
    return true, se, true + se * rng.standard_normal(ACTIONS)


def _posterior(estimate: np.ndarray, se: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    post = pooled(
        {
            str(j): RelativeEffect(float(e), float(s))
            for j, (e, s) in enumerate(zip(estimate, se, strict=True))
        },
        "churn",
    )
    return (
        np.array([post[str(j)].value for j in range(ACTIONS)]),
        np.array([post[str(j)].p_helps for j in range(ACTIONS)]),
    )


def test_ranking_by_the_posterior_loses_less_than_ranking_by_the_estimates() -> None:
    rng = np.random.default_rng(0)
    raw_regret = posterior_regret = 0.0
    for _ in range(SEEDS):
        true, se, estimate = _world(rng)
        mean, _ = _posterior(estimate, se)
        best = true.min()  # a lower churn share helps more
        raw_regret += true[estimate.argmin()] - best
        posterior_regret += true[mean.argmin()] - best
    assert posterior_regret < 0.85 * raw_regret, (posterior_regret, raw_regret)


def test_the_probability_of_helping_is_calibrated() -> None:
    rng = np.random.default_rng(1)
    said, helped = [], []
    for _ in range(SEEDS):
        true, se, estimate = _world(rng)
        _, p = _posterior(estimate, se)
        said.append(p)
        helped.append(true < 0)
    p, truly = np.concatenate(said), np.concatenate(helped)
    in_bin = (p >= 0.85) & (p < 0.95)
    assert in_bin.sum() > 300
    assert 0.85 <= truly[in_bin].mean() <= 0.95, truly[in_bin].mean()
    for low, high in ((0.0, 0.2), (0.4, 0.6), (0.95, 1.0)):
        rows = (p >= low) & (p < high)
        assert low - 0.05 <= truly[rows].mean() <= high + 0.05, (low, high, truly[rows].mean())


def test_shrinkage_follows_precision() -> None:
    """A noisy estimate moves toward the others far more than a precise one that is as far out."""
    shares = {f"a{j}": RelativeEffect(-0.05, 0.05) for j in range(8)}
    post = pooled(
        shares | {"precise": RelativeEffect(-0.5, 0.05), "noisy": RelativeEffect(-0.5, 0.5)}, "churn"
    )
    assert post["precise"].value < -0.4 and post["precise"].decided_by == "data"
    assert post["noisy"].value > -0.2 and post["noisy"].decided_by == "prior"
    assert post["precise"].prior.source == LEARNT


def test_a_playbook_prior_decides_until_the_data_outweigh_it() -> None:
    prior = ActionPrior(source="save-desk pilot, 2024", churn=Belief(mean=-0.3, sd=0.1))
    thin, rich = RelativeEffect(0.2, 1.0), RelativeEffect(0.0, 0.01)
    others = {
        ("training_session", "churn"): RelativeEffect(-0.1, 0.1),
        ("in_app_nudge", "churn"): RelativeEffect(0.0, 0.1),
    }
    for data, decided_by in ((thin, "prior"), (rich, "data")):
        post = posteriors(others | {("save_offer", "churn"): data}, {"save_offer": prior})
        saved = post[("save_offer", "churn")]
        assert saved.prior.source == "save-desk pilot, 2024"
        assert saved.decided_by == decided_by
    # the prior's outcome only: expansion is pooled
    pooled_too = posteriors(
        {("save_offer", "expansion"): RelativeEffect(0.1, 0.1), ("x", "expansion"): RelativeEffect(0.0, 0.1)},
        {"save_offer": prior},
    )
    assert pooled_too[("save_offer", "expansion")].prior.source == LEARNT


def test_conjugate_posterior_matches_the_formula() -> None:
    post = with_prior(RelativeEffect(-0.2, 0.1), Prior(0.0, 0.1, LEARNT), "churn")
    # equal precisions: the mean halfway, the variance halved
    assert post.value == pytest.approx(-0.1)
    assert post.se == pytest.approx(0.1 / np.sqrt(2))
    assert post.p_helps > 0.5 and post.data_weight == pytest.approx(0.5)


def test_expansion_helps_upward() -> None:
    post = pooled({"a": RelativeEffect(0.3, 0.05), "b": RelativeEffect(-0.3, 0.05)}, "expansion")
    assert post["a"].p_helps > 0.99 and post["b"].p_helps < 0.01


def test_the_words_say_how_sure_and_what_decided() -> None:
    data = with_prior(RelativeEffect(-0.3, 0.05), Prior(0.0, 1.0, LEARNT), "churn")
    assert how_sure(data) == (
        "How sure: very likely to help, an over 99% chance it lowers churn risk; decided by mostly the data."
    )
    pooled_in = with_prior(RelativeEffect(-0.3, 1.0), Prior(-0.05, 0.05, LEARNT), "churn")
    assert "likely to help" in how_sure(pooled_in) and "mostly what the other actions show" in how_sure(
        pooled_in
    )
    given = with_prior(RelativeEffect(0.1, 1.0), Prior(-0.3, 0.1, "save-desk pilot, 2024"), "churn")
    assert how_sure(given).endswith("decided by mostly the playbook's prior (save-desk pilot, 2024).")
    doubt = with_prior(RelativeEffect(0.0, 0.1), Prior(0.0, 1.0, LEARNT), "churn")
    assert "a toss-up to help, a 50% chance" in how_sure(doubt)
    assert [chance_of(p) for p in (0.87, 0.8, 0.11, 0.18, 0.08, 0.5, 0.999, 0.001)] == [
        "an 87%", "an 80%", "an 11%", "an 18%", "an 8%", "a 50%", "an over 99%", "an under 1%"
    ]  # fmt: skip
