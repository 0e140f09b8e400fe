"""How an account's hidden state moves day to day, and the hazards it implies.

One step function serves both the simulation and the truth: given a random generator it draws the
next state (Gaussian shocks, Bernoulli switches of binary states); without one it returns the
expected next state. So the oracle's probabilities come from exactly the dynamics that generated
the data, less the noise and the shocks (bad releases, interventions) nobody can foresee.

Arrays broadcast over a leading axis, so the truth can push many "what if" variants of a chunk's
state through the same code at once.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from simulate.population import Population, Traits

# engagement: AR(1) around a level set by product fit and onboarding progress
ENG_REVERSION = 0.06
ENG_NOISE = 0.17
FIT_TO_LEVEL = 0.6
ONBOARDING_TO_LEVEL = 1.6
DAMAGE_TO_ENG = 0.7
FAILING_TO_ENG = 0.5
# sponsor engagement: mean-reverting to the sponsor's strength, reset when the sponsor leaves
SPONSOR_REVERSION = 0.03
SPONSOR_NOISE = 0.08
SPONSOR_TURNOVER = 1.0 / 1400.0
SPONSOR_AFTER_TURNOVER = -1.6
# decays per day
DAMAGE_DECAY = float(np.exp(-1.0 / 12.0))
ADOPT_DECAY = float(np.exp(-1.0 / 90.0))
ANNOY_DECAY = float(np.exp(-1.0 / 45.0))
UPSELL_DECAY = float(np.exp(-1.0 / 60.0))
SAVE_DECAY = float(np.exp(-1.0 / 150.0))
SATED_DECAY = float(np.exp(-1.0 / 120.0))
# onboarding: days to first value, and how often a weak onboarding stalls
ONBOARDING_DAYS = 45.0
UNSTALL = 0.02
# binary states: daily exit probabilities
FIX_RATE = 0.03
PAY_RECOVERY = 0.04
#: paying for seats nobody uses raises churn: logit per unit of seat utilisation (capped at 1)
SHELFWARE = 1.2
# daily logit intercepts per tier (enterprise, mid-market, small business, trial)
CHURN_BASE = np.array([-8.9, -8.4, -7.9, -7.4])
NONRENEWAL_BASE = np.array([-1.2, -1.0, -0.6, -0.2])
EXPANSION_BASE = np.array([-6.9, -7.0, -7.2, -7.1])


@dataclass(frozen=True)
class State:
    """The dynamic hidden state; binary states hold 0/1 when sampled, probabilities when expected."""

    core_engagement: np.ndarray  # engagement from product fit and onboarding (mean-reverting)
    adopt: np.ndarray  # adoption gained from enablement, fading
    sponsor: np.ndarray  # executive sponsor engagement
    damage: np.ndarray  # incident damage, decaying
    progress: np.ndarray  # onboarding progress in [0, 1]
    stalled: np.ndarray  # onboarding stalled
    failing: np.ndarray  # an integration is failing
    pay: np.ndarray  # payment trouble
    need: np.ndarray  # users who need a seat
    seats: np.ndarray  # seats purchased
    annoy: np.ndarray  # irritation from a badly timed pitch (raises churn)
    upsell: np.ndarray  # a live upgrade conversation (raises expansion)
    save: np.ndarray  # a save concession (cuts churn)
    qbr: np.ndarray  # value shown before the renewal (cuts non-renewal)
    sated: np.ndarray  # recent expansion (no second one right away)

    def where(self, mask: np.ndarray, other: State) -> State:
        """Rows of `other` where mask, else this state's."""
        return State(*(np.where(mask, getattr(other, f.name), getattr(self, f.name)) for f in fields(self)))

    def take(self, idx: np.ndarray) -> State:
        return State(*(getattr(self, f.name)[..., idx] for f in fields(self)))

    def replace(self, **changes: np.ndarray) -> State:
        return State(**{f.name: changes.get(f.name, getattr(self, f.name)) for f in fields(self)})

    @staticmethod
    def stack(states: list[State]) -> State:
        return State(*(np.stack([getattr(s, f.name) for s in states]) for f in fields(State)))


def initial_state(rng: np.random.Generator, pop: Population) -> State:
    """State on each account's first active day: established accounts near their steady state."""
    tr = pop.traits
    n = pop.size
    new = pop.start_day >= 0
    stuck = ~new & (tr.onboarding < -1.4)
    progress = np.where(new, 0.0, np.where(stuck, 0.75, 1.0))
    level = FIT_TO_LEVEL * tr.fit + ONBOARDING_TO_LEVEL * (progress - 1.0)
    zeros = np.zeros(n)
    return State(
        core_engagement=level + rng.normal(0.0, 0.45, n),
        adopt=zeros.copy(),
        sponsor=0.8 * tr.sponsor + rng.normal(0.0, 0.3, n),
        damage=zeros.copy(),
        progress=progress,
        stalled=stuck.astype(float),
        failing=(~new & (rng.random(n) < 0.04)).astype(float),
        pay=(rng.random(n) < 0.02).astype(float),
        need=pop.seats * pop.utilisation,
        seats=pop.seats.astype(float),
        annoy=zeros.copy(),
        upsell=zeros.copy(),
        save=zeros.copy(),
        qbr=zeros.copy(),
        sated=zeros.copy(),
    )


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def engagement(s: State) -> np.ndarray:
    """What usage reflects: core engagement plus enablement, less what incidents and failures cost."""
    return s.core_engagement + s.adopt - DAMAGE_TO_ENG * s.damage - FAILING_TO_ENG * s.failing


