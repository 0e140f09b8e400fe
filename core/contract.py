"""The telemetry contract (docs/domain.md): accounts, events, interventions, and each event type's properties.

Events are stored long and flat: the common columns plus one nullable column per property name. A
property name means the same thing, with the same type, in every event type that uses it, so the
feature SQL can read `count` or `status` without parsing JSON, and a sparse Parquet column costs
almost nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")


class Tier(StrEnum):
    ENTERPRISE = "enterprise"
    MID_MARKET = "mid_market"
    SMALL_BUSINESS = "small_business"
    TRIAL = "trial"


#: ARR range per tier in USD, [low, high): Enterprise >= $100k, Mid-Market $25k-99.9k,
#: Small Business $5k-24.9k, Trial/Freemium < $5k.
TIER_ARR: dict[Tier, tuple[float, float]] = {
    Tier.ENTERPRISE: (100_000.0, 1_000_000.0),
    Tier.MID_MARKET: (25_000.0, 100_000.0),
    Tier.SMALL_BUSINESS: (5_000.0, 25_000.0),
    Tier.TRIAL: (0.0, 5_000.0),
}

ONBOARDING_MILESTONES = ("sso_live", "first_integration", "first_dataset", "first_value")
INVOICE_STATUSES = ("issued", "paid", "overdue", "failed")
INTEGRATION_STATUSES = ("ok", "failing", "disconnected")
TICKET_PRIORITIES = ("P1", "P2", "P3", "P4")
#: A holdout row logs that an account gets no proactive CS play from its `ts` until the next holdout draw
#: (the simulator's calendar quarter): its action and its assignment are both `HOLDOUT`, and its propensity
#: is the share of accounts drawn. It is not an action taken: features, cool-downs and treatments skip it.
HOLDOUT = "holdout"
ASSIGNMENTS = ("targeted", "random", HOLDOUT)


@dataclass(frozen=True)
class Prop:
    """One property column: its Arrow type, and for categorical ones the allowed values."""

    type: pa.DataType
    values: tuple[str, ...] | None = None
    low: float | None = None
    high: float | None = None


#: Every property column of the flat event table. One name, one meaning, one type.
PROPERTIES: dict[str, Prop] = {
    "duration_min": Prop(pa.float64(), low=0.0, high=24 * 60.0),
    "role": Prop(pa.string()),
    "feature": Prop(pa.string()),
    "core": Prop(pa.bool_()),
    "count": Prop(pa.int64(), low=0),
    "integration": Prop(pa.string()),
    "status": Prop(pa.string()),
    "severity": Prop(pa.string(), values=("minor", "major", "critical")),
    "invoice_id": Prop(pa.string()),
    "amount": Prop(pa.float64(), low=0.0),
    "ticket_id": Prop(pa.string()),
    "priority": Prop(pa.string(), values=TICKET_PRIORITIES),
    "category": Prop(pa.string(), values=("how_to", "bug", "billing", "feature_request", "outage")),
    "sentiment": Prop(pa.float64(), low=-1.0, high=1.0),
    "csat": Prop(pa.int64(), low=1, high=5),
    "nps": Prop(pa.int64(), low=0, high=10),
    "nudge_id": Prop(pa.string()),
    "recipe": Prop(pa.string()),
    "environment": Prop(pa.string(), values=("production", "staging", "development")),
    "setting": Prop(pa.string()),
    "channel": Prop(pa.string()),
    "milestone": Prop(pa.string(), values=ONBOARDING_MILESTONES),
    "seats_from": Prop(pa.int64(), low=0),
    "seats_to": Prop(pa.int64(), low=0),
    "plan_from": Prop(pa.string()),
    "plan_to": Prop(pa.string()),
    "arr_from": Prop(pa.float64(), low=0.0),
    "arr_to": Prop(pa.float64(), low=0.0),
    "reason": Prop(pa.string()),
    "renewal_date": Prop(TS),
}


@dataclass(frozen=True)
class EventType:
    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    #: status values allowed for this type (the `status` column is shared by invoices and integrations)
    statuses: tuple[str, ...] | None = None

    @property
    def allowed(self) -> tuple[str, ...]:
        return self.required + self.optional


#: The event types from the seeds (extend, don't rename). `subscription.renewed` is our extension:
#: without it "a renewal date passed without renewal" cannot be told from a renewal.
EVENT_TYPES: dict[str, EventType] = {
    e.name: e
    for e in (
        EventType("user.session", ("duration_min",), ("role",)),
        EventType("feature.used", ("feature", "count"), ("core",)),
        EventType("integration.state", ("integration", "status"), statuses=INTEGRATION_STATUSES),
        EventType("error.raised", ("count",), ("severity", "feature")),
        EventType("job.retry", ("count",), ("feature",)),
        EventType("billing.invoice", ("invoice_id", "status", "amount"), statuses=INVOICE_STATUSES),
        EventType("ticket.created", ("ticket_id", "priority"), ("category",)),
        EventType("ticket.resolved", ("ticket_id", "priority"), ("sentiment", "csat")),
        EventType("survey.response", (), ("nps", "csat")),
        EventType("nudge.sent", ("nudge_id",), ("feature",)),
        EventType("nudge.acted", ("nudge_id",), ("feature",)),
        EventType("recipe.completed", ("recipe",)),
        EventType("deployment.published", ("environment",)),
        EventType("config.changed", ("setting",)),
        EventType("sponsor.touch", ("channel",)),
        EventType("onboarding.milestone", ("milestone",)),
        EventType("seats.changed", ("seats_from", "seats_to")),
        EventType("plan.changed", ("plan_from", "plan_to"), ("arr_from", "arr_to")),
        EventType("subscription.cancelled", (), ("reason",)),
        EventType("subscription.renewed", ("renewal_date",), ("arr_to",)),
    )
}

EVENT_COLUMNS: dict[str, pa.DataType] = {
    "event_id": pa.string(),
    "account_id": pa.string(),
    "user_id": pa.string(),
    "ts": TS,
    "event_type": pa.string(),
}
EVENT_SCHEMA = pa.schema(
    [pa.field(n, t, nullable=n == "user_id") for n, t in EVENT_COLUMNS.items()]
    + [pa.field(n, p.type) for n, p in PROPERTIES.items()]
)

ACCOUNT_SCHEMA = pa.schema(
    [
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("tier", pa.string(), nullable=False),
        pa.field("segment", pa.string()),
        pa.field("icp", pa.bool_()),
        pa.field("industry", pa.string()),
        pa.field("region", pa.string()),
        pa.field("plan", pa.string()),
        pa.field("seats_purchased", pa.int64()),
        pa.field("arr", pa.float64()),
        pa.field("contract_start", TS),
        pa.field("renewal_date", TS),
        pa.field("csm_id", pa.string()),
    ]
)

INTERVENTION_SCHEMA = pa.schema(
    [
        pa.field("intervention_id", pa.string(), nullable=False),
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("ts", TS, nullable=False),
        pa.field("action", pa.string(), nullable=False),
        pa.field("owner", pa.string()),
        pa.field("channel", pa.string()),
        pa.field("assignment", pa.string(), nullable=False),
        pa.field("propensity", pa.float64()),
    ]
)
