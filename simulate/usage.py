"""Product telemetry from the hidden state: sessions, features, errors, retries, integrations, and the
smaller signals of an account doing real work (recipes, deployments, settings, nudges).

Engagement drives volume and breadth; incident damage and failing integrations drive errors and
retries. Volumes grow with the square root of the user base, so a 1,000-seat account is busier
than a 10-seat one without drowning the store; tracking gaps drop a day's usage events entirely.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulate.config import DAY_US, HOUR_US
from simulate.dynamics import State, engagement, sigmoid
from simulate.events import (
    CORE_FEATURES,
    FEATURES,
    INTEGRATIONS,
    RECIPES,
    SETTINGS,
    Block,
    code,
    times_in_day,
)

SESSION_SCALE = 0.5
#: a large account's users log in about once every this many days, a small team's far more often
USER_CYCLE_DAYS = 15.0
MAX_SESSIONS = 40
FEATURE_RATE = 0.36
GAP_START = 0.003
GAP_DAYS = (1, 7)
ROLE_OF_USER = np.array([0, 1, 1, 2, 3, 4, 4, 1, 2, 4])
CORE_CODES = np.flatnonzero(CORE_FEATURES)


@dataclass
class UsageMemory:
    """What product telemetry must remember between days (updated in place)."""

    gap_until: np.ndarray
    nudge_seq: np.ndarray
    rotor: np.ndarray  # where today's logins start in the account's list of active users

    @staticmethod
    def empty(n: int) -> UsageMemory:
        return UsageMemory(
            gap_until=np.full(n, -1), nudge_seq=np.zeros(n, np.int64), rotor=np.zeros(n, np.int64)
        )


@dataclass(frozen=True)
class UsageSignals:
    """Per-account counts of what was emitted today, for the CS team's view."""

    sessions: np.ndarray
    errors: np.ndarray
    failing_seen: np.ndarray
    ok_seen: np.ndarray


