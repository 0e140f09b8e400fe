"""The RavenStack adapter: every source row is either mapped or reported as rejected, and the store agrees."""

from __future__ import annotations

import csv
import os
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.contract import ACCOUNT_SCHEMA, EVENT_SCHEMA, Tier
from ingest.run import IngestSummary, ingest_path
from store.delta import Store
from tests.support.services import unavailable

RAVENSTACK = Path(
    os.environ.get(
        "RETAIN_RAVENSTACK", Path(__file__).resolve().parents[2] / "experiments/datasets/ravenstack"
    )
)
#: Which source table an event came from, by the prefix of the source id its event id is derived from.
ORIGIN = {
    "rs-S-": "subscriptions.csv",
    "rs-U-": "feature_usage.csv",
    "rs-T-": "support_tickets.csv",
    "rs-C-": "churn_events.csv",
}


def _rows(store: Store, table: str) -> list[dict[str, Any]]:
    schema = {"accounts": ACCOUNT_SCHEMA, "events": EVENT_SCHEMA}[table]
    return store.read(table, schema).to_pylist()


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[IngestSummary, Store]:
    if not (RAVENSTACK / "accounts.csv").exists():
        unavailable(f"the RavenStack dataset is not at {RAVENSTACK} (set RETAIN_RAVENSTACK)")
    store = Store(tmp_path_factory.mktemp("ravenstack") / "store")
    return ingest_path(store, RAVENSTACK, adapter="ravenstack"), store


def test_all_500_accounts_import(imported: tuple[IngestSummary, Store]) -> None:
    summary, store = imported
    accounts = _rows(store, "accounts")
    assert summary.accepted["accounts"] == len(accounts) == 500
    assert {a["account_id"] for a in accounts} == {r["account_id"] for r in _csv(RAVENSTACK / "accounts.csv")}
    assert {a["tier"] for a in accounts} <= {t.value for t in Tier}
    assert all(a["renewal_date"] > a["contract_start"] for a in accounts)


def test_store_counts_are_the_source_counts_minus_what_the_report_rejects(
    imported: tuple[IngestSummary, Store],
) -> None:
    summary, store = imported
    assert summary.adapter is not None
    tables = summary.adapter.tables
    for name, entry in tables.items():
        assert entry.source_rows == len(_csv(RAVENSTACK / name)), name
        assert entry.source_rows == entry.mapped + sum(entry.rejected.values()), name

    events = _rows(store, "events")
    stored = Counter(
        next(t for prefix, t in ORIGIN.items() if e["event_id"].startswith(prefix)) for e in events
    )
    for name in ORIGIN.values():
        entry = tables[name]
        assert stored[name] == sum(entry.produced.values()) - sum(entry.quarantined.values()), name
    assert summary.accepted["events"] == len(events)

    by_type = Counter(e["event_type"] for e in events)
    usage = _csv(RAVENSTACK / "feature_usage.csv")
    assert by_type["feature.used"] == tables["feature_usage.csv"].mapped == len(usage)
    assert by_type["error.raised"] == sum(int(r["error_count"]) > 0 for r in usage)
    assert by_type["ticket.created"] == tables["support_tickets.csv"].mapped
    assert by_type["subscription.cancelled"] == tables["churn_events.csv"].mapped
    assert set(tables["feature_usage.csv"].unmapped_columns) == {"usage_duration_secs", "is_beta_feature"}


def test_reimporting_changes_nothing(imported: tuple[IngestSummary, Store]) -> None:
    first, store = imported
    versions = store.versions()
    again = ingest_path(store, RAVENSTACK, adapter="ravenstack")
    assert again.accepted == {"accounts": 0, "events": 0, "interventions": 0}
    assert again.duplicates["events"] == first.accepted["events"]
    assert store.versions() == versions  # a merge with nothing new commits no version


