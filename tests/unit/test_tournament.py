"""The tournament of effect learners on synthetic worlds with known effects: where the effect lives in one
health band, a learner that sees it beats the pooled share beyond its noise; where every account loses the
same share of its risk, the pooled share keeps its place."""

from __future__ import annotations

import numpy as np

from training.causal import doubly_robust
from training.causal.learners import BandShares
from training.causal.tournament import BANDS, DR_LEARNER, POOLED, Entry, compete, critical_z, winning_learner
from training.logodds import expit

ACCOUNTS, WEEKS = 1_500, 4
LEVELS = ["at_risk", "critical", "healthy", "neutral"]


def _entry(seed: int, heterogeneous: bool, accounts: int = ACCOUNTS) -> Entry:
    """Account-weeks with a baseline risk, a health band (encoded), a treatment at e = 0.3 and a churn
    outcome; the true effect is a fifth of the risk everywhere, or half the risk in the critical band and
    nothing elsewhere. Pseudo-outcomes from the true outcome models, as cross-fitting approaches them."""
    rng = np.random.default_rng(seed)
    n = accounts * WEEKS
    groups = np.repeat(np.arange(accounts), WEEKS)
    signal = rng.normal(0, 1, accounts)[groups]
    band = rng.integers(0, len(LEVELS), accounts)[groups].astype(float)
    base = expit(-1.5 + 0.8 * signal)
    effect = np.where(band == 1, -0.5 * base, 0.0) if heterogeneous else -0.2 * base
    e = np.full(n, 0.3)
    treated = (rng.uniform(size=n) < e).astype(float)
    churned = (rng.uniform(size=n) < base + treated * effect).astype(float)
    mu0, mu1 = base, base + effect
    psi = mu1 - mu0 + treated * (churned - mu1) / e - (1 - treated) * (churned - mu0) / (1 - e)
    x = doubly_robust.Matrix(
        np.column_stack([signal, band, rng.normal(0, 1, n)]), ["signal", "health_band", "noise"], [1]
    )
    return Entry(x, psi, e * (1 - e), base, groups)


def test_where_the_effect_lives_in_one_band_a_learner_that_sees_it_wins() -> None:
    wins = 0
    for seed in range(5):
        entry = _entry(seed, heterogeneous=True)
        standing = compete("save_offer", entry, LEVELS, 0.1, seed)
        wins += standing.winner in (BANDS, DR_LEARNER)
        assert set(standing.values) == {POOLED, BANDS, DR_LEARNER}
        if standing.winner == BANDS:
            learner = winning_learner(standing, entry, LEVELS, 1.0, seed, 1)
            assert isinstance(learner, BandShares)
            # the critical band's share is about half the risk, the others' near none
            assert learner.shares["critical"] < -0.3 and all(
                abs(learner.shares[b]) < 0.15 for b in ("healthy",)
            )
    assert wins >= 4


def test_where_every_account_loses_the_same_share_the_pooled_share_stays() -> None:
    kept = 0
    for seed in range(5):
        entry = _entry(seed, heterogeneous=False)
        standing = compete("training_session", entry, LEVELS, 0.1, seed)
        kept += standing.winner == POOLED
        if standing.winner == POOLED:
            assert winning_learner(standing, entry, LEVELS, 1.0, seed, 1) is None
            assert standing.runner_up != POOLED
    assert kept >= 4


def test_a_run_of_many_comparisons_asks_more_of_each() -> None:
    assert abs(critical_z(1) - 1.645) < 1e-3 and 2.8 < critical_z(22) < 2.9
    # an effect in one band, over more accounts, still wins at the run's corrected threshold
    entry = _entry(0, heterogeneous=True, accounts=12_000)
    standing = compete("save_offer", entry, LEVELS, 0.1, 0, critical=critical_z(22))
    assert standing.winner != POOLED and standing.critical == critical_z(22)


def test_without_a_band_column_only_the_dr_learner_challenges() -> None:
    entry = _entry(0, heterogeneous=True)
    standing = compete("save_offer", entry, None, 0.1, 0)
    assert set(standing.values) == {POOLED, DR_LEARNER}
