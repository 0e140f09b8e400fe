"""The contract's life: onboarding milestones, renewals or silent lapses, cancellations, expansions.

`VendorRecords` keep what the vendor's systems know (ARR, plan, renewal date) as the contract changes;
the realised churn and first expansion they record are the truth's outcomes. Churn stops all
telemetry: a cancellation emits `subscription.cancelled`, a lapse emits nothing at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulate.config import DAY_US, YEAR_DAYS
from simulate.dynamics import (
    State,
    churn_hazard,
    engagement,
    expansion_hazard,
    nonrenewal_probability,
    utilisation,
)
from simulate.events import Block, times_in_day
from simulate.population import PLANS, Population, Traits

PLAN_UPGRADE_SHARE = 0.3
PLAN_PRICE_STEP = (1.2, 1.5)
SEAT_HEADROOM = (1.1, 1.3)
RENEWAL_UPLIFT = 0.05
CONCESSION = 0.9
#: at renewal, a badly under-used account may cut seats down to this utilisation
SHRINK_BELOW = 0.55
SHRINK_TO = 0.75
SHRINK_SHARE = 0.35


@dataclass
class VendorRecords:
    """The vendor's records per account (updated in place)."""

    alive: np.ndarray
    seat_price: np.ndarray
    plan: np.ndarray
    renewal_day: np.ndarray
    churn_us: np.ndarray
    expansion_us: np.ndarray
    concession: np.ndarray
    milestones: np.ndarray
    last_milestone_day: np.ndarray

    @staticmethod
    def open(pop: Population, s: State) -> VendorRecords:
        n = pop.size
        return VendorRecords(
            alive=np.ones(n, bool),
            seat_price=pop.seat_price.copy(),
            plan=pop.plan.copy(),
            renewal_day=pop.renewal_day.copy(),
            churn_us=np.full(n, -1, np.int64),
            expansion_us=np.full(n, -1, np.int64),
            concession=np.zeros(n, bool),
            milestones=np.floor(s.progress * 4 + 1e-9).astype(np.int64),
            last_milestone_day=np.minimum(pop.start_day, 0),
        )

    def arr(self, s: State) -> np.ndarray:
        return np.round(s.seats * self.seat_price, 2)


def renewals(
    rng: np.random.Generator,
    day: int,
    day_us: int,
    tr: Traits,
    s: State,
    records: VendorRecords,
    started: np.ndarray,
) -> tuple[list[Block], State]:
    """Contracts reaching their renewal date at 00:00 renew (maybe with fewer seats) or lapse silently."""
    n = len(started)
    due = records.alive & started & (records.renewal_day == day)
    if not due.any():
        return [], s
    lapse = due & (rng.random(n) < nonrenewal_probability(tr, s))
    records.alive[lapse] = False
    records.churn_us[lapse] = day_us
    renew = due & ~lapse
    shrink = np.flatnonzero(renew & (utilisation(s) < SHRINK_BELOW) & (rng.random(n) < SHRINK_SHARE))
    seats_to = np.maximum(1.0, np.ceil(s.need[shrink] / SHRINK_TO))
    shrunk = Block(
        "seats.changed",
        shrink,
        np.full(len(shrink), day_us),
        None,
        {"seats_from": s.seats[shrink].astype(np.int64), "seats_to": seats_to.astype(np.int64)},
    )
    seats = s.seats.copy()
    seats[shrink] = seats_to
    idx = np.flatnonzero(renew)
    records.seat_price[idx] *= (1.0 + rng.uniform(0.0, RENEWAL_UPLIFT, len(idx))) * np.where(
        records.concession[idx], CONCESSION, 1.0
    )
    records.concession[idx] = False
    records.renewal_day[idx] += YEAR_DAYS
    s = s.replace(seats=seats, qbr=np.where(renew, 0.0, s.qbr))
    renewed = Block(
        "subscription.renewed",
        idx,
        np.full(len(idx), day_us),
        None,
        {
            "renewal_date": day_us + YEAR_DAYS * DAY_US + np.zeros(len(idx), np.int64),
            "arr_to": records.arr(s)[idx],
        },
    )
    return [shrunk, renewed], s


