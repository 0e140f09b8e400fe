"""Ingestion with a contract: bad rows quarantined with reasons, every input row accounted for, re-ingest a
no-op that commits no version, accounts a snapshot. Crashes and races: test_store_faults.py."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.contract import ACCOUNT_SCHEMA, EVENT_SCHEMA, INTERVENTION_SCHEMA, TS
from core.errors import RetainError
from ingest.coerce import coerce
from ingest.commit import KEYED
from ingest.run import IngestSummary, ingest_path, record_interventions
from store.delta import Store

ACCOUNTS_CSV = "account_id,name,tier,arr,seats_purchased\na1,Acme,enterprise,150000,40\na2,Beta,trial,0,3\n"
EVENTS_HEADER = "event_id,account_id,user_id,ts,event_type,properties\n"
GOOD_ROWS = [
    'e1,a1,u1,2025-01-02T10:00:00Z,feature.used,"{""feature"": ""reports"", ""count"": 3}"',
    'e2,a2,,2025-01-02 12:00:00+02:00,ticket.created,"{""ticket_id"": ""t1"", ""priority"": ""P2""}"',
    'e3,a1,u2,2025-01-03,user.session,"{""duration_min"": 12.5}"',
]
BAD_ROWS = {
    "bad_timestamp": 'b1,a1,,yesterday,feature.used,"{""feature"": ""x"", ""count"": 1}"',
    "unknown_event_type": "b2,a1,,2025-01-02,coffee.brewed,",
    "missing_account": 'b3,ghost,,2025-01-02,feature.used,"{""feature"": ""x"", ""count"": 1}"',
    "wrong_property_type": 'b4,a1,,2025-01-02,feature.used,"{""feature"": ""x"", ""count"": ""abc""}"',
    "missing_field": 'b5,a1,,2025-01-02,feature.used,"{""feature"": ""x""}"',
    "bad_category": 'b6,a2,,2025-01-02,ticket.created,"{""ticket_id"": ""t"", ""priority"": ""P9""}"',
    "value_out_of_range": 'b7,a2,,2025-01-02,survey.response,"{""nps"": 11}"',
    "property_not_allowed": 'b8,a2,,2025-01-02,ticket.created,"{""ticket_id"": ""t"", ""priority"": ""P1"", '
    '""csat"": 4}"',
    "malformed_row": "b9,a1,only-three-fields",
}


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _events_csv(path: Path, rows: list[str]) -> Path:
    return _write(path, EVENTS_HEADER + "\n".join(rows) + "\n")


def _live(store: Store) -> dict[str, list[dict[str, Any]]]:
    """Everything a reader of the store's latest versions sees, table by table, in id order."""
    return {
        table: sorted(store.read(table, keyed.schema).to_pylist(), key=lambda row: row[keyed.key])
        for table, keyed in KEYED.items()
    }


def _rows_in(summary: IngestSummary) -> int:
    """Every input row is accounted for once: accepted, skipped as a duplicate, or quarantined."""
    return sum(summary.accepted.values()) + sum(summary.duplicates.values()) + summary.quarantined.total


def _parent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _event(event_id: str, account_id: str, day: str) -> dict[str, Any]:
    ts = datetime.fromisoformat(day).replace(hour=9, tzinfo=UTC)
    return {"event_id": event_id, "account_id": account_id, "ts": ts, "event_type": "job.retry", "count": 2}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "store")
    ingest_path(store, _write(tmp_path / "in" / "accounts.csv", ACCOUNTS_CSV))
    return store


