"""The outbox: webhook subscriptions, the events recorded for them (alerts, and the autopilot's
`action.execute` commands), and one delivery row per event and subscription, in the decision log's
database (its engine, its schema migrations, its outage error).

An alert and the deliveries it owes are written in one transaction, so once `record` returns nothing can
lose them: a crash before any worker sends only delays them. An alert is inserted only if its id is
absent, so a rerun of the build that made it records nothing twice. A worker claims due deliveries with a
lease (`claimed_until`): while it holds, no other worker takes them; when a worker dies mid-delivery they
are due again once it has passed. A delivery may thus be sent more than once, never lost: receivers drop
repeats by the idempotency key, the alert's id (`webhook-id`).

A webhook's current secret is in its row; `rotate` replaces it and keeps the one it replaced signing
beside it for an overlap (`webhook_retiring_secrets`), so the receiver can move to the new secret
without refusing a delivery.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from core.errors import RetainError
from core.urls import redact
from features.alerts import ALERT_SCHEMA_VERSION, ALERT_TYPES, Alert
from serving.webhooks.checks import ALL_EVENTS, COMMANDS, WebhookInputError, check_url, parse_events
from serving.webhooks.signing import SigningSecret, new_secret
from store.decision_log import (
    ALERTS,
    DELIVERIES,
    WEBHOOK_RETIRING_SECRETS,
    WEBHOOKS,
    DecisionLog,
    upsert_into,
)

#: the longest overlap a rotation takes: a secret that should go cannot linger for longer
MAX_OVERLAP_SECONDS = 30 * 86_400.0


@dataclass(frozen=True)
class Webhook:
    """A subscription as shown: never its secret, and its URL without a password."""

    webhook_id: str
    url: str
    #: alert types, or `*` for all
    events: tuple[str, ...]
    created_at: datetime
    #: deliveries waiting to be sent (or sent again)
    pending: int
    #: deliveries that failed every attempt (`failed`, `retry`)
    dead: int


@dataclass(frozen=True)
class NewWebhook:
    webhook: Webhook
    #: the signing secret, returned this once: only the receiver keeps it
    secret: str = field(repr=False)


@dataclass(frozen=True)
class RotatedSecret:
    webhook: Webhook
    #: the new signing secret, returned this once: only the receiver keeps it
    secret: str = field(repr=False)
    #: until when the secret it replaced still signs beside it; None when that one was dropped at once
    previous_until: datetime | None


@dataclass(frozen=True)
class OutboxEvent:
    """An event as the outbox keeps it: its stable id (the idempotency key), its type, and the exact body
    every delivery sends."""

    id: str
    type: str
    account_id: str | None
    #: the moment the event is about
    at: datetime
    payload: str


@dataclass(frozen=True)
class RecordedAlerts:
    #: alerts recorded now, each with a delivery per subscription to its type
    new: int
    #: alerts recorded before, left as they were
    known: int
    deliveries: int


@dataclass(frozen=True)
class FailedDelivery:
    """A dead delivery: every attempt failed, the last for `last_error`."""

    alert_id: str
    type: str
    account_id: str | None
    webhook_id: str
    url: str
    attempts: int
    last_error: str | None


@dataclass(frozen=True)
class Retried:
    #: dead deliveries made pending again, their attempts counted from zero
    deliveries: int


@dataclass(frozen=True)
class AlertBrief:
    """An alert as the outbox holds it: what the weekly digest counts and quotes."""

    alert_id: str
    type: str
    account_id: str | None
    #: the moment the alert is about (the cutoff, the plan's week, the promotion)
    at: datetime
    summary: str


@dataclass(frozen=True)
class Claim:
    """A delivery a worker holds under its lease: the body to send, and where."""

    alert_id: str
    webhook_id: str
    type: str
    payload: str
    #: failed attempts so far
    attempts: int
    url: str = field(repr=False)  # may carry a password
    #: the webhook's secrets when claimed: the current one first, then any a rotation is retiring
    secrets: tuple[SigningSecret, ...] = field(repr=False)
    #: the end of the lease, which also tells this claim from a later one of the same delivery
    until: datetime

    def signing(self, now: datetime) -> list[SigningSecret]:
        """The secrets that sign a delivery sent at `now`: those whose overlap has not ended."""
        return [s for s in self.secrets if s.live(now)]


class UnknownWebhook(RetainError):
    """No subscription, or a removed one, has this id."""


def alert_payload(alert: Alert, recorded_at: datetime) -> str:
    """The alert as the JSON body every delivery sends: versioned, keys in a fixed order, compact."""
    if alert.at.tzinfo is None:
        raise RetainError(f"alert {alert.id}: its time {alert.at} has no timezone; alerts are in UTC")
    document = {
        "schema_version": ALERT_SCHEMA_VERSION,
        "id": alert.id,
        "type": alert.type,
        "account_id": alert.account_id,
        "at": alert.at.astimezone(UTC).isoformat(),
        "summary": alert.summary,
        "evidence": [{"name": e.name, "value": _finite(e.value), "text": e.text} for e in alert.evidence],
        "actions": list(alert.actions),
        "recorded_at": recorded_at.astimezone(UTC).isoformat(),
    }
    return json.dumps(document, separators=(",", ":"), allow_nan=False)


def _finite(value: float | str | None) -> float | str | None:
    """JSON has no NaN or infinity: an unknown figure is null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _subscribed(events: Sequence[str], event_type: str) -> bool:
    """A subscription takes the types it names; `*` every alert type, never a command."""
    return event_type in events or (ALL_EVENTS in events and event_type not in COMMANDS)


