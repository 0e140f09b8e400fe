"""The autopilot's records in the decision log's database: the kill switch, the accounts CSMs stopped it
for, what it executed, and the held-out accounts it compares that with (docs/methods/autopilot.md).

An execution is one transaction: its row here, its row in `interventions_taken` (so it counts for
cool-downs at once and is merged into the store's interventions like any action recorded through the API)
and its `action.execute` event in the outbox, with a delivery per webhook subscribed to it. Its id is
derived from the plan week, the account and the action, and is the event's id: a rerun, or a second
worker, finds it recorded and executes nothing twice, and every delivery of it carries that id as its
idempotency key. The API and the cockpit read and set the switches and stops here; `products.autopilot`
runs the executions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime

import sqlalchemy as sa
from pydantic import JsonValue

from core.errors import RetainError
from features.playbook_file import Playbook
from serving.webhooks.checks import ACTION_EXECUTE
from serving.webhooks.outbox import OutboxEvent, enqueue
from store.decision_log import (
    AUTOPILOT_COMPARISONS,
    AUTOPILOT_EXECUTIONS,
    AUTOPILOT_STOPS,
    AUTOPILOT_SWITCHES,
    DELIVERIES,
    TAKEN,
    DecisionLog,
    TakenAction,
    upsert_into,
)

#: the scope of the switch that pauses the whole autopilot (the others are one action's)
EVERYTHING = "*"
#: who executes when no person or key asked: the scheduled run, and the worker in `retain serve`
AUTOPILOT = "autopilot"
#: the `action.execute` payload's version: a receiver can refuse a shape it does not know
EXECUTION_SCHEMA_VERSION = 1
#: why an execution is refused when it is recorded, whatever the run read before (`AutopilotLog.execute`)
PAUSED, ACTION_PAUSED, STOPPED, EXECUTED = (
    "autopilot paused",
    "action paused",
    "stopped by CSM",
    "executed before",
)


class UnknownScope(RetainError):
    """A pause or resume naming an action the autopilot never takes."""


def autonomous(playbook: Playbook) -> list[str]:
    """The playbook's actions the autopilot may take alone, in its order."""
    return [a for a, spec in playbook.actions.items() if spec.autonomous]


def switch_scope(action: str | None, playbook: Playbook) -> str:
    """The switch a pause or resume names: the whole autopilot (no action, or `*`), or one of the
    playbook's autonomous actions."""
    if action is None or action == EVERYTHING:
        return EVERYTHING
    if action not in autonomous(playbook):
        takes = ", ".join(autonomous(playbook)) or "none"
        raise UnknownScope(f"{action!r} is not an action the autopilot takes; its actions are {takes}")
    return action


def execution_id(week: datetime, account_id: str, action: str) -> str:
    """Stable: one plan week, account and action always give the same id, whoever executes it when."""
    key = f"{week.astimezone(UTC).isoformat()}|{account_id}|{action}"
    return f"ex_{hashlib.sha256(key.encode()).hexdigest()[:24]}"


@dataclass(frozen=True)
class Execution:
    """One action the autopilot executed, as `autopilot_executions` holds it."""

    execution_id: str
    #: the plan week whose row it executed
    week: datetime
    account_id: str
    action: str
    channel: str
    #: the plan's arm: its own pick, or an exploratory one
    arm: str
    at: datetime
    #: `autopilot`, or who asked for the run
    actor: str
    #: the API key that asked for the run (None for a scheduled one)
    key_id: str | None
    #: the uplift model version the plan came from
    policy_version: str
    #: the probability the plan gave the account this arm
    propensity: float | None
    run_id: str

    def taken(self, assignment: str) -> TakenAction:
        """The action taken, as the interventions table holds it; `assignment` says how it was chosen."""
        return TakenAction(
            intervention_id=self.execution_id,
            account_id=self.account_id,
            ts=self.at,
            action=self.action,
            owner=AUTOPILOT,
            channel=self.channel,
            assignment=assignment,
            propensity=self.propensity,
        )


def execution_payload(execution: Execution) -> str:
    """The `action.execute` body every delivery sends: versioned, keys in a fixed order, compact; `id` is
    the execution id, also every delivery's idempotency key."""
    document = {
        "schema_version": EXECUTION_SCHEMA_VERSION,
        "id": execution.execution_id,
        "type": ACTION_EXECUTE,
        "account_id": execution.account_id,
        "action": execution.action,
        "channel": execution.channel,
        "week": execution.week.astimezone(UTC).date().isoformat(),
        "at": execution.at.astimezone(UTC).isoformat(),
        "policy_version": execution.policy_version,
        "propensity": execution.propensity,
        "actor": execution.actor,
    }
    return json.dumps(document, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True)
