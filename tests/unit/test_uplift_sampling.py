"""Case-control sampling of the untreated rows in the propensity fits (`doubly_robust.control_sample`):
every treated row kept at weight 1, the untreated drawn at a rate with weight 1 / rate, so the weighted fit
estimates the whole fold's propensity; off, or with untreated rows too few to thin, every row is kept."""

from __future__ import annotations

import numpy as np

from core.settings import NuisanceSampling
from training.causal import doubly_robust


def test_treated_rows_are_kept_and_the_untreated_weigh_one_over_their_rate() -> None:
    rng = np.random.default_rng(3)
    label = (rng.random(100_000) < 0.01).astype(np.int8)
    sampling = NuisanceSampling(controls_per_treated=10, min_controls=5_000)
    weight = doubly_robust.control_sample(label, rng.random(len(label)), sampling)
    assert weight is not None
    treated, controls = label == 1, label == 0
    assert (weight[treated] == 1.0).all()
    rate = 10 * treated.sum() / controls.sum()
    kept = weight[controls] > 0
    assert np.allclose(weight[controls][kept], 1.0 / rate)
    assert abs(kept.sum() - 10 * treated.sum()) < 4 * np.sqrt(10 * treated.sum())
    # each untreated row stands for the 1 / rate it was drawn among: the weights add up to their number
    assert abs(weight[controls].sum() / controls.sum() - 1.0) < 0.03


def test_the_floor_and_zero_keep_rows() -> None:
    rng = np.random.default_rng(4)
    label = (rng.random(10_000) < 0.01).astype(np.int8)
    draws = rng.random(len(label))
    floored = doubly_robust.control_sample(
        label, draws, NuisanceSampling(controls_per_treated=1, min_controls=5_000)
    )
    assert floored is not None and abs((floored[label == 0] > 0).sum() - 5_000) < 250
    assert doubly_robust.control_sample(label, draws, NuisanceSampling(min_controls=20_000)) is None
    assert doubly_robust.control_sample(label, draws, NuisanceSampling(controls_per_treated=0)) is None


def test_a_weighted_fit_on_the_sample_estimates_the_whole_propensity() -> None:
    """A rare, confounded treatment (about 2%): the propensity fitted on a tenth of the untreated rows,
    weighted, is calibrated and close to the one fitted on every row; unweighted it would be about ten
    times too high."""
    rng = np.random.default_rng(5)
    n = 60_000
    x = rng.normal(size=(n, 4))
    truth = 1.0 / (1.0 + np.exp(-(x[:, 0] + 0.5 * x[:, 1] - 4.5)))
    label = (rng.random(n) < truth).astype(np.int8)
    matrix = doubly_robust.Matrix(x, ["a", "b", "c", "d"], [])
    groups = np.arange(n) // 4
    fit_rows, predict_rows = np.arange(0, n, 2), np.arange(1, n, 2)
    sampling = NuisanceSampling(controls_per_treated=10, min_controls=1_000)
    assert doubly_robust.control_sample(label[fit_rows], rng.random(len(fit_rows)), sampling) is not None
    (full,) = doubly_robust.fold_propensities(matrix, [label], fit_rows, predict_rows, groups, 1, 1)
    (sampled,) = doubly_robust.fold_propensities(
        matrix, [label], fit_rows, predict_rows, groups, 1, 1, sampling
    )
    assert abs(sampled.mean() / label[predict_rows].mean() - 1.0) < 0.15
    assert abs(sampled.mean() / full.mean() - 1.0) < 0.1
    assert (
        np.corrcoef(sampled, truth[predict_rows])[0, 1] > 0.9 * np.corrcoef(full, truth[predict_rows])[0, 1]
    )