def test_malformed_rows_are_quarantined_with_a_reason_each(store: Store, tmp_path: Path) -> None:
    source = _events_csv(tmp_path / "events.csv", GOOD_ROWS + list(BAD_ROWS.values()))
    summary = ingest_path(store, source)

    assert summary.accepted == {"accounts": 0, "events": 3, "interventions": 0}
    assert summary.quarantined.by_reason == dict.fromkeys(BAD_ROWS, 1)
    assert summary.quarantined.total == summary.quarantined.new == len(BAD_ROWS)
    assert _rows_in(summary) == len(GOOD_ROWS) + len(BAD_ROWS)
    assert summary.versions == {t: store.version(t) for t in ("events", "quarantine")}
    quarantine = _live(store)["quarantine"]
    raws = [json.loads(q["raw"]) for q in quarantine]
    reasons = {
        raw["event_id"] if isinstance(raw, dict) else raw: q["reason"]
        for raw, q in zip(raws, quarantine, strict=True)
    }
    assert reasons == {
        **{f"b{i}": r for i, r in enumerate(BAD_ROWS, start=1) if r != "malformed_row"},
        BAD_ROWS["malformed_row"]: "malformed_row",
    }, "each row gets the reason it was built to fail, and a malformed row keeps its text"
    details = {q["reason"]: q["detail"] for q in quarantine}
    assert details["wrong_property_type"] == "count='abc' is not an integer"
    assert details["missing_account"] == "account 'ghost' is neither in the store nor in this input"
    assert {q["source"] for q in quarantine} == {str(source)}
    assert {q["ingest_id"] for q in quarantine} == {summary.ingest_id}

    events = {e["event_id"]: e for e in _live(store)["events"]}
    assert events["e2"]["ts"] == datetime(2025, 1, 2, 10, tzinfo=UTC), "offsets are converted to UTC"
    assert events["e3"]["ts"] == datetime(2025, 1, 3, tzinfo=UTC), "a date is its UTC day"
    assert (events["e1"]["count"], events["e3"]["duration_min"]) == (3, 12.5)
    stored = store.delta("events")
    assert stored is not None
    assert stored.schema().to_arrow() == EVENT_SCHEMA.append(pa.field("event_date", pa.date32()))
    days = {Path(uri).parent.name for uri in stored.file_uris()}
    assert days == {"event_date=2025-01-02", "event_date=2025-01-03"}, "one folder per UTC event day"


def test_an_intervention_handed_over_for_an_unknown_account_is_quarantined_with_its_reason(
    store: Store,
) -> None:
    row = {
        "intervention_id": "int-api-1",
        "account_id": "nobody",
        "ts": datetime(2025, 3, 1, 9, tzinfo=UTC),
        "action": "health_check_call",
        "owner": "csm-1",
        "channel": "call",
        "assignment": "targeted",
        "propensity": None,
    }
    summary = record_interventions(store, pa.Table.from_pylist([row], schema=INTERVENTION_SCHEMA), "api:r1")
    assert summary.quarantined.by_reason == {"missing_account": 1}
    assert summary.accepted["interventions"] == 0 and "interventions" not in summary.versions
    [quarantined] = _live(store)["quarantine"]
    assert (quarantined["table"], quarantined["source"]) == ("interventions", "api:r1")
    assert "nobody" in quarantined["detail"]
    assert _live(store)["interventions"] == []


def test_reingesting_the_same_file_changes_nothing(store: Store, tmp_path: Path) -> None:
    source = _events_csv(tmp_path / "events.csv", GOOD_ROWS + list(BAD_ROWS.values()))
    ingest_path(store, source)
    before, versions = _live(store), store.versions()

    again = ingest_path(store, source)

    assert again.accepted == {"accounts": 0, "events": 0, "interventions": 0}
    assert again.duplicates["events"] == len(GOOD_ROWS)
    assert again.quarantined.total == len(BAD_ROWS) and again.quarantined.new == 0
    assert _rows_in(again) == len(GOOD_ROWS) + len(BAD_ROWS)
    assert store.versions() == versions, "a merge that changes nothing commits no new version"
    assert _live(store) == before


