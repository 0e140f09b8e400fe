"""Timestamps validation believes: zoned, and inside the window from 1990 to the ingest's clock (plus a
day of clock skew for what happened, plus years for dates that lie ahead). The API's recorded actions are
judged by the same `check_interventions`, so its checks are shown here, without HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from core.contract import ACCOUNT_SCHEMA, EVENT_SCHEMA, INTERVENTION_SCHEMA, TS
from ingest.coerce import coerce
from ingest.readers import Frame
from ingest.validate import (
    CLOCK_SKEW,
    EARLIEST,
    FURTHEST_AHEAD,
    Checked,
    check_accounts,
    check_events,
    check_interventions,
)

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
KNOWN = pa.array(["a1"])


def _verdicts(checked: Checked, key: str) -> dict[str, str]:
    """Each row's verdict by its id: `valid`, or the reason it was rejected for."""
    raws = [json.loads(raw) for raw in checked.rejected.column("raw").to_pylist()]
    reasons = checked.rejected.column("reason").to_pylist()
    rejected = {raw[key]: reason for raw, reason in zip(raws, reasons, strict=True)}
    return dict.fromkeys(checked.valid.column(key).to_pylist(), "valid") | rejected


def _action(intervention_id: str, ts: datetime) -> dict[str, Any]:
    """One action as `record_intervention` in serving/service.py hands it to validation."""
    return {
        "intervention_id": intervention_id,
        "account_id": "a1",
        "ts": ts,
        "action": "health_check_call",
        "owner": "csm-1",
        "channel": "call",
        "assignment": "targeted",
        "propensity": None,
    }


def test_an_action_dated_year_1_or_9999_is_rejected_as_the_api_checks_it() -> None:
    stamps = {
        "year-1": datetime(1, 1, 1, tzinfo=UTC),
        "year-9999": datetime(9999, 12, 31, 23, 59, tzinfo=UTC),
        "an-hour-ago": datetime.now(UTC) - timedelta(hours=1),
    }
    rows = pa.Table.from_pylist([_action(i, ts) for i, ts in stamps.items()], INTERVENTION_SCHEMA)

    checked = check_interventions(Frame("interventions", "api:r1", rows), KNOWN)

    assert _verdicts(checked, "intervention_id") == {
        "year-1": "timestamp_out_of_range",
        "year-9999": "timestamp_out_of_range",
        "an-hour-ago": "valid",
    }
    details = sorted(checked.rejected.column("detail").to_pylist())
    assert details[0] == "ts=0001-01-01T00:00:00+00:00 is before 1990-01-01"
    assert details[1].startswith("ts=9999-12-31T23:59:00+00:00 is after ")


def test_the_window_runs_from_1990_to_a_day_past_the_clock_and_years_ahead_for_renewals() -> None:
    def event(event_id: str, ts: datetime, renewal: datetime | None = None) -> dict[str, Any]:
        kind = "subscription.renewed" if renewal else "job.retry"
        return {"event_id": event_id, "account_id": "a1", "ts": ts, "event_type": kind} | (
            {"renewal_date": renewal} if renewal else {"count": 1}
        )

    tick = timedelta(microseconds=1)
    latest = NOW + CLOCK_SKEW
    rows = [
        event("earliest", EARLIEST),
        event("before", EARLIEST - tick),
        event("skewed", latest),
        event("later", latest + tick),
        event("renews-ahead", NOW, NOW + FURTHEST_AHEAD),
        event("renews-too-far", NOW, NOW + FURTHEST_AHEAD + tick),
    ]
    table = pa.Table.from_pylist(rows, EVENT_SCHEMA)

    checked = check_events(Frame("events", "events.parquet", table), KNOWN, now=NOW)

    assert _verdicts(checked, "event_id") == {
        "earliest": "valid",
        "before": "timestamp_out_of_range",
        "skewed": "valid",
        "later": "timestamp_out_of_range",
        "renews-ahead": "valid",
        "renews-too-far": "timestamp_out_of_range",
    }


def test_a_contract_may_start_next_month_but_not_in_a_century() -> None:
    def account(account_id: str, start: datetime, renewal: datetime) -> dict[str, Any]:
        return {"account_id": account_id, "tier": "trial", "contract_start": start, "renewal_date": renewal}

    next_month = NOW + timedelta(days=30)
    rows = [
        account("next-month", next_month, next_month + timedelta(days=365)),
        account("centennial", NOW, datetime(2126, 3, 1, tzinfo=UTC)),
        account("placeholder", datetime(1900, 1, 1, tzinfo=UTC), NOW),
    ]
    checked = check_accounts(
        Frame("accounts", "accounts.parquet", pa.Table.from_pylist(rows, ACCOUNT_SCHEMA)), NOW
    )
    assert _verdicts(checked, "account_id") == {
        "next-month": "valid",
        "centennial": "timestamp_out_of_range",
        "placeholder": "timestamp_out_of_range",
    }


def test_coercion_marks_times_without_a_zone_but_not_dates() -> None:
    text = coerce(
        pa.array(
            ["2025-01-02T09:00:00", "2025-01-02", "2025-01-02T09:00:00Z", "2025-01-02 09:00", "noon", None]
        ),
        TS,
    )
    assert text.naive is not None and text.naive.tolist() == [True, False, False, True, False, False]
    assert text.bad.tolist() == [False, False, False, False, True, False]
    typed = coerce(pa.array([datetime(2025, 1, 2, 9), None], pa.timestamp("ms")), TS)
    assert typed.naive is not None and typed.naive.tolist() == [True, False]
    assert (
        coerce(pa.array([datetime(2025, 1, 2, 9, tzinfo=UTC)], pa.timestamp("ms", "UTC")), TS).naive is None
    )


def test_a_holdout_row_is_valid_only_as_a_holdout_with_its_share() -> None:
    """A holdout is logged through the same check as an action: action and assignment both `holdout`,
    with the share drawn as its propensity; a catalogue action cannot be a holdout, nor a holdout targeted."""
    ts = datetime.now(UTC) - timedelta(days=1)
    held = _action("held", ts) | {
        "action": "holdout",
        "assignment": "holdout",
        "propensity": 0.1,
        "channel": None,
    }
    rows = [
        held,
        held | {"intervention_id": "held-without-share", "propensity": None},
        held | {"intervention_id": "held-call", "action": "health_check_call"},
        held | {"intervention_id": "targeted-holdout", "assignment": "targeted"},
        _action("call", ts),
    ]

    checked = check_interventions(
        Frame("interventions", "file", pa.Table.from_pylist(rows, INTERVENTION_SCHEMA)), KNOWN
    )

    assert _verdicts(checked, "intervention_id") == {
        "held": "valid",
        "held-without-share": "missing_field",
        "held-call": "bad_category",
        "targeted-holdout": "bad_category",
        "call": "valid",
    }
