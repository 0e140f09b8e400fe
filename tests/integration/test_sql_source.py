"""Ingest from a database (`retain ingest --from-sql URL`) on a real PostgreSQL: the simulator's tables read
as its files are, bad rows quarantined with the file path's reasons and every row counted, a second run
reading only the rows past the watermark, a column mapping, memory held to one batch, and a bad URL, an
unreachable database or a mapping naming what the database lacks said in one line with exit 2."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from psycopg.types.json import Jsonb
from typer.testing import CliRunner

from core.errors import RetainError
from experiments.benchmarks.sql_ingest import copy_table
from ingest import run
from ingest.column_mapping import default_mapping, read_column_mapping
from ingest.commit import KEYED
from ingest.run import IngestSummary, ingest_path, ingest_sql
from ingest.sql_source import SqlSource
from retain.cli import app, main
from simulate import SimConfig, simulate_to
from store.delta import Store

pytestmark = pytest.mark.service

PASSWORD = "s3cret-pw"
UNREACHABLE = f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/crm"


def _load(url: str, name: str, table: pa.Table) -> None:
    """`table` as a new PostgreSQL table `name`, its columns typed as the contract types them."""
    with psycopg.connect(url) as con:
        copy_table(con, name, table.schema, [table])


def _execute(url: str, *statements: str, rows: list[tuple[Any, ...]] | None = None) -> None:
    with psycopg.connect(url) as con:
        for statement in statements:
            if rows is not None and "%s" in statement:
                con.cursor().executemany(statement, rows)
            else:
                con.execute(statement)


def _counted(summary: IngestSummary) -> None:
    """Every row read is accounted for once per table: accepted, a duplicate, or quarantined."""
    assert summary.sql is not None
    for table, read in summary.sql.tables.items():
        kept = summary.accepted.get(table, 0) + summary.duplicates.get(table, 0)
        assert kept + summary.quarantined.by_table.get(table, 0) == read.rows_read, table


@pytest.fixture(scope="module")
def simulation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "simulation"
    simulate_to(SimConfig(accounts=40, days=60, seed=3, start=date(2025, 1, 1)), out, 1)
    return out


@pytest.fixture
def simulated_db(postgres_database: str, simulation: Path) -> str:
    """The simulator's three tables in PostgreSQL, under the contract's own names."""
    _load(postgres_database, "accounts", pq.read_table(simulation / "accounts.parquet"))
    _load(postgres_database, "interventions", pq.read_table(simulation / "interventions.parquet"))
    events = pq.read_table(simulation / "events").drop_columns(["date"])
    _load(postgres_database, "events", events)
    return postgres_database


def _stored(store: Store, table: str) -> list[dict[str, Any]]:
    keyed = KEYED[table]
    return sorted(store.read(table, keyed.schema).to_pylist(), key=lambda row: row[keyed.key])


def test_the_simulators_tables_ingest_from_a_database_as_its_files_do(
    simulated_db: str, simulation: Path, tmp_path: Path
) -> None:
    from_db = ingest_sql(Store(tmp_path / "db"), simulated_db)
    from_files = ingest_path(Store(tmp_path / "files"), simulation)

    assert from_db.sql is not None and from_db.sql.skipped == []
    assert from_db.accepted == from_files.accepted and from_db.accepted["events"] > 5_000
    assert from_db.quarantined.by_reason == from_files.quarantined.by_reason
    assert from_db.sql.rows_read == sum(from_files.accepted.values()) + from_files.quarantined.total
    _counted(from_db)
    for table in ("accounts", "interventions", "events"):
        assert _stored(Store(tmp_path / "db"), table) == _stored(Store(tmp_path / "files"), table), table
    events = from_db.sql.tables["events"]
    assert events.incremental and events.watermark_before is None and events.watermark_after is not None
    assert not from_db.sql.tables["accounts"].incremental


def test_a_second_run_reads_only_the_rows_past_the_watermark(simulated_db: str, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    first = ingest_sql(store, simulated_db)
    assert first.sql is not None
    accounts = first.sql.tables["accounts"].rows_read
    ids = [row["account_id"] for row in _stored(store, "accounts")[:2]]
    new = [
        (f"late-{i}", ids[i % 2], datetime(2025, 3, 5, 9, i, tzinfo=UTC), "job.retry", 2) for i in range(7)
    ]
    insert = 'INSERT INTO events (event_id, account_id, ts, event_type, "count") VALUES (%s, %s, %s, %s, %s)'
    _execute(simulated_db, insert, rows=new)

    second = ingest_sql(store, simulated_db)
    third = ingest_sql(store, simulated_db)

    assert second.sql is not None and third.sql is not None
    assert second.sql.tables["events"].rows_read == 7
    assert second.accepted["events"] == 7 and second.quarantined.total == 0
    assert second.sql.tables["events"].watermark_before == first.sql.tables["events"].watermark_after
    assert second.sql.tables["events"].watermark_after == "2025-03-05T09:06:00+00:00 / late-6"
    assert third.sql.tables["events"].rows_read == 0 and third.accepted["events"] == 0
    # accounts are a snapshot, read whole each run: the ingest's per-id write finds them unchanged
    assert second.sql.tables["accounts"].rows_read == accounts and second.accepted["accounts"] == 0
    _counted(second)


def test_a_table_larger_than_a_commit_is_committed_in_parts_and_a_crash_resumes_at_the_last(
    simulated_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = ingest_sql(Store(tmp_path / "whole"), simulated_db)
    crashed, parts = Store(tmp_path / "crashed"), Store(tmp_path / "parts")
    in_parts = ingest_sql(parts, simulated_db, batch_rows=500, commit_rows=1_000)
    real, calls = run._commit, []

    def fourth_fails(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 4:
            raise RetainError("the machine went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(run, "_commit", fourth_fails)
    with pytest.raises(RetainError, match="went away"):
        ingest_sql(crashed, simulated_db, batch_rows=500, commit_rows=1_000)
    monkeypatch.undo()
    committed = len(_stored(crashed, "events"))
    resumed = ingest_sql(crashed, simulated_db, batch_rows=500, commit_rows=1_000)

    assert whole.sql is not None and in_parts.sql is not None and resumed.sql is not None
    assert in_parts.accepted == whole.accepted and in_parts.quarantined == whole.quarantined
    assert in_parts.sql.tables == whole.sql.tables
    notes = [c.retain or "" for c in parts.history("events") if c.operation != "CREATE TABLE"]
    assert len(notes) >= 5 and all(in_parts.ingest_id in note for note in notes)
    assert 0 < committed < whole.accepted["events"]
    assert resumed.sql.tables["events"].rows_read == whole.accepted["events"] - committed
    for table in ("accounts", "interventions", "events"):
        assert _stored(crashed, table) == _stored(parts, table) == _stored(Store(tmp_path / "whole"), table)


#: events as a source system might hold them: its own names, text times, properties as JSON
RAW_EVENTS = """CREATE TABLE raw_events (
    id TEXT, org TEXT, occurred_at TEXT, kind TEXT, payload JSONB, ts TEXT, extra TEXT)"""
GOOD = [
    ("g1", "c1", "2025-01-02T10:00:00Z", "feature.used", {"feature": "reports", "count": 3}),
    ("g2", "c2", "2025-01-02T12:00:00+02:00", "ticket.created", {"ticket_id": "t1", "priority": "P2"}),
    ("g3", "c1", "2025-01-03T08:00:00Z", "user.session", {"duration_min": 12.5}),
]
BAD = {
    "bad_timestamp": ("b1", "c1", "yesterday", "feature.used", {"feature": "x", "count": 1}),
    "unknown_event_type": ("b2", "c1", "2025-01-02T00:00:00Z", "coffee.brewed", None),
    "missing_account": ("b3", "ghost", "2025-01-02T00:00:00Z", "feature.used", {"feature": "x", "count": 1}),
    "wrong_property_type": (
        "b4",
        "c1",
        "2025-01-02T00:00:00Z",
        "feature.used",
        {"feature": "x", "count": "abc"},
    ),
    "missing_field": ("b5", "c1", None, "feature.used", {"feature": "x", "count": 1}),
    "bad_category": (
        "b6",
        "c2",
        "2025-01-02T00:00:00Z",
        "ticket.created",
        {"ticket_id": "t", "priority": "P9"},
    ),
    "value_out_of_range": ("b7", "c2", "2025-01-02T00:00:00Z", "survey.response", {"nps": 11}),
    "timestamp_out_of_range": ("b8", "c2", "9999-12-31T00:00:00Z", "survey.response", {"nps": 3}),
}
MAPPING = """\
accounts:
  query: >-
    SELECT id, label AS name, plan_tier, arr FROM crm.customers WHERE id <> 'gone'
  columns:
    account_id: id
    tier: plan_tier
