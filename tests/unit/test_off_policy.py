"""Off-policy estimates of a policy's value on simulations whose true effects are known: the DR and the
self-normalised IPW intervals hold the policy's true churn averted in about 95% of seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.causal.off_policy import EvaluationWeeks, estimate
from training.causal.policy import Offer
from training.logodds import expit

ACCOUNTS, WEEKS, ACTIONS = 600, 6, 3
SEEDS = 100


def _logged_world(seed: int) -> tuple[EvaluationWeeks, np.ndarray]:
    """Account-weeks where a team targeted three actions by risk (propensities known to the log here),
    churn fell by each action's true effect, and the DR pseudo-outcomes use outcome models that are
    deliberately off (the propensities are right, so DR stays unbiased). Returns the weeks and the true
    (rows, actions) effects."""
    rng = np.random.default_rng(seed)
    n = ACCOUNTS * WEEKS
    groups = np.repeat(np.arange(ACCOUNTS), WEEKS)
    level = rng.normal(0, 1, ACCOUNTS)[groups] + rng.normal(0, 0.3, n)
    base = expit(-2.0 + level)
    true = -base[:, None] * np.array([0.3, 0.1, 0.0])[None, :]  # a share of the risk, by action
    propensity = np.clip(expit(-2.5 + 0.8 * level[:, None] + rng.normal(0, 0.2, (n, ACTIONS))), 0.02, 0.9)
    treated = (rng.uniform(size=(n, ACTIONS)) < propensity).astype(np.int8)
    risk = np.clip(base + (treated * true).sum(axis=1), 0.0, 1.0)
    churned = (rng.uniform(size=n) < risk).astype(np.int8)
    psi = np.empty((n, ACTIONS))
    for j in range(ACTIONS):
        mu0, mu1 = base * 1.1, np.clip(base * 0.9, 0, 1)  # wrong outcome models
        t, e = treated[:, j], propensity[:, j]
        psi[:, j] = mu1 - mu0 + t * (churned - mu1) / e - (1 - t) * (churned - mu0) / (1 - e)
    offer = Offer(np.ones((n, ACTIONS), bool), groups, np.zeros(n), ("a", "b", "c"), np.zeros(ACTIONS))
    weeks = EvaluationWeeks(
        pd.DataFrame({"account_id": groups}),
        psi,
        offer,
        n // 10,
        groups,
        treated,
        propensity,
        churned,
        np.zeros((n, ACTIONS)),
    )
    return weeks, true


def test_dr_and_snipw_intervals_hold_a_policy_s_true_value() -> None:
    dr_held = snipw_held = 0
    for seed in range(SEEDS):
        weeks, true = _logged_world(seed)
        # the policy: the riskiest tenth of the rows, each given the first action
        rows = np.argsort(true[:, 0], kind="stable")[: weeks.budget]
        columns = np.zeros(len(rows), int)
        value = float(-true[rows, columns].sum())
        found = estimate("riskiest", rows, columns, weeks, seed)
        dr_held += found.dr_low <= value <= found.dr_high
        snipw_held += found.snipw_low <= value <= found.snipw_high
    assert dr_held >= 0.9 * SEEDS, dr_held
    assert snipw_held >= 0.85 * SEEDS, snipw_held