def test_duplicates_within_an_input_are_counted_not_quarantined(store: Store, tmp_path: Path) -> None:
    summary = ingest_path(store, _events_csv(tmp_path / "events.csv", GOOD_ROWS + GOOD_ROWS[:2]))
    assert summary.accepted["events"] == 3 and summary.duplicates["events"] == 2
    assert summary.quarantined.total == 0 and _rows_in(summary) == len(GOOD_ROWS) + 2
    assert sorted(e["event_id"] for e in _live(store)["events"]) == ["e1", "e2", "e3"]


def test_nested_and_flat_properties_in_every_format_store_the_same_rows(store: Store, tmp_path: Path) -> None:
    common = ("event_id", "account_id", "user_id", "ts", "event_type")
    nested: list[dict[str, Any]] = [
        dict(zip(common, ("e1", "a1", "u1", "2025-01-02T10:00:00Z", "feature.used"), strict=True))
        | {"properties": {"feature": "reports", "count": 3, "core": True}},
        dict(zip(common, ("e2", "a2", None, "2025-01-02T12:00:00+02:00", "billing.invoice"), strict=True))
        | {"properties": {"invoice_id": "i1", "status": "overdue", "amount": 99.5}},
    ]
    rows = [{k: v for k, v in e.items() if k != "properties"} | e["properties"] for e in nested]
    flat = pa.table({k: [r.get(k) for r in rows] for k in dict.fromkeys(k for r in rows for k in r)})
    _write(tmp_path / "a" / "events.jsonl", "".join(json.dumps(e) + "\n" for e in nested))
    pq.write_table(flat, _parent(tmp_path / "b" / "events.parquet"))
    as_text = [{**e, "properties": json.dumps(e["properties"])} for e in nested]
    pq.write_table(pa.Table.from_pylist(as_text), tmp_path / "b" / "events_text.parquet")

    sources = [
        tmp_path / "a" / "events.jsonl",
        tmp_path / "b" / "events.parquet",
        tmp_path / "b" / "events_text.parquet",
    ]
    stores = [Store(tmp_path / f"s{i}") for i in range(len(sources))]
    for s, source in zip(stores, sources, strict=True):
        ingest_path(s, tmp_path / "in" / "accounts.csv")
        assert ingest_path(s, source).accepted["events"] == 2
    first, *others = [_live(s)["events"] for s in stores]
    assert all(rows == first for rows in others)
    assert first[1]["ts"] == datetime(2025, 1, 2, 10, tzinfo=UTC) and first[1]["status"] == "overdue"


def test_json_lines_with_varying_types_and_a_broken_line(store: Store, tmp_path: Path) -> None:
    common = '"account_id": "a1", "ts": "2025-01-02", "event_type": "job.retry"'
    lines = [
        f'{{"event_id": "j1", {common}, "count": 2}}',
        f'{{"event_id": "j2", {common}, "count": "two"}}',
        f'{{"event_id": "j3", {common}, "count": 2.0}}',
        f'{{"event_id": "j4", {common}, "count": ',
        "[1, 2, 3]",
    ]
    summary = ingest_path(store, _write(tmp_path / "events.ndjson", "\n".join(lines) + "\n"))
    assert summary.accepted["events"] == 2
    assert summary.quarantined.by_reason == {"malformed_row": 2, "wrong_property_type": 1}
    details = sorted(q["detail"] for q in _live(store)["quarantine"])
    assert details == [
        "count='two' is not an integer",
        "line 4: not JSON (Expecting value)",
        "line 5: not a JSON object",
    ]


def _quarantined(store: Store) -> dict[str, tuple[str, str]]:
    """Each quarantined event's (reason, detail), by its event id."""
    rows = _live(store)["quarantine"]
    return {json.loads(q["raw"])["event_id"]: (q["reason"], q["detail"]) for q in rows}


