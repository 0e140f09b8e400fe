"""The oracle: each active account's true 90-day churn and expansion probabilities, and each action's
exact effect on them, at every month-end cutoff.

Probabilities follow the expected dynamics from the state at the cutoff (dynamics.step without a
generator): no bad releases and no interventions after the cutoff. Churn combines the daily
cancellation hazard with the non-renewal probability when the renewal date falls in the window;
expansion is the chance of a first expansion before churning. An action's effect is the change in
those probabilities when the action is applied to the state at the cutoff, through the same code.
The holdout table records who the CS team held back, from when to when.

When the team follows a plan schedule, each executed action's effect is taken the same way on the
intervention day, from the state just before the week's actions: `plan_effects` has one row per executed
action, and `plan_arms` every account of the week with its arm and its baseline probabilities.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from core.catalogue import ACTIONS
from core.contract import TS
from simulate.config import HORIZON_DAYS
from simulate.dynamics import State, churn_hazard, expansion_hazard, nonrenewal_probability, step
from simulate.effects import apply_action
from simulate.population import Traits

PROBABILITY_SCHEMA = pa.schema(
    [
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("cutoff", TS, nullable=False),
        pa.field("p_churn", pa.float64(), nullable=False),
        pa.field("p_expand", pa.float64(), nullable=False),
    ]
)
EFFECT_SCHEMA = pa.schema(
    [
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("cutoff", TS, nullable=False),
        pa.field("action", pa.string(), nullable=False),
        pa.field("churn_effect", pa.float64(), nullable=False),
        pa.field("expansion_effect", pa.float64(), nullable=False),
    ]
)
OUTCOME_SCHEMA = pa.schema(
    [
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("churn_date", TS),
        pa.field("expansion_date", TS),
    ]
)
PLAN_EFFECT_SCHEMA = pa.schema(
    [
        pa.field("week", TS, nullable=False),
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("action", pa.string(), nullable=False),
        pa.field("applied", TS, nullable=False),
        pa.field("p_churn", pa.float64(), nullable=False),
        pa.field("p_expand", pa.float64(), nullable=False),
        pa.field("churn_effect", pa.float64(), nullable=False),
        pa.field("expansion_effect", pa.float64(), nullable=False),
    ]
)
#: a plan week's arms: planned (action executed), holdout, skipped (planned, not executed), none
PLAN_ARMS = ("planned", "holdout", "skipped", "none")
PLAN_ARM_SCHEMA = pa.schema(
    [
        pa.field("week", TS, nullable=False),
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("arm", pa.string(), nullable=False),
        pa.field("applied", TS, nullable=False),
        #: null for an account not live on the intervention day
        pa.field("p_churn", pa.float64()),
        pa.field("p_expand", pa.float64()),
    ]
)
HOLDOUT_SCHEMA = pa.schema(
    [
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("start", TS, nullable=False),
        pa.field("end", TS, nullable=False),
    ]
)


def outlook(
    tr: Traits, s: State, to_renewal: np.ndarray, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """P(churn) and P(first expansion) in (cutoff, cutoff + 90 days] from state `s` at the cutoff.

    `to_renewal` is the days from the cutoff to the next renewal (>= 1: a renewal due at the cutoff
    itself has already been settled). State arrays may carry leading variant axes. Given `rng`, the
    path is drawn rather than expected: the mean over drawn paths is what the expected path stands in
    for, which the tests check.
    """
    alive = np.ones_like(s.core_engagement)
    waiting = np.ones_like(s.core_engagement)
    expand = np.zeros_like(s.core_engagement)
    for k in range(HORIZON_DAYS + 1):
        due = to_renewal == k
        if due.any():
            keep = np.where(due, 1.0 - nonrenewal_probability(tr, s), 1.0)
            alive, waiting = alive * keep, waiting * keep
            s = s.replace(qbr=np.where(due, 0.0, s.qbr))
        if k == HORIZON_DAYS:
            break
        s = step(tr, s, rng)
        stay = 1.0 - churn_hazard(tr, s)
        grow = expansion_hazard(tr, s)
        expand += waiting * stay * grow
        waiting = waiting * stay * (1.0 - grow)
        alive = alive * stay
    return 1.0 - alive, expand


def cutoff_truth(
    tr: Traits, s: State, to_renewal: np.ndarray
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Baseline probabilities (n,) and each action's effects (n, actions), in catalogue order."""
    variants = State.stack([s, *(apply_action(a, tr, s, to_renewal) for a in ACTIONS)])
    churn, expand = outlook(tr, variants, to_renewal)
    return (churn[0], expand[0]), ((churn[1:] - churn[0]).T, (expand[1:] - expand[0]).T)


