"""One chunk of accounts through every simulated day: the loop that ties the model together.

Each day, in order: renewals due at 00:00 settle; at a month-end cutoff the truth is taken from the
state at that instant; the hidden state steps forward and bad releases land; accounts cancel or
expand; at a quarter's start the holdout is drawn from the live accounts; telemetry is emitted (as the
released product logs it, from a release drift's date); on Mondays CS acts on the accounts not held out,
following the week's plan when a schedule has one, and the actions change the state. Events leave
through `sink` one arrival day at a time, so memory holds one chunk and one day, never the run.

Over 500 lines: one day loop; its steps share the chunk's state, in an order a seed's output rests on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from core.catalogue import ACTIONS
from simulate.billing import BillingMemory, billing_anchor, billing_events
from simulate.calendar import Calendar
from simulate.config import CHUNK_ACCOUNTS, DAY_US, SimConfig
from simulate.drift import drifted_population, release_day, released
from simulate.dynamics import State, initial_state, step
from simulate.effects import apply_action
from simulate.events import TYPE_NAMES, Block, assemble, times_in_day
from simulate.interventions import (
    ACTION_INDEX,
    Assignments,
    CsView,
    WeekSignals,
    draw_quarter_holdout,
    holdout_table,
    intervention_table,
    weekly_assignments,
)
from simulate.lifecycle import VendorRecords, contract_moves, milestone_events, renewals
from simulate.plans import PlanSchedule, ScheduledWeek
from simulate.population import (
    Population,
    Traits,
    account_ids,
    accounts_table,
    draw_population,
    id_width,
    padded,
)
from simulate.support import SupportMemory, support_events
from simulate.truth import (
    PLAN_ARMS,
    acting_truth,
    cutoff_truth,
    effect_table,
    holdout_truth_table,
    outcome_table,
    plan_arm_table,
    plan_effect_table,
    probability_table,
)
from simulate.usage import UsageMemory, nudge_events, usage_events

#: share of events that arrive a day or more after they happened, and the longest delay
LATE_SHARE = 0.02
LATE_DAYS = 3

EventSink = Callable[[int, pa.Table], None]


@dataclass(frozen=True)
class ChunkResult:
    accounts: pa.Table
    interventions: pa.Table
    probabilities: pa.Table
    effects: pa.Table
    outcomes: pa.Table
    #: who was held out, from when to when (the truth's copy of the holdout rows in `interventions`)
    holdouts: pa.Table
    #: each executed plan action's effect, and every account's arm in each plan week
    plan_effects: pa.Table
    plan_arms: pa.Table
    #: events written per event type, in TYPE_NAMES order
    type_counts: np.ndarray
    tiers: np.ndarray
    churned: np.ndarray
    expanded: np.ndarray


@dataclass
class _Late:
    """Events held back until their arrival day (updated in place)."""

    tables: dict[int, list[tuple[pa.Table, np.ndarray]]]

    def hold(
        self, day: int, table: pa.Table, types: np.ndarray, delay: np.ndarray
    ) -> tuple[pa.Table, np.ndarray]:
        """Keep the late rows for later days; return today's on-time rows."""
        for d in range(1, LATE_DAYS + 1):
            sel = delay == d
            if sel.any():
                self.tables.setdefault(day + d, []).append((table.filter(pa.array(sel)), types[sel]))
        on_time = delay == 0
        return table.filter(pa.array(on_time)), types[on_time]

    def arriving(self, day: int) -> list[tuple[pa.Table, np.ndarray]]:
        return self.tables.pop(day, [])


def _incidents(
    rng: np.random.Generator, cal: Calendar, day: int, tr: Traits, s: State, live: np.ndarray
) -> State:
    """Bad releases landing today raise incident damage on a share of (a segment's) accounts."""
    damage = s.damage
    for i in np.flatnonzero(cal.incident_day == day):
        segment = cal.incident_segment[i]
        exposed = live & ((segment < 0) | (tr.segment == segment))
        hit = exposed & (rng.random(len(live)) < cal.incident_share[i])
        damage = damage + hit * cal.incident_severity[i] * rng.uniform(0.7, 1.3, len(live))
    return s.replace(damage=damage)