#: A handful of rows per file, each built to exercise one mapping rule (header, then rows).
TINY = {
    "accounts.csv": (
        "account_id,account_name,industry,country,signup_date,referral_source,plan_tier,seats,is_trial,"
        "churn_flag",
        """A-1,Co1,FinTech,US,2024-02-29,ads,Pro,10,False,False
A-2,Co2,EdTech,DE,2024-01-01,ads,Basic,5,True,False
A-3,Co3,EdTech,DE,2024-01-01,ads,Basic,5,False,False""",
    ),
    "subscriptions.csv": (
        "subscription_id,account_id,start_date,end_date,plan_tier,seats,mrr_amount,arr_amount,is_trial,"
        "upgrade_flag,downgrade_flag,churn_flag,billing_frequency,auto_renew_flag",
        """S-1,A-1,2024-03-01,,Basic,10,2500,30000,False,False,False,False,monthly,True
S-2,A-1,2024-06-01,2024-09-01,Pro,10,1000,12000,False,True,False,True,monthly,True
S-3,A-1,2024-09-01,,Pro,20,2000,24000,False,False,False,False,annual,True
S-4,A-2,2024-01-01,2024-02-01,Basic,5,0,0,True,False,False,True,monthly,False
S-5,A-2,2024-02-02,2024-03-01,Basic,5,500,6000,False,False,False,True,monthly,True
S-6,A-2,2024-05-01,,Basic,5,500,6000,False,False,False,False,monthly,True
S-7,A-404,2024-01-01,,Basic,5,500,6000,False,False,False,False,monthly,True
S-8,A-404,2024-02-01,,Pro,5,500,6000,False,False,False,False,monthly,True
S-9,A-1,not-a-date,,Pro,5,500,6000,False,False,False,False,monthly,True""",
    ),
    "feature_usage.csv": (
        "usage_id,subscription_id,usage_date,feature_name,usage_count,usage_duration_secs,error_count,"
        "is_beta_feature",
        """U-1,S-1,2024-03-05,feature_1,5,100,2,False
U-2,S-404,2024-03-05,feature_1,5,100,0,False
,S-1,2024-03-05,feature_1,5,100,0,False
U-1,S-3,2024-09-05,feature_2,1,100,0,False""",
    ),
    "support_tickets.csv": (
        "ticket_id,account_id,submitted_at,closed_at,resolution_time_hours,priority,"
        "first_response_time_minutes,satisfaction_score,escalation_flag",
        """T-1,A-1,2024-04-01,2024-04-01 05:00:00,5.0,urgent,10,5.0,False
T-2,A-1,2024-04-02,,,low,10,,False
T-3,A-2,2024-04-03,,,critical,10,,False""",
    ),
    "churn_events.csv": (
        "churn_event_id,account_id,churn_date,reason_code,refund_amount_usd,preceding_upgrade_flag,"
        "preceding_downgrade_flag,is_reactivation,feedback_text",
        "C-1,A-2,2024-06-01,pricing,0.0,False,False,False,too expensive",
    ),
}


def test_mapping_rules_on_a_tiny_dataset(tmp_path: Path) -> None:
    for name, (header, rows) in TINY.items():
        (tmp_path / name).write_text(f"{header}\n{rows}\n")
    store = Store(tmp_path / "store")
    summary = ingest_path(store, tmp_path, adapter="ravenstack")
    assert summary.adapter is not None
    tables = summary.adapter.tables

    accounts = {a["account_id"]: a for a in _rows(store, "accounts")}
    assert sorted(accounts) == ["A-1", "A-2"], (
        "A-3 has no subscription, hence no ARR and no tier: quarantined"
    )
    assert tables["accounts.csv"].quarantined == {"missing_field": 1}
    a1 = accounts["A-1"]
    assert (a1["tier"], a1["arr"], a1["plan"], a1["seats_purchased"]) == ("mid_market", 30000.0, "Pro", 10)
    assert a1["renewal_date"] == datetime(2025, 2, 28, tzinfo=UTC), "contract_start 2024-02-29 + 1 year"
    assert accounts["A-2"]["tier"] == "trial"

    events = {e["event_id"]: e for e in _rows(store, "events")}
    assert (events["rs-S-2-plan"]["plan_from"], events["rs-S-2-plan"]["plan_to"]) == ("Basic", "Pro")
    assert (events["rs-S-2-plan"]["arr_from"], events["rs-S-2-plan"]["arr_to"]) == (30000.0, 12000.0)
    assert (events["rs-S-3-seats"]["seats_from"], events["rs-S-3-seats"]["seats_to"]) == (10, 20)
    renewed = sorted(k for k, e in events.items() if e["event_type"] == "subscription.renewed")
    assert renewed == ["rs-S-2-renewed", "rs-S-3-renewed", "rs-S-5-renewed"], (
        "S-6 starts after a gap; S-4 is a trial"
    )
    assert events["rs-S-5-renewed"]["renewal_date"] == datetime(2025, 2, 2, tzinfo=UTC)
    assert tables["subscriptions.csv"].rejected == {"bad_start_date": 1}
    assert tables["subscriptions.csv"].quarantined == {"missing_account": 2}, "S-8's plan change and renewal"

    assert tables["feature_usage.csv"].rejected == {"missing_id": 1, "unknown_subscription": 1}
    assert {"rs-U-1-S-1-used", "rs-U-1-S-1-error", "rs-U-1-S-3-used"} <= events.keys()
    assert events["rs-U-1-S-1-error"]["count"] == 2 and events["rs-U-1-S-1-error"]["user_id"] is None

    assert (events["rs-T-1-created"]["priority"], events["rs-T-2-created"]["priority"]) == ("P1", "P4")
    assert events["rs-T-1-resolved"]["ts"] == datetime(2024, 4, 1, 5, tzinfo=UTC)
    assert events["rs-T-1-resolved"]["csat"] == 5 and "rs-T-2-resolved" not in events
    assert tables["support_tickets.csv"].quarantined == {"bad_category": 1}, (
        "priority 'critical' is not mapped"
    )
    assert events["rs-C-1-cancelled"]["reason"] == "pricing"

    for name, entry in tables.items():
        assert entry.source_rows == entry.mapped + sum(entry.rejected.values()), name
    assert summary.accepted["events"] == len(events) == 12