events:
  table: raw_events
  columns:
    event_id: id
    account_id: org
    ts: occurred_at
    event_type: kind
    properties: payload
interventions: null
"""


@pytest.fixture
def source_db(postgres_database: str) -> str:
    """A CRM's customers and a product's events, under their own names, good and bad rows."""
    _execute(
        postgres_database,
        "CREATE SCHEMA crm",
        "CREATE TABLE crm.customers (id TEXT, label TEXT, plan_tier TEXT, arr NUMERIC(12, 2))",
        "INSERT INTO crm.customers VALUES ('c1', 'Acme', 'enterprise', 150000.00), "
        "('c2', 'Beta', 'trial', 0), ('gone', 'Old', 'trial', 0)",
        RAW_EVENTS,
    )
    rows = [(*row[:4], None if row[4] is None else Jsonb(row[4]), "not the ts", "x") for row in GOOD]
    rows += [(*row[:4], None if row[4] is None else Jsonb(row[4]), "not the ts", "x") for row in BAD.values()]
    _execute(postgres_database, "INSERT INTO raw_events VALUES (%s, %s, %s, %s, %s, %s, %s)", rows=rows)
    return postgres_database


def test_a_mapped_source_quarantines_bad_rows_with_the_file_reasons_and_counts_every_row(
    source_db: str, tmp_path: Path
) -> None:
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(MAPPING)
    store = Store(tmp_path / "store")

    first = ingest_sql(store, source_db, mapping)
    again = ingest_sql(store, source_db, mapping)

    assert first.sql is not None and again.sql is not None
    assert set(first.sql.tables) == {"accounts", "events"}
    assert first.sql.tables["accounts"].source == "accounts query"
    assert first.sql.tables["events"].rows_read == len(GOOD) + len(BAD)
    assert first.accepted == {"accounts": 2, "interventions": 0, "events": len(GOOD)}
    assert first.quarantined.by_reason == dict.fromkeys(BAD, 1)
    assert first.quarantined.by_table == {"accounts": 0, "events": len(BAD)}
    assert first.ignored_columns == ["extra"]  # the source's own `ts` gives way to the mapped one
    _counted(first)
    quarantined = store.read("quarantine", KEYED["quarantine"].schema).to_pylist()
    assert {json.loads(row["raw"])["event_id"] for row in quarantined} == {row[0] for row in BAD.values()}
    assert {row["source"] for row in quarantined} == {f"{source_db}#raw_events"}
    # the watermark is the last good time: not "yesterday", nor the 9999 placeholder, which sort after it
    assert first.sql.tables["events"].watermark_after == "2025-01-03T08:00:00Z / g3"
    # rows that cannot bound the read (no time, an unreadable or a future one) are read again, not anew
    assert again.sql.tables["events"].rows_read == 3
    assert again.quarantined.total == 3 and again.quarantined.new == 0 and again.accepted["events"] == 0
    _counted(again)


def _status_kib(field: str) -> int:
    return int(Path("/proc/self/status").read_text().split(f"{field}:")[1].split()[0])


def _peak(url: str, rows: int, batch_rows: int) -> tuple[int, int]:
    """Reading `rows` events in batches: the most rows one frame held, and how far the process's resident
    memory peaked above where it began (KiB; Arrow's buffers and the driver's included)."""
    with SqlSource(url, default_mapping(), {}, batch_rows) as source:
        try:
            Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from here
        except OSError:
            pytest.skip("the peak resident memory cannot be reset here (Linux's /proc/self/clear_refs)")
        start, held = _status_kib("VmRSS"), 0
        for frame in source.frames():
            held = max(held, frame.data.num_rows if frame.table == "events" else 0)
        peak = _status_kib("VmHWM") - start
    assert source.reads["events"].rows == rows
    return held, peak


@pytest.fixture
def two_sizes(postgres_database: str) -> Iterator[tuple[str, str]]:
    """Two databases of wide events, 20,000 rows and ten times as many (each with its 30 properties)."""
    admin = postgres_database.rsplit("/", 1)[0] + "/postgres"
    large = f"{postgres_database}_large"
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{large.rsplit("/", 1)[1]}"')
    try:
        for url, n in ((postgres_database, 20_000), (large, 200_000)):
            _execute(
                url,
                "CREATE TABLE accounts (account_id TEXT, tier TEXT)",
                "CREATE TABLE events AS SELECT 'e' || i AS event_id, 'a' || (i % 500) AS account_id, "
                "'u' || (i % 97) AS user_id, TIMESTAMPTZ '2025-01-01' + i * INTERVAL '1 second' AS ts, "
                "'feature.used' AS event_type, 'reports-' || (i % 13) AS feature, i % 7 AS count, "
                + ", ".join(f"NULL::TEXT AS p{k}" for k in range(28))
                + f" FROM generate_series(1, {n}) AS i",
            )
        yield postgres_database, large
    finally:
        with psycopg.connect(admin, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{large.rsplit("/", 1)[1]}" WITH (FORCE)')


#: rows per batch in the memory test: 10 batches of the small table, 100 of the large one
BATCH = 2_000
#: what the large table's peak may exceed the small one's by (KiB): allocator noise, a fraction of the
#: 350 MB the large table takes read whole
SLACK_KIB = 16 * 1024


def test_memory_holds_one_batch_however_many_rows_the_table_has(two_sizes: tuple[str, str]) -> None:
    small, large = two_sizes
    _peak(small, 20_000, BATCH)  # warm: first-use imports and caches are no batch's

    held_small, peak_small = _peak(small, 20_000, BATCH)
    held_large, peak_large = _peak(large, 200_000, BATCH)
    _, whole = _peak(large, 200_000, 200_000)

    assert held_small == held_large == BATCH
    assert peak_large < 1.5 * peak_small + SLACK_KIB, (peak_small, peak_large)
    # the measure sees a table held at once, as in Python rows, by the driver, or as one frame
    assert whole > 10 * SLACK_KIB, whole


def test_a_mapping_naming_an_unknown_contract_field_is_refused_at_its_line(tmp_path: Path) -> None:
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        "events:\n  table: raw_events\n  columns:\n    event_id: id\n    timestamp: occurred_at\n"
    )

    with pytest.raises(Exception, match=r"mapping.yaml, line 5: 'timestamp' is not a field of the contract"):
        read_column_mapping(mapping)


def _refused(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    """`retain ARGS`, which must exit 2 with one error line that never shows the password."""
    monkeypatch.setattr(sys, "argv", ["retain", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert PASSWORD not in err and "Traceback" not in err and len(errors) == 1, err
    return errors[0]


def test_the_cli_ingests_a_database_and_says_what_it_read(simulated_db: str, tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    said = CliRunner().invoke(app, ["ingest", "--from-sql", simulated_db, "--store", store])
    as_json = CliRunner().invoke(app, ["ingest", "--from-sql", simulated_db, "--store", store, "--json"])

    assert said.exit_code == 0, said.output
    assert f"from {simulated_db}" in said.stdout and "events from events" in said.stdout
    assert "watermark now" in said.stdout
    result = json.loads(as_json.stdout)
    assert result["sql"]["tables"]["events"]["rows_read"] == 0
    assert "watermark stays" not in said.stdout


def test_bad_invocations_and_unreachable_databases_exit_2_in_one_line(
    source_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = ["--store", str(tmp_path / "store")]
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("events:\n  table: raw_events\n  columns:\n    ts: happened_at\n")

    assert "not both" in _refused(
        ["ingest", str(tmp_path), "--from-sql", source_db, *store], monkeypatch, capsys
    )
    assert "--from-sql URL" in _refused(["ingest", *store], monkeypatch, capsys)
    unreachable = _refused(["ingest", "--from-sql", UNREACHABLE, *store], monkeypatch, capsys)
    assert "cannot reach the database postgresql://postgres:***@127.0.0.1:1/crm" in unreachable
    assert "no driver" in _refused(
        ["ingest", "--from-sql", "snowflake://u@acct/db", *store], monkeypatch, capsys
    )
    assert "is not a database URL" in _refused(
        ["ingest", "--from-sql", "nonsense", *store], monkeypatch, capsys
    )
    missing = _refused(
        ["ingest", "--from-sql", source_db, "--mapping", str(mapping), *store], monkeypatch, capsys
    )
    assert "mapping.yaml, line 4: events.columns.ts: the source has no column 'happened_at'" in missing
    assert not (tmp_path / "store" / "lake" / "events").exists()
