"""The uplift model: per catalogue action, the predicted change in 90-day churn and expansion probability
if the action is taken now rather than not at all within the horizon, from DR-learners over one design.

Each (action, outcome) effect is a share of the outcome's baseline probability (`relative_effect`):
a training session that removes a fifth of the churn risk is worth four points to an account at 20% and
0.4 of a point to one at 2%. The share is the slope of cross-fitted DR pseudo-outcomes on the
cross-fitted baseline, weighted by e(1 - e): a pseudo-outcome's variance grows as 1/e, so the rows the
experiment arm drew at a propensity of a few per thousand would otherwise drown the signal the targeted
arms carry. The weekly data compare acting this week with the team's usual course, which often takes the
action a few weeks later anyway; each share is scaled to one against never acting
(`RelativeEffect.against_never_acting`, over `Overlap.worth_taken_later`), what a plan that is the team's
course decides between. An action whose worth settles at the renewal takes its shares from one row per renewal
instead (`renewal`), which compares with never acting as it stands. An action whose treated rows are worth
too few effective rows (`Overlap.poor`) is not trusted: serving ranks it by the rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd

from training.artifact import Rows, encode
from training.causal.doubly_robust import Z95, Effect, Matrix, RelativeEffect, predict
from training.causal.learners import Learner
from training.causal.posterior import Posterior, posteriors
from training.causal.qini import Qini
from training.causal.tournament import Standing

OUTCOMES = ("churn", "expansion")


@dataclass(frozen=True)
class Overlap:
    """How well one action's treated rows cover the population, from its propensities."""

    n_treated: int
    n_randomised: int
    effective_treated: float
    clipped_share: float
    propensity_quantiles: dict[str, float]
    min_effective: float
    #: `control_treated_later`: how far "not this week" meant "a few weeks later" (None: not measured)
    control_treated_later: float | None = None
    #: the same over the share of the horizon each later take had left (`recency.horizon_left`): how much of
    #: the action's time to work within the horizon the usual course gave comparable weeks anyway
    control_horizon_later: float | None = None
    #: `Action.settles_at_renewal`: a later take is worth a take now, whatever time it had left
    settles_at_renewal: bool = False
    #: the rows these figures and the action's shares come from: "weekly" (`design`), or "renewal" (one row
    #: per renewal, `renewal`: already against never acting)
    design: Literal["weekly", "renewal"] = "weekly"

    @property
    def poor(self) -> bool:
        return self.effective_treated < self.min_effective

    @property
    def worth_taken_later(self) -> float | None:
        """How much of the action's worth the usual course gave comparable untreated weeks anyway, what each
        weekly share is scaled to never acting by (`RelativeEffect.against_never_acting`): for an action that
        settles at the renewal, how often they got it later at all; for one whose effect accrues while it
        works, the share of the horizon their later takes had left. None for the renewal design, which
        compares with never acting already."""
        if self.design == "renewal":
            return None
        return self.control_treated_later if self.settles_at_renewal else self.control_horizon_later

    def as_dict(self) -> dict[str, Any]:
        return {
            "n_treated": self.n_treated,
            "n_randomised": self.n_randomised,
            "effective_treated": self.effective_treated,
            "clipped_share": self.clipped_share,
            "propensity_quantiles": self.propensity_quantiles,
            "control_treated_later": self.control_treated_later,
            "control_horizon_later": self.control_horizon_later,
            "settles_at_renewal": self.settles_at_renewal,
            "design": self.design,
            "worth_taken_later": self.worth_taken_later,
            "poor": self.poor,
        }


@dataclass(frozen=True)
class Inputs:
    """Rows as an uplift model reads them: encoded features, and each outcome's baseline probability."""

    values: np.ndarray
    risks: dict[str, np.ndarray]


def uplift_from_shares(shares: np.ndarray, risk: np.ndarray) -> np.ndarray:
    """(rows, actions) changes in probability: each action's share (one per action, or one per row and
    action) of each row's `risk`, bounded so the probability with the action stays in [0, 1]."""
    base = risk[:, None]
    return np.clip(np.atleast_2d(shares) * base, -base, 1.0 - base)