def acting_truth(
    tr: Traits, before: State, after: State, to_renewal: np.ndarray
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Baseline probabilities from `before` and the effects of the week's actions (`after` is the state
    right after them), as `cutoff_truth` takes one action's; zero for an account no action touched.

    The state is taken after the day's step, so the window is the 90 days after the intervention day:
    churn from day + 1 to day + 90, a lapse at a renewal on day + 1 to day + 90."""
    churn, expand = outlook(tr, State.stack([before, after]), to_renewal)
    return (churn[0], expand[0]), (churn[1] - churn[0], expand[1] - expand[0])


def probability_table(ids: pa.Array, cutoff_us: int, churn: np.ndarray, expand: np.ndarray) -> pa.Table:
    n = len(ids)
    return pa.Table.from_arrays(
        [ids, pa.array(np.full(n, cutoff_us), pa.int64()).cast(TS), pa.array(churn), pa.array(expand)],
        schema=PROBABILITY_SCHEMA,
    )


def effect_table(ids: pa.Array, cutoff_us: int, churn: np.ndarray, expand: np.ndarray) -> pa.Table:
    """One row per account and action; `churn` and `expand` are (accounts, actions)."""
    n, k = churn.shape
    return pa.Table.from_arrays(
        [
            ids.take(pa.array(np.repeat(np.arange(n), k))),
            pa.array(np.full(n * k, cutoff_us), pa.int64()).cast(TS),
            pa.array(ACTIONS, pa.string()).take(pa.array(np.tile(np.arange(k), n))),
            pa.array(churn.ravel()),
            pa.array(expand.ravel()),
        ],
        schema=EFFECT_SCHEMA,
    )


def outcome_table(ids: pa.Array, churn_us: np.ndarray, expansion_us: np.ndarray) -> pa.Table:
    """Realised first churn and first expansion per account; negative means none."""
    return pa.Table.from_arrays(
        [
            ids,
            pa.array(churn_us, pa.int64(), mask=churn_us < 0).cast(TS),
            pa.array(expansion_us, pa.int64(), mask=expansion_us < 0).cast(TS),
        ],
        schema=OUTCOME_SCHEMA,
    )


def holdout_truth_table(
    ids: pa.Array, account: np.ndarray, start_us: np.ndarray, end_us: np.ndarray
) -> pa.Table:
    """Who was held out, from `start` (a quarter's start) to `end` (the next draw, or the run's end),
    exclusive: the interventions log has the start only."""
    return pa.Table.from_arrays(
        [
            ids.take(pa.array(account, pa.int64())),
            pa.array(start_us, pa.int64()).cast(TS),
            pa.array(end_us, pa.int64()).cast(TS),
        ],
        schema=HOLDOUT_SCHEMA,
    )


def plan_effect_table(
    ids: pa.Array,
    week_us: int,
    applied_us: int,
    actions: np.ndarray,
    probabilities: tuple[np.ndarray, np.ndarray],
    effects: tuple[np.ndarray, np.ndarray],
) -> pa.Table:
    """One row per executed plan action; `actions` are catalogue indices, one per id."""
    n = len(ids)
    return pa.Table.from_arrays(
        [
            pa.array(np.full(n, week_us), pa.int64()).cast(TS),
            ids,
            pa.array(ACTIONS, pa.string()).take(pa.array(actions, pa.int64())),
            pa.array(np.full(n, applied_us), pa.int64()).cast(TS),
            *(pa.array(v, pa.float64()) for v in (*probabilities, *effects)),
        ],
        schema=PLAN_EFFECT_SCHEMA,
    )


def plan_arm_table(
    ids: pa.Array, week_us: int, applied_us: int, arm: np.ndarray, churn: np.ndarray, expand: np.ndarray
) -> pa.Table:
    """Every account of a plan week; `arm` indexes PLAN_ARMS, NaN probabilities are written as nulls."""
    n = len(ids)
    return pa.Table.from_arrays(
        [
            pa.array(np.full(n, week_us), pa.int64()).cast(TS),
            ids,
            pa.array(PLAN_ARMS, pa.string()).take(pa.array(arm, pa.int64())),
            pa.array(np.full(n, applied_us), pa.int64()).cast(TS),
            pa.array(churn, pa.float64(), mask=np.isnan(churn)),
            pa.array(expand, pa.float64(), mask=np.isnan(expand)),
        ],
        schema=PLAN_ARM_SCHEMA,
    )
