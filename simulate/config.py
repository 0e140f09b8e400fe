"""What a simulation run is asked for, and the fixed constants that make its output reproducible.

The chunk size is a constant, not a setting: random streams are drawn per chunk of accounts, so the
same seed gives the same bytes only if every run cuts the population the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal, cast

from core.errors import RetainError

#: Accounts simulated together; memory is bounded by one chunk's state and one day's events.
CHUNK_ACCOUNTS = 5_000
#: The label horizon the truth is computed for (docs/domain.md: default 90 days).
HORIZON_DAYS = 90
HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
YEAR_DAYS = 365

DriftKind = Literal["release", "tier_mix"]
DRIFT_KINDS: tuple[DriftKind, ...] = ("release", "tier_mix")


@dataclass(frozen=True)
class Drift:
    """A change in the world from the day `on`, for a monitor to find; `simulate/drift.py` says what
    each kind changes. `release`: a product release moves feature use (what the telemetry says, not what
    customers do); `tier_mix`: accounts starting from `on` come from a different tier mix."""

    kind: DriftKind
    on: date

    def __post_init__(self) -> None:
        if self.kind not in DRIFT_KINDS:
            raise RetainError(f"drift kind must be one of {', '.join(DRIFT_KINDS)}, got {self.kind!r}")

    @classmethod
    def parse(cls, text: str) -> Drift:
        """`KIND@YYYY-MM-DD`, e.g. `release@2025-09-01`, as the command line spells it."""
        kind, at, day = text.strip().partition("@")
        try:
            on = date.fromisoformat(day)
        except ValueError:
            on = None
        if not at or on is None or kind not in DRIFT_KINDS:
            raise RetainError(
                f"drift must be KIND@YYYY-MM-DD with KIND one of {', '.join(DRIFT_KINDS)}, got {text!r}"
            )
        return cls(cast(DriftKind, kind), on)


@dataclass(frozen=True)
class SimConfig:
    """One simulation: how many accounts, over which days, from which seed.

    `random_share` is the share of all intervention rows that come from the randomised arm; it is
    met week by week (the arm is sized to the CS team's targeted workload), so the propensity of a
    random assignment is known exactly and is the same for every active account in that week.

    `holdout_share` is the share of the active accounts drawn at each calendar quarter's start (and on day
    0) to get no proactive CS play until the next quarter, logged as holdout rows: the never-treated
    comparison the plan recommends to customers, which measures the team's usual course against never
    acting (`training.causal.holdout`).

    `drift`, when given, changes the world from a day strictly inside the run, so that there are days
    before and after it to compare.
    """

    accounts: int
    days: int
    seed: int
    start: date = date(2025, 1, 1)
    random_share: float = 0.15
    holdout_share: float = 0.1
    drift: Drift | None = None

    def __post_init__(self) -> None:
        if self.accounts < 1:
            raise RetainError(f"accounts must be >= 1, got {self.accounts}")
        if self.seed < 0:
            raise RetainError(f"seed must be >= 0, got {self.seed}")
        if self.days < 1:
            raise RetainError(f"days must be >= 1, got {self.days}")
        if not 0.0 < self.random_share < 0.5:
            raise RetainError(f"random_share must be in (0, 0.5), got {self.random_share}")
        if not 0.0 <= self.holdout_share < 0.5:
            raise RetainError(f"holdout_share must be in [0, 0.5), got {self.holdout_share}")
        end = self.start + timedelta(days=self.days)
        if self.drift is not None and not self.start < self.drift.on < end:
            raise RetainError(f"drift date {self.drift.on} must fall after {self.start} and before {end}")

    @property
    def chunks(self) -> int:
        return -(-self.accounts // CHUNK_ACCOUNTS)