class Switch:
    """The kill switch of one scope (`*`, or an action): who set it last, when and why."""

    scope: str
    paused: bool
    reason: str | None
    actor: str
    at: datetime
    #: the figures behind an automatic pause (None for one a person set)
    evidence: dict[str, JsonValue] | None = None


@dataclass(frozen=True)
class Stop:
    """Whether the autopilot may act on an account, as a CSM set it last."""

    account_id: str
    stopped: bool
    actor: str
    key_id: str | None
    at: datetime


@dataclass(frozen=True)
class Comparison:
    """A held-out account the autopilot would have executed `action` for in `week`."""

    week: datetime
    account_id: str
    action: str


@dataclass(frozen=True)
class ExecutionStatus:
    """An execution as the cockpit lists it: where its deliveries stand."""

    execution_id: str
    at: datetime
    week: datetime
    action: str
    actor: str
    #: delivered, queued (waiting or retrying), failed (dead), or no webhook subscribed
    status: str


#: the columns an `Execution` holds
EXECUTION_COLUMNS = [AUTOPILOT_EXECUTIONS.c[f.name] for f in fields(Execution)]


class AutopilotLog:
    """The autopilot's tables over a decision log's database; every step is one transaction, so processes
    may share it."""

    def __init__(self, log: DecisionLog) -> None:
        self.log = log

    # -- the kill switch -----------------------------------------------------------------------------------
    def switches(self) -> dict[str, Switch]:
        """Every scope's switch as last set, by scope."""
        with self.log.connect() as conn:
            rows = conn.execute(sa.select(AUTOPILOT_SWITCHES)).mappings().all()
        return {row["scope"]: Switch(**row) for row in rows}

    def set_switch(
        self,
        scope: str,
        paused: bool,
        actor: str,
        reason: str | None = None,
        evidence: Mapping[str, JsonValue] | None = None,
    ) -> Switch:
        """Pause or resume `scope` (`*` or an action), saying who and why."""
        switch = Switch(
            scope, paused, reason, actor, datetime.now(UTC), None if evidence is None else {**evidence}
        )
        with self.log.connect(write=True) as conn:
            _replace(conn, AUTOPILOT_SWITCHES, "scope", asdict(switch))
        return switch

    # -- accounts CSMs stopped it for ----------------------------------------------------------------------
    def set_stop(self, account_id: str, stopped: bool, actor: str, key_id: str | None) -> Stop:
        """Stop the autopilot for an account, or let it act there again."""
        stop = Stop(account_id, stopped, actor, key_id, datetime.now(UTC))
        with self.log.connect(write=True) as conn:
            _replace(conn, AUTOPILOT_STOPS, "account_id", asdict(stop))
        return stop

    def stop_of(self, account_id: str) -> Stop | None:
        query = sa.select(AUTOPILOT_STOPS).where(AUTOPILOT_STOPS.c.account_id == account_id)
        with self.log.connect() as conn:
            row = conn.execute(query).mappings().one_or_none()
        return None if row is None else Stop(**row)

    def stopped(self) -> set[str]:
        """The accounts the autopilot must leave alone."""
        query = sa.select(AUTOPILOT_STOPS.c.account_id).where(AUTOPILOT_STOPS.c.stopped.is_(True))
        with self.log.connect() as conn:
            return set(conn.execute(query).scalars())

    # -- executions ----------------------------------------------------------------------------------------
    def execute(self, execution: Execution, assignment: str) -> str | None:
        """Record the execution, its action taken and its `action.execute` event in one transaction; None,
        or why nothing was written: its id recorded before, or a switch or stop set since the run read
        them (a pause holds from the moment it is set)."""
        row = asdict(execution)
        taken = {
            **asdict(execution.taken(assignment)),
            "request_id": execution.run_id,
            "key_id": execution.key_id,
        }
        event = OutboxEvent(
            execution.execution_id,
            ACTION_EXECUTE,
            execution.account_id,
            execution.at,
            execution_payload(execution),
        )
        with self.log.connect(write=True) as conn:
            refused = _refused(conn, execution)
            if refused is not None:
                return refused
            insert = upsert_into(conn, AUTOPILOT_EXECUTIONS).on_conflict_do_nothing(
                index_elements=["execution_id"]
            )
            if conn.execute(insert.returning(AUTOPILOT_EXECUTIONS.c.execution_id), row).first() is None:
                return EXECUTED
            conn.execute(TAKEN.insert(), taken)
            enqueue(conn, [event], datetime.now(UTC))
        return None

    def recorded(self, ids: Collection[str]) -> set[str]:
        """Which of these execution ids are recorded."""
        column = AUTOPILOT_EXECUTIONS.c.execution_id
        with self.log.connect() as conn:
            return set(conn.execute(sa.select(column).where(column.in_(list(ids)))).scalars())

    def executions(self, since: datetime, until: datetime | None = None) -> list[Execution]:
        """Executions at or after `since` (and before `until`), oldest first."""
        e = AUTOPILOT_EXECUTIONS.c
        query = sa.select(*EXECUTION_COLUMNS).where(e.at >= since).order_by(e.at, e.execution_id)
        if until is not None:
            query = query.where(e.at < until)
        with self.log.connect() as conn:
            return [Execution(**row) for row in conn.execute(query).mappings()]

    def account_history(self, account_id: str, limit: int = 20) -> list[ExecutionStatus]:
        """The account's executions, newest first, each with where its deliveries stand."""
        e, d = AUTOPILOT_EXECUTIONS.c, DELIVERIES.c
        query = (
            sa.select(e.execution_id, e.at, e.week, e.action, e.actor, d.status)
            .outerjoin(DELIVERIES, d.alert_id == e.execution_id)
            .where(e.account_id == account_id)
            .order_by(e.at.desc(), e.execution_id)
        )
        with self.log.connect() as conn:
            rows = conn.execute(query).all()
        found: dict[str, tuple[tuple[datetime, datetime, str, str], set[str | None]]] = {}
        for execution, at, week, action, actor, status in rows:
            found.setdefault(execution, ((at, week, action, actor), set()))[1].add(status)
        return [
            ExecutionStatus(execution, *about, _delivery_status(statuses))
            for execution, (about, statuses) in list(found.items())[:limit]
        ]

    # -- the comparison ------------------------------------------------------------------------------------
    def compare(self, comparisons: Iterable[Comparison]) -> int:
        """Record held-out accounts the autopilot would have acted on (those recorded before stay as they
        were); how many were new."""
        now = datetime.now(UTC)
        rows = [{**asdict(c), "recorded_at": now} for c in comparisons]
        if not rows:
            return 0
        c = AUTOPILOT_COMPARISONS.c
        with self.log.connect(write=True) as conn:
            statement = upsert_into(conn, AUTOPILOT_COMPARISONS).on_conflict_do_nothing(
                index_elements=["week", "account_id", "action"]
            )
            return len(conn.execute(statement.returning(c.account_id), rows).all())

    def comparisons(self, since: datetime) -> list[Comparison]:
        """Comparisons of the weeks from `since` on."""
        c = AUTOPILOT_COMPARISONS.c
        query = (
            sa.select(c.week, c.account_id, c.action).where(c.week >= since).order_by(c.week, c.account_id)
        )
        with self.log.connect() as conn:
            return [Comparison(*row) for row in conn.execute(query)]