@dataclass
class UpliftModel:
    name: str
    features: list[str]
    categories: dict[str, list[str]]
    actions: list[str]
    horizon_days: int
    #: outcome -> the outcome's baseline model over the features (fitted on every design row)
    baselines: dict[str, lgb.Booster | float]
    #: (action, outcome) -> the action's effect as a share of the outcome's baseline probability
    relative: dict[tuple[str, str], RelativeEffect]
    overlap: dict[str, Overlap]
    average: dict[tuple[str, str], Effect]
    kind: str = "uplift"
    threads: int = 1
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: (action, outcome) -> the share after pooling with the other actions or the playbook's prior: what
    #: ranks (`posterior`); a model pickled before posteriors existed pools its shares when first read
    posterior: dict[tuple[str, str], Posterior] = field(default_factory=dict)
    #: (action, outcome) -> how well the model's ranking sorts the design's rows by what they gain, beside a
    #: random ranking (`qini`); empty for a model trained before it was measured
    ranking_quality: dict[tuple[str, str], Qini] = field(default_factory=dict)
    #: action -> the learner that ranks it on churn where one beat the pooled share beyond its noise
    #: (`tournament`); the others rank by their share
    learners: dict[str, Learner] = field(default_factory=dict)
    #: action -> its tournament: each entrant's held-out value, the winner, the runner-up and the margin
    tournament: dict[str, Standing] = field(default_factory=dict)

    def effect(self, action: str, outcome: str) -> Posterior:
        """The action's posterior share of the outcome's baseline probability: what ranks it."""
        if not self.__dict__.get("posterior"):
            self.posterior = posteriors(self.relative, {})
        return self.posterior[(action, outcome)]

    def qini(self, action: str, outcome: str) -> Qini | None:
        """How well the model's ranking sorts who gains from the action (None: trained before it was
        measured)."""
        return self.__dict__.get("ranking_quality", {}).get((action, outcome))

    def p_helps(self, action: str) -> float:
        """The posterior probability that the action lowers churn: what a CSM is told about how sure."""
        return self.effect(action, "churn").p_helps

    def readable(self) -> bool:
        """Whether every effect is held as this code reads it: a model pickled by an earlier Retain (effect
        trees, or shares without standard errors) unpickles, then fails on its first ranking."""
        relative = self.__dict__.get("relative", {})
        return all(isinstance(relative.get((a, o)), RelativeEffect) for a in self.actions for o in OUTCOMES)

    def shows_benefit(self, action: str) -> bool:
        """Whether the evidence shows that the action helps: its posterior churn share's 95% interval lies
        wholly below 0, or its expansion share's wholly above. Otherwise its place in a ranking rests on an
        effect the evidence cannot yet tell from none, which the CSM should be told."""
        churn, expansion = (self.effect(action, o) for o in OUTCOMES)
        return churn.value + Z95 * churn.se < 0 or expansion.value - Z95 * expansion.se > 0

    def usable(self) -> list[str]:
        """Actions whose overlap is good enough to rank by their predicted uplift."""
        return [a for a in self.actions if not self.overlap[a].poor]

    def inputs(self, rows: Rows) -> Inputs:
        """The rows encoded as the model reads them, and each outcome's baseline probability."""
        values = encode(rows, self.features, self.categories, self.__dict__.setdefault("_code_cache", {}))
        x = Matrix(values, self.features, [])
        risks = {o: predict(self.baselines[o], x, np.arange(len(values)), self.threads) for o in OUTCOMES}
        return Inputs(values, risks)

    def risk(self, rows: Rows) -> dict[str, np.ndarray]:
        """outcome -> each row's baseline probability, the one the shares scale."""
        return self.inputs(rows).risks

    def uplift(self, rows: Rows) -> dict[str, np.ndarray]:
        """outcome -> (rows, actions) predicted change in probability, in `actions` order."""
        return self.scaled(self.inputs(rows))

    def scaled(self, inputs: Inputs, ses: float | Mapping[str, np.ndarray] = 0.0) -> dict[str, np.ndarray]:
        """`uplift` of encoded rows, bounded so the probability with the action stays in [0, 1]: an effect
        fitted to noisy pseudo-outcomes can pass -1 or promise more than the remaining headroom.

        Each action's change is its posterior share (`effect`) times the baseline, or, on churn, what the
        learner that won its tournament predicts (`learners`); `ses` moves each by that many of its share's
        posterior standard deviations times the baseline: one number for all (-Z95 and Z95: the ends of
        the 95% interval), or per outcome a (rows, actions) array (a posterior draw per row, `thompson`)."""
        out = {}
        learners = self.__dict__.get("learners", {})
        for outcome, risk in inputs.risks.items():
            shares = [self.effect(a, outcome) for a in self.actions]
            value, se = np.array([s.value for s in shares]), np.array([s.se for s in shares])
            moved = np.broadcast_to(
                ses if isinstance(ses, float | int) else ses[outcome], (len(risk), len(se))
            )
            change = uplift_from_shares(value + moved * se, risk)
            for j, action in enumerate(self.actions):
                if outcome == "churn" and action in learners:
                    learnt = learners[action].change(inputs.values, risk) + moved[:, j] * se[j] * risk
                    change[:, j] = np.clip(learnt, -risk, 1.0 - risk)
            out[outcome] = change
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