@dataclass
class _Truth:
    probabilities: list[pa.Table]
    effects: list[pa.Table]

    def record(
        self,
        ids: pa.Array,
        cutoff_us: int,
        tr: Traits,
        s: State,
        records: VendorRecords,
        day: int,
        idx: np.ndarray,
    ) -> None:
        (churn, expand), (churn_fx, expand_fx) = cutoff_truth(
            tr.take(idx), s.take(idx), records.renewal_day[idx] - day
        )
        part = ids.take(pa.array(idx))
        self.probabilities.append(probability_table(part, cutoff_us, churn, expand))
        self.effects.append(effect_table(part, cutoff_us, churn_fx, expand_fx))


@dataclass
class _PlanTruth:
    effects: list[pa.Table]
    arms: list[pa.Table]

    def record(
        self,
        ids: pa.Array,
        week: ScheduledWeek,
        week_us: int,
        day_us: int,
        executed: np.ndarray,
        live: np.ndarray,
        probabilities: tuple[np.ndarray, np.ndarray],
        effects: tuple[np.ndarray, np.ndarray],
    ) -> None:
        """The week's executed actions with their effects, and every live or planned account's arm;
        `executed` flags the plan's rows, the arrays run over the live accounts."""
        shown = np.union1d(np.flatnonzero(live), week.account)
        at = np.searchsorted(shown, week.account)
        arm = np.full(len(shown), PLAN_ARMS.index("none"))
        arm[at] = np.where(
            week.action < 0,
            PLAN_ARMS.index("holdout"),
            np.where(executed, PLAN_ARMS.index("planned"), PLAN_ARMS.index("skipped")),
        )
        churn, expand = (_on(live[shown], p) for p in probabilities)
        self.arms.append(plan_arm_table(ids.take(pa.array(shown)), week_us, day_us, arm, churn, expand))
        done = np.searchsorted(np.flatnonzero(live), week.account[executed])
        self.effects.append(
            plan_effect_table(
                ids.take(pa.array(week.account[executed], pa.int64())),
                week_us,
                day_us,
                week.action[executed],
                (probabilities[0][done], probabilities[1][done]),
                (effects[0][done], effects[1][done]),
            )
        )


def _on(where: np.ndarray, values: np.ndarray) -> np.ndarray:
    """`values` spread over the True places of `where`, NaN elsewhere."""
    out = np.full(len(where), np.nan)
    out[where] = values
    return out


