"""Effect learners that may replace an action's pooled share where the data carry heterogeneity: each
predicts, for encoded feature rows, the change in churn probability that acting this week makes against the
usual course (the design's contrast). `tournament` fits them, judges them against the pooled share on
held-out accounts, and keeps one only where it wins beyond its noise; the uplift model applies a kept one in
place of the share (`UpliftModel.scaled`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np

from training.causal.doubly_robust import NUISANCE_PARAMS

#: the DR-learner's second stage: small, heavily regularised trees on every design row, weighted by
#: e (1 - e) as the share is, since a pseudo-outcome's variance grows as 1 / e
SECOND_STAGE: dict[str, Any] = NUISANCE_PARAMS | {
    "objective": "regression",
    "learning_rate": 0.05,
    "num_leaves": 7,
    "min_data_in_leaf": 400,
}
SECOND_STAGE_ROUNDS = 100


@dataclass(frozen=True)
class BandShares:
    """One share of the baseline risk per health band, partially pooled across bands; a band the design
    never saw takes `fallback` (the action's pooled share)."""

    #: the health band's column in the encoded rows, and its levels in code order
    column: int
    levels: tuple[str, ...]
    shares: dict[str, float]
    fallback: float
    #: what turns a change against the usual course into one against never acting, as the share's
    #: (`RelativeEffect.against_never_acting`)
    scale: float = 1.0

    def change(self, values: np.ndarray, risk: np.ndarray) -> np.ndarray:
        codes = values[:, self.column]
        by_code = np.array([self.shares.get(level, self.fallback) for level in self.levels] + [self.fallback])
        index = np.where(np.isnan(codes), len(self.levels), codes).astype(int)
        return self.scale * by_code[np.clip(index, 0, len(self.levels))] * risk


@dataclass(frozen=True)
class DrLearner:
    """A regularised regression of the action's DR pseudo-outcomes on the features (`SECOND_STAGE`)."""

    booster: lgb.Booster
    scale: float = 1.0

    def change(self, values: np.ndarray, risk: np.ndarray) -> np.ndarray:
        return self.scale * np.asarray(self.booster.predict(values, num_threads=1))


Learner = BandShares | DrLearner
