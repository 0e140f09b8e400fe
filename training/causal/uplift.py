"""The uplift model: per catalogue action, the predicted change in 90-day churn and expansion probability
if the action is taken now, from DR-learners over one design.

Each (action, outcome) effect model regresses cross-fitted DR pseudo-outcomes on the account's features
plus its baseline risk (the cross-fitted outcome model), weighted by e(1 - e): a pseudo-outcome's variance
grows as 1/e, so the rows the experiment arm drew at a propensity of a few per thousand would otherwise
drown the signal the targeted arms carry. An action whose treated rows are worth too few effective rows
(`Overlap.poor`) is not trusted: serving ranks it by the rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from training.artifact import Rows, encode
from training.causal.dr import Effect, Matrix, predict

OUTCOMES = ("churn", "expansion")
#: column added to the features for the effect models: the outcome's baseline probability
BASELINE = "baseline_probability"


@dataclass(frozen=True)
class Overlap:
    """How well one action's treated rows cover the population, from its propensities."""

    n_treated: int
    n_randomised: int
    effective_treated: float
    clipped_share: float
    propensity_quantiles: dict[str, float]
    min_effective: float

    @property
    def poor(self) -> bool:
        return self.effective_treated < self.min_effective

    def as_dict(self) -> dict[str, Any]:
        return {
            "n_treated": self.n_treated,
            "n_randomised": self.n_randomised,
            "effective_treated": self.effective_treated,
            "clipped_share": self.clipped_share,
            "propensity_quantiles": self.propensity_quantiles,
            "poor": self.poor,
        }


@dataclass
class UpliftModel:
    name: str
    features: list[str]
    categories: dict[str, list[str]]
    actions: list[str]
    horizon_days: int
    #: outcome -> the outcome's baseline model over the features (fitted on every design row)
    baselines: dict[str, lgb.Booster | float]
    #: (action, outcome) -> effect model over the features and the baseline probability
    effects: dict[tuple[str, str], lgb.Booster]
    overlap: dict[str, Overlap]
    average: dict[tuple[str, str], Effect]
    kind: str = "uplift"
    threads: int = 1
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)

    def usable(self) -> list[str]:
        """Actions whose overlap is good enough to rank by their predicted uplift."""
        return [a for a in self.actions if not self.overlap[a].poor]

    def uplift(self, rows: Rows) -> dict[str, np.ndarray]:
        """outcome -> (rows, actions) predicted change in probability, in `actions` order, bounded so
        the probability with the action stays in [0, 1]: an effect model fitted to noisy pseudo-outcomes
        would otherwise promise a 12-point cut in a 9% risk."""
        values = encode(rows, self.features, self.categories, self.__dict__.setdefault("_code_cache", {}))
        x = Matrix(values, self.features, [])
        out = {}
        for outcome in OUTCOMES:
            base = predict(self.baselines[outcome], x, np.arange(len(values)))
            with_base = np.column_stack([x.values, base])
            effects = np.column_stack(
                [
                    np.asarray(self.effects[(a, outcome)].predict(with_base, num_threads=self.threads))
                    for a in self.actions
                ]
            )
            out[outcome] = np.clip(effects, -base[:, None], 1.0 - base[:, None])
        return out

    def frame(self, rows: pd.DataFrame) -> pd.DataFrame:
        """The pyfunc output: one column per action and outcome, e.g. `save_offer_churn`."""
        effects = self.uplift(rows)
        columns = {
            f"{a}_{outcome}": effects[outcome][:, j]
            for outcome in OUTCOMES
            for j, a in enumerate(self.actions)
        }
        return pd.DataFrame(columns, index=rows.index)
