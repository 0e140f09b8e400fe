"""Thompson sampling: how the weekly plan explores, so that the actions the evidence is unsure of keep
getting tried where they might be best, and the plan's own data can settle them.

An explored account gets the action that is best under one draw from the posterior effects, which is
the same as drawing each eligible action with the probability that it is the best (probability matching,
Thompson 1933). Those probabilities are estimated from `DRAWS` posterior draws per account, and the action
is then drawn from the estimates themselves: the probability logged with the row is the one the action
was drawn with, exactly, which is what an off-policy estimate needs to weight by.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from training.causal.uplift import OUTCOMES, Inputs, UpliftModel

#: posterior draws per explored account: the chances' standard error is at most 1.6 points
DRAWS = 1_000

#: (churn change, expansion change, ARR) -> (rows, actions) dollars: `core.value.expected_values`
#: with the playbook's costs and the settings' rates bound
ValueOf = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Explored:
    """The explored accounts' picks."""

    #: each account's action column
    action: np.ndarray
    #: (accounts, actions) the probability that each action is the best under the posterior
    chances: np.ndarray

    @property
    def probability(self) -> np.ndarray:
        """The probability with which each account's action was drawn."""
        return self.chances[np.arange(len(self.action)), self.action]


def best_chances(
    model: UpliftModel,
    inputs: Inputs,
    arr: np.ndarray,
    allowed: np.ndarray,
    value_of: ValueOf,
    rng: np.random.Generator,
    draws: int = DRAWS,
) -> np.ndarray:
    """(accounts, actions): the share of posterior draws in which each allowed action is worth the most to
    the account. Each draw moves every action's share on each outcome by its own standard normal times its
    posterior standard deviation, as `UpliftModel.scaled` does."""
    n, m = allowed.shape
    rows = np.repeat(np.arange(n), draws)
    drawn = Inputs(inputs.values[rows], {o: risk[rows] for o, risk in inputs.risks.items()})
    change = model.scaled(drawn, {o: rng.standard_normal((len(rows), m)) for o in OUTCOMES})
    values = np.where(allowed[rows], value_of(change["churn"], change["expansion"], arr[rows]), -np.inf)
    counts = np.zeros((n, m))
    np.add.at(counts, (rows, values.argmax(axis=1)), 1.0)
    return counts / draws


def explore(
    model: UpliftModel,
    inputs: Inputs,
    arr: np.ndarray,
    allowed: np.ndarray,
    value_of: ValueOf,
    rng: np.random.Generator,
) -> Explored:
    """An action per account, each drawn with its chance of being the best; every account needs at least
    one allowed action."""
    if not allowed.any(axis=1).all():
        raise ValueError("every explored account needs an allowed action")
    chances = best_chances(model, inputs, arr, allowed, value_of, rng)
    cumulative = np.cumsum(chances, axis=1)
    u = rng.random(len(chances))[:, None] * cumulative[:, -1:]
    action = np.minimum((cumulative <= u).sum(axis=1), chances.shape[1] - 1)
    return Explored(action, chances)
