"""The Segment, Amplitude and Mixpanel adapters: every exported record is accepted, a duplicate, quarantined
with its reason or skipped for a named reason, and a mapping naming what the contract lacks is refused at
its line. Inputs are generated to the vendors' published shapes (tests/support/exports.py)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from core.contract import ACCOUNT_SCHEMA, EVENT_SCHEMA
from core.errors import RetainError
from ingest.adapters import adapt, json_lines
from ingest.commit import QUARANTINE_SCHEMA
from ingest.run import IngestSummary, ingest_path
from store.delta import Store
from tests.support.exports import (
    amplitude_event,
    mixpanel_event,
    segment_call,
    segment_group,
    segment_track,
    write_amplitude_zip,
    write_lines,
)

ACCOUNTS_CSV = "account_id,name,tier,arr\nacme,Acme,enterprise,150000\nbeta,Beta,mid_market,40000\n"
SEGMENT_MAPPING = """\
account: [context.groupId, properties.account_id]
events:
  Feature Used:
    type: feature.used
    properties:
      feature: properties.feature
      count: {value: 1}
  Ticket Opened:
    type: ticket.created
    properties:
      ticket_id: properties.ticket_id
      priority: {path: properties.priority, values: {urgent: P1, high: P2, normal: P3, low: P4}}
  Session Ended:
    type: user.session
    properties:
      duration_min: {path: properties.duration_s, scale: 0.016666666666666666}
ignore: [Button Clicked]
accounts:
  name: traits.name
  tier: {path: traits.plan, values: {Enterprise: enterprise, Business: mid_market, Free: trial}}
  arr: traits.arr
  seats_purchased: traits.seats
"""
AMPLITUDE_MAPPING = """\
account: groups.company
events:
  Report Exported:
    type: feature.used
    properties:
      feature: {value: reports}
      count: event_properties.rows
  Invoice Paid:
    type: billing.invoice
    properties:
      invoice_id: event_properties.invoice
      status: {value: paid}
      amount: event_properties.amount_usd
ignore: [session_start, session_end]
"""
MIXPANEL_MAPPING = """\
account: properties.company_id
events:
  Integration Failed:
    type: integration.state
    properties:
      integration: properties.integration
      status: {value: failing}
  NPS Submitted:
    type: survey.response
    properties:
      nps: properties.score