def test_timestamps_outside_the_plausible_window_are_quarantined(store: Store, tmp_path: Path) -> None:
    count = '"{""count"": 1}"'
    invoice = '"{""invoice_id"": ""i1"", ""status"": ""paid"", ""amount"": 10}"'

    def renewal(day: str) -> str:
        return f'"{{""renewal_date"": ""{day}T00:00:00Z""}}"'

    now = datetime.now(UTC)
    rows = [
        f"old,a1,,1900-01-01T00:00:00Z,job.retry,{count}",
        f"zero,a1,,0001-01-01T00:00:00Z,job.retry,{count}",
        f"far,a2,,2099-06-30T12:00:00Z,billing.invoice,{invoice}",
        f"ahead,a1,,{(now + timedelta(days=3)).isoformat()},job.retry,{count}",
        f"renewal,a1,,2025-01-02T00:00:00Z,subscription.renewed,{renewal('2199-01-01')}",
        f"first,a1,,1990-01-01T00:00:00Z,job.retry,{count}",
        f"skewed,a1,,{(now + timedelta(hours=12)).isoformat()},job.retry,{count}",
        f"renews,a1,,2025-01-02T00:00:00Z,subscription.renewed,{renewal(f'{now.year + 1}-01-02')}",
    ]
    summary = ingest_path(store, _events_csv(tmp_path / "events.csv", rows))

    assert summary.accepted["events"] == 3, "1990, half a day of clock skew, and a renewal date ahead"
    assert summary.quarantined.by_reason == {"timestamp_out_of_range": 5}
    quarantined = _quarantined(store)
    assert quarantined["old"] == (
        "timestamp_out_of_range",
        "ts=1900-01-01T00:00:00+00:00 is before 1990-01-01",
    )
    assert quarantined["far"][1].startswith("ts=2099-06-30T12:00:00+00:00 is after ")
    assert quarantined["renewal"][1].startswith("renewal_date=2199-01-01T00:00:00+00:00 is after ")
    accounts = (
        "account_id,tier,contract_start,renewal_date\nold,trial,1900-01-01T00:00:00Z,2025-01-01T00:00:00Z\n"
    )
    summary = ingest_path(store, _write(tmp_path / "more" / "accounts.csv", accounts))
    assert summary.quarantined.by_reason == {"timestamp_out_of_range": 1}


def test_a_time_without_a_zone_is_quarantined_in_every_format_and_a_date_is_its_utc_day(
    store: Store, tmp_path: Path
) -> None:
    retry = '"{""count"": 1}"'
    rows = [
        f"csv-naive,a1,,2025-01-02T09:00:00,job.retry,{retry}",
        f"csv-naive-space,a1,,2025-01-02 09:00:00,job.retry,{retry}",
        f"csv-day,a1,,2025-01-02,job.retry,{retry}",
        f"csv-zoned,a1,,2025-01-02T11:00:00+02:00,job.retry,{retry}",
    ]
    _events_csv(tmp_path / "in" / "events.csv", rows)
    common = '"account_id": "a1", "event_type": "job.retry", "count": 1'
    lines = [
        f'{{"event_id": "json-naive", "ts": "2025-01-02T09:00:00", {common}}}',
        f'{{"event_id": "json-zoned", "ts": "2025-01-02T09:00:00Z", {common}}}',
    ]
    _write(tmp_path / "in" / "events.jsonl", "\n".join(lines) + "\n")
    typed = {"event_id": ["pq-naive"], "account_id": ["a1"], "event_type": ["job.retry"], "count": [1]}
    stamps = pa.array([datetime(2025, 1, 2, 9)], pa.timestamp("us"))
    pq.write_table(pa.table({**typed, "ts": stamps}), tmp_path / "in" / "events.parquet")

    summary = ingest_path(store, tmp_path / "in")

    assert summary.quarantined.by_reason == {"naive_timestamp": 4}
    quarantined = _quarantined(store)
    assert set(quarantined) == {"csv-naive", "csv-naive-space", "json-naive", "pq-naive"}
    assert quarantined["csv-naive"][1].startswith("ts=2025-01-02T09:00:00 has no time zone")
    stored = {e["event_id"]: e["ts"] for e in _live(store)["events"]}
    assert stored == {
        "csv-day": datetime(2025, 1, 2, tzinfo=UTC),
        "csv-zoned": datetime(2025, 1, 2, 9, tzinfo=UTC),
        "json-zoned": datetime(2025, 1, 2, 9, tzinfo=UTC),
    }