class Outbox:
    """Subscriptions and deliveries over a decision log's database; safe to share between threads and
    with other processes (every step is one transaction)."""

    def __init__(self, log: DecisionLog) -> None:
        self.log = log

    # -- subscriptions ---------------------------------------------------------------------------------
    def add(self, url: str, events: Iterable[str], types: Sequence[str] = ALERT_TYPES) -> NewWebhook:
        """Subscribe `url` to alerts of `events` (of the playbook's alert `types`, or `*`); it receives
        alerts recorded from now on. `WebhookInputError` names a refused URL or an unknown type."""
        chosen = parse_events(events, types)
        check_url(url)
        webhook_id, secret, now = f"wh_{secrets.token_hex(6)}", new_secret(), datetime.now(UTC)
        row = {"webhook_id": webhook_id, "url": url, "events": ",".join(chosen), "secret": secret}
        with self.log.connect(write=True) as conn:
            conn.execute(WEBHOOKS.insert(), {**row, "created_at": now})
        return NewWebhook(Webhook(webhook_id, redact(url), chosen, now, 0, 0), secret)

    def webhooks(self) -> list[Webhook]:
        """Live subscriptions, oldest first, with their pending and dead deliveries counted."""
        with self.log.connect() as conn:
            return _live(conn)

    def remove(self, webhook_id: str) -> Webhook:
        """End a subscription: none of its deliveries is sent from now on."""
        w = WEBHOOKS.c
        removal = WEBHOOKS.update().where(w.webhook_id == webhook_id, w.removed_at.is_(None))
        with self.log.connect(write=True) as conn:
            found = _live(conn, webhook_id)
            if not found:
                raise UnknownWebhook(f"no webhook with id {webhook_id!r}")
            conn.execute(removal.values(removed_at=datetime.now(UTC)))
        return found[0]

    def rotate(self, webhook_id: str, overlap_seconds: float) -> RotatedSecret:
        """Give a subscription a new signing secret. The one it replaces keeps signing beside it for
        `overlap_seconds` (0: dropped at once, for a secret that leaked); a secret an earlier rotation is
        still retiring stops by then at the latest."""
        if not 0 <= overlap_seconds <= MAX_OVERLAP_SECONDS:
            said = f"the overlap is 0 to {MAX_OVERLAP_SECONDS:g} seconds, not {overlap_seconds:g}"
            raise WebhookInputError("overlap_seconds", "invalid_overlap", said)
        w = WEBHOOKS.c
        now, secret = datetime.now(UTC), new_secret()
        until = now + timedelta(seconds=overlap_seconds)
        current = sa.select(w.secret, w.legacy_signature).where(w.webhook_id == webhook_id).with_for_update()
        with self.log.connect(write=True) as conn:
            found = _live(conn, webhook_id)
            if not found:
                raise UnknownWebhook(f"no webhook with id {webhook_id!r}")
            secret_now, legacy = conn.execute(current).one()
            replaced = SigningSecret(secret_now, legacy=legacy)
            _retire(conn, webhook_id, replaced, now, until)
            renewed = WEBHOOKS.update().where(w.webhook_id == webhook_id)
            conn.execute(renewed.values(secret=secret, legacy_signature=False))
        return RotatedSecret(found[0], secret, until if overlap_seconds > 0 else None)

    # -- recording -------------------------------------------------------------------------------------
    def record(self, alerts: Iterable[Alert]) -> RecordedAlerts:
        """Record the alerts not recorded yet, each with a pending delivery per live subscription to its
        type, in one transaction."""
        recorded_at = datetime.now(UTC)
        events = [
            OutboxEvent(alert.id, alert.type, alert.account_id, alert.at, alert_payload(alert, recorded_at))
            for alert in alerts
        ]
        if not events:
            return RecordedAlerts(0, 0, 0)
        with self.log.connect(write=True) as conn:
            return enqueue(conn, events, recorded_at)

    # -- delivering ------------------------------------------------------------------------------------
    def claim(self, now: datetime, lease_seconds: float, limit: int) -> list[Claim]:
        """Take up to `limit` due deliveries of live subscriptions for `lease_seconds`: each row is taken
        by a conditional update, so of workers racing for it exactly one gets it."""
        d, a, w = DELIVERIES.c, ALERTS.c, WEBHOOKS.c
        due = sa.and_(
            d.status == "pending",
            d.next_attempt_at <= now,
            sa.or_(d.claimed_until.is_(None), d.claimed_until <= now),
        )
        query = (
            sa.select(
                d.alert_id, d.webhook_id, a.type, a.payload, d.attempts, w.url, w.secret, w.legacy_signature
            )
            .join(ALERTS, a.alert_id == d.alert_id)
            .join(WEBHOOKS, w.webhook_id == d.webhook_id)
            .where(due, w.removed_at.is_(None))
            .order_by(d.next_attempt_at, d.alert_id, d.webhook_id)
            .limit(limit)
        )
        until = now + timedelta(seconds=lease_seconds)
        claimed = []
        with self.log.connect(write=True) as conn:
            rows = conn.execute(query).mappings().all()
            retiring = _retiring(conn, {row["webhook_id"] for row in rows}, now)
            for row in rows:
                take = DELIVERIES.update().where(
                    d.alert_id == row["alert_id"], d.webhook_id == row["webhook_id"], due
                )
                if conn.execute(take.values(claimed_until=until)).rowcount:
                    fields = {k: v for k, v in row.items() if k not in ("secret", "legacy_signature")}
                    current = SigningSecret(row["secret"], legacy=row["legacy_signature"])
                    signing = (current, *retiring.get(row["webhook_id"], ()))
                    claimed.append(Claim(**fields, secrets=signing, until=until))
        return claimed

    def delivered(self, claim: Claim, now: datetime) -> None:
        self._settle(claim, status="delivered", delivered_at=now, last_error=None)

    def failed_attempt(self, claim: Claim, error: str, now: datetime, retry_at: datetime | None) -> None:
        """An attempt failed: tried again at `retry_at`, or dead when it is None."""
        status = "dead" if retry_at is None else "pending"
        self._settle(claim, status=status, next_attempt_at=retry_at or now, last_error=error[:500])

    def _settle(self, claim: Claim, **values: object) -> None:
        """End the attempt `claim` made, unless the delivery is no longer under that claim: another
        worker took it after this one's lease ran out, and what it does stands."""
        d = DELIVERIES.c
        settle = DELIVERIES.update().where(
            d.alert_id == claim.alert_id,
            d.webhook_id == claim.webhook_id,
            d.status == "pending",
            d.claimed_until == claim.until,
        )
        with self.log.connect(write=True) as conn:
            conn.execute(settle.values(attempts=d.attempts + 1, claimed_until=None, **values))

    # -- reading -----------------------------------------------------------------------------------------
    def recorded(self, start: datetime, end: datetime) -> list[AlertBrief]:
        """The alerts about a moment from `start` up to `end` (their `at`, not when they were recorded:
        a store scored or planned after the fact reads the same), oldest first."""
        a = ALERTS.c
        query = (
            sa.select(a.alert_id, a.type, a.account_id, a.at, a.payload)
            .where(a.at >= start, a.at < end)
            .order_by(a.at, a.alert_id)
        )
        with self.log.connect() as conn:
            rows = conn.execute(query).all()
        return [
            AlertBrief(alert_id, type_, account, at, json.loads(payload)["summary"])
            for alert_id, type_, account, at, payload in rows
        ]

    # -- the dead letters ------------------------------------------------------------------------------
    def failed(self) -> list[FailedDelivery]:
        """Dead deliveries of live subscriptions, oldest alert first."""
        d, a, w = DELIVERIES.c, ALERTS.c, WEBHOOKS.c
        query = (
            sa.select(d.alert_id, a.type, a.account_id, d.webhook_id, w.url, d.attempts, d.last_error)
            .join(ALERTS, a.alert_id == d.alert_id)
            .join(WEBHOOKS, w.webhook_id == d.webhook_id)
            .where(d.status == "dead", w.removed_at.is_(None))
            .order_by(a.recorded_at, d.alert_id, d.webhook_id)
        )
        with self.log.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [FailedDelivery(**{**row, "url": redact(row["url"])}) for row in rows]

    def retry(
        self, alert_id: str | None = None, webhook_id: str | None = None, *, every: bool = False
    ) -> Retried:
        """Make dead deliveries pending again with their attempts counted from zero: those of one alert,
        of one webhook, of both, or `every` one."""
        if every and (alert_id or webhook_id):
            raise WebhookInputError("all", "invalid_retry", "all retries every dead delivery; give no ids")
        if not (every or alert_id or webhook_id):
            said = "say which dead deliveries to retry: an alert id, a webhook id, or all"
            raise WebhookInputError("all", "invalid_retry", said)
        d, w = DELIVERIES.c, WEBHOOKS.c
        live = sa.select(w.webhook_id).where(w.removed_at.is_(None))
        retry = DELIVERIES.update().where(d.status == "dead", d.webhook_id.in_(live))
        if alert_id:
            retry = retry.where(d.alert_id == alert_id)
        if webhook_id:
            retry = retry.where(d.webhook_id == webhook_id)
        values = {
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": datetime.now(UTC),
            "claimed_until": None,
        }
        with self.log.connect(write=True) as conn:
            return Retried(conn.execute(retry.values(**values)).rowcount)


