"""Qini curves and the area under the uplift curve (AUUC): how well an action's ranking of accounts sorts
who gains from it, beside a random ranking, with bootstrap intervals over accounts.

No row shows its own effect (an account is treated or not), so each row's gain is its cross-fitted doubly
robust pseudo-outcome (`pseudo_outcomes`), whose mean over any set of rows estimates that set's average
effect. Ranking rows best first, the curve at k is the summed gain of the first k rows; a random ranking's
curve is the straight line to the same total. The AUUC is the curve's mean height per row treated; the Qini
coefficient is the model's AUUC less the random one's, so 0 means the ranking sorts no better than chance
and a positive value says how much more the first-ranked rows gain, averaged over every budget. Both are in
the outcome's units (for churn: churned accounts averted per row ranked). The interval resamples whole
accounts, since an account's weeks move together: the Qini's bootstrap standard deviation either side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.causal.doubly_robust import Z95, resampled_accounts

#: bootstrap draws of the accounts for each interval
DRAWS = 200
#: points of each curve kept for a plot: the share of rows ranked, from 0 to 1
CURVE_POINTS = 21


@dataclass(frozen=True)
class Qini:
    """One action's ranking against a random one, on one outcome's pseudo-outcomes."""

    auuc: float
    random_auuc: float
    qini: float
    ci_low: float
    ci_high: float
    #: the model's curve at `CURVE_POINTS` shares of the rows ranked, as a share of all rows' summed gain
    curve: tuple[float, ...]
    rows: int

    @property
    def better_than_random(self) -> bool:
        """The interval of the Qini coefficient lies wholly above 0."""
        return self.ci_low > 0

    def as_dict(self) -> dict[str, float | int | bool | list[float]]:
        return {
            "auuc": self.auuc,
            "random_auuc": self.random_auuc,
            "qini": self.qini,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "better_than_random": self.better_than_random,
            "curve": list(self.curve),
            "rows": self.rows,
        }


def _areas(gain: np.ndarray, weight: np.ndarray) -> tuple[float, float]:
    """The AUUC of rows already in ranked order, each counted `weight` times, and the random ranking's."""
    total_rows = weight.sum()
    if total_rows == 0:
        return 0.0, 0.0
    cumulative = np.cumsum(gain * weight)
    auuc = float((cumulative * weight).sum() / total_rows**2)
    # the random line: k / n of the total at every k, averaged over k (weighted the same way)
    ranked = np.cumsum(weight) / total_rows
    random = float((ranked * weight).sum() * cumulative[-1] / total_rows**2)
    return auuc, random


def qini(score: np.ndarray, gain: np.ndarray, groups: np.ndarray, seed: int = 0) -> Qini:
    """The Qini of ranking rows by `score` (highest first) on their `gain` (pseudo-outcomes signed so that
    higher is better: minus the churn pseudo-outcome), with a 95% interval from `DRAWS` bootstraps of the
    accounts in `groups`."""
    order = np.argsort(-score, kind="stable")
    ranked_gain = gain[order]
    _, codes = np.unique(groups[order], return_inverse=True)
    ones = np.ones(len(gain))
    auuc, random = _areas(ranked_gain, ones)
    rng = np.random.default_rng(seed)
    draws = np.empty(DRAWS)
    for d in range(DRAWS):
        model_area, random_area = _areas(ranked_gain, resampled_accounts(codes, rng))
        draws[d] = model_area - random_area
    total = float(ranked_gain.sum())
    at = np.linspace(0, len(gain), CURVE_POINTS).round().astype(int)
    cumulative = np.concatenate([[0.0], np.cumsum(ranked_gain)])
    curve = tuple(float(cumulative[k] / total) if total else 0.0 for k in at)
    spread = float(draws.std(ddof=1))
    estimate = auuc - random
    return Qini(auuc, random, estimate, estimate - Z95 * spread, estimate + Z95 * spread, curve, len(gain))
