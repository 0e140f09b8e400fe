"""Posterior effects: each action's estimated share shrunk toward a prior, as far as its precision allows.

An estimate ranked as if it were certain lets noise pick the winners: among a dozen actions whose true
effects are mostly small, the one with the luckiest draw ranks first. Here each outcome's shares are
partially pooled with a normal hierarchical model,

    estimate_j ~ N(share_j, se_j^2),    share_j ~ N(mu, tau^2),

where the prior's centre mu and spread tau are learnt across the outcome's actions: mu with a flat prior,
tau on a grid with a flat prior (Gelman et al., Bayesian Data Analysis, 5.4), both integrated out rather
than plugged in, so a world where the actions truly differ little shrinks them much, one where they differ
a lot shrinks them little, and neither collapses every action onto one value. An action whose playbook
entry gives a prior (the team's belief or a published figure, `ActionPrior`) takes that normal prior
instead and stays out of the pooled fit.

Each posterior keeps its mean and standard deviation (what expected value and its interval use), the
probability that the action helps (for churn, that its share is below 0; for expansion, above 0), the
prior it came from and whether the data or the prior carried more weight: what a CSM is told.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from training.causal.doubly_robust import Z95, RelativeEffect

#: points of the grid over the prior's spread tau
TAU_GRID = 400
#: the grid reaches this many times the larger of the estimates' spread and their largest standard error:
#: far enough that the likelihood there is negligible
TAU_REACH = 4.0
LEARNT = "learnt across the playbook's actions"


class Belief(Protocol):
    """A playbook prior's belief about one outcome (`core.catalogue.Belief`)."""

    @property
    def mean(self) -> float: ...
    @property
    def sd(self) -> float: ...


class GivenPrior(Protocol):
    """A playbook action's prior (`core.catalogue.ActionPrior`), named by shape: the model's code
    carries this module, and none of the catalogue's dependencies."""

    @property
    def source(self) -> str: ...
    def for_outcome(self, outcome: str) -> Belief | None: ...


@dataclass(frozen=True)
class Prior:
    """What an action's share was believed to be before its data: centre, spread and where it came from."""

    mean: float
    sd: float
    #: `LEARNT`, or the playbook's `source` for a prior it gives
    source: str

    @property
    def learnt(self) -> bool:
        return self.source == LEARNT


@dataclass(frozen=True)
class Posterior:
    """An action's share of an outcome's baseline probability after the data: what ranks it."""

    value: float
    se: float
    #: P(the action helps): its churn share below 0, or its expansion share above 0
    p_helps: float
    #: the data's own estimate, before pooling
    estimate: RelativeEffect
    prior: Prior
    #: how much of the posterior mean the data carry (0: all prior, 1: all data): the prior's variance over
    #: the sum of it and the estimate's (for a pooled share, averaged over the prior's spread)
    data_weight: float

    @property
    def decided_by(self) -> Literal["data", "prior"]:
        return "data" if self.data_weight >= 0.5 else "prior"

    def as_dict(self) -> dict[str, float | str]:
        return {
            "share": self.value,
            "se": self.se,
            "ci_low": self.value - Z95 * self.se,
            "ci_high": self.value + Z95 * self.se,
            "p_helps": self.p_helps,
            "estimate": self.estimate.value,
            "estimate_se": self.estimate.se,
            "prior_mean": self.prior.mean,
            "prior_sd": self.prior.sd,
            "prior_source": self.prior.source,
            "data_weight": self.data_weight,
            "decided_by": self.decided_by,
        }


def helps_sign(outcome: str) -> float:
    """-1 where a lower probability helps (churn), +1 where a higher one does (expansion)."""
    return -1.0 if outcome == "churn" else 1.0


#: the standard normal distribution function, elementwise (math's erfc: the model's code imports no scipy)
_normal_cdf = np.vectorize(lambda z: 0.5 * math.erfc(-z / math.sqrt(2.0)), otypes=[float])


def _p_helps(mean: np.ndarray, sd: np.ndarray, sign: float) -> np.ndarray:
    return _normal_cdf(sign * mean / np.maximum(sd, 1e-12))