def _reasons(rng: np.random.Generator, s: State, tr: Traits, idx: np.ndarray) -> np.ndarray:
    eng = engagement(s)[idx]
    weights = np.stack(
        [
            0.3 + 2.0 * s.pay[idx] + 0.3 * np.maximum(0.0, tr.price[idx]),
            0.3 + np.maximum(0.0, -eng),
            np.full(len(idx), 0.3),
            0.1 + 1.5 * s.damage[idx] + s.failing[idx],
            0.2 + 0.3 * np.maximum(0.0, -tr.fit[idx]),
            np.full(len(idx), 0.05),
        ],
        axis=1,
    )
    cum = np.cumsum(weights, axis=1)
    reason = (rng.random(len(idx))[:, None] * cum[:, -1:] > cum).sum(axis=1)
    return np.where(rng.random(len(idx)) < 0.7, reason, -1)


def contract_moves(
    rng: np.random.Generator, day_us: int, tr: Traits, s: State, records: VendorRecords, live: np.ndarray
) -> tuple[list[Block], State, np.ndarray]:
    """Today's cancellations, then expansions among the rest; returns the accounts still live."""
    churn = live & (rng.random(len(live)) < churn_hazard(tr, s))
    cancelled = np.flatnonzero(churn)
    cancel_ts = times_in_day(rng, day_us, len(cancelled))
    records.alive[cancelled] = False
    records.churn_us[cancelled] = cancel_ts
    reasons = _reasons(rng, s, tr, cancelled)
    cancellations = Block("subscription.cancelled", cancelled, cancel_ts, None, {"reason": reasons})
    live = live & ~churn
    grow = np.flatnonzero(live & (rng.random(len(live)) < expansion_hazard(tr, s)))
    expansions, s = _expand(rng, day_us, s, records, grow)
    return [cancellations, *expansions], s, live


def _expand(
    rng: np.random.Generator, day_us: int, s: State, records: VendorRecords, grow: np.ndarray
) -> tuple[list[Block], State]:
    """A plan upgrade (ARR up 20-50%) or at least 10% more seats: an expansion either way."""
    upgrade = (records.plan[grow] < len(PLANS) - 1) & (rng.random(len(grow)) < PLAN_UPGRADE_SHARE)
    ts = times_in_day(rng, day_us, len(grow))
    arr_from = records.arr(s)[grow]
    up = grow[upgrade]
    records.seat_price[up] *= rng.uniform(*PLAN_PRICE_STEP, len(up))
    plans = {
        "plan_from": records.plan[up],
        "plan_to": records.plan[up] + 1,
        "arr_from": arr_from[upgrade],
        "arr_to": records.arr(s)[up],
    }
    records.plan[up] += 1
    more = grow[~upgrade]
    seats = s.seats.copy()
    headroom = np.ceil(s.need[more] * rng.uniform(*SEAT_HEADROOM, len(more)))
    seats[more] = np.maximum(np.ceil(s.seats[more] * 1.1), headroom)
    added = {"seats_from": s.seats[more].astype(np.int64), "seats_to": seats[more].astype(np.int64)}
    first = records.expansion_us[grow] < 0
    records.expansion_us[grow[first]] = ts[first]
    grown = np.zeros(len(records.alive), bool)
    grown[grow] = True
    s = s.replace(seats=seats, upsell=np.where(grown, 0.0, s.upsell), sated=np.where(grown, 1.0, s.sated))
    blocks = [
        Block("plan.changed", up, ts[upgrade], None, plans),
        Block("seats.changed", more, ts[~upgrade], None, added),
    ]
    return blocks, s


def milestone_events(
    rng: np.random.Generator, day: int, day_us: int, s: State, records: VendorRecords, live: np.ndarray
) -> list[Block]:
    """Onboarding milestones, one per quarter of progress crossed, for accounts onboarding in the window."""
    reached = np.minimum(4, np.floor(s.progress * 4 + 1e-9).astype(np.int64))
    new = live & (reached > records.milestones)
    accounts, levels = [], []
    for level in range(4):
        hit = np.flatnonzero(new & (records.milestones <= level) & (reached > level))
        accounts.append(hit)
        levels.append(np.full(len(hit), level))
    acc = np.concatenate(accounts)
    records.milestones = np.where(new, reached, records.milestones)
    records.last_milestone_day[new] = day
    block = Block(
        "onboarding.milestone",
        acc,
        times_in_day(rng, day_us, len(acc)),
        np.zeros(len(acc), np.int64),
        {"milestone": np.concatenate(levels)},
    )
    return [block]
