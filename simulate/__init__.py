"""The ground-truth simulator: a seeded generative model of a B2B SaaS customer base.

It writes telemetry in the contract's shape for models to learn from, and, apart from it under
`truth/`, what no real dataset has: each account's true churn and expansion probabilities and each
action's true effect, so models and causal estimates can be scored against the oracle.
"""

from simulate.config import Drift, SimConfig
from simulate.plans import PlanSchedule
from simulate.run import Simulation, TierOutcomes, simulate_to
from simulate.stepped import Increment, SteppedSimulation, TruthSoFar

__all__ = [
    "Drift",
    "Increment",
    "PlanSchedule",
    "SimConfig",
    "Simulation",
    "SteppedSimulation",
    "TierOutcomes",
    "TruthSoFar",
    "simulate_to",
]