def test_invalid_utf8_quarantines_its_rows_and_keeps_the_others(store: Store, tmp_path: Path) -> None:
    good = [f'u{i},a1,,2025-01-02T10:00:00Z,job.retry,"{{""count"": {i}}}"'.encode() for i in range(20)]
    broken = b'bad,a1,caf\xe9,2025-01-02T10:00:00Z,job.retry,"{""count"": 1}"'
    short = b"short,a1,\xff"
    lines = [EVENTS_HEADER.strip().encode(), *good[:10], broken, *good[10:], short]
    source = tmp_path / "events.csv"
    source.write_bytes(b"\n".join(lines) + b"\n")

    summary = ingest_path(store, source)

    assert summary.accepted["events"] == 20
    assert summary.quarantined.by_reason == {"invalid_utf8": 2}
    quarantine = sorted(_live(store)["quarantine"], key=lambda q: q["detail"])
    assert [(q["reason"], q["detail"]) for q in quarantine] == [
        ("invalid_utf8", "line 12: not UTF-8"),
        ("invalid_utf8", "line 23: not UTF-8"),
    ]
    assert json.loads(quarantine[0]["raw"]) == broken.decode("utf-8", "backslashreplace")
    assert {q["source"] for q in quarantine} == {str(source)}
    assert sorted(e["event_id"] for e in _live(store)["events"]) == sorted(f"u{i}" for i in range(20))


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.integers(-(2**53), 2**53).map(str),
            st.integers(-(10**6), 10**6).map(lambda i: f" {i}.0 "),
            st.sampled_from(["abc", "1.5", "--1", "1e400", "nan", "0x10"]),
            st.none(),
        ),
        max_size=40,
    )
)
def test_integer_coercion_flags_exactly_the_non_integers(texts: list[str | None]) -> None:
    def expected(text: str | None) -> int | None:
        try:
            return None if text is None else int(float(text)) if float(text).is_integer() else None
        except (ValueError, OverflowError):
            return None

    result = coerce(pa.array(texts, pa.string()), pa.int64())
    assert result.values.to_pylist() == [expected(t) for t in texts]
    assert result.bad.tolist() == [t is not None and expected(t) is None for t in texts]


