"""An account's recent story, as dated sentences: incidents, tickets, invoices, onboarding, integrations,
subscription changes and the actions taken.

Read per page from the store's live files: events are written sorted by account, so the Parquet row-group
statistics let Arrow skip all but a few row groups for one account.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyarrow.dataset as ds

from retain.contract import EVENT_SCHEMA, INTERVENTION_SCHEMA
from retain.store import Store

#: errors at these severities are incidents; minor ones are noise on a CSM's page
INCIDENT_SEVERITIES = ("major", "critical")
#: integration states worth a line (an `ok` is the absence of news)
INTEGRATION_TROUBLE = ("failing", "disconnected")


@dataclass(frozen=True)
class Moment:
    ts: datetime
    kind: str
    text: str


def _money(amount: Any) -> str:
    return f"${amount:,.0f}" if amount is not None else "an unknown amount"


def _words(value: Any) -> str:
    return str(value).replace("_", " ")


def action_label(action: str) -> str:
    """`qbr_roi_review` -> `QBR ROI review`: catalogue names as a CSM reads them."""
    upper = {"qbr": "QBR", "roi": "ROI"}
    words = [upper.get(w, w) for w in action.split("_")]
    first = words[0] if words[0].isupper() else words[0].capitalize()
    return " ".join([first, *words[1:]])


def _incident(e: dict[str, Any]) -> str:
    where = f" in {_words(e['feature'])}" if e.get("feature") else ""
    return f"{e['count']} {e['severity']} error(s){where}"


def _ticket_created(e: dict[str, Any]) -> str:
    category = f", {_words(e['category'])}" if e.get("category") else ""
    return f"Ticket {e['ticket_id']} opened ({e['priority']}{category})"


def _ticket_resolved(e: dict[str, Any]) -> str:
    csat = f", CSAT {e['csat']}/5" if e.get("csat") is not None else ""
    return f"Ticket {e['ticket_id']} resolved ({e['priority']}{csat})"


def _cancelled(e: dict[str, Any]) -> str:
    return "Subscription cancelled" + (f": {_words(e['reason'])}" if e.get("reason") else "")


def _renewed(e: dict[str, Any]) -> str:
    until = e.get("renewal_date")
    return "Subscription renewed" + (f" until {until:%Y-%m-%d}" if until else "")


#: event type -> (timeline kind, sentence)
DESCRIBE: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
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


def _worth_a_line(e: dict[str, Any]) -> bool:
    if e["event_type"] == "error.raised":
        return e.get("severity") in INCIDENT_SEVERITIES
    if e["event_type"] == "integration.state":
        return e.get("status") in INTEGRATION_TROUBLE
    return True


def describe(events: list[dict[str, Any]], interventions: list[dict[str, Any]]) -> list[Moment]:
    """Newest first; events of other types and routine ones (minor errors, healthy integrations) are left
    out."""
    moments = [
        Moment(e["ts"], DESCRIBE[e["event_type"]][0], DESCRIBE[e["event_type"]][1](e))
        for e in events
        if e["event_type"] in DESCRIBE and _worth_a_line(e)
    ]
    for i in interventions:
        by = f" by {i['owner']}" if i.get("owner") else ""
        how = " (random holdout experiment)" if i.get("assignment") == "random" else ""
        moments.append(Moment(i["ts"], "intervention", f"{action_label(i['action'])}{by}{how}"))
    return sorted(moments, key=lambda m: m.ts, reverse=True)


def recent(store: Store, account_id: str, as_of: datetime, days: int, limit: int) -> list[Moment]:
    """The account's moments in the `days` before `as_of`, newest first, at most `limit`."""
    since = as_of - timedelta(days=days)

    def read(table: str, schema: Any, columns: list[str], types: bool) -> list[dict[str, Any]]:
        files = [str(f) for f in store.files(table)]
        if not files:
            return []
        where = (ds.field("account_id") == account_id) & (ds.field("ts") >= since) & (ds.field("ts") <= as_of)
        if types:
            where &= ds.field("event_type").isin(list(DESCRIBE))
        found = ds.dataset(files, format="parquet", schema=schema).to_table(columns=columns, filter=where)
        return found.to_pylist()

    events = read("events", EVENT_SCHEMA, COLUMNS, types=True)
    actions = read("interventions", INTERVENTION_SCHEMA, ["ts", "action", "owner", "assignment"], types=False)
    return describe(events, actions)[:limit]
