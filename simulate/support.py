"""The voice of the customer: support tickets, surveys and executive-sponsor touches.

Incidents, failing integrations, stalled onboardings and billing trouble raise ticket volume and
priority and sour sentiment; engagement and sponsor health lift NPS. All of it is noisy: a healthy
account files feature requests, a quiet one may skip every survey.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulate.config import DAY_US, HOUR_US
from simulate.dynamics import State, engagement, sigmoid
from simulate.events import CHANNELS, Block, times_in_day

#: resolution delay in days by priority P1..P4: (low, high) inclusive
RESOLVE_DAYS = ((0, 1), (0, 3), (1, 7), (2, 14))
SURVEY_RATE = 0.03
SPONSOR_TOUCH_RATE = 0.07


@dataclass
class Resolution:
    account: np.ndarray
    ts: np.ndarray
    seq: np.ndarray
    priority: np.ndarray
    sentiment: np.ndarray
    csat: np.ndarray


@dataclass
class SupportMemory:
    """Ticket numbering and the resolutions still to come, by day (updated in place)."""

    ticket_seq: np.ndarray
    pending: dict[int, list[Resolution]] = field(default_factory=dict)

    @staticmethod
    def empty(n: int) -> SupportMemory:
        return SupportMemory(ticket_seq=np.zeros(n, np.int64))

    def schedule(self, day: int, delay: np.ndarray, resolution: Resolution) -> None:
        for d in np.unique(delay):
            sel = delay == d
            part = Resolution(*(getattr(resolution, f)[sel] for f in Resolution.__dataclass_fields__))
            self.pending.setdefault(day + int(d), []).append(part)

    def resolve(self, day: int, live: np.ndarray) -> Block:
        """Resolutions due today, for accounts still live (a churned account's tickets just close)."""
        due = self.pending.pop(day, [])
        if not due:
            empty = np.zeros(0, np.int64)
            return Block("ticket.resolved", empty, empty, None, {"ticket_id": empty, "priority": empty})
        r = Resolution(
            *(np.concatenate([getattr(p, f) for p in due]) for f in Resolution.__dataclass_fields__)
        )
        keep = live[r.account]
        return Block(
            "ticket.resolved",
            r.account[keep],
            r.ts[keep],
            None,
            {
                "ticket_id": r.seq[keep],
                "priority": r.priority[keep],
                "sentiment": r.sentiment[keep],
                "csat": r.csat[keep],
            },
        )


@dataclass(frozen=True)
class SupportSignals:
    urgent_tickets: np.ndarray
    nps: np.ndarray
    sponsor_touched: np.ndarray


def _categorical(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """One draw per row from unnormalised row weights (rows, categories)."""
    cum = np.cumsum(weights, axis=1)
    return (rng.random(len(weights))[:, None] * cum[:, -1:] > cum).sum(axis=1)


def support_events(
    rng: np.random.Generator,
    day: int,
    day_us: int,
    activity: float,
    s: State,
    live: np.ndarray,
    sessions: np.ndarray,
    mem: SupportMemory,
) -> tuple[list[Block], SupportSignals]:
    n = len(live)
    eng = engagement(s)
    pool = np.maximum(1, np.ceil(s.need)).astype(np.int64)
    created, resolved = _tickets(rng, day, day_us, activity, s, eng, live, pool, mem)
    urgent = np.zeros(n, bool)
    urgent[created.account[created.props["priority"] <= 1]] = True
    surveyed = np.flatnonzero(live & (rng.random(n) < SURVEY_RATE * (0.5 + 0.5 * (sessions > 0))))
    survey = _survey(rng, day_us, s, eng, pool, surveyed)
    nps = np.full(n, -1)
    nps[surveyed] = survey.props["nps"]
    touch_p = activity * SPONSOR_TOUCH_RATE * sigmoid(2.0 * s.sponsor - 0.3)
    touched = np.flatnonzero(live & (rng.random(n) < touch_p))
    touch = Block(
        "sponsor.touch",
        touched,
        times_in_day(rng, day_us, len(touched)),
        None,
        {"channel": rng.choice(len(CHANNELS), len(touched), p=[0.5, 0.25, 0.2, 0.05])},
    )
    sponsor_touched = np.zeros(n, bool)
    sponsor_touched[touched] = True
    return [created, resolved, survey, touch], SupportSignals(urgent, nps, sponsor_touched)


def _survey(
    rng: np.random.Generator, day_us: int, s: State, eng: np.ndarray, pool: np.ndarray, a: np.ndarray
) -> Block:
    """NPS (missing on a fifth of responses) and sometimes CSAT; at least one of them is answered."""
    k = len(a)
    mood = 6.6 + 1.5 * eng[a] + 0.4 * s.sponsor[a] - 1.8 * s.damage[a] - 0.8 * s.pay[a]
    nps = np.clip(np.round(mood + rng.normal(0, 1.5, k)), 0, 10).astype(np.int64)
    csat = np.clip(np.round(3.7 + 0.6 * eng[a] - 0.6 * s.damage[a] + rng.normal(0, 0.8, k)), 1, 5)
    no_nps = rng.random(k) < 0.2
    return Block(
        "survey.response",
        a,
        times_in_day(rng, day_us, k),
        rng.integers(0, pool[a]),
        {
            "nps": np.where(no_nps, -1, nps),
            "csat": np.where(no_nps | (rng.random(k) < 0.4), csat, -1).astype(np.int64),
        },
    )


def _tickets(
    rng: np.random.Generator,
    day: int,
    day_us: int,
    activity: float,
    s: State,
    eng: np.ndarray,
    live: np.ndarray,
    pool: np.ndarray,
    mem: SupportMemory,
) -> tuple[Block, Block]:
    """Tickets created today, and those whose resolution falls due today (if the account is still live)."""
    created = _created(rng, day_us, activity, s, eng, live, pool, mem)
    delay, resolution = _resolution(rng, day_us, s, eng, created)
    mem.schedule(day, delay, resolution)
    return created, mem.resolve(day, live)


def _created(
    rng: np.random.Generator,
    day_us: int,
    activity: float,
    s: State,
    eng: np.ndarray,
    live: np.ndarray,
    pool: np.ndarray,
    mem: SupportMemory,
) -> Block:
    """Today's new tickets, numbered per account: trouble raises their rate, incidents and failing
    integrations their priority, and each trouble its own category."""
    trouble = (
        1.0 + 4.0 * s.damage + 2.0 * s.failing + 1.5 * s.stalled + 2.0 * s.pay + 0.5 * np.maximum(0.0, -eng)
    )
    rate = max(activity, 0.5) * (0.012 + 0.004 * np.sqrt(s.need)) * trouble
    counts = np.where(live, rng.poisson(rate), 0)
    acc = np.repeat(np.arange(len(live)), counts)
    k = len(acc)
    mem.ticket_seq += counts
    seq = mem.ticket_seq[acc] - (np.arange(k) - (np.cumsum(counts) - counts)[acc])
    harm = np.minimum(s.damage[acc], 1.5) / 1.5
    p1 = 0.02 + 0.25 * harm
    p2 = 0.12 + 0.15 * s.failing[acc]
    u = rng.random(k)
    priority = np.where(u < p1, 0, np.where(u < p1 + p2, 1, np.where(u < p1 + p2 + 0.5, 2, 3)))
    weights = np.stack(
        [
            1.0 + 0.8 * s.stalled[acc] + 0.5 * np.maximum(0.0, -eng[acc]),
            0.6 + 1.5 * s.failing[acc] + 1.0 * s.damage[acc],
            0.15 + 2.0 * s.pay[acc],
            0.3 + 0.3 * np.maximum(0.0, eng[acc]),
            2.5 * s.damage[acc],
        ],
        axis=1,
    )
    category = np.where(rng.random(k) < 0.9, _categorical(rng, weights), -1)
    return Block(
        "ticket.created",
        acc,
        times_in_day(rng, day_us, k),
        rng.integers(0, pool[acc]),
        {"ticket_id": seq, "priority": priority, "category": category},
    )


def _resolution(
    rng: np.random.Generator, day_us: int, s: State, eng: np.ndarray, created: Block
) -> tuple[np.ndarray, Resolution]:
    """When each new ticket will be resolved (days from today, by priority) and how the customer will feel
    about it then."""
    acc, ts, k = created.account, created.ts, len(created.account)
    seq, priority = created.props["ticket_id"], created.props["priority"]
    low = np.array([r[0] for r in RESOLVE_DAYS])[priority]
    high = np.array([r[1] for r in RESOLVE_DAYS])[priority]
    delay = rng.integers(low, high + 1)
    same_day = np.minimum(ts + rng.integers(HOUR_US // 6, 4 * HOUR_US, k), day_us + DAY_US - 1)
    resolved_ts = np.where(delay == 0, same_day, times_in_day(rng, day_us, k) + delay * DAY_US)
    sentiment = np.clip(
        rng.normal(
            0.25 + 0.3 * eng[acc] - 0.35 * s.damage[acc] - 0.25 * (priority <= 1) - 0.2 * s.pay[acc], 0.35
        ),
        -1.0,
        1.0,
    )
    csat = np.clip(np.round(3.8 + 0.5 * eng[acc] - 0.6 * s.damage[acc] + rng.normal(0, 0.9, k)), 1, 5)
    resolution = Resolution(
        account=acc,
        ts=resolved_ts,
        seq=seq,
        priority=priority,
        sentiment=np.where(rng.random(k) < 0.8, np.round(sentiment, 3), np.nan),
        csat=np.where(rng.random(k) < 0.45, csat, -1).astype(np.int64),
    )
    return delay, resolution
