"""The playbook's alert rules on hand-built accounts, through the real feature SQL: each fires on an account
built to trigger it, at the cutoff where its signal starts, and stays silent on one built not to."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from features.alerts import rule_alerts
from products.alerting import champion_alert
from registry.promotion import Promotion, Rollback
from tests.support.events import START, T, account, at, event, features

#: the cutoff before T: a signal already there at it is not new at T
BEFORE = T - timedelta(days=28)
CORE = ("dashboards", "pipelines", "reports", "alerts")


def sessions(account_id: str, days: range, per_day: int) -> list[dict[str, Any]]:
    return [
        event(account_id, "user.session", at(d) + timedelta(hours=h), user_id=f"u{h % 2}", duration_min=20.0)
        for d in days
        for h in range(per_day)
    ]


def lively(account_id: str, *, engaged: bool = True, sponsor: bool = True) -> list[dict[str, Any]]:
    """An onboarded account with a promoter's survey and daily use; `engaged`: core features used every
    few days; `sponsor`: its sponsor met 5 and 40 days ago."""
    events = [
        event(account_id, "onboarding.milestone", START + timedelta(days=3), milestone="first_value"),
        event(account_id, "survey.response", at(30), nps=8),
    ]
    if engaged:
        events += [
            event(account_id, "feature.used", at(d), feature=f, count=3, core=True)
            for d in range(0, 60, 3)
            for f in CORE
        ]
    if sponsor:
        events += [event(account_id, "sponsor.touch", at(d), channel="call") for d in (5, 40)]
    return events


def unpaid(account_id: str) -> list[dict[str, Any]]:
    return [
        event(
            account_id, "billing.invoice", at(40), invoice_id=f"{account_id}-1", status="issued", amount=100.0
        ),
        event(
            account_id,
            "billing.invoice",
            at(10),
            invoice_id=f"{account_id}-1",
            status="overdue",
            amount=100.0,
        ),
    ]


def alerts_at_t(events: list[dict[str, Any]], accounts: list[dict[str, Any]]) -> dict[str, set[str]]:
    """The alert types each account gets at T, from its feature rows at T and at the cutoff before."""
    rows = features(events, accounts, cutoffs=[BEFORE.date(), T.date()]).reset_index()
    latest, previous = rows[rows["cutoff"] == pd.Timestamp(T)], rows[rows["cutoff"] == pd.Timestamp(BEFORE)]
    found: dict[str, set[str]] = {a["account_id"]: set() for a in accounts}
    for alert in rule_alerts(latest, previous, {}):
        found[str(alert.account_id)].add(alert.type)
    return found


def test_usage_drop_fires_when_an_at_risk_account_uses_it_a_fifth_less_than_the_week_before() -> None:
    # both are at risk (no core feature used, an unpaid invoice, a detractor's survey); one's use fell
    at_risk = [*unpaid("dropping"), *unpaid("steady")]
    at_risk += [event(a, "survey.response", at(3), nps=1) for a in ("dropping", "steady")]
    events = [
        *lively("dropping", engaged=False),
        *sessions("dropping", range(7, 90), 4),
        *sessions("dropping", range(0, 7), 2),
        *lively("steady", engaged=False),
        *sessions("steady", range(0, 90), 3),
        *at_risk,
    ]
    found = alerts_at_t(events, [account("dropping"), account("steady")])
    assert "usage_drop" in found["dropping"] and "usage_drop" not in found["steady"]


def test_error_spike_fires_above_the_accounts_own_95th_percentile() -> None:
    def errors(account_id: str, baseline: list[int], worst: int) -> list[dict[str, Any]]:
        """A baseline from 10 days before T back, none in the week before the cutoff before T."""
        past = [event(account_id, "error.raised", at(10 + i), count=n) for i, n in enumerate(baseline)]
        return [*past, event(account_id, "error.raised", at(2), count=worst)]

    events = [*lively("spiking"), *sessions("spiking", range(0, 90), 3), *errors("spiking", [1] * 15, 9)]
    events += [*lively("usual"), *sessions("usual", range(0, 90), 3), *errors("usual", [9] * 15, 9)]
    found = alerts_at_t(events, [account("spiking"), account("usual")])
    assert found == {"spiking": {"error_spike"}, "usual": set()}


def test_onboarding_stalled_fires_after_72_hours_without_a_milestone() -> None:
    def onboarding(account_id: str, last_milestone_days_ago: float) -> list[dict[str, Any]]:
        return [
            event(account_id, "onboarding.milestone", at(12), milestone="sso_live"),
            event(
                account_id, "onboarding.milestone", at(last_milestone_days_ago), milestone="first_integration"
            ),
            *sessions(account_id, range(0, 14), 2),
        ]

    events = [*onboarding("stalled", 5), *onboarding("moving", 1)]
    accounts = [account("stalled", contract_start=at(14)), account("moving", contract_start=at(14))]
    found = alerts_at_t(events, accounts)
    assert "onboarding_stalled" in found["stalled"] and "onboarding_stalled" not in found["moving"]


def test_unpaid_invoices_fire_on_an_overdue_invoice() -> None:
    paid = [
        event("paying", "billing.invoice", at(40), invoice_id="p-1", status="issued", amount=100.0),
        event("paying", "billing.invoice", at(10), invoice_id="p-1", status="paid", amount=100.0),
    ]
    events = [*lively("owing"), *sessions("owing", range(0, 90), 3), *unpaid("owing")]
    events += [*lively("paying"), *sessions("paying", range(0, 90), 3), *paid]
    found = alerts_at_t(events, [account("owing"), account("paying")])
    assert found == {"owing": {"unpaid_invoices"}, "paying": set()}


def test_sponsor_disengaged_fires_once_sixty_days_pass_without_a_touch() -> None:
    events = [
        *lively("drifting", sponsor=False),
        event("drifting", "sponsor.touch", at(70), channel="call"),
        *sessions("drifting", range(0, 90), 3),
        *lively("met"),
        *sessions("met", range(0, 90), 3),
    ]
    found = alerts_at_t(events, [account("drifting"), account("met")])
    assert found == {"drifting": {"sponsor_disengaged"}, "met": set()}


def test_a_signal_that_persists_is_alerted_once_and_an_alert_keeps_its_id() -> None:
    events = [*lively("owing"), *sessions("owing", range(0, 90), 3), *unpaid("owing")]
    rows = features(events, [account("owing")], cutoffs=[BEFORE.date(), T.date()]).reset_index()
    latest = rows[rows["cutoff"] == pd.Timestamp(T)]
    first, again = rule_alerts(latest, latest.iloc[0:0], {}), rule_alerts(latest, latest.iloc[0:0], {})
    assert [a.id for a in first] == [a.id for a in again] and len(first) == 1
    alert = first[0]
    assert alert.at == T and alert.actions == ("billing_outreach",)
    assert alert.summary.startswith("Invoices are unpaid: 1 overdue invoices open")
    assert [e.name for e in alert.evidence] == ["invoices_overdue", "invoices_failed", "open_invoice_amount"]
    assert rule_alerts(latest, latest, {}) == [], "held at the cutoff before: not new"


def test_an_action_in_its_cool_down_is_not_recommended() -> None:
    events = [*lively("owing"), *sessions("owing", range(0, 90), 3), *unpaid("owing")]
    latest = features(events, [account("owing")]).reset_index()
    taken = {"owing": {"billing_outreach": datetime.fromisoformat("2025-02-25T00:00:00+00:00")}}
    (alert,) = rule_alerts(latest, latest.iloc[0:0], taken)
    assert alert.actions == ()


def test_a_new_champion_is_alerted_and_a_kept_one_is_not() -> None:
    promoted = Promotion(
        name="churn", champion_before="3", decision="promoted", reason="AUC 0.80 vs 0.78: ok", champion="4"
    )
    alert = champion_alert(promoted, at=T)
    assert alert is not None and alert.type == "champion_changed" and alert.account_id is None
    assert alert.summary == "churn: version 4 replaced version 3 as champion (AUC 0.80 vs 0.78: ok)."
    assert champion_alert(promoted, at=T) == alert, "the same change keeps its id"
    refused = promoted.model_copy(update={"decision": "refused", "champion": "3"})
    assert champion_alert(refused, at=T) is None
    rolled = champion_alert(Rollback(name="churn", rolled_back="4", champion="3", history=["3"]), at=T)
    assert rolled is not None and "version 3 replaced version 4" in rolled.summary
