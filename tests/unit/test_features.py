"""Feature definitions: point-in-time correctness, hand-computed values, the health formula, the build."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from core.catalogue import ACTIONS
from core.contract import ACCOUNT_SCHEMA, EVENT_SCHEMA, EVENT_TYPES, INTERVENTION_SCHEMA
from core.errors import RetainError
from core.settings import HealthBands, HealthWeights, Settings
from features.cutoffs import cutoff_instant, default_cutoffs, month_ends
from features.definitions import (
    CATEGORICAL,
    FEATURE_NAMES,
    FEATURES,
    KEYS,
    describe,
    feature_schema,
    monotone_constraints,
    sql,
    value_problem,
)
from features.health import score
from features.run import build_and_publish, build_feature_table, build_recipe
from features.stored import BuildNote, read_features
from ingest.run import IngestSummary, ingest_path
from registry.tracking import client
from retain.cli import app
from simulate import SimConfig, simulate_to
from store.delta import Store
from tests.support.events import START, T, account, arrow_table, at, connect, event, features

# ---------------------------------------------------------------------------------------------------------
# Hand-computed features


def test_seat_utilisation_counts_distinct_30_day_users_against_the_seats_in_force() -> None:
    sessions = [("u1", 9), ("u1", 4), ("u2", 1 / 1440), ("u3", 45), ("u4", 0)]
    events = [
        event(a, "user.session", at(days), user_id=u, duration_min=5.0)
        for a in ("a1", "a2")
        for u, days in sessions
    ]
    events += [
        event("a2", "seats.changed", at(30), seats_from=4, seats_to=2),
        event("a2", "seats.changed", at(0), seats_from=2, seats_to=50),
    ]
    rows = features(events, [account("a1", seats_purchased=4), account("a2", seats_purchased=4)])
    assert rows.loc["a1", "active_users_30d"] == 2  # u3 is older than 30 days, u4 is at the cutoff
    assert rows.loc["a1", "active_users_90d"] == 3
    assert rows.loc["a1", "seat_utilisation"] == 0.5
    assert rows.loc["a1", "seat_limit_near"] == 0
    assert rows.loc["a2", "seats_purchased"] == 2
    assert rows.loc["a2", "seat_utilisation"] == 1.0
    assert rows.loc["a2", "seat_limit_near"] == 1


def test_days_since_last_session_is_fractional_and_null_without_sessions() -> None:
    events = [
        event("a1", "user.session", at(10), user_id="u1", duration_min=5.0),
        event("a1", "user.session", at(3.5), user_id="u1", duration_min=5.0),
        event("a1", "user.session", at(0), user_id="u1", duration_min=5.0),
        event("a2", "sponsor.touch", at(2), channel="call"),
    ]
    rows = features(events, [account("a1"), account("a2")])
    assert rows.loc["a1", "days_since_last_session"] == pytest.approx(3.5)
    assert rows.loc["a1", "sessions_7d"] == 1
    assert np.isnan(rows.loc["a2", "days_since_last_session"])
    assert rows.loc["a2", "days_since_sponsor_touch"] == pytest.approx(2)


def test_trend_and_volatility_read_the_last_12_weeks_and_are_unknown_before_12_weeks_of_data() -> None:
    """Week w (ages 7w-6 to 7w) holds 13 - w sessions: a slope of one session a week on a mean of 6.5; the
    sessions at the cutoff and older than 12 weeks do not count."""
    weekly = [(w, i) for w in range(1, 13) for i in range(13 - w)]
    events = [
        event(a, "user.session", at(7 * (w - 1) + 1.5), user_id="u1", duration_min=10.0)
        for a in ("a1", "a2")
        for w, _ in weekly
    ]
    events += [event("a1", "user.session", at(d), user_id="u1", duration_min=10.0) for d in (0, 0, 90, 100)]
    old = T - timedelta(days=200)
    rows = features(events, [account("a1", contract_start=old), account("a2")])
    assert rows.loc["a1", "sessions_trend_12w"] == pytest.approx(1 / 6.5)
    assert rows.loc["a1", "sessions_volatility_12w"] == pytest.approx(np.sqrt(650 / 12 - 6.5**2) / 6.5)
    assert rows.loc["a1", "feature_uses_trend_12w"] == 0.0
    assert rows.loc["a1", "minutes_per_session_30d"] == 10.0
    assert rows.loc["a1", "sessions_per_user_30d"] == 12 + 11 + 10 + 9 + 8
    assert rows.loc["a1", "feature_uses_per_session_30d"] == 0.0
    assert np.isnan(rows.loc["a2", "sessions_trend_12w"])  # its contract is 59 days old
    assert np.isnan(rows.loc["a2", "sessions_volatility_12w"])
    assert describe("sessions_trend_12w", -0.1) == (
        "Sessions trending -10% of an average week, per week, over the last 12 weeks"
    )


def test_recency_per_event_type_counts_only_events_before_the_cutoff() -> None:
    events = [
        event("a1", "ticket.created", at(20), ticket_id="t1", priority="P3"),
        event("a1", "ticket.created", at(0), ticket_id="t2", priority="P3"),
        event("a1", "error.raised", at(5), count=1, severity="critical"),
        event("a1", "error.raised", at(2), count=1, severity="major"),
        event("a1", "error.raised", at(0), count=1, severity="critical"),
        event("a1", "deployment.published", at(3), environment="production"),
        event("a1", "nudge.acted", at(4), nudge_id="n1"),
        event("a2", "user.session", at(1), user_id="u1", duration_min=5.0),
    ]
    rows = features(events, [account("a1"), account("a2")])
    assert rows.loc["a1", "days_since_last_ticket"] == pytest.approx(20)
    assert rows.loc["a1", "days_since_last_incident"] == pytest.approx(5)
    assert rows.loc["a1", "days_since_last_deployment"] == pytest.approx(3)
    assert rows.loc["a1", "days_since_nudge_acted"] == pytest.approx(4)
    for name in ("days_since_last_ticket", "days_since_last_incident", "days_since_last_deployment"):
        assert np.isnan(rows.loc["a2", name]), name
    assert describe("days_since_last_incident", None) == "No critical error on record"


def test_open_invoices_are_those_whose_latest_status_before_the_cutoff_is_overdue_or_failed() -> None:
    invoice = "billing.invoice"
    events = [
        event("a1", invoice, at(55), invoice_id="i1", status="issued", amount=100.0),
        event("a1", invoice, at(24), invoice_id="i1", status="overdue", amount=100.0),
        event("a1", invoice, at(50), invoice_id="i2", status="overdue", amount=70.0),
        event("a1", invoice, at(28), invoice_id="i2", status="paid", amount=70.0),
        event("a1", invoice, at(19), invoice_id="i3", status="issued", amount=30.0),
        event("a1", invoice, at(0), invoice_id="i3", status="overdue", amount=30.0),
        event("a1", invoice, at(9), invoice_id="i4", status="failed", amount=50.0),
        event("a1", invoice, at(-1), invoice_id="i4", status="paid", amount=50.0),
        event("a2", invoice, at(5), invoice_id="j1", status="paid", amount=10.0),
    ]
    rows = features(events, [account("a1"), account("a2")])
    assert rows.loc["a1", "invoices_overdue"] == 1
    assert rows.loc["a1", "invoices_failed"] == 1
    assert rows.loc["a1", "open_invoice_amount"] == 150.0
    assert rows.loc["a1", "payment_failures_90d"] == 1
    assert rows.loc["a1", "days_since_last_payment"] == pytest.approx(28)
    assert rows.loc["a1", "health_payment"] == 0
    assert rows.loc["a2", "invoices_overdue"] + rows.loc["a2", "invoices_failed"] == 0
    assert rows.loc["a2", "health_payment"] == 100


def test_onboarding_stalls_after_72_hours_without_the_next_milestone() -> None:
    milestone = "onboarding.milestone"
    events = [
        event("stalled", milestone, at(9), milestone="sso_live"),
        event("stalled", milestone, at(4), milestone="first_integration"),
        event("valued", milestone, at(6), milestone="sso_live"),
        event("valued", milestone, at(3), milestone="first_value"),
        event("recent", milestone, at(2), milestone="sso_live"),
        event("recent", milestone, at(0), milestone="first_integration"),
        event("elsewhere", "config.changed", START, setting="telemetry starts with the contracts"),
    ]
    accounts = [
        account("stalled"),
        account("valued"),
        account("recent"),
        account("new", contract_start=at(2)),
        account("silent"),
        account("veteran", contract_start=START - timedelta(days=400)),
    ]
    rows = features(events, accounts)
    stalled = rows["onboarding_stalled"].to_dict()
    assert np.isnan(stalled.pop("veteran"))  # onboarded before telemetry began: unknown
    assert stalled == {"new": 0, "recent": 0, "silent": 1, "stalled": 1, "valued": 0}
    assert np.isnan(rows.loc["veteran", "first_value_reached"])
    assert rows.loc["veteran", "days_observed"] == pytest.approx((T - START).days)
    assert rows.loc["new", "days_observed"] == pytest.approx(2)
    assert rows.loc["veteran", "sponsor_disengaged"] == 0  # no touch in 59 observed days, not in 459
    assert rows.loc["stalled", "onboarding_milestones"] == 2
    assert rows.loc["stalled", "days_since_last_milestone"] == pytest.approx(4)
    assert rows.loc["recent", "onboarding_milestones"] == 1
    assert rows.loc["valued", "first_value_reached"] == 1
    assert rows.loc["valued", "days_to_first_value"] == pytest.approx((at(3) - START).days)
    assert np.isnan(rows.loc["silent", "days_to_first_value"])


def test_renewals_set_days_to_renewal_and_lapsed_or_cancelled_accounts_drop_out() -> None:
    renewed_to = datetime(2026, 3, 10, tzinfo=UTC)
    events = [
        event("renewed", "subscription.renewed", at(14), renewal_date=renewed_to, arr_to=60_000.0),
        event("late", "subscription.renewed", at(0), renewal_date=renewed_to),
        event("cancelled", "subscription.cancelled", at(28), reason="budget"),
        event("upgraded", "plan.changed", at(5), plan_from="team", plan_to="business", arr_to=80_000.0),
    ]
    accounts = [
        account("renewed", renewal_date=datetime(2025, 3, 10, tzinfo=UTC)),
        account("lapsed", renewal_date=at(9)),
        account("grace", renewal_date=at(4)),
        account("late", renewal_date=at(4)),
        account("cancelled"),
        account("upgraded"),
        account("future", contract_start=T),
    ]
    rows = features(events, accounts)
    assert sorted(rows.index) == ["grace", "late", "renewed", "upgraded"]
    assert rows.loc["renewed", "days_to_renewal"] == pytest.approx(374)
    assert rows.loc["renewed", "arr"] == 60_000.0
    assert rows.loc["grace", "days_to_renewal"] == pytest.approx(-4)
    assert rows.loc["late", "days_to_renewal"] == pytest.approx(-4)
    assert rows.loc["upgraded", "plan"] == "business"
    assert rows.loc["upgraded", "arr"] == 80_000.0
    assert rows.loc["upgraded", "tenure_days"] == pytest.approx((T - START).days)


def test_error_spike_is_the_last_week_above_the_accounts_own_p95() -> None:
    def errors(account_id: str, baseline: list[int], worst: int) -> list[dict[str, Any]]:
        past = [event(account_id, "error.raised", at(10 + i), count=n) for i, n in enumerate(baseline)]
        return [*past, event(account_id, "error.raised", at(2), count=worst)]

    events = errors("spike", [1] * 20, 3) + errors("usual", [5] * 5, 3) + errors("edge", [3] * 4, 3)
    rows = features(events, [account("spike"), account("usual"), account("edge"), account("quiet")])
    assert rows["error_spike"].to_dict() == {"edge": 1, "quiet": 0, "spike": 1, "usual": 0}
    assert rows.loc["spike", "errors_7d"] == 3
    assert rows.loc["spike", "errors_30d"] == 3 + 20
    assert rows.loc["usual", "error_rate_7d"] == 3.0  # no sessions: sessions floored at 1


def test_integrations_tickets_and_surveys_use_the_latest_state_before_the_cutoff() -> None:
    events = [
        event("a1", "integration.state", at(40), integration="crm", status="ok"),
        event("a1", "integration.state", at(20), integration="crm", status="failing"),
        *(event("a1", "integration.state", at(d), integration="dwh", status="ok") for d in (30, 20, 10)),
        event("a1", "integration.state", at(30), integration="erp", status="disconnected"),
        event("a1", "integration.state", at(0), integration="erp", status="ok"),
        event("a1", "ticket.created", at(28), ticket_id="t1", priority="P1"),
        event("a1", "ticket.created", at(28), ticket_id="t2", priority="P2"),
        event("a1", "ticket.resolved", at(19), ticket_id="t2", priority="P2", sentiment=0.5, csat=4),
        event("a1", "ticket.created", at(24), ticket_id="t3", priority="P1"),
        event("a1", "ticket.resolved", at(0), ticket_id="t3", priority="P1", sentiment=-1.0, csat=1),
        event("a1", "ticket.created", at(5), ticket_id="t4", priority="P3"),
        event("a1", "survey.response", at(100), nps=3),
        event("a1", "survey.response", at(12), nps=9, csat=5),
        event("a1", "survey.response", at(-3), nps=0),
    ]
    rows = features(events, [account("a1")])
    assert rows.loc["a1", "integrations_ok"] == 1
    assert rows.loc["a1", "integrations_failing"] == 2
    assert rows.loc["a1", "open_p1p2_tickets"] == 2
    assert rows.loc["a1", "tickets_created_30d"] == 4
    assert rows.loc["a1", "ticket_sentiment_90d"] == 0.5
    assert rows.loc["a1", "csat_90d"] == 4.5
    assert rows.loc["a1", "nps_last"] == 9
    assert rows.loc["a1", "days_since_nps"] == pytest.approx(12)


def test_interventions_counts_by_kind_and_the_usage_response_to_the_last_complete_one() -> None:
    before = [event("a1", "user.session", at(29 + d), user_id="u1", duration_min=5.0) for d in range(1, 15)]
    after = [
        event("a1", "user.session", at(29 - d) + timedelta(hours=h), user_id="u1", duration_min=5.0)
        for d in range(1, 15)
        for h in (1, 2)
    ]
    interventions = [
        {"intervention_id": "i1", "account_id": "a1", "ts": at(28.5), "action": "exec_sponsor_call"},
        {"intervention_id": "i2", "account_id": "a1", "ts": at(8.5), "action": "training_session"},
        {"intervention_id": "i3", "account_id": "a1", "ts": at(200), "action": "billing_outreach"},
        {"intervention_id": "i4", "account_id": "a1", "ts": at(0), "action": "save_offer"},
    ]
    for i in interventions:
        i["assignment"] = "targeted"
    rows = features([*before, *after], [account("a1")], interventions)
    assert rows.loc["a1", "interventions_90d"] == 2
    assert rows.loc["a1", "outreach_interventions_90d"] == 1
    assert rows.loc["a1", "enablement_interventions_90d"] == 1
    assert rows.loc["a1", "commercial_interventions_90d"] == 0
    assert rows.loc["a1", "days_since_last_intervention"] == pytest.approx(8.5)
    assert rows.loc["a1", "last_intervention_response"] == pytest.approx((28 - 14) / 14)


def test_the_intervention_kinds_cover_the_whole_catalogue() -> None:
    text = sql("past_interventions")
    assert [a for a in ACTIONS if f"'{a}'" not in text] == []


# ---------------------------------------------------------------------------------------------------------
# The health formula

HEALTH_ROW = {
    "seat_utilisation": 0.5,
    "sessions_30v30": -0.5,
    "days_since_last_session": 7.0,
    "stickiness_30d": 0.25,
    "days_since_sponsor_touch": 30.0,
    "days_observed": 400.0,
    "core_feature_share_30d": 0.6,
    "nps_last": 8.0,
    "csat_90d": 4.0,
    "ticket_sentiment_90d": 0.2,
    "open_p1p2_tickets": 1,
    "invoices_overdue": 0,
    "invoices_failed": 0,
}


def health(row: dict[str, Any], config: Settings) -> dict[str, Any]:
    schema = feature_schema()
    table = pa.Table.from_pylist([row], schema=pa.schema([schema.field(name) for name in row]))
    result: dict[str, Any] = score(table, config).to_pylist()[0]
    return result


def test_health_components_score_and_band_with_the_default_weights() -> None:
    result = health(HEALTH_ROW, Settings())
    assert result["health_usage"] == pytest.approx(100 * (0.4 * 0.5 + 0.3 * 0.5 + 0.3 * 1.0))
    assert result["health_engagement"] == pytest.approx(100 * (0.4 * 0.5 + 0.3 * 1.0 + 0.3 * 0.6))
    assert result["health_satisfaction"] == pytest.approx(100 * (0.4 * 0.8 + 0.3 * 0.75 + 0.3 * 0.6) - 20)
    assert result["health_payment"] == 100
    assert result["health_score"] == pytest.approx(0.4 * 65 + 0.3 * 68 + 0.2 * 52.5 + 0.1 * 100)  # 66.9
    assert result["health_band"] == "neutral"
    stale = health({**HEALTH_ROW, "days_since_last_session": 18.5}, Settings())
    assert stale["health_usage"] == pytest.approx(100 * (0.4 * 0.5 + 0.3 * 0.5 + 0.3 * 0.5))


def test_health_weights_and_bands_come_from_settings() -> None:
    custom = Settings(
        health_weights=HealthWeights(usage=0.5, engagement=0.2, satisfaction=0.2, payment=0.1),
        health_bands=HealthBands(healthy=65, neutral=50, at_risk=30),
    )
    result = health(HEALTH_ROW, custom)
    assert result["health_score"] == pytest.approx(0.5 * 65 + 0.2 * 68 + 0.2 * 52.5 + 0.1 * 100)  # 66.6
    assert result["health_band"] == "healthy"
    assert health(HEALTH_ROW, Settings(health_weights=custom.health_weights))["health_band"] == "neutral"


def test_health_stays_within_0_and_100_for_values_outside_their_scales() -> None:
    """A caller's own out-of-scale values made scores of -18.1 and 215.4 (issue 35, failure 5); the API
    now refuses such values, and the formula still clamps each component."""
    low = {**HEALTH_ROW, "seat_utilisation": -5.0, "stickiness_30d": -3.0, "core_feature_share_30d": -4.0}
    high = {
        **HEALTH_ROW,
        "nps_last": 90.0,
        "csat_90d": 40.0,
        "ticket_sentiment_90d": 9.0,
        "open_p1p2_tickets": 0,
    }
    high |= {"core_feature_share_30d": 7.0, "seat_utilisation": 3.0}
    for row in (low, high):
        result = health(row, Settings())
        components = [result[f"health_{c}"] for c in ("usage", "engagement", "satisfaction", "payment")]
        assert all(0 <= c <= 100 for c in components) and 0 <= result["health_score"] <= 100, result
    assert (
        health(low, Settings())["health_usage"] == 0
        and health(high, Settings())["health_satisfaction"] == 100
    )


def test_the_catalogue_bounds_a_value_by_its_unit_and_scale() -> None:
    by_name = {f.name: f for f in FEATURES}
    refused = [
        ("errors_7d", -1),
        ("errors_7d", float("nan")),
        ("errors_7d", 10**400),
        ("errors_7d", "3"),
        ("tenure_days", -3),
        ("nps_last", 11),
        ("tier", "platinum"),
        ("tier", 3),
        ("health_score", 101),
    ]
    for name, value in refused:
        assert value_problem(by_name[name], value) is not None, (name, value)
    allowed = [("errors_7d", 3), ("days_to_renewal", -30), ("sessions_wow", -1.0), ("tier", "trial")]
    for name, value in [*allowed, ("nps_last", None)]:
        assert value_problem(by_name[name], value) is None, (name, value)


def test_health_counts_unknowns_as_neutral_and_an_unpaid_invoice_as_zero_payment() -> None:
    unknown = {
        **HEALTH_ROW,
        "seat_utilisation": None,
        "nps_last": None,
        "csat_90d": None,
        "ticket_sentiment_90d": None,
        "open_p1p2_tickets": 0,
        "stickiness_30d": None,
        "invoices_failed": 1,
    }
    result = health(unknown, Settings())
    assert result["health_usage"] == pytest.approx(100 * (0.4 * 0.5 + 0.3 * 0.5 + 0.3 * 1.0))
    assert result["health_satisfaction"] == pytest.approx(50)
    assert result["health_engagement"] == pytest.approx(100 * (0.3 * 1.0 + 0.3 * 0.6))
    assert result["health_payment"] == 0
    assert result["health_band"] == "at_risk"  # 0.4*65 + 0.3*48 + 0.2*50 = 50.4


# ---------------------------------------------------------------------------------------------------------
# Point in time: a random world, random cutoffs, random edits at or after a cutoff

FIRST_DAY = datetime(2024, 11, 1, tzinfo=UTC)
SPAN_DAYS = 240
WORLD_ACCOUNTS = [
    account(
        "p1",
        tier="enterprise",
        icp=True,
        contract_start=FIRST_DAY,
        renewal_date=datetime(2025, 3, 15, tzinfo=UTC),
    ),
    account(
        "p2",
        icp=False,
        contract_start=datetime(2025, 1, 10, tzinfo=UTC),
        renewal_date=datetime(2025, 4, 1, tzinfo=UTC),
    ),
    account("p3", tier="small_business", seats_purchased=3, contract_start=datetime(2024, 12, 1, tzinfo=UTC)),
    account("p4", tier="trial", seats_purchased=None, contract_start=datetime(2025, 2, 15, tzinfo=UTC)),
]
# Frequent telemetry, then everything else; cancellations rare so most accounts stay active.
TYPES = list(EVENT_TYPES)
WEIGHTS = np.array([6.0 if t in ("user.session", "feature.used", "error.raised") else 1.0 for t in TYPES])
WEIGHTS[TYPES.index("subscription.cancelled")] = 0.1
WEIGHTS /= WEIGHTS.sum()


def random_properties(rng: np.random.Generator, event_type: str, ts: datetime) -> dict[str, Any]:
    """Valid, deliberately colliding property values (few users, invoices, tickets) for one event."""
    pick = rng.integers
    return {
        "user.session": {"user_id": f"u{pick(4)}", "duration_min": float(pick(1, 90))},
        "feature.used": {"feature": f"f{(f := pick(5))}", "count": int(pick(1, 6)), "core": bool(f < 2)},
        "integration.state": {
            "integration": f"int{pick(2)}",
            "status": ["ok", "failing", "disconnected"][pick(3)],
        },
        "error.raised": {"count": int(pick(1, 12)), "severity": ["minor", "major", "critical"][pick(3)]},
        "job.retry": {"count": int(pick(1, 4))},
        "billing.invoice": {
            "invoice_id": f"inv{pick(4)}",
            "status": ["issued", "paid", "overdue", "failed"][pick(4)],
            "amount": float(pick(10, 1000)),
        },
        "ticket.created": {"ticket_id": f"t{pick(4)}", "priority": f"P{pick(1, 5)}"},
        "ticket.resolved": {
            "ticket_id": f"t{pick(4)}",
            "priority": f"P{pick(1, 5)}",
            "sentiment": float(rng.uniform(-1, 1)),
            "csat": int(pick(1, 6)),
        },
        "survey.response": {"nps": int(pick(0, 11)), "csat": int(pick(1, 6))},
        "nudge.sent": {"nudge_id": f"n{pick(3)}"},
        "nudge.acted": {"nudge_id": f"n{pick(3)}"},
        "recipe.completed": {"recipe": "r1"},
        "deployment.published": {"environment": "production"},
        "config.changed": {"setting": "s1"},
        "sponsor.touch": {"channel": "call"},
        "onboarding.milestone": {
            "milestone": ["sso_live", "first_integration", "first_dataset", "first_value"][pick(4)]
        },
        "seats.changed": {"seats_from": 5, "seats_to": int(pick(1, 20))},
        "plan.changed": {
            "plan_from": "team",
            "plan_to": f"plan{pick(3)}",
            "arr_to": float(pick(1, 9) * 10_000),
        },
        "subscription.cancelled": {"reason": "budget"},
        "subscription.renewed": {"renewal_date": ts + timedelta(days=365), "arr_to": 55_000.0},
    }[event_type]


def random_event(rng: np.random.Generator, event_id: str, earliest: datetime, days: float) -> dict[str, Any]:
    """One event at or after `earliest` (exactly at it a fifth of the time, or at a midnight)."""
    offset = 0.0 if rng.random() < 0.2 else float(rng.uniform(0, days))
    ts = earliest + timedelta(days=round(offset) if rng.random() < 0.2 else offset)
    event_type = str(rng.choice(TYPES, p=WEIGHTS))
    props = {"user_id": None, **random_properties(rng, event_type, ts)}
    account_id = f"p{rng.integers(1, 5)}"
    return {"event_id": event_id, "account_id": account_id, "ts": ts, "event_type": event_type, **props}


def random_intervention(
    rng: np.random.Generator, intervention_id: str, earliest: datetime, days: float
) -> dict[str, Any]:
    return {
        "intervention_id": intervention_id,
        "account_id": f"p{rng.integers(1, 5)}",
        "ts": earliest + timedelta(days=0.0 if rng.random() < 0.2 else float(rng.uniform(0, days))),
        "action": str(rng.choice(ACTIONS)),
        "assignment": "targeted",
    }


def world(seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    events = [random_event(rng, f"e{i}", FIRST_DAY, SPAN_DAYS) for i in range(800)]
    interventions = [random_intervention(rng, f"i{i}", FIRST_DAY, SPAN_DAYS) for i in range(12)]
    return events, interventions


def mutate(
    rows: list[dict[str, Any]], ops: list[tuple[str, int]], cutoff: datetime, make: Any, prefix: str
) -> list[dict[str, Any]]:
    """Add, change or delete rows at or after the cutoff; rows before it are never touched."""
    rows = list(rows)
    for n, (op, seed) in enumerate(ops):
        rng = np.random.default_rng(seed)
        late = [i for i, r in enumerate(rows) if r["ts"] >= cutoff]
        if op == "add" or not late:
            rows.append(make(rng, f"{prefix}new{n}", cutoff, 120))
        elif op == "change":
            i = late[rng.integers(len(late))]
            rows[i] = make(rng, rows[i][f"{prefix}_id"], cutoff, 120)
        else:
            del rows[late[rng.integers(len(late))]]
    return rows


def build_rows(events: list[dict], interventions: list[dict], cutoffs: list[date]) -> pd.DataFrame:
    with duckdb.connect(config={"threads": 1}) as con:
        con.from_arrow(arrow_table(EVENT_SCHEMA, events)).create_view("events")
        con.from_arrow(arrow_table(ACCOUNT_SCHEMA, WORLD_ACCOUNTS)).create_view("accounts")
        con.from_arrow(arrow_table(INTERVENTION_SCHEMA, interventions)).create_view("interventions")
        return build_feature_table(con, cutoffs, Settings()).to_pandas()


EDITS = st.lists(
    st.tuples(st.sampled_from(["add", "change", "delete"]), st.integers(0, 2**32 - 1)), max_size=8
)


@settings(max_examples=35, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    offsets=st.lists(st.integers(20, SPAN_DAYS), min_size=1, max_size=3, unique=True),
    pick=st.integers(0, 2),
    event_edits=EDITS,
    intervention_edits=EDITS,
)
def test_edits_at_or_after_a_cutoff_leave_every_feature_at_it_unchanged(
    seed: int, offsets: list[int], pick: int, event_edits: list, intervention_edits: list
) -> None:
    cutoffs = sorted((FIRST_DAY + timedelta(days=d)).date() for d in offsets)
    cutoff = cutoff_instant(cutoffs[pick % len(cutoffs)])
    events, interventions = world(seed)
    edited_events = mutate(events, event_edits, cutoff, random_event, "event")
    edited_interventions = mutate(
        interventions, intervention_edits, cutoff, random_intervention, "intervention"
    )

    before = build_rows(events, interventions, cutoffs)
    after = build_rows(edited_events, edited_interventions, cutoffs)
    seen = before[before["cutoff"] <= cutoff].reset_index(drop=True)
    pd.testing.assert_frame_equal(seen, after[after["cutoff"] <= cutoff].reset_index(drop=True), rtol=1e-12)


def test_the_random_world_exercises_most_features() -> None:
    """Guards the property test against a world so sparse that every feature is trivially constant."""
    events, interventions = world(0)
    rows = build_rows(events, interventions, [date(2025, 1, 31), date(2025, 2, 28), date(2025, 3, 31)])
    numeric = rows[[f.name for f in FEATURES if f.unit != "category"]]
    constant = [name for name in numeric if numeric[name].nunique(dropna=False) <= 1]
    assert len(rows) >= 8
    assert len(constant) <= 8, constant


# ---------------------------------------------------------------------------------------------------------
# The table's shape, the catalogue, cutoffs and the build


def test_the_table_has_the_catalogue_columns_and_types_and_unique_keys() -> None:
    events, interventions = world(1)
    cutoffs = [date(2025, 1, 31), date(2025, 2, 28)]
    with duckdb.connect() as con:
        con.from_arrow(arrow_table(EVENT_SCHEMA, events)).create_view("events")
        con.from_arrow(arrow_table(ACCOUNT_SCHEMA, WORLD_ACCOUNTS)).create_view("accounts")
        con.from_arrow(arrow_table(INTERVENTION_SCHEMA, interventions)).create_view("interventions")
        table = build_feature_table(con, cutoffs, Settings())
        left = {
            r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()
        }
    assert table.schema == feature_schema()
    assert table.column_names == [*KEYS, *FEATURE_NAMES]
    assert table.schema.field("cutoff").type == pa.timestamp("us", tz="UTC")
    keys = table.select(list(KEYS)).to_pandas()
    assert not keys.duplicated().any()
    assert left == set()


def test_every_feature_reads_as_a_sentence() -> None:
    for f in FEATURES:
        assert "{value}" in f.text, f.name
        assert describe(f.name, None)
    assert describe("days_since_last_session", 12.4) == "Last login 12 days ago"
    assert describe("sessions_wow", -0.45) == "Sessions changed -45% versus the week before"
    assert describe("nps_last", float("nan")) == "No NPS response yet"
    assert describe("first_value_reached", 0) == "First value reached: no"
    assert describe("days_to_renewal", 45) == "Renewal in 45 days"
    assert describe("days_to_renewal", -6.0) == "Renewal date passed 6 days ago without a renewal"
    assert monotone_constraints(["invoices_overdue", "nps_last", "tier"]) == [1, -1, 0]


def test_month_end_cutoffs() -> None:
    assert month_ends(date(2025, 1, 1), date(2025, 3, 31)) == [
        date(2025, 1, 31),
        date(2025, 2, 28),
        date(2025, 3, 31),
    ]
    assert month_ends(date(2025, 1, 31), date(2025, 3, 30)) == [date(2025, 2, 28)]
    assert month_ends(date(2024, 12, 5), date(2025, 1, 30)) == [date(2024, 12, 31)]
    assert cutoff_instant(date(2025, 2, 28)) == datetime(2025, 2, 28, tzinfo=UTC)
    with pytest.raises(ValueError, match="midnight"):
        cutoff_instant(datetime(2025, 2, 28, 12, tzinfo=UTC))
    with connect(
        [event("a", "user.session", datetime(2025, 1, 15, 8, tzinfo=UTC), duration_min=1.0)], []
    ) as con:
        assert default_cutoffs(con) == []
    span = [event("a", "config.changed", datetime(2025, m, 15, tzinfo=UTC), setting="x") for m in (1, 4)]
    with connect(span, []) as con:
        assert default_cutoffs(con) == [date(2025, 1, 31), date(2025, 2, 28), date(2025, 3, 31)]


def ingest_rows(
    store: Store,
    folder: Path,
    accounts: Sequence[dict[str, Any]] = (),
    events: Sequence[dict[str, Any]] = (),
    interventions: Sequence[dict[str, Any]] = (),
) -> IngestSummary:
    """Rows handed to the real ingest as Parquet files: validated, then merged into the Delta tables."""
    folder.mkdir(parents=True)
    for name, schema, rows in (
        ("accounts", ACCOUNT_SCHEMA, accounts),
        ("events", EVENT_SCHEMA, events),
        ("interventions", INTERVENTION_SCHEMA, interventions),
    ):
        if rows:
            pq.write_table(arrow_table(schema, rows), folder / f"{name}.parquet")
    summary = ingest_path(store, folder)
    assert summary.quarantined.total == 0
    return summary


def test_build_and_publish_writes_a_feature_table_version_and_out_only_the_file(tmp_path: Path) -> None:
    store, settings = Store(tmp_path / "store"), Settings(home=tmp_path / "store")
    events, interventions = world(2)
    ingest_rows(store, tmp_path / "in", WORLD_ACCOUNTS, events, interventions)

    summary = build_and_publish(store, settings, None, None, online=False)

    table = read_features(store)
    assert table.schema == feature_schema()
    assert summary.rows == table.num_rows > 0
    assert summary.cutoffs[0] == date(2024, 11, 30)
    assert summary.columns == len(FEATURE_NAMES) + 2
    assert (summary.version, summary.out, summary.feast) == (store.version("features"), None, None)
    assert summary.read == store.versions(("events", "accounts", "interventions"))
    assert BuildNote.of(store.history("features")[0].retain) == BuildNote(
        summary.read, None, build_recipe(settings)
    )

    out = tmp_path / "out" / "features.parquet"
    exported = build_and_publish(store, settings, None, out, online=True)
    assert (exported.version, exported.out, exported.feast) == (None, out, None)
    assert pq.read_table(out).equals(table)
    assert store.version("features") == summary.version, "an export writes no version"

    with pytest.raises(RetainError, match="drop 5 of its cutoffs"):
        build_and_publish(store, settings, [date(2025, 2, 28)], None, online=False)
    assert store.version("features") == summary.version
    chosen = build_and_publish(store, settings, [*summary.cutoffs, date(2025, 3, 15)], None, online=False)
    assert (len(chosen.cutoffs), chosen.version) == (len(summary.cutoffs) + 1, summary.version + 1)
    assert BuildNote.of(store.history("features")[0].retain) == BuildNote(
        summary.read, [c.isoformat() for c in chosen.cutoffs], build_recipe(settings)
    )
    assert store.read("features", feature_schema(), version=summary.version).equals(table)


def test_as_of_version_rebuilds_the_rows_that_version_held_after_a_later_ingest(tmp_path: Path) -> None:
    store, settings = Store(tmp_path / "store"), Settings(home=tmp_path / "store")
    events, interventions = world(3)
    ingest_rows(store, tmp_path / "first", WORLD_ACCOUNTS, events[:400], interventions[:6])
    first = build_and_publish(store, settings, None, None, online=False)
    held = store.read("features", feature_schema(), version=first.version).to_pandas()

    ingest_rows(store, tmp_path / "later", events=events[400:], interventions=interventions[6:])
    later = build_and_publish(store, settings, None, None, online=False)
    assert later.read != first.read
    assert not read_features(store).to_pandas().equals(held)

    command = ["features", "build", "--store", str(store.root), "--no-online", "--json"]
    result = CliRunner().invoke(app, [*command, "--as-of-version", str(first.version)])
    assert result.exit_code == 0, result.output
    rebuilt = json.loads(result.stdout)
    assert (rebuilt["version"], rebuilt["read"]) == (later.version + 1, first.read)
    tags = client(store, settings).get_run(rebuilt["mlflow_run"]).data.tags
    logged = {k.removeprefix("lineage.table_versions."): v for k, v in tags.items() if "table_versions" in k}
    assert logged == {**{t: str(v) for t, v in first.read.items()}, "features": str(rebuilt["version"])}
    # DuckDB sums floats in whatever order its threads finish, so a rebuild of the same rows may differ
    # from the first build in the last bits (about 1e-12); every key, count and flag is equal exactly
    pd.testing.assert_frame_equal(read_features(store).to_pandas(), held, check_exact=False, rtol=1e-9)

    with pytest.raises(RetainError, match="has no version 99"):
        build_and_publish(store, settings, None, None, online=False, as_of_version=99)


def test_as_of_version_leaves_out_a_table_first_written_after_that_version(tmp_path: Path) -> None:
    """Version N's build read no interventions (none were ingested yet): its rebuild must read none either,
    not the interventions ingested since."""
    store, settings = Store(tmp_path / "store"), Settings(home=tmp_path / "store")
    events, interventions = world(4)
    ingest_rows(store, tmp_path / "first", WORLD_ACCOUNTS, events)
    first = build_and_publish(store, settings, None, None, online=False)
    held = read_features(store).to_pandas()
    assert first.read["interventions"] is None

    ingest_rows(store, tmp_path / "later", interventions=interventions)
    rebuilt = build_and_publish(store, settings, None, None, online=False, as_of_version=first.version)
    assert rebuilt.read == first.read
    pd.testing.assert_frame_equal(read_features(store).to_pandas(), held, check_exact=False, rtol=1e-9)


# ---------------------------------------------------------------------------------------------------------
# Pinned values: every column of the feature table of a seeded simulation and of the random world, as the
# SQL computed them when the files under tests/data were written (floats to 6 significant digits). A query
# rewritten for speed must reproduce them; a deliberate change of a feature (or of the simulator) rewrites
# them with `RETAIN_WRITE_REFERENCE=1 .venv/bin/pytest tests/unit/test_features.py -k pinned`, from the SQL
# of the commit before the change, and says so in its commit.

REFERENCE_DIR = Path(__file__).parents[1] / "data"
#: without the quarterly holdout, the world the reference was pinned in: who is held out changes the world
PINNED_SIMULATION = SimConfig(accounts=30, days=240, seed=7, start=date(2024, 11, 1), holdout_share=0.0)


def simulated_rows(folder: Path) -> pd.DataFrame:
    """The feature table at every month end of PINNED_SIMULATION, read from its Parquet files."""
    simulate_to(PINNED_SIMULATION, folder, workers=1)
    with duckdb.connect(config={"threads": 2}) as con:
        events = sorted(str(p) for p in (folder / "events").rglob("*.parquet"))
        con.read_parquet(events, hive_partitioning=False).create_view("events")
        con.read_parquet(str(folder / "accounts.parquet")).create_view("accounts")
        con.read_parquet(str(folder / "interventions.parquet")).create_view("interventions")
        return build_feature_table(con, default_cutoffs(con), Settings()).to_pandas()


def differences(rows: pd.DataFrame, pinned: pd.DataFrame) -> list[str]:
    """The columns whose values moved from the pinned ones, with the first row that differs."""
    if not rows[list(KEYS)].astype(str).equals(pinned[list(KEYS)].astype(str)):
        return [f"keys: {len(rows)} rows now, {len(pinned)} pinned"]
    moved = []
    for f in FEATURES:
        now, then = rows[f.name], pinned[f.name]
        if f.unit == "category":
            same = (now.fillna("") == then.fillna("")).to_numpy()
        else:
            a, b = now.to_numpy("float64"), then.to_numpy("float64")
            same = np.isclose(a, b, rtol=1e-5, atol=1e-9, equal_nan=True)
        if not same.all():
            i = int(np.argmin(same))
            where = f"{rows['account_id'].iloc[i]} at {rows['cutoff'].iloc[i]}"
            moved.append(f"{f.name}: {now.iloc[i]} now, {then.iloc[i]} pinned ({where})")
    return moved


def assert_pinned(rows: pd.DataFrame, name: str) -> None:
    path = REFERENCE_DIR / f"{name}.csv"
    rows = rows.assign(cutoff=rows["cutoff"].map(lambda t: t.date().isoformat()))
    if os.environ.get("RETAIN_WRITE_REFERENCE") == "1":
        rows.to_csv(path, index=False, float_format="%.6g")
    pinned = pd.read_csv(path, dtype={c: str for c in (*KEYS, *CATEGORICAL)})
    assert list(pinned.columns) == [*KEYS, *FEATURE_NAMES]
    assert differences(rows, pinned) == []


def test_pinned_features_of_a_seeded_simulation(tmp_path: Path) -> None:
    assert_pinned(simulated_rows(tmp_path / "sim"), "features_simulated")


def test_a_holdout_row_is_no_intervention_to_the_features() -> None:
    """A holdout row logs that nothing was done: the intervention counts, the latest intervention and its
    usage response ignore it."""
    events, interventions = world(0)
    cutoffs = [date(2025, 1, 31), date(2025, 3, 31)]
    held = {
        "intervention_id": "held",
        "account_id": "p1",
        "ts": FIRST_DAY + timedelta(days=40),
        "action": "holdout",
        "assignment": "holdout",
        "propensity": 0.1,
    }

    with_holdout = build_rows(events, [*interventions, held], cutoffs)

    pd.testing.assert_frame_equal(with_holdout, build_rows(events, interventions, cutoffs))


def test_pinned_features_of_the_random_world() -> None:
    events, interventions = world(0)
    cutoffs = [date(2024, 12, 31), date(2025, 1, 31), date(2025, 2, 28), date(2025, 3, 31)]
    assert_pinned(build_rows(events, interventions, cutoffs), "features_random_world")