def utilisation(s: State) -> np.ndarray:
    return s.need / s.seats


def step(tr: Traits, s: State, rng: np.random.Generator | None = None) -> State:
    """One day forward: drawn when `rng` is given, expected otherwise."""
    eng = engagement(s)
    onboarding = s.progress < 1.0
    level = FIT_TO_LEVEL * tr.fit + ONBOARDING_TO_LEVEL * (s.progress - 1.0)
    core = s.core_engagement + ENG_REVERSION * (level - s.core_engagement)
    sponsor = s.sponsor + SPONSOR_REVERSION * (0.8 * tr.sponsor - s.sponsor)
    stall_in = sigmoid(-4.3 - 1.4 * tr.onboarding)
    p_stalled = np.where(onboarding, s.stalled * (1.0 - UNSTALL) + (1.0 - s.stalled) * stall_in, 0.0)
    rate = np.exp(0.35 * tr.onboarding) / ONBOARDING_DAYS
    progress = np.minimum(1.0, s.progress + rate * (1.0 - s.stalled))
    fail_in = sigmoid(-6.6 - 0.4 * tr.onboarding + 0.9 * s.damage) * (s.progress >= 0.5)
    p_failing = s.failing * (1.0 - FIX_RATE) + (1.0 - s.failing) * fail_in
    p_pay = s.pay * (1.0 - PAY_RECOVERY) + (1.0 - s.pay) * sigmoid(-5.9 + 0.9 * tr.price - 0.3 * eng)
    need = s.need * np.exp((0.10 + 0.12 * tr.growth + 0.08 * eng) / 365.0)
    if rng is None:
        sponsor = (1.0 - SPONSOR_TURNOVER) * sponsor + SPONSOR_TURNOVER * SPONSOR_AFTER_TURNOVER
        stalled, failing, pay = p_stalled, p_failing, p_pay
    else:
        shape = s.core_engagement.shape
        core = core + ENG_NOISE * rng.standard_normal(shape)
        turnover = rng.random(shape) < SPONSOR_TURNOVER
        sponsor = np.where(turnover, SPONSOR_AFTER_TURNOVER, sponsor) + SPONSOR_NOISE * rng.standard_normal(
            shape
        )
        stalled = (rng.random(shape) < p_stalled).astype(float)
        failing = (rng.random(shape) < p_failing).astype(float)
        pay = (rng.random(shape) < p_pay).astype(float)
    return State(
        core_engagement=core,
        adopt=s.adopt * ADOPT_DECAY,
        sponsor=sponsor,
        damage=s.damage * DAMAGE_DECAY,
        progress=progress,
        stalled=stalled,
        failing=failing,
        pay=pay,
        need=need,
        seats=s.seats,
        annoy=s.annoy * ANNOY_DECAY,
        upsell=s.upsell * UPSELL_DECAY,
        save=s.save * SAVE_DECAY,
        qbr=s.qbr,
        sated=s.sated * SATED_DECAY,
    )


def churn_hazard(tr: Traits, s: State) -> np.ndarray:
    """Daily probability of a mid-contract cancellation."""
    z = (
        CHURN_BASE[tr.tier]
        - 0.9 * engagement(s)
        - 0.6 * s.sponsor
        - SHELFWARE * np.minimum(utilisation(s), 1.0)
        + 1.4 * s.pay
        + 1.0 * s.stalled
        + 0.3 * tr.price
        + s.annoy
        - s.save
    )
    return sigmoid(z)


def nonrenewal_probability(tr: Traits, s: State) -> np.ndarray:
    """Probability that the account lets its contract lapse at the renewal date."""
    z = (
        NONRENEWAL_BASE[tr.tier]
        - 1.0 * engagement(s)
        - 0.8 * s.sponsor
        - SHELFWARE * np.minimum(utilisation(s), 1.0)
        + 1.2 * s.pay
        + 0.6 * tr.price
        + 0.8 * s.stalled
        + s.annoy
        - s.qbr
        - s.save
    )
    return sigmoid(z)


def expansion_hazard(tr: Traits, s: State) -> np.ndarray:
    """Daily probability of buying >= 10% more (seats or plan); none before the first dataset."""
    z = (
        EXPANSION_BASE[tr.tier]
        + 3.5 * (utilisation(s) - 0.85)
        + 0.5 * engagement(s)
        + 0.3 * s.sponsor
        - 0.35 * tr.price
        - 0.6 * s.damage
        + s.upsell
        - 2.0 * s.sated
    )
    return sigmoid(z) * (s.progress >= 0.75)
