"""The shared world every chunk sees: dates, seasonality, month-end cutoffs and bad releases.

These come from the seed alone (never from a chunk's stream), so every account lives through the
same calendar and the same incidents whatever chunk it falls in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np

from simulate.config import DAY_US, SimConfig

#: A seed-stream tag for the calendar, distinct from every chunk index.
CALENDAR_STREAM = 1 << 40
#: Mean days between bad releases, and the share of accounts one can hit.
INCIDENT_EVERY_DAYS = 24.0
INCIDENT_SHARE = (0.04, 0.25)
INCIDENT_SEVERITY = (0.6, 1.8)


@dataclass(frozen=True)
class Calendar:
    start: date
    days: int
    #: microseconds since the epoch at 00:00 UTC of day 0
    start_us: int
    #: activity multiplier per day: weekends and the year-end holidays are quiet
    activity: np.ndarray
    weekday: np.ndarray
    day_of_month: np.ndarray
    #: day indices of month ends inside the window (the truth's cutoffs)
    cutoffs: tuple[int, ...]
    #: day indices where a holdout is drawn: day 0 and the first day of every later calendar quarter
    quarter_starts: tuple[int, ...]
    #: bad releases: day, severity, share of accounts hit, and the segment hit (-1: all segments)
    incident_day: np.ndarray
    incident_severity: np.ndarray
    incident_share: np.ndarray
    incident_segment: np.ndarray

    def day_us(self, day: int) -> int:
        return self.start_us + day * DAY_US

    def date_of(self, day: int) -> date:
        return self.start + timedelta(days=day)


def _activity(day: date) -> float:
    if (day.month == 12 and day.day >= 23) or (day.month == 1 and day.day <= 2):
        return 0.45
    if day.weekday() >= 5:
        return 0.3
    return 0.9 if day.month == 8 else 1.0


def build_calendar(config: SimConfig, segments: int) -> Calendar:
    dates = [config.start + timedelta(days=d) for d in range(config.days)]
    rng = np.random.default_rng([config.seed, CALENDAR_STREAM])
    hit = rng.random(config.days) < 1.0 / INCIDENT_EVERY_DAYS
    n = int(hit.sum())
    targeted = rng.random(n) < 0.5
    start_us = int(datetime(config.start.year, config.start.month, config.start.day, tzinfo=UTC).timestamp())
    return Calendar(
        start=config.start,
        days=config.days,
        start_us=start_us * 1_000_000,
        activity=np.array([_activity(d) for d in dates]),
        weekday=np.array([d.weekday() for d in dates], dtype=np.int8),
        day_of_month=np.array([d.day for d in dates], dtype=np.int8),
        cutoffs=tuple(i for i, d in enumerate(dates) if (d + timedelta(days=1)).day == 1),
        quarter_starts=tuple(i for i, d in enumerate(dates) if i == 0 or (d.day == 1 and d.month % 3 == 1)),
        incident_day=np.flatnonzero(hit),
        incident_severity=rng.uniform(*INCIDENT_SEVERITY, n),
        incident_share=rng.uniform(*INCIDENT_SHARE, n),
        incident_segment=np.where(targeted, rng.integers(0, segments, n), -1),
    )
