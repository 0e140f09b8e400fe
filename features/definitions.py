"""The feature catalogue: the SQL that defines the features, and what each column means.

`features/sql` is the only definition of a feature: training, batch scoring and serving all read the table
it builds, so there is no second implementation to drift. This module loads that SQL in build order and
says, per column, what it means in a sentence a CSM can read (the reason-code template), its unit, and the
direction in which it moves churn risk where that is certain (for monotone constraints).

Column types follow one rule: categories are strings; counts and flags that are never null are int64;
everything else, and anything that can be unknown (null), is float64.

Over 500 lines: two thirds of it is the catalogue `FEATURES`, one entry per column, read as one table.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from core.contract import TS, Tier

SQL_DIR = Path(__file__).parent / "sql"

#: The stages that scan raw events, each grouping within one UTC day: built first, from `events`, or read
#: back from the store's per-day roll-ups of them (`features/rollups.py`).
ROLLUPS = ("sparse_events", "daily", "user_days", "feature_days")
#: Build order after the roll-ups: each file's SELECT becomes a temp table named after the file
#: (`macros.sql` runs first and `health.sql` last, over `feature_rows`).
STAGES = (
    "lookback",
    "term_pairs",
    "contract_terms",
    "account_cutoffs",
    "activity",
    "trajectory",
    "error_spikes",
    "users",
    "adoption",
    "core_catalogue",
    "integrations",
    "invoices",
    "tickets",
    "onboarding",
    "recency",
    "past_interventions",
    "feature_rows",
)

#: Days a renewal may be recorded after the renewal date before the account counts as churned.
RENEWAL_GRACE_DAYS = 7
#: The UTC days before a cutoff its windows look at (lookback.sql): the error spike's last 7 days and its
#: 90-day baseline, the longest window.
LOOKBACK_DAYS = 97
#: The parameters the stages' SQL is bound with (`bind`).
STAGE_PARAMS: dict[str, Any] = {"grace_days": RENEWAL_GRACE_DAYS, "lookback_days": LOOKBACK_DAYS}
#: The roll-ups every stage reads only through `lookback` (users.sql reads user_days), so cutoffs from C on
#: need only their days from C - LOOKBACK_DAYS on. The others also feed stages over all history: daily
#: (recency's last session, the first event day, the response to an old intervention), feature_days
#: (when each core feature was first used), sparse_events (contract terms, integrations, invoices, tickets,
#: milestones, recencies).
WINDOWED = ("user_days",)

KEYS = ("account_id", "cutoff")

Unit = Literal["category", "count", "flag", "days", "minutes", "ratio", "change", "number", "money", "score"]
#: +1: a higher value never lowers churn risk; -1: never raises it; 0: no certain direction.
Direction = Literal[-1, 0, 1]

_PARAM = re.compile(r"\$([a-z_][a-z0-9_]*)")
_COMMENT = re.compile(r"--[^\n]*")


@cache
def sql(name: str) -> str:
    """The text of `features/sql/<name>.sql`."""
    return (SQL_DIR / f"{name}.sql").read_text()


def bind(text: str, params: dict[str, Any]) -> dict[str, Any]:
    """The subset of `params` a statement names (DuckDB refuses unused ones); a missing one is an error."""
    names = set(_PARAM.findall(_COMMENT.sub("", text)))
    missing = names - params.keys()
    if missing:
        raise KeyError(f"SQL parameter(s) without a value: {', '.join(sorted(missing))}")
    return {name: params[name] for name in names}


@dataclass(frozen=True)
class Feature:
    """One column of the feature table; `text` reads as a reason (`{value}` is formatted by `unit`)."""

    name: str
    family: str
    unit: Unit
    direction: Direction
    text: str
    #: what a null means, for columns that can be unknown
    when_null: str | None = None
    #: the sentence for a negative value, formatted with its magnitude (a renewal date already passed)
    when_negative: str | None = None

    @property
    def dtype(self) -> pa.DataType:
        if self.unit == "category":
            return pa.string()
        if self.unit in ("count", "flag") and self.when_null is None:
            return pa.int64()
        return pa.float64()

    def describe(self, value: Any) -> str:
        """The plain-language sentence for a value of this feature, e.g. `Last login 12 days ago`."""
        if not known(value):
            return self.when_null or self.text.format(value="unknown")
        if self.when_negative is not None and value < 0:
            return self.when_negative.format(value=_format(self.unit, -value))
        return self.text.format(value=_format(self.unit, value))


#: the lowest and highest value a unit allows (None: unbounded); a scale in SCALES overrides it
_UNIT_BOUNDS: dict[Unit, tuple[float | None, float | None]] = {
    "category": (None, None),  # text: its values, where fixed, are in CATEGORY_VALUES
    "count": (0.0, None),
    "flag": (0.0, 1.0),
    "days": (0.0, None),
    "minutes": (0.0, None),
    "ratio": (0.0, None),
    "change": (-1.0, None),  # (recent - prior) / max(prior, 1) with counts >= 0
    "number": (None, None),
    "money": (0.0, None),
    "score": (0.0, 100.0),
}
#: features on a closed scale of their own (survey answers, shares)
SCALES: dict[str, tuple[float, float]] = {
    "nps_last": (0.0, 10.0),
    "csat_90d": (1.0, 5.0),
    "ticket_sentiment_90d": (-1.0, 1.0),
    "stickiness_7d": (0.0, 1.0),
    "stickiness_30d": (0.0, 1.0),
    "stickiness_90d": (0.0, 1.0),
    "core_feature_share_30d": (0.0, 1.0),
    "nudge_act_rate_90d": (0.0, 1.0),
}
#: the values a category may take where the contract fixes them
CATEGORY_VALUES: dict[str, tuple[str, ...]] = {"tier": tuple(Tier)}


def bounds(feature: Feature) -> tuple[float | None, float | None]:
    """The range a value of `feature` must lie in; a date that may have passed (renewal) may be negative."""
    if feature.name in SCALES:
        return SCALES[feature.name]
    low, high = _UNIT_BOUNDS[feature.unit]
    return (None if feature.when_negative is not None else low), high


def value_problem(feature: Feature, value: object) -> str | None:
    """Why `value` cannot be a value of `feature` (wrong type, not finite, out of its range, not one of
    its categories), or None when it can; a null is always allowed (the feature is unknown)."""
    if value is None:
        return None
    if feature.unit == "category":
        allowed = CATEGORY_VALUES.get(feature.name)
        if not isinstance(value, str):
            return "expected text"
        return None if allowed is None or value in allowed else f"expected one of {', '.join(allowed)}"
    if isinstance(value, str) or not isinstance(value, int | float):
        return "expected a number"
    number = float(value) if abs(value) < 1e300 else math.inf
    if not math.isfinite(number):
        return "expected a finite number"
    low, high = bounds(feature)
    if (low is not None and number < low) or (high is not None and number > high):
        return f"expected a value in [{_bound(low)}, {_bound(high)}]"
    return None


def _bound(limit: float | None) -> str:
    return "unbounded" if limit is None else f"{limit:g}"


def _family(family: str, *rows: tuple[Any, ...]) -> tuple[Feature, ...]:
    return tuple(Feature(name, family, *rest) for name, *rest in rows)


FEATURES: tuple[Feature, ...] = (
    *_family(
        "account",
        ("tier", "category", 0, "Tier: {value}", "Tier unknown"),
        ("segment", "category", 0, "Segment: {value}", "Segment unknown"),
        ("region", "category", 0, "Region: {value}", "Region unknown"),
        ("industry", "category", 0, "Industry: {value}", "Industry unknown"),
        ("plan", "category", 0, "Plan: {value}", "Plan unknown"),
        ("icp", "flag", 0, "Ideal customer profile: {value}", "ICP fit unknown"),
        ("seats_purchased", "count", 0, "{value} seats purchased", "Seats purchased unknown"),
        ("arr", "money", 0, "Annual recurring revenue {value}", "ARR unknown"),
        ("tenure_days", "days", 0, "Customer for {value} days"),
        ("days_observed", "days", 0, "Usage data covers the last {value} days"),
        (
            "days_to_renewal",
            "days",
            0,
            "Renewal in {value} days",
            "No renewal date on file",
            "Renewal date passed {value} days ago without a renewal",
        ),
    ),
    *_family(
        "usage",
        ("sessions_7d", "count", -1, "{value} sessions in the last 7 days"),
        ("sessions_30d", "count", -1, "{value} sessions in the last 30 days"),
        ("sessions_90d", "count", -1, "{value} sessions in the last 90 days"),
        ("session_minutes_30d", "minutes", 0, "{value} minutes in sessions in the last 30 days"),
        ("sessions_wow", "change", -1, "Sessions changed {value} versus the week before"),
        ("sessions_30v30", "change", -1, "Sessions changed {value} versus the previous 30 days"),
        ("active_users_7d", "count", -1, "{value} active users in the last 7 days"),
        ("active_users_30d", "count", -1, "{value} active users in the last 30 days"),
        ("active_users_90d", "count", -1, "{value} active users in the last 90 days"),
        ("active_users_wow", "change", -1, "Weekly active users changed {value} versus the week before"),
        (
            "active_users_30v30",
            "change",
            -1,
            "Monthly active users changed {value} versus the previous 30 days",
        ),
        (
            "stickiness_7d",
            "ratio",
            -1,
            "Active users came back on {value} of days (last 7 days)",
            "No active users in the last 7 days",
        ),
        (
            "stickiness_30d",
            "ratio",
            -1,
            "Active users came back on {value} of days (last 30 days)",
            "No active users in the last 30 days",
        ),
        (
            "stickiness_90d",
            "ratio",
            -1,
            "Active users came back on {value} of days (last 90 days)",
            "No active users in the last 90 days",
        ),
        (
            "seat_utilisation",
            "ratio",
            -1,
            "{value} of purchased seats active in the last 30 days",
            "Seats purchased unknown",
        ),
        ("days_since_last_session", "days", 1, "Last login {value} days ago", "Nobody has ever logged in"),
        ("usage_drop_alert", "flag", 1, "Sessions fell by half or more versus the week before: {value}"),
    ),
    *_family(
        "trajectory",
        (
            "sessions_trend_12w",
            "change",
            0,
            "Sessions trending {value} of an average week, per week, over the last 12 weeks",
            "Fewer than 12 weeks of usage data",
        ),
        (
            "sessions_volatility_12w",
            "ratio",
            0,
            "Weekly sessions swing by {value} of an average week over the last 12 weeks",
            "Fewer than 12 weeks of usage data",
        ),
        (
            "feature_uses_trend_12w",
            "change",
            0,
            "Feature use trending {value} of an average week, per week, over the last 12 weeks",
            "Fewer than 12 weeks of usage data",
        ),
        (
            "feature_uses_volatility_12w",
            "ratio",
            0,
            "Weekly feature use swings by {value} of an average week over the last 12 weeks",
            "Fewer than 12 weeks of usage data",
        ),
        (
            "minutes_per_session_30d",
            "minutes",
            0,
            "Sessions lasted {value} minutes on average in the last 30 days",
            "No sessions in the last 30 days",
        ),
        (
            "feature_uses_per_session_30d",
            "number",
            0,
            "{value} feature uses per session in the last 30 days",
            "No sessions in the last 30 days",
        ),
        (
            "sessions_per_user_30d",
            "number",
            0,
            "{value} sessions per active user in the last 30 days",
            "No active users in the last 30 days",
        ),
    ),
    *_family(
        "adoption",
        ("feature_uses_7d", "count", -1, "{value} feature uses in the last 7 days"),
        ("feature_uses_30d", "count", -1, "{value} feature uses in the last 30 days"),
        ("feature_uses_90d", "count", -1, "{value} feature uses in the last 90 days"),
        ("feature_uses_wow", "change", -1, "Feature use changed {value} versus the week before"),
        ("feature_uses_30v30", "change", -1, "Feature use changed {value} versus the previous 30 days"),
        ("features_used_7d", "count", -1, "{value} different features used in the last 7 days"),
        ("features_used_30d", "count", -1, "{value} different features used in the last 30 days"),
        ("features_used_90d", "count", -1, "{value} different features used in the last 90 days"),
        (
            "core_feature_share_30d",
            "ratio",
            -1,
            "{value} of core features used in the last 30 days",
            "No core features known yet",
        ),
        (
            "core_features_unused_7d",
            "count",
            1,
            "{value} core features unused for 7 days",
            "No core features known yet",
        ),
        ("recipes_completed_30d", "count", -1, "{value} guided recipes completed in the last 30 days"),
        ("deployments_30d", "count", 0, "{value} deployments in the last 30 days"),
        ("days_since_last_deployment", "days", 0, "Last deployment {value} days ago", "No deployment yet"),
    ),
    *_family(
        "reliability",
        ("errors_7d", "count", 1, "{value} errors in the last 7 days"),
        ("errors_30d", "count", 1, "{value} errors in the last 30 days"),
        ("errors_90d", "count", 1, "{value} errors in the last 90 days"),
        ("error_rate_7d", "number", 1, "{value} errors per session in the last 7 days"),
        ("error_rate_30d", "number", 1, "{value} errors per session in the last 30 days"),
        (
            "error_spike",
            "flag",
            1,
            "Errors spiked above this account's usual level in the last 7 days: {value}",
        ),
        ("job_retries_7d", "count", 1, "{value} job retries in the last 7 days"),
        ("job_retries_30d", "count", 1, "{value} job retries in the last 30 days"),
        ("integrations_ok", "count", -1, "{value} integrations working"),
        ("integrations_failing", "count", 1, "{value} integrations failing or disconnected"),
        (
            "days_since_last_incident",
            "days",
            0,
            "Last critical error {value} days ago",
            "No critical error on record",
        ),
    ),
    *_family(
        "onboarding",
        ("onboarding_milestones", "count", -1, "{value} of 4 onboarding milestones reached"),
        (
            "first_value_reached",
            "flag",
            -1,
            "First value reached: {value}",
            "Onboarded before usage data began",
        ),
        (
            "days_to_first_value",
            "days",
            0,
            "First value reached {value} days after the contract started",
            "First value not reached yet",
        ),
        (
            "days_since_last_milestone",
            "days",
            0,
            "Last onboarding milestone {value} days ago",
            "No onboarding milestone reached",
        ),
        (
            "onboarding_stalled",
            "flag",
            1,
            "Onboarding stalled (over 72 hours without the next milestone): {value}",
            "Onboarded before usage data began",
        ),
    ),
    *_family(
        "support",
        ("tickets_created_30d", "count", 0, "{value} support tickets in the last 30 days"),
        ("tickets_created_90d", "count", 0, "{value} support tickets in the last 90 days"),
        ("open_p1p2_tickets", "count", 1, "{value} urgent (P1/P2) tickets open"),
        (
            "ticket_sentiment_90d",
            "number",
            -1,
            "Ticket sentiment {value} (-1 to 1) over the last 90 days",
            "No rated tickets in the last 90 days",
        ),
        ("csat_90d", "number", -1, "CSAT {value} of 5 over the last 90 days", "No CSAT in the last 90 days"),
        ("nps_last", "number", -1, "Last NPS {value} of 10", "No NPS response yet"),
        ("days_since_nps", "days", 0, "Last NPS response {value} days ago", "No NPS response yet"),
        (
            "days_since_last_ticket",
            "days",
            0,
            "Last support ticket {value} days ago",
            "No support ticket yet",
        ),
    ),
    *_family(
        "engagement",
        (
            "days_since_sponsor_touch",
            "days",
            1,
            "Executive sponsor last contacted {value} days ago",
            "Executive sponsor never contacted",
        ),
        ("sponsor_touches_90d", "count", -1, "{value} sponsor contacts in the last 90 days"),
        ("sponsor_disengaged", "flag", 1, "Sponsor disengaged (no contact for 60 days): {value}"),
        ("nudges_sent_90d", "count", 0, "{value} in-app nudges sent in the last 90 days"),
        ("nudges_acted_90d", "count", -1, "{value} in-app nudges acted on in the last 90 days"),
        (
            "days_since_nudge_acted",
            "days",
            0,
            "An in-app nudge last acted on {value} days ago",
            "No in-app nudge acted on yet",
        ),
        (
            "nudge_act_rate_90d",
            "ratio",
            -1,
            "{value} of in-app nudges acted on in the last 90 days",
            "No nudges sent in the last 90 days",
        ),
    ),
    *_family(
        "billing",
        ("invoices_overdue", "count", 1, "{value} overdue invoices open"),
        ("invoices_failed", "count", 1, "{value} invoices with a failed payment open"),
        ("open_invoice_amount", "money", 1, "{value} in overdue or failed invoices"),
        ("payment_failures_90d", "count", 1, "{value} failed payments in the last 90 days"),
        ("days_since_last_payment", "days", 0, "Last payment {value} days ago", "No payment on record"),
    ),
    *_family(
        "limits",
        ("seat_limit_near", "flag", 0, "80% or more of seats in use: {value}", "Seats purchased unknown"),
        (
            "months_over_seat_limit",
            "count",
            0,
            "More active users than seats for {value} months running",
            "Seats purchased unknown",
        ),
    ),
    *_family(
        "interventions",
        ("interventions_90d", "count", 0, "{value} CS interventions in the last 90 days"),
        ("outreach_interventions_90d", "count", 0, "{value} calls or reviews in the last 90 days"),
        (
            "enablement_interventions_90d",
            "count",
            0,
            "{value} onboarding, training or integration sessions in the last 90 days",
        ),
        (
            "commercial_interventions_90d",
            "count",
            0,
            "{value} billing, upgrade or save offers in the last 90 days",
        ),
        (
            "days_since_last_intervention",
            "days",
            0,
            "Last CS intervention {value} days ago",
            "No CS intervention yet",
        ),
        (
            "last_intervention_response",
            "change",
            -1,
            "Sessions changed {value} in the two weeks after the last intervention",
            "No intervention with two weeks of follow-up yet",
        ),
    ),
    *_family(
        "health",
        ("health_usage", "score", -1, "Usage health {value} of 100"),
        ("health_engagement", "score", -1, "Engagement health {value} of 100"),
        ("health_satisfaction", "score", -1, "Satisfaction health {value} of 100"),
        ("health_payment", "score", -1, "Payment health {value} of 100"),
        ("health_score", "score", -1, "Health score {value} of 100"),
        ("health_band", "category", 0, "Health band: {value}"),
    ),
)

FEATURE_BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}
FEATURE_NAMES: tuple[str, ...] = tuple(FEATURE_BY_NAME)
CATEGORICAL: tuple[str, ...] = tuple(f.name for f in FEATURES if f.unit == "category")
HEALTH_COLUMNS: tuple[str, ...] = tuple(f.name for f in FEATURES if f.family == "health")
#: columns that grow by a day every day until something happens (tenure, days since the last login, ...):
#: serving later than training exceeds the training range by waiting, not by a broken input
CLOCK_FEATURES: frozenset[str] = frozenset(
    {"tenure_days", "days_observed"} | {f.name for f in FEATURES if f.name.startswith("days_since_")}
)


def feature_schema() -> pa.Schema:
    """The feature table's schema: keys, then every feature in catalogue order."""
    return pa.schema(
        [pa.field("account_id", pa.string()), pa.field("cutoff", TS)]
        + [pa.field(f.name, f.dtype) for f in FEATURES]
    )


def monotone_constraints(names: list[str] | tuple[str, ...]) -> list[int]:
    """LightGBM's `monotone_constraints` for these columns, risk-increasing = +1."""
    return [int(FEATURE_BY_NAME[n].direction) for n in names]


def _format(unit: Unit, value: Any) -> str:
    if unit == "category":
        return str(value).replace("_", " ")  # at_risk, small_business read as words
    if unit == "flag":
        return "yes" if value else "no"
    if unit == "ratio":
        return f"{value:.0%}"
    if unit == "change":
        return f"{value:+.0%}"
    if unit == "money":
        return f"${value:,.0f}"
    if unit == "number":
        return f"{value:.3g}"
    return f"{value:,.0f}"


def known(value: Any) -> bool:
    """Whether a feature value is known: None, NaN (of any float type) and pandas' NA are not."""
    if value is None or value is pd.NA:
        return False
    return not (isinstance(value, float | np.floating) and math.isnan(value))


def describe(name: str, value: Any) -> str:
    return FEATURE_BY_NAME[name].describe(value)
