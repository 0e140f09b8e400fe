"""The Qini coefficient: a ranking that knows who gains sorts above a random one, beyond its interval; a
ranking by noise does not."""

from __future__ import annotations

import numpy as np

from training.causal.qini import qini


def _world(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of 500 accounts whose true gain grows with a score, observed through noisy pseudo-outcomes."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(500), 8)
    score = rng.uniform(0, 1, len(groups))
    gain = 0.05 * score + rng.normal(0, 0.3, len(groups))
    return score, gain, groups


def test_a_ranking_that_knows_who_gains_beats_random() -> None:
    score, gain, groups = _world(0)
    found = qini(score, gain, groups)
    assert found.better_than_random and found.qini > 0
    assert found.auuc > found.random_auuc
    assert found.curve[0] == 0.0 and abs(found.curve[-1] - 1.0) < 1e-9


def test_a_ranking_by_noise_is_no_better_than_random() -> None:
    covered = 0
    for seed in range(20):
        _, gain, groups = _world(seed)
        noise = np.random.default_rng(100 + seed).uniform(0, 1, len(gain))
        found = qini(noise, gain, groups, seed=seed)
        covered += found.ci_low <= 0 <= found.ci_high
    assert covered >= 17  # a 95% interval holds no gain in about 19 of 20


def test_the_reverse_ranking_is_worse_than_random() -> None:
    score, gain, groups = _world(1)
    assert qini(-score, gain, groups).ci_high < 0
