"""Publish one ingest: stage every validated batch on local disk, then write each table on its natural id.

Staging first means nothing reaches the store until the whole input was read and judged, so a file that
cannot be read fails the ingest with the store untouched, and memory holds one batch at a time. Each table
is then one Delta transaction. Events, interventions and the quarantine are facts: the ids the table lacks
are appended (the first row of an id the input repeats wins), chosen against the version the commit lands
on, or chosen again (`store.appends`); of events, only the staged days' partitions are read for their
ids, here or, on the Spark engine, on Spark's executors (`ingest.spark_dedup`). Quarantined rows are keyed
by a hash of the raw row, so the same bad file quarantines nothing new the second time. Accounts are a
snapshot keyed by account_id and MERGEd: the input's last row of an id wins and a changed row replaces the
live one. Re-running an ingest that was cut off between two tables' commits completes it: every write adds
only what is missing.
"""

from __future__ import annotations

import functools
import itertools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable

from core.contract import ACCOUNT_SCHEMA, EVENT_SCHEMA, INTERVENTION_SCHEMA, TS
from core.settings import SparkSettings
from ingest.spark_dedup import stored_among
from ingest.validate import Checked
from store.appends import append_sorted
from store.delta import DAY_PARTITION, Store, commit_note, commit_with_retry

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("quarantine_id", pa.string(), nullable=False),
        pa.field("ingest_id", pa.string(), nullable=False),
        pa.field("source", pa.string()),
        pa.field("table", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string()),
        pa.field("raw", pa.string()),
        pa.field("quarantined_at", TS, nullable=False),
    ]
)


@dataclass(frozen=True)
class Keyed:
    """How a table is merged: its natural id, its schema, and which of an id's input rows is kept."""

    key: str
    schema: pa.Schema
    #: accounts are snapshots (the input's last row of an id wins and may update the live row);
    #: the rest are facts (the first row wins and a live id is never touched)
    snapshot: bool = False


#: in commit order: accounts first, since events and interventions name them; the quarantine last
KEYED = {
    "accounts": Keyed("account_id", ACCOUNT_SCHEMA, snapshot=True),
    "interventions": Keyed("intervention_id", INTERVENTION_SCHEMA),
    "events": Keyed("event_id", EVENT_SCHEMA),
    "quarantine": Keyed("quarantine_id", QUARANTINE_SCHEMA),
}
#: the staging order column: which input row came first
SEQ = "_retain_seq"
#: DuckDB's working memory while deduplicating staged rows; beyond it, it spills to the staging folder
DEDUP_MEMORY = "512MB"
#: rows per batch handed from DuckDB to the writers
BATCH_ROWS = 200_000


@dataclass(frozen=True)
class Published:
    """What one ingest wrote: rows accepted and duplicates skipped per table, new quarantined rows."""

    accepted: dict[str, int]
    duplicates: dict[str, int]
    quarantined_new: int
    #: each table's version after its commit (absent: nothing to write)
    versions: dict[str, int]


@dataclass
class Staging:
    """Validated rows of one ingest, as Parquet files per table in a local folder, in input order."""

    folder: Path
    ingest_id: str
    now: datetime
    rows: Counter[str] = field(default_factory=Counter)
    #: the UTC days of the staged events: the only partitions of `events` the duplicate check reads
    event_days: set[date] = field(default_factory=set)
    _seq: Iterator[int] = field(default_factory=itertools.count)

    def add(self, checked: Checked) -> None:
        self.stage(checked.table, checked.valid)
        n = checked.rejected.num_rows
        if n:
            extra = {
                "ingest_id": pa.array([self.ingest_id] * n),
                "table": pa.array([checked.table] * n),
                "quarantined_at": pa.array([self.now] * n, TS),
            }
            columns = {
                f.name: extra[f.name] if f.name in extra else checked.rejected.column(f.name)
                for f in QUARANTINE_SCHEMA
            }
            self.stage("quarantine", pa.table(columns, schema=QUARANTINE_SCHEMA))

    def stage(self, table: str, rows: pa.Table) -> None:
        """Rows in the table's contract schema, in input order after those staged before."""
        if not rows.num_rows:
            return
        start = self.rows[table]
        self.rows[table] += rows.num_rows
        if table == "events":
            self.event_days.update(pc.unique(event_day(rows.column("ts"))).to_pylist())
        ordered = rows.append_column(SEQ, pa.array(range(start, start + rows.num_rows), pa.int64()))
        folder = self.folder / table
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(ordered, folder / f"{next(self._seq):06d}.parquet")


@dataclass(frozen=True)
class Dedup:
    """Where one ingest's staged rows meet the store: DuckDB deduplicates them (spilling to the staging
    folder), and finds the ids a table already holds itself, or has Spark's executors find them."""

    con: duckdb.DuckDBPyConnection
    #: set: the stored ids are joined with the staged ones on Spark, and only those found come back
    spark: SparkSettings | None
    #: the staged events' UTC days (sorted): the partitions of `events` the lookup reads
    event_days: list[date]


