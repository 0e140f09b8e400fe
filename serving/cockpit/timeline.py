"""An account's recent story, as dated sentences: incidents, tickets, invoices, onboarding, integrations,
subscription changes and the actions taken.

The events are read once per book (`recent_events`), the actions per page (`account_timeline`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from core.contract import EVENT_SCHEMA, HOLDOUT, INTERVENTION_SCHEMA
from store.decision_log import TakenAction
from store.delta import Store

#: errors at these severities are incidents; minor ones are noise on a CSM's page
INCIDENT_SEVERITIES = ("major", "critical")
#: integration states worth a line (an `ok` is the absence of news)
INTEGRATION_TROUBLE = ("failing", "disconnected")


#: one event or intervention as a table row: column name -> value
TableRow = Mapping[str, object]


@dataclass(frozen=True)
class Moment:
    """One dated line of an account's timeline."""

    ts: datetime
    kind: str
    text: str


def _money(amount: object) -> str:
    return f"${amount:,.0f}" if amount is not None else "an unknown amount"


def _words(value: object) -> str:
    return str(value).replace("_", " ")


def action_label(action: str) -> str:
    """`qbr_roi_review` -> `QBR ROI review`: catalogue names as a CSM reads them."""
    upper = {"qbr": "QBR", "roi": "ROI"}
    words = [upper.get(w, w) for w in action.split("_")]
    first = words[0] if words[0].isupper() else words[0].capitalize()
    return " ".join([first, *words[1:]])


def _incident(e: TableRow) -> str:
    where = f" in {_words(e['feature'])}" if e.get("feature") else ""
    return f"{e['count']} {e['severity']} error(s){where}"


def _ticket_created(e: TableRow) -> str:
    category = f", {_words(e['category'])}" if e.get("category") else ""
    return f"Ticket {e['ticket_id']} opened ({e['priority']}{category})"


def _ticket_resolved(e: TableRow) -> str:
    csat = f", CSAT {e['csat']}/5" if e.get("csat") is not None else ""
    return f"Ticket {e['ticket_id']} resolved ({e['priority']}{csat})"


def _cancelled(e: TableRow) -> str:
    return "Subscription cancelled" + (f": {_words(e['reason'])}" if e.get("reason") else "")


def _renewed(e: TableRow) -> str:
    until = e.get("renewal_date")
    return "Subscription renewed" + (f" until {until:%Y-%m-%d}" if until else "")


#: event type -> (timeline kind, sentence)
EVENT_SENTENCES: dict[str, tuple[str, Callable[[TableRow], str]]] = {
    "error.raised": ("incident", _incident),
    "ticket.created": ("ticket", _ticket_created),
    "ticket.resolved": ("ticket", _ticket_resolved),
    "billing.invoice": (
        "invoice",
        lambda e: f"Invoice {e['invoice_id']} {e['status']}: {_money(e['amount'])}",
    ),
    "onboarding.milestone": ("milestone", lambda e: f"Onboarding milestone: {_words(e['milestone'])}"),
    "integration.state": ("integration", lambda e: f"Integration {_words(e['integration'])} {e['status']}"),
    "subscription.cancelled": ("subscription", _cancelled),
    "subscription.renewed": ("subscription", _renewed),
    "plan.changed": ("subscription", lambda e: f"Plan changed from {e['plan_from']} to {e['plan_to']}"),
    "seats.changed": ("subscription", lambda e: f"Seats changed from {e['seats_from']} to {e['seats_to']}"),
}
COLUMNS = sorted(
    {"ts", "event_type", "severity", "count", "feature", "ticket_id", "priority", "category", "csat"}
    | {"invoice_id", "status", "amount", "milestone", "integration", "reason", "renewal_date"}
    | {"plan_from", "plan_to", "seats_from", "seats_to"}
)


#: the events a timeline shows: routine ones (minor errors, healthy integrations) are left out
NOTABLE_EVENTS = ds.field("event_type").isin(list(EVENT_SENTENCES)) & (
    ~ds.field("event_type").isin(["error.raised", "integration.state"])
    | ((ds.field("event_type") == "error.raised") & ds.field("severity").isin(list(INCIDENT_SEVERITIES)))
    | ((ds.field("event_type") == "integration.state") & ds.field("status").isin(list(INTEGRATION_TROUBLE)))
)


#: a column of events as JSON carries it: text, numbers or null; a timestamp as microseconds since the epoch
JsonColumn = list[str | int | float | None]