def enqueue(conn: sa.Connection, events: Iterable[OutboxEvent], recorded_at: datetime) -> RecordedAlerts:
    """Inside the caller's transaction: record the events whose id is absent, each with a pending delivery
    per live subscription to its type; a caller writing more in the same transaction (the autopilot's
    execution) commits or loses all of it at once."""
    unique = {event.id: event for event in events}
    rows = [
        {
            "alert_id": e.id,
            "type": e.type,
            "account_id": e.account_id,
            "at": e.at,
            "payload": e.payload,
            "recorded_at": recorded_at,
        }
        for e in unique.values()
    ]
    if not rows:
        return RecordedAlerts(0, 0, 0)
    w = WEBHOOKS.c
    new = _insert_absent(conn, rows)
    live = conn.execute(sa.select(w.webhook_id, w.events).where(w.removed_at.is_(None))).all()
    deliveries = [
        {
            "alert_id": event_id,
            "webhook_id": webhook_id,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": recorded_at,
        }
        for event_id in sorted(new)
        for webhook_id, types in live
        if _subscribed(types.split(","), unique[event_id].type)
    ]
    if deliveries:
        conn.execute(DELIVERIES.insert(), deliveries)
    return RecordedAlerts(len(new), len(rows) - len(new), len(deliveries))