def test_a_simulator_folder_is_read_but_its_truth_never_is(tmp_path: Path) -> None:
    sim = tmp_path / "sim"
    accounts = pa.table(
        {"account_id": ["a1", "a2"], "tier": ["enterprise", "mid_market"], "arr": [200_000.0, 50_000.0]}
    ).cast(pa.schema([ACCOUNT_SCHEMA.field(n) for n in ("account_id", "tier", "arr")]))
    pq.write_table(accounts, _parent(sim / "accounts.parquet"))
    owners = {"e1": "a1", "e2": "a2", "e3": "a1", "e4": "ghost"}
    for day, ids in (("2025-01-01", ["e1", "e2"]), ("2025-01-02", ["e3", "e4"])):
        rows = [_event(i, owners[i], day) for i in ids]
        pq.write_table(
            pa.Table.from_pylist(rows, schema=EVENT_SCHEMA),
            _parent(sim / "events" / f"date={day}" / "part-0.parquet"),
        )
    columns = ("intervention_id", "account_id", "action", "assignment", "propensity")
    interventions = [
        dict(zip(columns, row, strict=True))
        | {"ts": "2025-01-02T09:00:00Z", "owner": "csm-1", "channel": "call"}
        for row in (
            ("i1", "a1", "health_check_call", "targeted", None),
            ("i2", "a2", "save_offer", "random", None),
            ("i3", "a2", "free_pizza", "targeted", 0.5),
            ("i4", "a2", "save_offer", "random", 1.5),
        )
    ]
    pq.write_table(pa.Table.from_pylist(interventions), sim / "interventions.parquet")
    secret = pa.Table.from_pylist([_event("truth-1", "a1", "2025-01-01")], schema=EVENT_SCHEMA)
    pq.write_table(secret, _parent(sim / "truth" / "events.parquet"))
    _write(sim / "summary.json", "{}")

    store = Store(tmp_path / "store")
    summary = ingest_path(store, sim)

    assert summary.accepted == {"accounts": 2, "events": 3, "interventions": 1}
    assert (summary.files.read, summary.files.skipped) == (4, ["summary.json"])
    assert summary.quarantined.by_reason == {
        "missing_field": 1,
        "bad_category": 1,
        "value_out_of_range": 1,
        "missing_account": 1,
    }
    live = _live(store)
    assert "truth-1" not in {e["event_id"] for e in live["events"]}
    sources = {q["reason"]: q["source"] for q in live["quarantine"]}
    assert sources["missing_account"] == str(sim / "events" / "date=2025-01-02" / "part-0.parquet")
    assert sources["bad_category"] == str(sim / "interventions.parquet")
    assert [e["event_id"] for e in live["events"]] == ["e1", "e2", "e3"]


def test_accounts_are_a_snapshot_changed_rows_win(store: Store, tmp_path: Path) -> None:
    changed = (
        ACCOUNTS_CSV.replace("a2,Beta,trial,0,3", "a2,Beta,small_business,9000,5") + "a3,Gamma,trial,10,1\n"
    )
    summary = ingest_path(store, _write(tmp_path / "in2" / "accounts.csv", changed))

    assert summary.accepted["accounts"] == 2 and summary.duplicates["accounts"] == 1
    merge = store.history("accounts")[0]
    assert (merge.version, merge.operation) == (summary.versions["accounts"], "MERGE")
    assert (merge.metrics["num_target_rows_updated"], merge.metrics["num_target_rows_inserted"]) == (1, 1)
    accounts = {a["account_id"]: a for a in _live(store)["accounts"]}
    assert sorted(accounts) == ["a1", "a2", "a3"]
    assert (accounts["a2"]["tier"], accounts["a2"]["arr"], accounts["a2"]["seats_purchased"]) == (
        "small_business",
        9000.0,
        5,
    )
    earlier = store.read("accounts", ACCOUNT_SCHEMA, version=merge.version - 1).to_pylist()
    assert {a["account_id"]: a["tier"] for a in earlier} == {"a1": "enterprise", "a2": "trial"}


def test_coercion_finds_the_bad_values_and_keeps_the_good_ones() -> None:
    ints = coerce(pa.array(["5", " 7 ", "5.0", "abc", "2.5", None]), pa.int64())
    assert ints.values.to_pylist() == [5, 7, 5, None, None, None]
    assert ints.bad.tolist() == [False, False, False, True, True, False]
    stamps = coerce(
        pa.array(["2025-01-01T10:00:00+02:00", "2025-01-01", "2025-01-01T00:00:00.123456789Z", "noon"]), TS
    )
    assert stamps.values.to_pylist()[:3] == [
        datetime(2025, 1, 1, 8, tzinfo=UTC),
        datetime(2025, 1, 1, tzinfo=UTC),
        datetime(2025, 1, 1, 0, 0, 0, 123456, tzinfo=UTC),
    ]
    assert stamps.bad.tolist() == [False, False, False, True]
    nanos = coerce(pa.array([1_000_000_001_999], pa.timestamp("ns")), TS)
    assert nanos.values.to_pylist() == [datetime(1970, 1, 1, 0, 16, 40, 1, tzinfo=UTC)]
    flags = coerce(pa.array(["True", "0", "maybe"]), pa.bool_())
    assert flags.values.to_pylist() == [True, False, None] and flags.bad.tolist() == [False, False, True]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "retain", *args], capture_output=True, text=True, check=False
    )