def _refused(conn: sa.Connection, execution: Execution) -> str | None:
    """Whether a switch or a CSM's stop, as the database holds them now, refuses the execution."""
    s, t = AUTOPILOT_SWITCHES.c, AUTOPILOT_STOPS.c
    scopes = (EVERYTHING, execution.action)
    paused = set(conn.execute(sa.select(s.scope).where(s.scope.in_(scopes), s.paused.is_(True))).scalars())
    if EVERYTHING in paused:
        return PAUSED
    if paused:
        return ACTION_PAUSED
    stop = sa.select(t.account_id).where(t.account_id == execution.account_id, t.stopped.is_(True))
    return STOPPED if conn.execute(stop).first() is not None else None


def _replace(conn: sa.Connection, table: sa.Table, key: str, row: Mapping[str, object]) -> None:
    """Insert the row, or overwrite the one with its key."""
    statement = upsert_into(conn, table)
    values = {name: value for name, value in row.items() if name != key}
    conn.execute(statement.on_conflict_do_update(index_elements=[key], set_=values), dict(row))


def _delivery_status(statuses: set[str | None]) -> str:
    """Where an execution's deliveries stand, the worst first."""
    if statuses == {None}:
        return "no webhook subscribed"
    if "dead" in statuses:
        return "failed"
    if "pending" in statuses:
        return "queued"
    return "delivered"
