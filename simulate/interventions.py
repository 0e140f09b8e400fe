"""What the CS team does: weekly targeting from noisy observable signals, plus a randomised arm.

Targeting looks only at what a CSM could see (usage drops, overdue invoices, stalled onboardings,
silent sponsors, urgent tickets, failing integrations, low NPS, renewals coming up, seats nearly
full), so assignment is confounded with risk, as in real CS teams. The randomised arm is sized each
week to `random_share` of all assignments: it picks accounts uniformly among the active ones and an
action uniformly from the catalogue, ignoring eligibility and cool-downs, so its propensity is known.
A holdout drawn at each quarter's start gets nothing, from the team or the arm, until the next draw:
the comparison with never acting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.catalogue import ACTIONS, CATALOGUE
from core.contract import ASSIGNMENTS, HOLDOUT, INTERVENTION_SCHEMA, TS
from simulate.dynamics import State, utilisation
from simulate.population import ENTERPRISE, MID_MARKET, SMALL_BUSINESS, TRIAL

INTERVENTION_WEEKDAY = 0
HISTORY_WEEKS = 5
#: how much CS attention each tier gets (enterprise, mid-market, small business, trial)
ATTENTION = np.array([1.0, 0.8, 0.5, 0.2])
AUTOMATED = frozenset({"in_app_nudge", "billing_outreach"})
#: action name -> its column in (accounts, actions) arrays, in catalogue order
ACTION_INDEX = {name: i for i, name in enumerate(ACTIONS)}
COOLDOWN = np.array([CATALOGUE[a].cooldown_days for a in ACTIONS])
#: A seed-stream tag for the holdout draws, distinct from every chunk index and the calendar's tag.
HOLDOUT_STREAM = 1 << 41


@dataclass
class CsView:
    """The observable trail CS reads (updated in place from each day's telemetry)."""

    week_sessions: np.ndarray
    history: np.ndarray  # (accounts, weeks) sessions per past week, newest last
    week_errors: np.ndarray
    error_baseline: np.ndarray
    error_spike: np.ndarray
    last_touch: np.ndarray
    last_urgent: np.ndarray
    failing: np.ndarray
    nps: np.ndarray
    last_taken: np.ndarray  # (accounts, actions) day each action was last taken

    @staticmethod
    def empty(n: int, rng: np.random.Generator) -> CsView:
        return CsView(
            week_sessions=np.zeros(n, np.int64),
            history=np.zeros((n, HISTORY_WEEKS), np.int64),
            week_errors=np.zeros(n, np.int64),
            error_baseline=np.zeros(n),
            error_spike=np.zeros(n, bool),
            last_touch=-rng.integers(0, 40, n),
            last_urgent=np.full(n, -10_000),
            failing=np.zeros(n, bool),
            nps=np.full(n, -1),
            last_taken=np.full((n, len(ACTIONS)), -10_000),
        )

    def observe(
        self,
        day: int,
        sessions: np.ndarray,
        errors: np.ndarray,
        failing_seen: np.ndarray,
        ok_seen: np.ndarray,
        urgent: np.ndarray,
        nps: np.ndarray,
        touched: np.ndarray,
    ) -> None:
        self.week_sessions += sessions
        self.week_errors += errors
        self.failing = (self.failing | failing_seen) & ~ok_seen
        self.last_urgent[urgent] = day
        self.last_touch[touched] = day
        self.nps = np.where(nps >= 0, nps, self.nps)

    def close_week(self) -> None:
        self.history = np.roll(self.history, -1, axis=1)
        self.history[:, -1] = self.week_sessions
        self.error_spike = self.week_errors > 3.0 * self.error_baseline + 5.0
        self.error_baseline = 0.8 * self.error_baseline + 0.2 * self.week_errors
        self.week_sessions[:] = 0
        self.week_errors[:] = 0


@dataclass(frozen=True)
class Assignments:
    account: np.ndarray
    action: np.ndarray
    random: np.ndarray
    propensity: np.ndarray


@dataclass(frozen=True)
class WeekSignals:
    """The contract and lifecycle facts CS weighs each week beside the telemetry trail in `CsView`."""

    tier: np.ndarray
    active: np.ndarray
    onboarding: np.ndarray
    days_since_milestone: np.ndarray
    overdue: np.ndarray
    to_renewal: np.ndarray


def targeted(
    rng: np.random.Generator, day: int, s: State, view: CsView, signals: WeekSignals
) -> tuple[np.ndarray, np.ndarray]:
    """The CS team's weekly picks, as (account, action) pairs; call after `close_week`."""
    tier, active, onboarding = signals.tier, signals.active, signals.onboarding
    overdue, to_renewal = signals.overdue, signals.to_renewal
    last = view.history[:, -1]
    before = view.history[:, :-1].mean(axis=1)
    usage_drop = (before >= 2) & (last < 0.5 * before)
    low_usage = last < np.sqrt(s.seats)
    stall = onboarding & (signals.days_since_milestone > 14)
    silent = day - view.last_touch > 45
    urgent = day - view.last_urgent <= 14
    low_nps = (view.nps >= 0) & (view.nps <= 6)
    risk = usage_drop.astype(int) + low_usage + stall + silent + urgent + view.failing + low_nps + overdue
    renewal_soon = (to_renewal > 0) & (to_renewal <= 120)
    near_limit = utilisation(s) >= 0.8
    healthy = (risk == 0) & (view.nps >= 9)
    big = tier <= MID_MARKET
    rules: dict[str, tuple[np.ndarray, float | np.ndarray]] = {
        "billing_outreach": (overdue, 0.7),
        "hypercare_onboarding": (stall, 0.55),
        "exec_sponsor_call": (silent & big & (risk >= 2), np.where(tier == ENTERPRISE, 0.5, 0.3)),
        "integration_assist": (view.failing, 0.5),
        "office_hours_invite": (urgent | view.error_spike, 0.4),
        "training_session": (usage_drop | (low_usage & ~onboarding), 0.12),
        "qbr_roi_review": (renewal_soon & (tier <= SMALL_BUSINESS), 0.3),
        "health_check_call": (risk >= 2, 0.2),
        "in_app_nudge": (low_usage | usage_drop, 0.1),
        "save_offer": ((risk >= 3) & (tier != TRIAL), np.where(to_renewal <= 90, 0.35, 0.05)),
        "upgrade_offer": (near_limit, np.where(risk <= 1, 0.3, 0.05)),
        "reference_ask": (healthy, 0.15),
    }
    accounts, actions = [], []
    u = rng.random((len(tier), len(ACTIONS)))
    for name, (eligible, p) in rules.items():
        a = ACTION_INDEX[name]
        attention = 1.0 if name in AUTOMATED else ATTENTION[tier]
        cooled = day - view.last_taken[:, a] >= COOLDOWN[a]
        hit = np.flatnonzero(active & eligible & cooled & (u[:, a] < p * attention))
        accounts.append(hit)
        actions.append(np.full(len(hit), a))
    return np.concatenate(accounts), np.concatenate(actions)


def randomised(
    rng: np.random.Generator, active: np.ndarray, targeted_count: int, share: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """The experiment arm: (accounts, actions, propensity of each (account, action) this week)."""
    pool = np.flatnonzero(active)
    k = min(len(pool), round(targeted_count * share / (1.0 - share)))
    if k == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), 0.0
    chosen = np.sort(rng.choice(pool, k, replace=False))
    return chosen, rng.integers(0, len(ACTIONS), k), k / len(pool) / len(ACTIONS)


def weekly_assignments(
    rng: np.random.Generator, day: int, s: State, view: CsView, signals: WeekSignals, share: float
) -> Assignments:
    """This week's targeted picks and randomised arm, ordered by account then action."""
    t_acc, t_act = targeted(rng, day, s, view, signals)
    r_acc, r_act, propensity = randomised(rng, signals.active, len(t_acc), share)
    account = np.concatenate([t_acc, r_acc])
    action = np.concatenate([t_act, r_act])
    random = np.concatenate([np.zeros(len(t_acc), bool), np.ones(len(r_acc), bool)])
    order = np.lexsort((random, action, account))
    view.last_taken[account, action] = day
    return Assignments(
        account=account[order],
        action=action[order],
        random=random[order],
        propensity=np.where(random, propensity, np.nan)[order],
    )


def intervention_table(
    ids: pa.Array,
    csm_ids: pa.Array,
    account: np.ndarray,
    ts: np.ndarray,
    action: np.ndarray,
    random: np.ndarray,
    propensity: np.ndarray,
    id_prefix: str,
) -> pa.Table:
    """Rows in INTERVENTION_SCHEMA; the owner is the account's CSM, or automation for in-app nudges."""
    acc = pa.array(account, pa.int64())
    owners = pc.if_else(
        pa.array(action == ACTION_INDEX["in_app_nudge"]), pa.scalar("automation"), csm_ids.take(acc)
    )
    columns = [
        _row_ids(id_prefix, len(account)),
        ids.take(acc),
        pa.array(ts, pa.int64()).cast(TS),
        pa.array(ACTIONS, pa.string()).take(pa.array(action, pa.int64())),
        owners,
        pa.array([CATALOGUE[a].channel for a in ACTIONS], pa.string()).take(pa.array(action, pa.int64())),
        pa.array(ASSIGNMENTS, pa.string()).take(pa.array(random.astype(np.int64))),
        pa.array(propensity, pa.float64(), mask=~random),
    ]
    return pa.Table.from_arrays(columns, schema=INTERVENTION_SCHEMA)


def draw_quarter_holdout(seed: int, chunk: int, day: int, active: np.ndarray, share: float) -> np.ndarray:
    """Which of a chunk's `active` accounts are held out from `day` (a quarter's start) until the next draw:
    each with probability `share`, the propensity its holdout row logs. The draw has its own stream (seed,
    chunk, day), so a holdout of 0 leaves every other draw of the run, and so its output, as it was."""
    if share == 0.0:
        return np.zeros(len(active), bool)
    return active & (np.random.default_rng([seed, HOLDOUT_STREAM, chunk, day]).random(len(active)) < share)


def holdout_table(
    ids: pa.Array, csm_ids: pa.Array, account: np.ndarray, ts: np.ndarray, share: float, id_prefix: str
) -> pa.Table:
    """Holdout rows in INTERVENTION_SCHEMA: action and assignment `holdout`, the draw's `share` as the
    propensity, owned by the account's CSM (who holds back); no channel, since nothing is sent."""
    n = len(account)
    acc = pa.array(account, pa.int64())
    columns = [
        _row_ids(id_prefix, n),
        ids.take(acc),
        pa.array(ts, pa.int64()).cast(TS),
        pa.array([HOLDOUT] * n, pa.string()),
        csm_ids.take(acc),
        pa.nulls(n, pa.string()),
        pa.array([HOLDOUT] * n, pa.string()),
        pa.array(np.full(n, share), pa.float64()),
    ]
    return pa.Table.from_arrays(columns, schema=INTERVENTION_SCHEMA)


def _row_ids(prefix: str, n: int) -> pa.Array:
    """`prefix-0000001` to `prefix-n`: intervention ids unique within a chunk's table of that prefix."""
    serial = pc.utf8_lpad(pc.cast(pa.array(np.arange(1, n + 1), pa.int64()), pa.string()), 7, "0")
    return pc.binary_join_element_wise(prefix, serial, "-")
