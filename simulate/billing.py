"""Monthly invoices: issued on the account's billing day, paid within weeks unless the account is in
payment trouble, overdue after 21 days, and declined at once for card-paying small accounts.

Invoices issued during a payment-trouble episode pile up unpaid; when the trouble clears, the
account settles all of them at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulate.config import DAY_US, HOUR_US
from simulate.events import Block, code, times_in_day
from simulate.population import SMALL_BUSINESS

DUE_DAYS = 21
PAY_DELAY = (1, 21)


@dataclass
class BillingMemory:
    """Open invoices per account: sequence numbers first_open..seq are unpaid (updated in place)."""

    anchor: np.ndarray  # billing day of month, 1..28
    seq: np.ndarray
    first_open: np.ndarray
    amount: np.ndarray
    pay_day: np.ndarray
    due_day: np.ndarray
    overdue: np.ndarray  # unpaid past due, or declined: what dunning and CS see

    @staticmethod
    def empty(anchor: np.ndarray) -> BillingMemory:
        n = len(anchor)
        return BillingMemory(
            anchor=anchor,
            seq=np.zeros(n, np.int64),
            first_open=np.ones(n, np.int64),
            amount=np.zeros(n),
            pay_day=np.zeros(n, np.int64),
            due_day=np.zeros(n, np.int64),
            overdue=np.zeros(n, bool),
        )

    @property
    def open(self) -> np.ndarray:
        return self.first_open <= self.seq


def billing_anchor(start_ordinal: np.ndarray) -> np.ndarray:
    """Billing day of month from the contract start (days since 1970-01-01), capped at 28."""
    days = start_ordinal.astype("datetime64[D]")
    return np.minimum(28, (days - days.astype("datetime64[M]")).astype(np.int64) + 1)


def billing_events(
    rng: np.random.Generator,
    day: int,
    day_us: int,
    day_of_month: int,
    tier: np.ndarray,
    arr: np.ndarray,
    pay: np.ndarray,
    live: np.ndarray,
    mem: BillingMemory,
) -> list[Block]:
    in_trouble = pay > 0.5
    paid = live & mem.open & ~in_trouble & (day >= mem.pay_day)
    late = live & mem.open & ~paid & (day == mem.due_day)
    settled = _settle(rng, day_us, np.flatnonzero(paid), mem)
    mem.overdue = (mem.overdue & ~paid) | late
    overdue = _invoice(rng, day_us, np.flatnonzero(late), mem.seq, mem.amount, "overdue", 6.0)
    idx = np.flatnonzero(live & (mem.anchor == day_of_month))
    mem.seq[idx] += 1
    mem.first_open[idx] = np.minimum(mem.first_open[idx], mem.seq[idx])
    mem.amount[idx] = np.round(arr[idx] / 12.0, 2)
    mem.pay_day[idx] = day + rng.integers(*PAY_DELAY, len(idx))
    mem.due_day[idx] = day + DUE_DAYS
    issued = _invoice(rng, day_us, idx, mem.seq, mem.amount, "issued", 3.0)
    card_declined = (tier[idx] >= SMALL_BUSINESS) & in_trouble[idx]
    declined = idx[card_declined]
    mem.overdue[declined] = True
    failed = _invoice(rng, day_us, declined, mem.seq, mem.amount, "failed", 3.0)
    failed.ts = np.minimum(issued.ts[card_declined] + HOUR_US, day_us + DAY_US - 1)
    return [settled, overdue, issued, failed]


def _settle(rng: np.random.Generator, day_us: int, idx: np.ndarray, mem: BillingMemory) -> Block:
    """Pay every open invoice of the accounts in `idx`, oldest first, in one sitting."""
    counts = mem.seq[idx] - mem.first_open[idx] + 1
    acc = np.repeat(idx, counts)
    seq = mem.first_open[acc] + np.arange(len(acc)) - np.repeat(np.cumsum(counts) - counts, counts)
    ts = np.repeat(times_in_day(rng, day_us, len(idx), 15.0), counts)
    mem.first_open[idx] = mem.seq[idx] + 1
    return _invoice_block(acc, np.minimum(ts, day_us + DAY_US - 1), seq, mem.amount[acc], "paid")


def _invoice(
    rng: np.random.Generator,
    day_us: int,
    idx: np.ndarray,
    seq: np.ndarray,
    amount: np.ndarray,
    status: str,
    hour: float,
) -> Block:
    ts = np.minimum(times_in_day(rng, day_us, len(idx), hour), day_us + DAY_US - 1)
    return _invoice_block(idx, ts, seq[idx], amount[idx], status)


def _invoice_block(
    acc: np.ndarray, ts: np.ndarray, seq: np.ndarray, amount: np.ndarray, status: str
) -> Block:
    props = {"invoice_id": seq, "status": np.full(len(acc), code("status", status)), "amount": amount}
    return Block("billing.invoice", acc, ts, None, props)