"""


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _store(tmp_path: Path, accounts: bool = True) -> Store:
    store = Store(tmp_path / "store")
    if accounts:
        ingest_path(store, _write(tmp_path / "crm" / "accounts.csv", ACCOUNTS_CSV))
    return store


def _rows(store: Store, table: str) -> list[dict[str, Any]]:
    schema = {"accounts": ACCOUNT_SCHEMA, "events": EVENT_SCHEMA, "quarantine": QUARANTINE_SCHEMA}[table]
    return store.read(table, schema).to_pylist()


def _skipped(summary: IngestSummary) -> int:
    """Records the adapter counted and handed on as no row: neither in the store nor in the quarantine."""
    assert summary.adapter is not None
    quarantined = {"malformed_row", "invalid_utf8", "unmapped_event"}
    return sum(
        n for e in summary.adapter.tables.values() for r, n in e.rejected.items() if r not in quarantined
    )


def _accounted(summary: IngestSummary) -> int:
    return (
        sum(summary.accepted.values())
        + sum(summary.duplicates.values())
        + summary.quarantined.total
        + _skipped(summary)
    )


def _segment_export(folder: Path) -> int:
    """Two S3 files of one day; returns the number of records written."""
    day1 = [
        segment_group("g1", "acme", "2024-01-02T09:00:00Z", "u1", name="Acme", plan="Business", arr=60000),
        segment_group("g2", "acme", "2024-01-02T09:05:00Z", "u2", name="Acme", plan="Business", arr=60000),
        segment_group("g3", "beta", "2024-01-02T10:00:00Z", "u3", name="Beta", plan="Free", arr=0, seats=3),
        segment_call("identify", "i1", "2024-01-02T09:00:00Z", "u1", traits={"email": "a@example.com"}),
        *[
            segment_track(f"f{i}", "Feature Used", f"2024-01-03T1{i}:00:00Z", user="u1", feature="reports")
            for i in range(6)
        ],
        segment_track("f6", "Feature Used", "2024-01-03T12:00:00Z", group="beta", feature="alerts"),
        segment_track("f7", "Feature Used", "2024-01-03T12:30:00Z", group="beta", feature="alerts"),
        segment_track(
            "t1", "Ticket Opened", "2024-01-04T08:00:00Z", user="u3", ticket_id="T-1", priority="urgent"
        ),
        segment_track(
            "t2", "Ticket Opened", "2024-01-04T09:00:00Z", user="u3", ticket_id="T-2", priority="low"
        ),
        segment_track("s1", "Session Ended", "2024-01-04T10:00:00+02:00", user="u2", duration_s=600),
        "{not json",
    ]
    day2 = [
        # the later group call of acme: its traits win
        segment_group("g4", "acme", "2024-01-05T09:00:00Z", "u1", name="Acme", plan="Enterprise", arr=120000),
        segment_call("page", "p1", "2024-01-05T09:00:00Z", "u1", name="Dashboard"),
        segment_call("page", "p2", "2024-01-05T09:01:00Z", "u1", name="Billing"),
        segment_track("b1", "Button Clicked", "2024-01-05T09:02:00Z", user="u1"),
        segment_track("b2", "Button Clicked", "2024-01-05T09:03:00Z", user="u1"),
        *[segment_track(f"x{i}", "Signed Up", "2024-01-05T09:04:00Z", user="u1") for i in range(3)],
        segment_track("m1", "Feature Used", "2024-01-05T10:00:00Z", user="u9", feature="x"),  # no group
        segment_track("m2", "Feature Used", "yesterday", user="u1", feature="x"),
        segment_track("m3", "Feature Used", "2024-01-05T10:00:00Z", group="ghost", feature="x"),
        segment_track("f0", "Feature Used", "2024-01-03T10:00:00Z", user="u1", feature="reports"),  # again
    ]
    write_lines(folder / "segment-logs" / "src1" / "1704153600000" / "a.gz", day1, gzipped=True)
    write_lines(folder / "segment-logs" / "src1" / "1704153600000" / "b.gz", day2, gzipped=True)
    return len(day1) + len(day2)


def test_segment_s3_export_maps_events_and_accounts_and_names_every_other_record(tmp_path: Path) -> None:
    written = _segment_export(tmp_path / "export")
    mapping = _write(tmp_path / "segment.yaml", SEGMENT_MAPPING)
    store = _store(tmp_path, accounts=False)
    summary = ingest_path(store, tmp_path / "export", adapter="segment", mapping=mapping)

    assert summary.adapter is not None
    [entry] = summary.adapter.tables.values()
    assert entry.source_rows == written == 28
    assert entry.rejected == {
        "ignored_event": 2,
        "malformed_row": 1,
        "not_an_event": 3,
        "unmapped_event": 3,
    }
    assert entry.produced == {"accounts": 4, "feature.used": 12, "ticket.created": 2, "user.session": 1}
    assert entry.source_rows == entry.mapped + sum(entry.rejected.values())

    assert summary.accepted == {"accounts": 2, "events": 11, "interventions": 0}
    assert summary.duplicates == {"accounts": 2, "events": 1, "interventions": 0}
    quarantine = _rows(store, "quarantine")
    assert Counter(q["reason"] for q in quarantine) == {
        "unmapped_event": 3,
        "malformed_row": 1,
        "missing_field": 1,
        "bad_timestamp": 1,
        "missing_account": 1,
    }
    assert summary.quarantined.total == len(quarantine) == 7
    assert _accounted(summary) == written

    unmapped = [q for q in quarantine if q["reason"] == "unmapped_event"]
    assert {json.loads(json.loads(q["raw"]))["event"] for q in unmapped} == {"Signed Up"}
    assert all(q["source"].endswith("b.gz") and "'Signed Up'" in q["detail"] for q in unmapped)
    assert {q["detail"] for q in quarantine if q["reason"] == "missing_field"} == {"missing account_id"}
    assert "11 events took their account from their user's group" in summary.adapter.notes[-1]

    accounts = {a["account_id"]: a for a in _rows(store, "accounts")}
    assert (accounts["acme"]["tier"], accounts["acme"]["arr"]) == ("enterprise", 120000.0), "latest call"
    assert (accounts["beta"]["tier"], accounts["beta"]["seats_purchased"]) == ("trial", 3)
    events = {e["event_id"]: e for e in _rows(store, "events")}
    assert events["segment-f0"]["account_id"] == "acme", "from u1's group call"
    assert (events["segment-f0"]["user_id"], events["segment-f0"]["count"]) == ("u1", 1)
    assert events["segment-f6"]["account_id"] == "beta", "from context.groupId"
    assert [events[f"segment-t{i}"]["priority"] for i in (1, 2)] == ["P1", "P4"]
    assert events["segment-s1"]["duration_min"] == pytest.approx(10.0)
    assert events["segment-s1"]["ts"] == datetime(2024, 1, 4, 8, tzinfo=UTC)

    again = ingest_path(store, tmp_path / "export", adapter="segment", mapping=mapping)
    assert again.accepted == {"accounts": 0, "events": 0, "interventions": 0}
    assert again.quarantined.new == 0


def test_segment_warehouse_tables_map_with_the_same_mapping(tmp_path: Path) -> None:
    folder = tmp_path / "warehouse"
    _write(
        folder / "groups.csv",
        "id,received_at,timestamp,group_id,user_id,name,plan,arr\n"
        "g1,2024-01-02 09:00:01+00,2024-01-02 09:00:00+00,acme,u1,Acme,Enterprise,150000\n",
    )
    times = pd.to_datetime(["2024-01-03 10:00", "2024-01-03 11:00", "2024-01-03 12:00"]).tz_localize("UTC")
    pd.DataFrame(
        {
            "id": ["w1", "w2", "w3"],
            "timestamp": times,
            "uuid_ts": times,
            "event": ["feature_used", "feature_used", "signed_up"],
            "event_text": ["Feature Used", "Feature Used", "Signed Up"],
            "user_id": ["u1", "u2", "u1"],
            "context_group_id": [None, "acme", None],
            "feature": ["reports", "alerts", None],
        }
    ).to_parquet(folder / "tracks.parquet")
    mapping = _write(tmp_path / "segment.yaml", SEGMENT_MAPPING)
    store = _store(tmp_path, accounts=False)
    summary = ingest_path(store, folder, adapter="segment", mapping=mapping)

    assert summary.adapter is not None
    [entry] = summary.adapter.tables.values()
    assert (entry.source_rows, entry.rejected) == (4, {"unmapped_event": 1})
    assert summary.accepted == {"accounts": 1, "events": 2, "interventions": 0}
    events = {e["event_id"]: e for e in _rows(store, "events")}
    assert {e: (v["account_id"], v["feature"]) for e, v in events.items()} == {
        "segment-w1": ("acme", "reports"),
        "segment-w2": ("acme", "alerts"),
    }
    assert events["segment-w1"]["ts"] == datetime(2024, 1, 3, 10, tzinfo=UTC)
    assert _accounted(summary) == 4


def test_amplitude_export_zip_maps_to_events_with_reasons_for_the_rest(tmp_path: Path) -> None:
    hours = {
        "2024-01-05_12": [
            *[
                amplitude_event(
                    f"a{i}", "Report Exported", "2024-01-05 12:34:56.789000", "acme", "u1", rows=40
                )
                for i in range(5)
            ],
            amplitude_event(
                "a5", "Invoice Paid", "2024-01-05 12:40:00.000000", "beta", invoice="INV-7", amount_usd=99.5
            ),
            amplitude_event("a6", "session_start", "2024-01-05 12:00:00.000000", "acme", "u1"),
            amplitude_event("a7", "$identify", "2024-01-05 12:00:00.000000", None, "u1"),
            '{"event_type": "Report Exported", "uuid": ',
        ],
        "2024-01-05_13": [
            amplitude_event("a8", "Report Exported", "2024-01-05 13:00:00.000000", None, "u1", rows=3),
            amplitude_event("a9", "Report Exported", "not a time", "acme", "u1", rows=3),
            amplitude_event(
                "a10", "Report Exported", "2024-01-05 13:10:00.000000", "acme", "u1", rows="many"
            ),
            amplitude_event("a0", "Report Exported", "2024-01-05 12:34:56.789000", "acme", "u1", rows=40),
            amplitude_event("a11", "session_end", "2024-01-05 13:30:00.000000", "acme", "u1"),
        ],
    }
    export = write_amplitude_zip(tmp_path / "export.zip", 187520, hours)
    mapping = _write(tmp_path / "amplitude.yaml", AMPLITUDE_MAPPING)
    store = _store(tmp_path)
    summary = ingest_path(store, export, adapter="amplitude", mapping=mapping)

    assert summary.adapter is not None
    [entry] = summary.adapter.tables.values()
    assert entry.source_rows == 14
    assert entry.rejected == {"ignored_event": 2, "malformed_row": 1, "unmapped_event": 1}
    assert entry.produced == {"billing.invoice": 1, "feature.used": 9}
    assert summary.accepted["events"] == 6 and summary.duplicates["events"] == 1
    quarantine = _rows(store, "quarantine")
    assert Counter(q["reason"] for q in quarantine) == {
        "unmapped_event": 1,
        "malformed_row": 1,
        "missing_field": 1,
        "bad_timestamp": 1,
        "wrong_property_type": 1,
    }
    assert _accounted(summary) == 14
    malformed = next(q for q in quarantine if q["reason"] == "malformed_row")
    assert malformed["source"] == f"{export}:187520/187520_2024-01-05_12#0.json.gz"
    assert malformed["detail"].startswith("line 9: not JSON")

    events = {e["event_id"]: e for e in _rows(store, "events")}
    assert events["amplitude-a0"]["ts"] == datetime(2024, 1, 5, 12, 34, 56, 789000, tzinfo=UTC), "UTC"
    assert (events["amplitude-a0"]["account_id"], events["amplitude-a0"]["count"]) == ("acme", 40)
    invoice = events["amplitude-a5"]
    assert (invoice["invoice_id"], invoice["status"], invoice["amount"]) == ("INV-7", "paid", 99.5)
    assert invoice["user_id"] is None


def test_mixpanel_raw_export_maps_seconds_and_milliseconds_and_derives_ids(tmp_path: Path) -> None:
    lines = [
        mixpanel_event(
            "Integration Failed", 1704457200, "u1", "ins-1", company_id="acme", integration="slack"
        ),
        mixpanel_event(
            "Integration Failed", 1704457260123, "u1", "ins-2", company_id=["beta"], integration="jira"
        ),
        mixpanel_event("NPS Submitted", 1704460800, "u2", None, company_id="acme", score=9),
        mixpanel_event("NPS Submitted", 1704460800, "u2", None, company_id="acme", score=9),  # the same again
        mixpanel_event("NPS Submitted", 1704460900, "u3", "ins-5", company_id="acme", score=11),
        mixpanel_event("Page View", 1704460900, "u3", "ins-6", company_id="acme"),
        mixpanel_event("NPS Submitted", 1704460900, "u4", "ins-7", score=7),
    ]
    export = write_lines(tmp_path / "export.json", lines)
    mapping = _write(tmp_path / "mixpanel.yaml", MIXPANEL_MAPPING)
    store = _store(tmp_path)
    summary = ingest_path(store, export, adapter="mixpanel", mapping=mapping)

    assert summary.adapter is not None
    [entry] = summary.adapter.tables.values()
    assert (entry.source_rows, entry.rejected) == (7, {"unmapped_event": 1})
    assert entry.produced == {"integration.state": 2, "survey.response": 4}
    assert (summary.accepted["events"], summary.duplicates["events"]) == (3, 1)
    reasons = Counter(q["reason"] for q in _rows(store, "quarantine"))
    assert reasons == {"unmapped_event": 1, "value_out_of_range": 1, "missing_field": 1}
    assert _accounted(summary) == 7

    events = sorted(_rows(store, "events"), key=lambda e: e["ts"])
    assert [(e["account_id"], e["event_type"]) for e in events] == [
        ("acme", "integration.state"),
        ("beta", "integration.state"),
        ("acme", "survey.response"),
    ]
    assert events[1]["ts"] == datetime(2024, 1, 5, 12, 21, 0, 123000, tzinfo=UTC), "milliseconds"
    assert events[1]["status"] == "failing"
    assert events[2]["event_id"].startswith("mixpanel-") and len(events[2]["event_id"]) == 9 + 32
    assert any("lack an id field" in note for note in summary.adapter.notes)


def test_a_time_zone_reads_older_mixpanel_projects_local_times(tmp_path: Path) -> None:
    export = write_lines(
        tmp_path / "export.json",
        [mixpanel_event("NPS Submitted", 1704457200, "u1", "ins-1", company_id="acme", score=8)],
    )
    mapping = _write(tmp_path / "mixpanel.yaml", MIXPANEL_MAPPING + "time_zone: America/New_York\n")
    [frame] = adapt("mixpanel", export, mapping).frames
    # 1704457200 renders as 2024-01-05 12:20 UTC: the project's wall clock, 17:20 UTC in New York's winter
    assert frame.data.column("ts").to_pylist() == ["2024-01-05T12:20:00-05:00"]


def test_frames_stay_bounded_and_name_each_rows_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json_lines, "BATCH_RECORDS", 3)
    for day in ("01", "02"):
        events = [
            mixpanel_event("NPS Submitted", 1704067200 + i, "u1", f"{day}-{i}", company_id="acme", score=5)
            for i in range(4)
        ]
        write_lines(tmp_path / "export" / f"2024-01-{day}.json.gz", events, gzipped=True)
    mapping = _write(tmp_path / "mixpanel.yaml", MIXPANEL_MAPPING)
    frames = adapt("mixpanel", tmp_path / "export", mapping).frames
    assert [f.data.num_rows for f in frames] == [3, 3, 2]
    assert [[Path(p).name for p, _ in f.parts] for f in frames] == [
        ["2024-01-01.json.gz"],
        ["2024-01-01.json.gz", "2024-01-02.json.gz"],
        ["2024-01-02.json.gz"],
    ]


#: a mapping's smallest events section, for refusals of other sections
SURVEY = "events:\n  E: {type: survey.response}\n"


def _refusal(tmp_path: Path, adapter: str, text: str) -> str:
    mapping = _write(tmp_path / "mapping.yaml", text)
    export = write_lines(tmp_path / "export.jsonl", [])
    with pytest.raises(RetainError) as refused:
        adapt(adapter, export, mapping)
    return str(refused.value).removeprefix(f"{mapping}, ")


@pytest.mark.parametrize(
    ("adapter", "text", "refusal"),
    [
        (
            "mixpanel",
            "account: properties.company_id\nevents:\n  Signed Up:\n    type: account.created\n",
            "line 4: unknown contract event type 'account.created'",
        ),
        (
            "amplitude",
            "account: groups.company\nevents:\n  E:\n    type: feature.used\n    properties:\n"
            "      feature: event_properties.f\n      count: {value: 1}\n      colour: event_properties.c\n",
            "line 8: 'colour' is not a contract property",
        ),
        (
            "mixpanel",
            "account: properties.company_id\nevents:\n  E:\n    type: ticket.created\n    properties:\n"
            "      ticket_id: properties.id\n      priority: properties.p\n      csat: properties.csat\n",
            "line 8: csat is not a property of ticket.created",
        ),
        (
            "segment",
            "account: context.groupId\nevents:\n  E:\n    type: feature.used\n    properties:\n"
            "      feature: properties.f\n",
            "line 3: feature.used requires count",
        ),
        (
            "segment",
            "account: context.groupId\nevents:\n  E:\n    type: ticket.created\n    properties:\n"
            "      ticket_id: properties.id\n      priority: {path: properties.p, values: {high: urgent}}\n",
            "line 7: 'urgent' is not one of P1, P2, P3, P4",
        ),
        (
            "segment",
            f"account: context.groupId\n{SURVEY}accounts:\n  tier: traits.tier\n  mrr: traits.mrr\n",
            "line 6: 'mrr' is not an account field",
        ),
        (
            "amplitude",
            f"account: groups.company\n{SURVEY}accounts:\n  tier: traits.tier\n",
            "line 4: amplitude exports carry no account records",
        ),
        ("mixpanel", f"account: x\n{SURVEY.replace('events', 'evnts')}", "line 2: unknown key 'evnts'"),
        ("mixpanel", SURVEY, "line 1: the mapping lacks `account:`"),
    ],
)
def test_a_mapping_naming_what_the_contract_lacks_is_refused_at_its_line(
    tmp_path: Path, adapter: str, text: str, refusal: str
) -> None:
    assert _refusal(tmp_path, adapter, text).startswith(refusal)


def test_an_event_export_needs_a_mapping(tmp_path: Path) -> None:
    export = write_lines(tmp_path / "export.jsonl", [])
    with pytest.raises(RetainError, match="adapter segment needs --mapping FILE"):
        adapt("segment", export, None)