def with_prior(estimate: RelativeEffect, prior: Prior, outcome: str) -> Posterior:
    """The conjugate normal posterior of one share under a given prior."""
    precision = 1.0 / prior.sd**2 + 1.0 / max(estimate.se, 1e-12) ** 2
    weight = (1.0 / max(estimate.se, 1e-12) ** 2) / precision
    mean = weight * estimate.value + (1.0 - weight) * prior.mean
    sd = float(np.sqrt(1.0 / precision))
    p = float(_p_helps(np.array([mean]), np.array([sd]), helps_sign(outcome))[0])
    return Posterior(float(mean), sd, p, estimate, prior, float(weight))


def pooled(estimates: Mapping[str, RelativeEffect], outcome: str) -> dict[str, Posterior]:
    """The hierarchical posterior of each action's share (module docstring), mu and tau integrated out.

    Given tau, mu's posterior is normal with mean mu_hat = sum(e_j / V_j) / sum(1 / V_j) and variance
    V_mu = 1 / sum(1 / V_j), V_j = se_j^2 + tau^2; each share's is normal with mean mu_hat + (1 - B_j)
    (e_j - mu_hat) and variance (1 - B_j) se_j^2 + B_j^2 V_mu, B_j = se_j^2 / V_j. tau's posterior on the
    grid is proportional to sqrt(V_mu) prod_j V_j^(-1/2) exp(-(e_j - mu_hat)^2 / 2 V_j). One action alone,
    with nothing to learn a spread from, keeps its estimate."""
    names = list(estimates)
    if len(names) < 2:
        return {a: with_prior(s, Prior(s.value, 1e6, LEARNT), outcome) for a, s in estimates.items()}
    e = np.array([estimates[a].value for a in names])
    se = np.maximum(np.array([estimates[a].se for a in names]), 1e-12)
    reach = TAU_REACH * max(float(e.std()), float(se.max()))
    tau = np.linspace(reach / TAU_GRID, reach, TAU_GRID)[:, None]  # (grid, 1)
    v = se[None, :] ** 2 + tau**2  # (grid, actions)
    v_mu = 1.0 / (1.0 / v).sum(axis=1, keepdims=True)
    mu = (e[None, :] / v).sum(axis=1, keepdims=True) * v_mu
    log_post = 0.5 * np.log(v_mu[:, 0]) - 0.5 * np.log(v).sum(axis=1) - 0.5 * ((e - mu) ** 2 / v).sum(axis=1)
    w = np.exp(log_post - log_post.max())
    w /= w.sum()
    shrink = se[None, :] ** 2 / v  # B_j at each tau
    means = mu + (1.0 - shrink) * (e[None, :] - mu)
    variances = (1.0 - shrink) * se[None, :] ** 2 + shrink**2 * v_mu
    mean = w @ means
    sd = np.sqrt(np.maximum(w @ (variances + means**2) - mean**2, 0.0))
    p = w @ _p_helps(means, np.sqrt(variances), helps_sign(outcome))
    prior = Prior(float(w @ mu[:, 0]), float(np.sqrt(w @ (tau[:, 0] ** 2 + v_mu[:, 0]))), LEARNT)
    weight = w @ (1.0 - shrink)
    return {
        a: Posterior(float(mean[j]), float(sd[j]), float(p[j]), estimates[a], prior, float(weight[j]))
        for j, a in enumerate(names)
    }


def posteriors(
    estimates: Mapping[tuple[str, str], RelativeEffect], priors: Mapping[str, GivenPrior | None]
) -> dict[tuple[str, str], Posterior]:
    """Every (action, outcome) share's posterior: under the playbook's prior where `priors` gives one for
    that outcome, otherwise pooled with the outcome's other actions (`pooled`)."""
    out: dict[tuple[str, str], Posterior] = {}
    for outcome in sorted({o for _, o in estimates}):
        free: dict[str, RelativeEffect] = {}
        for (action, o), share in estimates.items():
            if o != outcome:
                continue
            given = priors.get(action)
            belief = given.for_outcome(o) if given is not None else None
            if given is None or belief is None:
                free[action] = share
            else:
                out[(action, o)] = with_prior(share, Prior(belief.mean, belief.sd, given.source), o)
        out |= {(a, outcome): p for a, p in pooled(free, outcome).items()}
    return {key: out[key] for key in estimates}
