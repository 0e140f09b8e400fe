"""`retain autopilot run`: execute the current plan's autonomous actions, under the guardrails, through the
playbook engine's webhook; the I/O edge of the autopilot (docs/methods/autopilot.md).

One run reads the latest recorded plan (`products.plan`), the accounts' features now, the actions taken
(the store's interventions and those the decision log holds but has not merged yet), the store's holdout
and the autopilot's own records (switches, stops, executions); it first judges each autonomous action
against its holdout comparison and pauses a harmful one, then executes what the guardrails let through
and records the held-out accounts it would have acted on. The choices are the pure functions of
`guardrails.py` and `harm.py`; the records are `serving.autopilot_log`'s.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
import pandas as pd

from core.contract import HOLDOUT
from core.errors import RetainError
from core.settings import Settings
from features.cutoffs import cutoff_instant
from features.playbook_file import Playbook, store_playbook
from features.run import actions_last_taken, build_feature_table, register_store
from products.autopilot import guardrails, harm
from products.autopilot.guardrails import Candidate, Caps, Guards, Selection
from products.autopilot.harm import HarmCheck
from serving.autopilot_log import (
    AUTOPILOT,
    EVERYTHING,
    AutopilotLog,
    Comparison,
    Execution,
    autonomous,
    execution_id,
)
from store.decision_log import DecisionLog
from store.delta import Store
from store.plan_table import ACTED, HELD_OUT, recorded_plans
from training.causal.holdout import holdout_weeks

#: how long a plan's week lasts: a run after it executes nothing until the next plan is recorded
WEEK = timedelta(days=7)
#: how an execution is recorded among the interventions: the plan's pick, not a randomised arm
ASSIGNMENT = "targeted"


@dataclass(frozen=True)
class AutopilotRun:
    """What one run did (or, dry, would do)."""

    run_id: str
    at: datetime
    dry_run: bool
    #: the plan week it executed; None when there is no current plan (`note` says why)
    week: date | None
    note: str | None
    #: the plan's rows with an autonomous action this week
    candidates: int
    #: executions by action (that would be made, in a dry run)
    executed: dict[str, int]
    #: rows skipped, by reason
    skipped: dict[str, int]
    #: held-out accounts newly recorded as the comparison
    compared: int
    harm: list[HarmCheck]
    #: actions this run paused because they proved harmful (would pause, in a dry run)
    paused: list[str]


@dataclass(frozen=True)
class _Now:
    """The accounts as the run finds them."""

    #: active accounts' feature rows at the run's day
    rows: dict[str, dict[str, Any]]
    last_taken: dict[str, dict[str, datetime]]
    #: accounts in the store's holdout
    held_out: frozenset[str]


def current_week(weeks: Sequence[datetime], at: datetime) -> tuple[datetime | None, str | None]:
    """The latest plan week started by `at`, if `at` is still inside it; else None and why."""
    started = [w for w in weeks if w <= at]
    if not started:
        return None, "no plan is recorded for a week started by now: run `retain plan` first"
    week = max(started)
    if at >= week + WEEK:
        return None, f"the latest plan, for the week of {week.date()}, is over: record this week's plan first"
    return week, None


def run_autopilot(
    store: Store,
    settings: Settings,
    *,
    at: datetime | None = None,
    dry_run: bool = False,
    actor: str = AUTOPILOT,
    key_id: str | None = None,
) -> AutopilotRun:
    """One run at `at` (default now): judge harm, then execute the current plan's autonomous rows the
    guardrails let through; with `dry_run`, only say what it would do."""
    at = (at or datetime.now(UTC)).astimezone(UTC)
    run_id = f"ap_{uuid.uuid4().hex[:20]}"
    plans = recorded_plans(store)
    weeks = sorted({pd.Timestamp(w).to_pydatetime() for w in plans["week"]})
    week, note = current_week(weeks, at)
    if week is None:
        return AutopilotRun(run_id, at, dry_run, None, note, 0, {}, {}, 0, [], [])
    playbook = store_playbook(store, settings)
    log = DecisionLog.for_store(store, settings)
    try:
        pilot = AutopilotLog(log)
        now = _read_now(store, settings, at, log)
        checks, paused = _judge_harm(pilot, now, playbook, settings, at, dry_run)
        rows = plans[plans["week"] == pd.Timestamp(week)]
        candidates = _candidates(rows, playbook)
        guards = _guards(pilot, plans, rows, candidates, now, playbook, week, at, paused)
        caps = Caps(
            settings.autopilot.max_per_action_per_day,
            settings.autopilot.max_per_day,
            _done_today(pilot, at),
        )
        selection = guardrails.select(candidates, guards, caps)
        comparisons = _comparisons(rows, playbook, guards, week)
        executed, skipped = _execute(pilot, selection, week, at, actor, key_id, run_id, playbook, dry_run)
        compared = 0 if dry_run else pilot.compare(comparisons)
    finally:
        log.close()
    return AutopilotRun(
        run_id, at, dry_run, week.date(), None, len(candidates), executed, skipped, compared, checks, paused
    )


def _read_now(store: Store, settings: Settings, at: datetime, log: DecisionLog) -> _Now:
    """Features at the run's day, the last take of each action per account (the store's and the decision
    log's not yet merged), and who the store holds out."""
    if not store.holds_events():
        raise RetainError(f"no events in the store {store.location}: run `retain ingest` into it first")
    with duckdb.connect() as con:
        register_store(con, store)
        table = build_feature_table(con, [at.date()], settings)
        taken = actions_last_taken(con, at)
        drawn = con.execute(
            "SELECT account_id, ts, assignment FROM interventions WHERE assignment = ?", [HOLDOUT]
        ).df()
    for action in log.taken(pending_only=True):
        mine = taken.setdefault(action.account_id, {})
        if action.ts < at and action.ts > mine.get(action.action, action.ts - timedelta(seconds=1)):
            mine[action.action] = action.ts
    ids = sorted(set(drawn["account_id"]))
    keys = pd.DataFrame({"account_id": ids, "cutoff": pd.Timestamp(cutoff_instant(at.date()))})
    held = holdout_weeks(keys, drawn).held_out
    rows = {str(r["account_id"]): r for r in table.to_pylist()}
    return _Now(rows, taken, frozenset(a for a, h in zip(ids, held, strict=True) if h))