@dataclass
class Chunk:
    """One chunk's accounts and everything about them that changes from day to day (updated in place).

    The methods draw from the one generator in a fixed order, which is what makes a seed's output
    byte-identical from run to run: reorder no call."""

    config: SimConfig
    cal: Calendar
    index: int
    rng: np.random.Generator
    pop: Population
    ids: pa.Array
    numbers: pa.Array
    accounts: pa.Table
    state: State
    records: VendorRecords
    usage: UsageMemory
    support: SupportMemory
    billing: BillingMemory
    view: CsView
    cutoffs: frozenset[int]
    #: accounts held out since the latest quarter's start
    held: np.ndarray
    #: the plan weeks, by intervention day
    plan: dict[int, ScheduledWeek]
    #: the first day the released product logs events (a release drift), or None
    release_day: int | None
    late: _Late = field(default_factory=lambda: _Late({}))
    truth: _Truth = field(default_factory=lambda: _Truth([], []))
    plan_truth: _PlanTruth = field(default_factory=lambda: _PlanTruth([], []))
    taken: list[tuple[np.ndarray, ...]] = field(default_factory=list)
    #: each holdout draw: the accounts held out and the day it was drawn
    holdouts: list[tuple[np.ndarray, int]] = field(default_factory=list)
    type_counts: np.ndarray = field(default_factory=lambda: np.zeros(len(TYPE_NAMES), np.int64))
    serial: int = 0

    @staticmethod
    def start(config: SimConfig, cal: Calendar, index: int, plans: PlanSchedule | None) -> Chunk:
        """The chunk's population and its state on day 0, from the chunk's own random stream."""
        rng = np.random.default_rng([config.seed, index])
        first = index * CHUNK_ACCOUNTS
        pop = draw_population(rng, config, first, min(CHUNK_ACCOUNTS, config.accounts - first))
        pop = drifted_population(config, index, pop)
        width = id_width(config.accounts)
        s = initial_state(rng, pop)
        return Chunk(
            config=config,
            cal=cal,
            index=index,
            rng=rng,
            pop=pop,
            ids=account_ids(pop, width),
            numbers=padded(pop.number, width),
            accounts=accounts_table(pop, config, cal.start_us, width),
            state=s,
            records=VendorRecords.open(pop, s),
            usage=UsageMemory.empty(pop.size),
            support=SupportMemory.empty(pop.size),
            billing=BillingMemory.empty(billing_anchor(cal.start_us // DAY_US + pop.start_day)),
            view=CsView.empty(pop.size, rng),
            cutoffs=frozenset(cal.cutoffs),
            held=np.zeros(pop.size, bool),
            plan={} if plans is None else plans.for_chunk(config, index),
            release_day=release_day(config),
        )

    def simulate_day(self, day: int, sink: EventSink) -> None:
        """The day's contract changes, holdout draw (at a quarter's start), telemetry and (on Mondays) CS
        actions; its events go to `sink`."""
        day_us = self.cal.day_us(day)
        blocks, live = self._contracts(day, day_us)
        if day in self.cal.quarter_starts:
            self.held = draw_quarter_holdout(
                self.config.seed, self.index, day, live, self.config.holdout_share
            )
            self.holdouts.append((np.flatnonzero(self.held), day))
        blocks += self._telemetry(day, day_us, live)
        nudged = self._act(day, day_us, live) if self.cal.weekday[day] == 0 else np.zeros(self.pop.size, bool)
        blocks += nudge_events(self.rng, day_us, self.state, live, nudged, self.usage)
        if self.release_day is not None and day >= self.release_day:
            blocks = released(blocks)
        self.serial = _emit(
            self.rng,
            day,
            blocks,
            self.ids,
            self.numbers,
            self.index,
            self.serial,
            self.late,
            sink,
            self.type_counts,
        )

    def _contracts(self, day: int, day_us: int) -> tuple[list[Block], np.ndarray]:
        """Renewals at 00:00, the truth at a cutoff, the state's step and bad releases, then cancellations,
        expansions and milestones; returns their events and which accounts are still live."""
        rng, tr, records, started = self.rng, self.pop.traits, self.records, self.pop.start_day
        blocks, s = renewals(rng, day, day_us, tr, self.state, records, started < day)
        if day in self.cutoffs:
            alive = np.flatnonzero(records.alive & (started < day))
            self.truth.record(self.ids, day_us, tr, s, records, day, alive)
        live = records.alive & (started <= day)
        s = s.where(live, step(tr, s, rng))
        s = _incidents(rng, self.cal, day, tr, s, live)
        moves, s, live = contract_moves(rng, day_us, tr, s, records, live)
        blocks += moves
        blocks += milestone_events(rng, day, day_us, s, records, live)
        self.state = s
        return blocks, live

    def _telemetry(self, day: int, day_us: int, live: np.ndarray) -> list[Block]:
        """Product usage, support and billing events, and what of them the CS team's view takes in."""
        rng, s, activity = self.rng, self.state, float(self.cal.activity[day])
        used, signals = usage_events(rng, day, day_us, activity, self.pop.number, s, live, self.usage)
        voiced, said = support_events(rng, day, day_us, activity, s, live, signals.sessions, self.support)
        billed = billing_events(
            rng,
            day,
            day_us,
            int(self.cal.day_of_month[day]),
            self.pop.traits.tier,
            self.records.arr(s),
            s.pay,
            live,
            self.billing,
        )
        self.view.observe(
            day,
            signals.sessions,
            signals.errors,
            signals.failing_seen,
            signals.ok_seen,
            said.urgent_tickets,
            said.nps,
            said.sponsor_touched,
        )
        return used + voiced + billed

    def _act(self, day: int, day_us: int, live: np.ndarray) -> np.ndarray:
        """The week's CS actions (the plan's, in a planned week), applied to the state and kept for the
        interventions table; returns who got an in-app nudge (its events come from the usage side)."""
        self.view.close_week()
        week = self.plan.get(day)
        if week is None:
            self.state, nudged, rows = _intervene(
                self.rng,
                self.config,
                day,
                day_us,
                self.pop.traits,
                self.state,
                self.records,
                self.billing,
                self.view,
                live & ~self.held,
            )
        else:
            self.state, nudged, rows = self._follow(week, day, day_us, live)
        self.taken.append(rows)
        return nudged

    def _follow(
        self, week: ScheduledWeek, day: int, day_us: int, live: np.ndarray
    ) -> tuple[State, np.ndarray, tuple[np.ndarray, ...]]:
        """The week's plan in place of the team's targeting and the randomised arm: each planned account
        that is live and not held out gets its action, logged as targeted; the truth records each
        action's effect from the state just before the week's actions, and every account's arm."""
        executed = (week.action >= 0) & live[week.account] & ~self.held[week.account]
        account, action = week.account[executed], week.action[executed]
        self.view.last_taken[account, action] = day
        picks = Assignments(
            account=account,
            action=action,
            random=np.zeros(len(account), bool),
            propensity=np.full(len(account), np.nan),
        )
        tr, before, to_renewal = self.pop.traits, self.state, self.records.renewal_day - day
        after, nudged, rows = _apply(self.rng, day_us, tr, before, self.records, picks, to_renewal)
        idx = np.flatnonzero(live)
        probabilities, effects = acting_truth(
            tr.take(idx), before.take(idx), after.take(idx), to_renewal[idx]
        )
        week_us = self.cal.day_us(week.week_day)
        self.plan_truth.record(self.ids, week, week_us, day_us, executed, live, probabilities, effects)
        return after, nudged, rows

    def result(self) -> ChunkResult:
        tiers = self.pop.traits.tier
        records = self.records
        no_effects = np.zeros((0, len(ACTIONS)))
        no, no_arms = np.zeros(0), np.zeros(0, np.int64)
        return ChunkResult(
            accounts=self.accounts,
            interventions=pa.concat_tables(self.logged()),
            probabilities=_concat(
                self.truth.probabilities, probability_table(self.ids[:0], 0, np.zeros(0), np.zeros(0))
            ),
            effects=_concat(self.truth.effects, effect_table(self.ids[:0], 0, no_effects, no_effects)),
            outcomes=outcome_table(self.ids, records.churn_us, records.expansion_us),
            holdouts=self._holdout_truth(),
            plan_effects=_concat(
                self.plan_truth.effects,
                plan_effect_table(self.ids[:0], 0, 0, np.zeros(0, np.int64), (no, no), (no, no)),
            ),
            plan_arms=_concat(self.plan_truth.arms, plan_arm_table(self.ids[:0], 0, 0, no_arms, no, no)),
            type_counts=self.type_counts,
            tiers=np.bincount(tiers, minlength=4),
            churned=np.bincount(tiers[records.churn_us >= 0], minlength=4),
            expanded=np.bincount(tiers[records.expansion_us >= 0], minlength=4),
        )

    def logged(self) -> tuple[pa.Table, pa.Table]:
        """The interventions table so far in two parts that only grow at their end, so a stepped run can
        write each row once: the actions taken, and the holdout rows."""
        return _interventions(self.accounts, self.ids, self.index, self.taken), self._holdout_rows()

    def _holdout_rows(self) -> pa.Table:
        """The holdout draws as intervention rows, stamped at their quarter's start."""
        account, day = _holdout_arrays(self.holdouts)
        csm_ids = self.accounts.column("csm_id").combine_chunks()
        stamp = self.cal.start_us + day * DAY_US
        return holdout_table(
            self.ids, csm_ids, account, stamp, self.config.holdout_share, f"ho-{self.index:05d}"
        )

    def _holdout_truth(self) -> pa.Table:
        """Who was held out, to the next draw or the run's end."""
        account, day = _holdout_arrays(self.holdouts)
        ends = np.append(self.cal.quarter_starts, self.config.days)
        end = ends[np.searchsorted(ends, day, side="right")]
        return holdout_truth_table(
            self.ids, account, self.cal.start_us + day * DAY_US, self.cal.start_us + end * DAY_US
        )


def _holdout_arrays(holdouts: list[tuple[np.ndarray, int]]) -> tuple[np.ndarray, np.ndarray]:
    """The holdout draws flattened: each held account's index and the day of its draw."""
    if not holdouts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    account = np.concatenate([a for a, _ in holdouts]).astype(np.int64)
    return account, np.concatenate([np.full(len(a), d, np.int64) for a, d in holdouts])


def simulate_chunk(
    config: SimConfig, cal: Calendar, chunk: int, sink: EventSink, plans: PlanSchedule | None = None
) -> ChunkResult:
    """Every day of chunk `chunk`'s accounts, its events streamed to `sink` day by day; CS follows `plans`
    in the weeks they cover."""
    run = Chunk.start(config, cal, chunk, plans)
    for day in range(config.days):
        run.simulate_day(day, sink)
    return run.result()


def _concat(tables: list[pa.Table], empty: pa.Table) -> pa.Table:
    return pa.concat_tables(tables) if tables else empty


def _intervene(
    rng: np.random.Generator,
    config: SimConfig,
    day: int,
    day_us: int,
    tr: Traits,
    s: State,
    records: VendorRecords,
    billing: BillingMemory,
    view: CsView,
    live: np.ndarray,
) -> tuple[State, np.ndarray, tuple[np.ndarray, ...]]:
    """This week's actions, applied to the state; returns the state, who got a nudge, and the rows."""
    to_renewal = records.renewal_day - day
    signals = WeekSignals(
        tier=tr.tier,
        active=live,
        onboarding=live & (records.milestones < 4),
        days_since_milestone=day - records.last_milestone_day,
        overdue=billing.overdue,
        to_renewal=to_renewal,
    )
    picks = weekly_assignments(rng, day, s, view, signals, config.random_share)
    return _apply(rng, day_us, tr, s, records, picks, to_renewal)


def _apply(
    rng: np.random.Generator,
    day_us: int,
    tr: Traits,
    s: State,
    records: VendorRecords,
    picks: Assignments,
    to_renewal: np.ndarray,
) -> tuple[State, np.ndarray, tuple[np.ndarray, ...]]:
    """`picks` applied to the state (a save offer also grants the renewal concession); returns the state,
    who got a nudge, and the rows, timed within the day."""
    n = len(to_renewal)
    for a in np.unique(picks.action):
        mask = np.zeros(n, bool)
        mask[picks.account[picks.action == a]] = True
        s = s.where(mask, apply_action(ACTIONS[a], tr, s, to_renewal))
    records.concession[picks.account[picks.action == ACTION_INDEX["save_offer"]]] = True
    nudged = np.zeros(n, bool)
    nudged[picks.account[picks.action == ACTION_INDEX["in_app_nudge"]]] = True
    ts = times_in_day(rng, day_us, len(picks.account), 10.0)
    return s, nudged, (picks.account, ts, picks.action, picks.random, picks.propensity)


def _interventions(
    accounts: pa.Table, ids: pa.Array, chunk: int, taken: list[tuple[np.ndarray, ...]]
) -> pa.Table:
    parts = [np.concatenate([t[i] for t in taken]) if taken else np.zeros(0) for i in range(5)]
    account, ts, action, random, propensity = parts
    return intervention_table(
        ids,
        accounts.column("csm_id").combine_chunks(),
        account.astype(np.int64),
        ts.astype(np.int64),
        action.astype(np.int64),
        random.astype(bool),
        propensity.astype(np.float64),
        f"iv-{chunk:05d}",
    )


def _emit(
    rng: np.random.Generator,
    day: int,
    blocks: list[Block],
    ids: pa.Array,
    numbers: pa.Array,
    chunk: int,
    serial: int,
    late: _Late,
    sink: EventSink,
    type_counts: np.ndarray,
) -> int:
    """Assemble today's events, hold back the late ones, and send what arrives today to the sink."""
    made = assemble(blocks, ids, numbers, f"ev-{chunk:05d}", serial)
    n = made.table.num_rows
    delay = np.where(rng.random(n) < LATE_SHARE, rng.integers(1, LATE_DAYS + 1, n), 0)
    parts = [late.hold(day, made.table, made.types, delay), *late.arriving(day)]
    table = pa.concat_tables([p[0] for p in parts])
    for _, types in parts:
        type_counts += np.bincount(types, minlength=len(TYPE_NAMES))
    if table.num_rows:
        sink(day, table)
    return serial + n