def _live(conn: sa.Connection, webhook_id: str | None = None) -> list[Webhook]:
    """Live subscriptions (all, or the one with `webhook_id`), oldest first, their deliveries counted."""
    w, d = WEBHOOKS.c, DELIVERIES.c
    live = sa.select(w.webhook_id, w.url, w.events, w.created_at).where(w.removed_at.is_(None))
    counted = sa.select(d.webhook_id, d.status, sa.func.count()).where(d.status.in_(("pending", "dead")))
    if webhook_id is not None:
        live, counted = live.where(w.webhook_id == webhook_id), counted.where(d.webhook_id == webhook_id)
    rows = conn.execute(live.order_by(w.created_at, w.webhook_id)).all()
    counts = {(i, status): int(n) for i, status, n in conn.execute(counted.group_by(d.webhook_id, d.status))}
    return [
        Webhook(
            i,
            redact(url),
            tuple(events.split(",")),
            created_at,
            counts.get((i, "pending"), 0),
            counts.get((i, "dead"), 0),
        )
        for i, url, events, created_at in rows
    ]


def _retire(
    conn: sa.Connection, webhook_id: str, replaced: SigningSecret, now: datetime, until: datetime
) -> None:
    """Inside a rotation: keep the `replaced` secret signing until `until` (unless that is now), end any
    other retiring secret by then, and forget those whose overlap has ended."""
    r, retiring = WEBHOOK_RETIRING_SECRETS.c, WEBHOOK_RETIRING_SECRETS
    conn.execute(retiring.delete().where(r.webhook_id == webhook_id, r.expires_at <= now))
    conn.execute(
        retiring.update().where(r.webhook_id == webhook_id, r.expires_at > until).values(expires_at=until)
    )
    if until > now:
        kept = {"webhook_id": webhook_id, "secret": replaced.secret, "legacy_signature": replaced.legacy}
        conn.execute(retiring.insert(), {**kept, "expires_at": until})


def _retiring(
    conn: sa.Connection, webhook_ids: Iterable[str], now: datetime
) -> dict[str, list[SigningSecret]]:
    """The secrets rotations are retiring from these webhooks whose overlap has not ended, newest first."""
    r = WEBHOOK_RETIRING_SECRETS.c
    query = (
        sa.select(r.webhook_id, r.secret, r.legacy_signature, r.expires_at)
        .where(r.webhook_id.in_(list(webhook_ids)), r.expires_at > now)
        .order_by(r.webhook_id, r.expires_at.desc())
    )
    found: dict[str, list[SigningSecret]] = {}
    for webhook_id, secret, legacy, expires_at in conn.execute(query):
        found.setdefault(webhook_id, []).append(SigningSecret(secret, expires_at, legacy))
    return found


def _insert_absent(conn: sa.Connection, rows: Sequence[Mapping[str, object]]) -> set[str]:
    """Insert the alerts whose id is absent; the ids inserted. Concurrent recorders of the same alert
    cannot both insert it: the database settles the race on the primary key."""
    statement = upsert_into(conn, ALERTS).on_conflict_do_nothing(index_elements=["alert_id"])
    return set(conn.execute(statement.returning(ALERTS.c.alert_id), rows).scalars())