def test_bad_input_gets_a_message_not_a_traceback(tmp_path: Path) -> None:
    corrupt = _write(tmp_path / "corrupt.parquet", "PAR1 this is not parquet")
    headless = _write(tmp_path / "events.csv", "event_id,account_id,when\ne1,a1,2025-01-01\n")
    cases = {
        "does not exist": ["ingest", str(tmp_path / "nowhere"), "--store", str(tmp_path / "s")],
        "cannot read": ["ingest", str(corrupt), "--store", str(tmp_path / "s")],
        "missing required column(s) ts, event_type": [
            "ingest",
            str(headless),
            "--store",
            str(tmp_path / "s"),
        ],
        "unknown adapter 'salesforce'": [
            "ingest",
            str(tmp_path),
            "--adapter",
            "salesforce",
            "--store",
            str(tmp_path / "s"),
        ],
    }
    for message, args in cases.items():
        done = _cli(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert message in " ".join(done.stderr.split()), done.stderr
        assert "Traceback" not in done.stderr
    assert set(Store(tmp_path / "s").versions().values()) == {None}, "no table was created"


def test_bad_input_raises_retain_error_in_process(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    with pytest.raises(RetainError, match="no data files"):
        ingest_path(store, _write(tmp_path / "empty" / "README.md", "nothing here").parent)
    with pytest.raises(RetainError, match="unsupported file type"):
        ingest_path(store, _write(tmp_path / "events.xlsx", "x"))
    with pytest.raises(RetainError, match="is a file, not a folder"):
        ingest_path(Store(_write(tmp_path / "file", "x")), tmp_path / "events.xlsx")


def test_a_real_simulation_ingests_cleanly(tmp_path: Path) -> None:
    simulate = pytest.importorskip("simulate")
    simulate.simulate_to(
        simulate.SimConfig(accounts=50, days=60, seed=1, start=date(2025, 1, 1)), tmp_path / "sim"
    )
    store = Store(tmp_path / "store")
    summary = ingest_path(store, tmp_path / "sim")
    assert summary.accepted["accounts"] == 50
    assert summary.accepted["events"] > 0
    assert summary.quarantined.total == 0, summary.quarantined
    assert not any("truth" in f for f in summary.files.skipped)
    assert ingest_path(store, tmp_path / "sim").accepted == {
        "accounts": 0,
        "events": 0,
        "interventions": 0,
    }


def test_a_simulated_holdout_reaches_the_store_as_holdout_rows(tmp_path: Path) -> None:
    """The simulator logs its holdout through the normal path: the store holds one holdout row per held-out
    account and quarter, with the share drawn as its propensity, exactly as the truth records them."""
    simulate = pytest.importorskip("simulate")
    config = simulate.SimConfig(accounts=300, days=120, seed=2, start=date(2025, 1, 1), holdout_share=0.1)
    simulate.simulate_to(config, tmp_path / "sim")
    store = Store(tmp_path / "store")

    summary = ingest_path(store, tmp_path / "sim")

    assert summary.quarantined.total == 0, summary.quarantined
    stored = store.read("interventions", INTERVENTION_SCHEMA).to_pandas()
    held = stored[stored.assignment == "holdout"]
    truth = pd.read_parquet(tmp_path / "sim" / "truth" / "holdouts.parquet")
    assert len(held) == len(truth) > 0
    assert (held.action == "holdout").all() and (held.propensity == config.holdout_share).all()
    assert sorted(zip(held.account_id, held.ts, strict=True)) == sorted(
        zip(truth.account_id, truth.start, strict=True)
    )