def publish(store: Store, staging: Staging, note: str, spark: SparkSettings | None = None) -> Published:
    """Write every staged table into the store, one Delta transaction each, in `KEYED` order; with `spark`,
    the facts' duplicate check runs on that Spark session's executors."""
    accepted: dict[str, int] = {}
    versions: dict[str, int] = {}
    with duckdb.connect(config={"memory_limit": DEDUP_MEMORY, "threads": 2}) as con:
        con.execute(f"SET temp_directory = '{staging.folder / '.spill'}'")
        dedup = Dedup(con, spark, sorted(staging.event_days))
        for table, keyed in KEYED.items():
            if not staging.rows[table]:
                accepted[table] = 0
                continue
            write = _merge if keyed.snapshot else _insert_new
            attempt = functools.partial(write, store, dedup, staging.folder / table, table, keyed, note)
            accepted[table], versions[table] = commit_with_retry(table, attempt)
    quarantined_new = accepted.pop("quarantine")
    duplicates = {table: staging.rows[table] - n for table, n in accepted.items()}
    return Published(accepted, duplicates, quarantined_new, versions)


def _staged(con: duckdb.DuckDBPyConnection, folder: Path, keyed: Keyed) -> duckdb.DuckDBPyRelation:
    """The staged rows, one per id: the first (facts) or the last (snapshots) in input order."""
    order = "DESC" if keyed.snapshot else "ASC"
    columns = ", ".join(f'"{name}"' for name in keyed.schema.names)
    return con.sql(
        f"SELECT {columns} FROM read_parquet('{folder}/*.parquet') "
        f'QUALIFY row_number() OVER (PARTITION BY "{keyed.key}" ORDER BY {SEQ} {order}) = 1'
    )


def _insert_new(
    store: Store, dedup: Dedup, folder: Path, table: str, keyed: Keyed, note: str
) -> tuple[int, int]:
    """Append the staged rows whose id the table lacks, sorted by time (so by event day), in one commit on
    the version they were chosen against; rows inserted and the table's new version."""
    target = store.create(table, stored_schema(table, keyed.schema))
    staged = _staged(dedup.con, folder, keyed)
    known = _known(store, dedup, target, table, staged, keyed)
    fresh = staged if known is None else staged.join(known, keyed.key, how="anti")
    ordered = fresh.order('"ts"') if "ts" in keyed.schema.names else fresh
    rows = _stored(ordered.to_arrow_reader(BATCH_ROWS), table, keyed.schema)
    appended = append_sorted(store, table, target, rows, note)
    return appended.rows, appended.version


def _known(
    store: Store, dedup: Dedup, target: DeltaTable, table: str, staged: duckdb.DuckDBPyRelation, keyed: Keyed
) -> duckdb.DuckDBPyRelation | None:
    """The ids version `target` holds that are also staged (None: it holds no files). Of events, only the
    staged events' days are read (their partitions; the rest of history is never opened): an event's id
    is looked for on its own UTC day, so an id sent again with a time on another day would be a second
    row.

    A semi join hashes the staged ids (a week's increment) and streams the stored ones past them;
    anti-joining the staged rows against all stored ids would hash every id the table holds, which
    outgrows `DEDUP_MEMORY` on a year of events. On Spark the same join runs on the executors, and only
    the ids found (at most the input's) come back."""
    key, days = keyed.key, dedup.event_days if table == "events" else None
    ids = staged.select(f'"{key}"')
    if dedup.spark is not None:
        stored = stored_schema(table, keyed.schema)
        read = pa.schema([stored.field(n) for n in ([key] if days is None else [key, DAY_PARTITION])])
        found = stored_among(dedup.spark, store.uri(table), target, read, ids.to_arrow_table(), days)
        return dedup.con.from_arrow(found).set_alias("known")
    stored = store.relation(dedup.con, target, [key], days)
    if stored is None:
        return None
    return stored.join(ids.set_alias("staged"), key, how="semi").set_alias("known")


def stored_schema(table: str, schema: pa.Schema) -> pa.Schema:
    """The table's stored schema: the contract's, plus the partition column of events."""
    return schema.append(pa.field(DAY_PARTITION, pa.date32())) if table == "events" else schema


def event_day(ts: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """An event's UTC day, its partition of the events table."""
    return pc.cast(ts, pa.date32())


def _stored(rows: pa.RecordBatchReader, table: str, schema: pa.Schema) -> pa.RecordBatchReader:
    """Rows in the table's stored schema (events gain their UTC day)."""
    stored = stored_schema(table, schema)

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in rows:
            batch = batch.cast(schema)
            if table == "events":
                day = event_day(batch.column("ts"))
                yield pa.RecordBatch.from_arrays([*batch.columns, day], schema=stored)
            else:
                yield batch

    return pa.RecordBatchReader.from_batches(stored, batches())


def _merge(store: Store, dedup: Dedup, folder: Path, table: str, keyed: Keyed, note: str) -> tuple[int, int]:
    """MERGE a snapshot table (accounts, small): rows inserted or changed, and the table's new version."""
    source = _stored(_staged(dedup.con, folder, keyed).to_arrow_reader(BATCH_ROWS), table, keyed.schema)
    target = store.create(table, source.schema)
    key = keyed.key
    merge = target.merge(
        source=source,
        predicate=f't."{key}" = s."{key}"',
        source_alias="s",
        target_alias="t",
        streamed_exec=True,
        commit_properties=commit_note(note),
    )
    if keyed.snapshot:
        changed = " OR ".join(f'(s."{c}" IS DISTINCT FROM t."{c}")' for c in keyed.schema.names if c != key)
        merge = merge.when_matched_update_all(predicate=changed)
    metrics = merge.when_not_matched_insert_all().execute()
    written = int(metrics["num_target_rows_inserted"]) + int(metrics["num_target_rows_updated"])
    return written, target.version()