def _each(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Expand per-account counts to rows: (account index, position within the account)."""
    acc = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    return acc, np.arange(len(acc)) - starts[acc]


def usage_events(
    rng: np.random.Generator,
    day: int,
    day_us: int,
    activity: float,
    number: np.ndarray,
    s: State,
    live: np.ndarray,
    mem: UsageMemory,
) -> tuple[list[Block], UsageSignals]:
    n = len(live)
    eng = engagement(s)
    starts_gap = live & (rng.random(n) < GAP_START)
    mem.gap_until[starts_gap] = day + rng.integers(*GAP_DAYS, int(starts_gap.sum()))
    tracked = live & (mem.gap_until < day)
    pool = np.maximum(1, np.ceil(s.need)).astype(np.int64)
    monthly = np.maximum(1, np.ceil(s.need * sigmoid(0.8 + 1.5 * eng))).astype(np.int64)
    rate = (
        activity
        * SESSION_SCALE
        * sigmoid(0.3 + 1.3 * eng)
        * np.maximum(s.need / USER_CYCLE_DAYS, np.sqrt(s.need))
    )
    sessions = np.where(tracked, np.minimum(rng.poisson(np.minimum(rate, MAX_SESSIONS)), monthly), 0)
    blocks = _sessions(rng, day_us, sessions, monthly, mem.rotor, eng)
    mem.rotor += sessions
    errors = np.where(
        tracked, rng.poisson(2.0 * (0.1 + 0.12 * sessions) * (1.0 + 5.0 * s.damage + 2.5 * s.failing)), 0
    )
    blocks += _faults(
        rng, day_us, s, errors, np.where(live, rng.poisson(0.03 + 1.2 * s.failing + 0.3 * s.damage), 0)
    )
    integrations, failing_seen, ok_seen = _integration_events(rng, day, day_us, number, s, live)
    blocks += integrations
    blocks += _work_events(rng, day_us, activity, s, tracked, pool, eng)
    return blocks, UsageSignals(sessions=sessions, errors=errors, failing_seen=failing_seen, ok_seen=ok_seen)


def _sessions(
    rng: np.random.Generator,
    day_us: int,
    sessions: np.ndarray,
    monthly: np.ndarray,
    rotor: np.ndarray,
    eng: np.ndarray,
) -> list[Block]:
    """One session per user logging in today, and per session the features used, more when engaged.

    Logins rotate through the account's monthly active users, so distinct users over a month track
    real seat utilisation even though a big account's daily sessions grow only sub-linearly.
    """
    acc, pos = _each(sessions)
    m = len(acc)
    user = (rotor[acc] + pos) % monthly[acc]
    ts = times_in_day(rng, day_us, m)
    role = np.where(rng.random(m) < 0.92, ROLE_OF_USER[user % len(ROLE_OF_USER)], -1)
    duration = np.round(np.clip(rng.lognormal(2.7 + 0.25 * eng[acc], 0.7), 1.0, 600.0), 1)
    breadth = 0.8 + 3.0 * sigmoid(eng[acc])
    p_feature = FEATURE_RATE * np.exp(-np.arange(len(FEATURES))[None, :] / breadth[:, None])
    row, feature = np.nonzero(rng.random(p_feature.shape) < p_feature)
    f_acc = acc[row]
    return [
        Block("user.session", acc, ts, user, {"duration_min": duration, "role": role}),
        Block(
            "feature.used",
            f_acc,
            np.minimum(ts[row] + rng.integers(0, HOUR_US // 6, len(row)), day_us + DAY_US - 1),
            user[row],
            {
                "feature": feature,
                "count": 1 + rng.poisson(1.5 + 3.0 * sigmoid(eng[f_acc])),
                "core": CORE_FEATURES[feature].astype(np.int64),
            },
        ),
    ]


def _faults(
    rng: np.random.Generator, day_us: int, s: State, errors: np.ndarray, retries: np.ndarray
) -> list[Block]:
    """Errors and job retries aggregated per account-day; incidents make them severe."""
    e_acc = np.flatnonzero(errors)
    k = len(e_acc)
    harm = np.minimum(s.damage[e_acc], 1.5) / 1.5
    u = rng.random(k)
    severity = np.where(
        u < 0.03 + 0.3 * harm, 2, np.where(u < 0.25 + 0.3 * harm + 0.2 * s.failing[e_acc], 1, 0)
    )
    r_acc = np.flatnonzero(retries)
    pipelines = code("feature", "pipelines")
    return [
        Block(
            "error.raised",
            e_acc,
            times_in_day(rng, day_us, k),
            None,
            {
                "count": errors[e_acc],
                "severity": np.where(rng.random(k) < 0.85, severity, -1),
                "feature": np.where(rng.random(k) < 0.6, rng.integers(0, 5, k), -1),
            },
        ),
        Block(
            "job.retry",
            r_acc,
            times_in_day(rng, day_us, len(r_acc)),
            None,
            {"count": retries[r_acc], "feature": np.where(rng.random(len(r_acc)) < 0.5, pipelines, -1)},
        ),
    ]


def _integration_events(
    rng: np.random.Generator, day: int, day_us: int, number: np.ndarray, s: State, live: np.ndarray
) -> tuple[list[Block], np.ndarray, np.ndarray]:
    """A weekly heartbeat per integration, and noisy daily reports while the main one fails."""
    connected = live & (s.progress >= 0.5)
    count = np.where(connected, 1 + (number // 7) % 3, 0)
    heartbeat = connected & (number % 7 == day % 7)
    failing = connected & (s.failing > 0.5)
    report = failing & (heartbeat | (rng.random(len(live)) < 0.5))
    beats = np.where(heartbeat, count, 0)
    acc, pos = _each(beats)
    status = np.where(pos == 0, np.where(failing[acc], 1, 0), 0)
    extra = np.flatnonzero(report & ~heartbeat)
    acc = np.concatenate([acc, extra])
    pos = np.concatenate([pos, np.zeros(len(extra), np.int64)])
    status = np.concatenate([status, np.ones(len(extra), np.int64)])
    status = np.where((status == 1) & (rng.random(len(status)) < 0.2), 2, status)
    integration = (number[acc] + 2 * pos) % len(INTEGRATIONS)
    block = Block(
        "integration.state",
        acc,
        times_in_day(rng, day_us, len(acc), 12.0),
        None,
        {"integration": integration, "status": status},
    )
    seen_failing = np.zeros(len(live), bool)
    seen_failing[acc[status > 0]] = True
    seen_ok = np.zeros(len(live), bool)
    seen_ok[acc[(status == 0) & (pos == 0)]] = True
    return [block], seen_failing, seen_ok


def _work_events(
    rng: np.random.Generator,
    day_us: int,
    activity: float,
    s: State,
    tracked: np.ndarray,
    pool: np.ndarray,
    eng: np.ndarray,
) -> list[Block]:
    n = len(tracked)
    onboarding = s.progress < 1.0
    blocks = []
    recipe = np.flatnonzero(
        tracked & (rng.random(n) < activity * (0.02 + 0.06 * onboarding) * sigmoid(eng + 0.5))
    )
    blocks.append(
        Block(
            "recipe.completed",
            recipe,
            times_in_day(rng, day_us, len(recipe)),
            rng.integers(0, pool[recipe]),
            {"recipe": rng.integers(0, len(RECIPES), len(recipe))},
        )
    )
    deploy_p = activity * 0.06 * sigmoid(eng + 0.5) * (s.progress >= 0.75)
    deploy = np.flatnonzero(tracked & (rng.random(n) < deploy_p))
    blocks.append(
        Block(
            "deployment.published",
            deploy,
            times_in_day(rng, day_us, len(deploy)),
            rng.integers(0, pool[deploy]),
            {"environment": rng.choice(3, len(deploy), p=[0.5, 0.3, 0.2])},
        )
    )
    config = np.flatnonzero(tracked & (rng.random(n) < activity * (0.015 + 0.05 * onboarding)))
    blocks.append(
        Block(
            "config.changed",
            config,
            times_in_day(rng, day_us, len(config)),
            np.zeros(len(config), np.int64),
            {"setting": rng.integers(0, len(SETTINGS), len(config))},
        )
    )
    return blocks


def nudge_events(
    rng: np.random.Generator,
    day_us: int,
    s: State,
    live: np.ndarray,
    forced: np.ndarray,
    mem: UsageMemory,
) -> list[Block]:
    """Automated in-product nudges, plus the ones CS sent today; some are acted on the same day."""
    n = len(live)
    sent = np.flatnonzero(live & ((rng.random(n) < 0.02) | forced))
    mem.nudge_seq[sent] += 1
    seq = mem.nudge_seq[sent]
    ts = times_in_day(rng, day_us, len(sent), 11.0)
    feature = np.where(rng.random(len(sent)) < 0.7, rng.choice(CORE_CODES, len(sent)), -1)
    acted = rng.random(len(sent)) < sigmoid(-0.8 + 1.2 * engagement(s)[sent])
    later = np.minimum(
        ts[acted] + rng.integers(HOUR_US // 60, 6 * HOUR_US, int(acted.sum())), day_us + DAY_US - 1
    )
    return [
        Block("nudge.sent", sent, ts, None, {"nudge_id": seq, "feature": feature}),
        Block("nudge.acted", sent[acted], later, None, {"nudge_id": seq[acted], "feature": feature[acted]}),
    ]