def _judge_harm(
    pilot: AutopilotLog, now: _Now, playbook: Playbook, settings: Settings, at: datetime, dry_run: bool
) -> tuple[list[HarmCheck], list[str]]:
    """Each running autonomous action against its comparison, over the weeks of the harm window that
    started after its last resume; a harmful one is paused with its figures, unless the run is dry."""
    switches = pilot.switches()
    window = at - timedelta(days=settings.autopilot.harm_window_days)
    executed = _weekly(asdict(e) for e in pilot.executions(window, at))
    compared = _weekly(asdict(c) for c in pilot.comparisons(window))
    checks = []
    for action in autonomous(playbook):
        switch = switches.get(action)
        if switch is not None and switch.paused:
            continue
        start = pd.Timestamp(window if switch is None else max(window, switch.at))
        mine, held = (
            part[(part["action"] == action) & (part["week"] >= start)] for part in (executed, compared)
        )
        checks += harm.judge(mine, held, set(now.rows), settings.autopilot.harm_confidence, settings.seed)
    paused = [c.action for c in checks if c.harmful]
    for check in checks:
        if check.harmful and not dry_run:
            pilot.set_switch(check.action, True, AUTOPILOT, harm_reason(check, settings), asdict(check))
    return checks, paused


def _weekly(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Executions or comparisons as (week, account_id, action) rows, weeks as UTC timestamps."""
    frame = pd.DataFrame(list(records), columns=["week", "account_id", "action"])
    return frame.assign(week=pd.to_datetime(frame["week"], utc=True))


def harm_reason(check: HarmCheck, settings: Settings) -> str:
    """Why an action was paused for harm, in words a CS-ops lead reads."""
    assert check.added_churns is not None
    return (
        f"paused automatically: against its holdout comparison, {check.action} added an estimated "
        f"{check.added_churns.estimate:.1f} churned accounts among {check.executed} it reached (at "
        f"{settings.autopilot.harm_confidence:.0%} confidence at least {check.added_churns.low:.1f}); "
        f"churned {check.churn_rate_executed:.1%} against {check.churn_rate_compared:.1%} held out"
    )


def _candidates(rows: pd.DataFrame, playbook: Playbook) -> list[Candidate]:
    """The week's rows the plan acts on with an action the playbook lets the autopilot take alone."""
    mine = rows[rows["arm"].isin(list(ACTED)) & rows["action"].isin(autonomous(playbook))]
    return [
        Candidate(
            str(r["account_id"]),
            str(r["action"]),
            str(r["arm"]),
            None if pd.isna(r["expected_value"]) else float(r["expected_value"]),
            None if pd.isna(r["propensity"]) else float(r["propensity"]),
            str(r["model_version"]),
        )
        for r in mine.to_dict("records")
    ]


def _guards(
    pilot: AutopilotLog,
    plans: pd.DataFrame,
    rows: pd.DataFrame,
    candidates: Sequence[Candidate],
    now: _Now,
    playbook: Playbook,
    week: datetime,
    at: datetime,
    paused_now: Sequence[str],
) -> Guards:
    """What stands in the way of the week's candidates and of its held-out accounts, read now."""
    switches = pilot.switches()
    actions = autonomous(playbook)
    held = rows.loc[rows["arm"] == HELD_OUT, "account_id"].astype(str)
    pairs = {(c.account_id, c.action) for c in candidates} | {(a, x) for a in held for x in actions}
    ids = {execution_id(week, c.account_id, c.action): (c.account_id, c.action) for c in candidates}
    blocked = {
        (account, action): reason
        for account, action in pairs
        if (
            reason := guardrails.blocked(
                now.rows.get(account), action, now.last_taken.get(account, {}), at, playbook
            )
        )
    }
    return Guards(
        paused=bool(switches.get(EVERYTHING) and switches[EVERYTHING].paused),
        paused_actions=frozenset(
            {a for a, s in switches.items() if s.paused and a != EVERYTHING} | set(paused_now)
        ),
        stopped=frozenset(pilot.stopped()),
        held_out=now.held_out,
        approval_pending=guardrails.approval_pending(plans, ACTED, now.last_taken, at, playbook),
        executed=frozenset(ids[i] for i in pilot.recorded(ids)),
        blocked=blocked,
    )


def _done_today(pilot: AutopilotLog, at: datetime) -> dict[str, int]:
    """The executions of `at`'s UTC day so far, by action."""
    day = cutoff_instant(at.date())
    return dict(Counter(e.action for e in pilot.executions(day, day + timedelta(days=1))))


def _comparisons(rows: pd.DataFrame, playbook: Playbook, guards: Guards, week: datetime) -> list[Comparison]:
    """The week's held-out accounts each autonomous action would have been executed for: every guardrail
    but the caps let it through."""
    actions = autonomous(playbook)
    held = sorted(rows.loc[rows["arm"] == HELD_OUT, "account_id"].astype(str))
    return [
        Comparison(week, account, action)
        for account in held
        for action in actions
        if guardrails.barrier(account, action, guards) is None
    ]


def _execute(
    pilot: AutopilotLog,
    selection: Selection,
    week: datetime,
    at: datetime,
    actor: str,
    key_id: str | None,
    run_id: str,
    playbook: Playbook,
    dry_run: bool,
) -> tuple[dict[str, int], dict[str, int]]:
    """Execute the chosen rows (unless dry), each in its own transaction; executions and skips by reason
    (a row another run recorded meanwhile, or a pause or stop set since the run read them, is skipped)."""
    executed: Counter[str] = Counter()
    skipped = Counter(selection.skipped)
    for c in selection.chosen:
        execution = Execution(
            execution_id(week, c.account_id, c.action),
            week,
            c.account_id,
            c.action,
            playbook.actions[c.action].channel,
            c.arm,
            at,
            actor,
            key_id,
            f"uplift/{c.model_version}",
            c.propensity,
            run_id,
        )
        refused = None if dry_run else pilot.execute(execution, ASSIGNMENT)
        if refused is None:
            executed[c.action] += 1
        else:
            skipped[refused] += 1
    return dict(sorted(executed.items())), dict(sorted(skipped.items()))