@dataclass(frozen=True)
class RecentEvents:
    """Every account's notable events since `since`, sorted by account: one scan for the whole book (a
    scan per page read all the row groups of a 5,000-account store, ~250 ms), then a slice per page."""

    events: pa.Table
    #: account id -> (first row, number of rows) in `events`
    spans: dict[str, tuple[int, int]]
    since: datetime

    @classmethod
    def by_account(cls, events: pa.Table, since: datetime) -> RecentEvents:
        """`events` sorted by account, with each account's span."""
        events = events.take(pc.sort_indices(events, [("account_id", "ascending")]))
        ids = events.column("account_id").to_numpy(zero_copy_only=False)
        if not len(ids):  # no event in the window (or none at all): no spans
            return cls(events, {}, since)
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        ends = np.r_[starts[1:], len(ids)]
        spans = {str(ids[a]): (int(a), int(b - a)) for a, b in zip(starts, ends, strict=True)}
        return cls(events, spans, since)

    def of(self, account_id: str) -> list[TableRow]:
        span = self.spans.get(account_id)
        return [] if span is None else self.events.slice(*span).to_pylist()

    def as_columns(self) -> EventColumns:
        """The events column by column, a timestamp as its microseconds since the epoch."""
        columns = {
            field.name: (column.cast(pa.int64()) if pa.types.is_timestamp(field.type) else column).to_pylist()
            for field, column in zip(self.events.schema, self.events.columns, strict=True)
        }
        return EventColumns(self.since, columns)


@dataclass(frozen=True)
class EventColumns:
    """`RecentEvents` as JSON carries them (a book shared through Redis is JSON, never pickled): column by
    column, typed again by the events' schema on the way back."""

    since: datetime
    columns: dict[str, JsonColumn]

    def events(self) -> RecentEvents:
        """The events; `ValueError` for a column the events' schema lacks or values it cannot hold."""
        unknown = set(self.columns) - set(EVENT_SCHEMA.names)
        if unknown or "account_id" not in self.columns:
            raise ValueError(f"not the events' columns: {sorted(unknown) or 'no account_id'}")
        schema = pa.schema([EVENT_SCHEMA.field(name) for name in self.columns])
        try:
            arrays = [
                pa.array(values, pa.int64() if pa.types.is_timestamp(f.type) else f.type).cast(f.type)
                for f, values in zip(schema, self.columns.values(), strict=True)
            ]
            table = pa.Table.from_arrays(arrays, schema=schema)
        except (pa.ArrowException, TypeError) as e:
            raise ValueError(f"events that do not fit their schema: {e}") from e
        if any(table.column(f.name).null_count for f in schema if not f.nullable):
            raise ValueError("events without a value their schema requires")
        return RecentEvents.by_account(table, self.since)


def recent_events(store: Store, as_of: datetime, days: int) -> RecentEvents:
    """Every account's notable events over the `days` up to `as_of`."""
    since = as_of - timedelta(days=days)
    if store.events_source is not None:
        found = store.events_source.read_between(["account_id", *COLUMNS], since, as_of)
        return RecentEvents.by_account(found.filter(NOTABLE_EVENTS), since)
    # the event_date bounds let the scan skip every other day's folder
    dates = (ds.field("event_date") >= since.date()) & (ds.field("event_date") <= as_of.date())
    window = dates & (ds.field("ts") >= since) & (ds.field("ts") <= as_of)
    found = store.read("events", EVENT_SCHEMA, ["account_id", *COLUMNS], where=NOTABLE_EVENTS, scan=window)
    return RecentEvents.by_account(found, since)


def as_moments(events: Sequence[TableRow], interventions: Sequence[TableRow]) -> list[Moment]:
    """Events and actions taken as dated sentences, newest first."""
    moments = []
    for e in events:
        kind, sentence = EVENT_SENTENCES[str(e["event_type"])]
        moments.append(Moment(_ts(e), kind, sentence(e)))
    for i in interventions:
        by = f" by {i['owner']}" if i.get("owner") else ""
        if i.get("assignment") == HOLDOUT:
            text = f"Held out{by}: no proactive play until the next holdout draw"
        else:
            how = " (random experiment arm)" if i.get("assignment") == "random" else ""
            text = f"{action_label(str(i['action']))}{by}{how}"
        moments.append(Moment(_ts(i), "intervention", text))
    return sorted(moments, key=lambda m: m.ts, reverse=True)


def _ts(record: TableRow) -> datetime:
    return cast(datetime, record["ts"])


def account_timeline(
    store: Store,
    events: RecentEvents,
    pending: Sequence[TakenAction],
    account_id: str,
    as_of: datetime,
    limit: int,
) -> list[Moment]:
    """The account's moments since `events.since`, newest first, at most `limit`: its events from the
    book's scan, its actions read now from the store and from the decision log's `pending` ones (not yet
    merged in), so an action recorded a second ago shows."""
    window = (ds.field("ts") >= events.since) & (ds.field("ts") <= as_of)
    columns = ["ts", "action", "owner", "assignment"]
    stored = store.read(
        "interventions", INTERVENTION_SCHEMA, columns, where=ds.field("account_id") == account_id, scan=window
    ).to_pylist()
    recorded = [{c: getattr(t, c) for c in columns} for t in pending if events.since <= t.ts <= as_of]
    return as_moments(events.of(account_id), stored + recorded)[:limit]
