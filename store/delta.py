"""The store: a deployment's tables as Delta Lake tables, and a local folder for what stays on this machine.

Every table is a Delta table (delta-rs, no JVM) under `lake`: a local folder by default, or an object-store
URI (`s3://`, `gs://`, `az://`, credentials from the environment). A write is a Delta transaction: its data
files become visible only when its commit lands, so a crash mid-write leaves the previous version, and two
writers that race are told by a commit conflict, which `commit_with_retry` answers by running the whole
write again against the new version. Every version stays readable (time travel) until `compact` vacuums
files older than the retention.

`root` is always local: the Feast repo, the API keys, the default SQLite decision log and MLflow live there.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from core.errors import RetainError
from store.adopted_events import AdoptedEvents

if TYPE_CHECKING:
    # types only: importing pyarrow.dataset takes half a second, which every CLI start would pay
    import duckdb
    import pyarrow.dataset as ds

TABLES = (
    "accounts",
    "events",
    "interventions",
    "quarantine",
    "event_rollups",
    "features",
    "scores",
    "plans",
    "gauges",
)
#: events are read by date range and grow without bound: one folder per UTC event day; so do the feature
#: build's per-day roll-ups of them, replaced a day at a time
#: the partition column of the tables split by UTC day
DAY_PARTITION = "event_date"
PARTITIONS: dict[str, list[str]] = {"events": [DAY_PARTITION], "event_rollups": [DAY_PARTITION]}
OBJECT_STORE_SCHEMES = ("s3://", "s3a://", "gs://", "gcs://", "az://", "abfs://", "abfss://")
#: a racing writer is retried this many times, with a jittered back-off, before the caller is told
COMMIT_ATTEMPTS = 8
#: vacuum keeps files a reader of the last week may still need (Delta's own default)
DEFAULT_RETENTION_HOURS = 168
#: what marks a folder as a store of the earlier layout (Parquet files made live by a manifest)
OLD_MANIFEST = "manifest.json"
#: the commit metadata key that says which Retain step wrote a version, and what it read
METADATA_KEY = "retain"
#: the commit metadata key for the rows a commit of Retain's own files added (delta-rs records no metrics
#: for a transaction of add actions)
ROWS_KEY = "retain.rows"

T = TypeVar("T")


def is_object_store(location: str | Path) -> bool:
    return str(location).startswith(OBJECT_STORE_SCHEMES)


class StoreConflict(RetainError):
    """Other writers kept committing to a table until the retries ran out."""


@dataclass(frozen=True)
class Commit:
    """One version of a table: when, by which operation, and what Retain said of it."""

    table: str
    version: int
    at: datetime
    operation: str
    #: the Retain step and the input versions it recorded (empty for writes by other tools)
    retain: str | None
    metrics: dict[str, int]


@dataclass(frozen=True)
class Compacted:
    """What `compact` did to one table."""

    table: str
    version_before: int
    version_after: int
    files_before: int
    files_after: int
    files_vacuumed: int


@dataclass(frozen=True)
class Store:
    #: local state: Feast repo, API keys, the default decision log and MLflow
    root: Path
    #: where the Delta tables live; default: `root/lake`
    lake_uri: str | None = None
    #: an events table read in place of the store's own (`store.adopted_events`); None: the store's
    events_source: AdoptedEvents | None = None

    @classmethod
    def at(cls, location: str | Path, home: Path, events_source: AdoptedEvents | None = None) -> Store:
        """A folder holds everything; an object-store URI holds the tables, with local state in `home`."""
        if is_object_store(location):
            return cls(root=home, lake_uri=str(location).rstrip("/"), events_source=events_source)
        return cls(root=Path(location), events_source=events_source)

    def holds_events(self) -> bool:
        """Whether there are events to read: an adopted table, or the store's own written at least once."""
        return self.events_source is not None or self.version("events") is not None

    @property
    def lake(self) -> str:
        return self.lake_uri if self.lake_uri is not None else str((self.root / "lake").resolve())

    @property
    def location(self) -> str:
        """How to name the store to a person: its folder, or its tables' URI."""
        return self.lake_uri if self.lake_uri is not None else str(self.root)

    def uri(self, table: str) -> str:
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}; tables are {', '.join(TABLES)}")
        return f"{self.lake}/{table}"

    @property
    def feast_dir(self) -> Path:
        return self.root / "feast"

    @property
    def serving_dir(self) -> Path:
        """The API's own state: hashed API keys and the default SQLite decision log."""
        return self.root / "serving"

    def delta(self, table: str, version: int | None = None) -> DeltaTable | None:
        """The table at `version` (default: the latest), or None when nothing was ever written to it."""
        try:
            return DeltaTable(self.uri(table), version=version)
        except TableNotFoundError:
            return None
        except DeltaError as e:
            if version is None:
                raise
            raise RetainError(f"table {table} has no version {version} in {self.location}") from e

    def create(self, table: str, schema: pa.Schema) -> DeltaTable:
        """The table, created empty with `schema` if it does not exist yet. Two writers racing to create
        it both get the one table, so neither's later MERGE can miss the other's rows."""
        return DeltaTable.create(self.uri(table), schema, mode="ignore", partition_by=PARTITIONS.get(table))

    def version(self, table: str) -> int | None:
        found = self.delta(table)
        return None if found is None else found.version()

    def versions(self, tables: tuple[str, ...] = TABLES) -> dict[str, int | None]:
        """Each table's latest version (None: never written): what a run read, for reproducing it."""
        return {table: self.version(table) for table in tables}

    def dataset(self, table: str, version: int | None = None) -> ds.Dataset | None:
        """The table's active files as an Arrow dataset, or None when nothing was written yet."""
        found = self.delta(table, version)
        return None if found is None else self._files(found, self.uri(table))

    def _files(self, found: DeltaTable, uri: str) -> ds.Dataset:
        """A version's active files (`found`, the table at `uri`) read by Arrow's own filesystem: local, or
        the object store's (S3, GCS, Azure's abfs://), configured from the environment as delta-rs is.

        delta-rs's Python filesystem handler can abort the interpreter at exit (deltalake 1.6.6), so it
        reads only what Arrow has no filesystem for (`az://`, `s3a://`).
        """
        import pyarrow.dataset as ds  # deferred: see the TYPE_CHECKING import above
        import pyarrow.fs as pafs

        files, base, filesystem = found.file_uris(), uri, None
        if self.lake_uri is not None:
            try:
                filesystem, base = pafs.FileSystem.from_uri(uri)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return found.to_pyarrow_dataset()
            files = [f"{base}{file.removeprefix(uri)}" for file in files]
        schema = pa.schema(found.schema().to_arrow())
        partitions = found.metadata().partition_columns
        return ds.dataset(
            files,
            schema=schema,
            format="parquet",
            filesystem=filesystem,
            partitioning=ds.partitioning(pa.schema([schema.field(c) for c in partitions]), flavor="hive")
            if partitions
            else None,
            partition_base_dir=base,
        )

    def relation(
        self,
        con: duckdb.DuckDBPyConnection,
        found: DeltaTable,
        columns: list[str],
        days: Sequence[date] | None = None,
    ) -> duckdb.DuckDBPyRelation | None:
        """`columns` of a version of a table (`found`) as a DuckDB relation, of only the `event_date`
        partitions of `days` when given (their files, listed from the log); None when it holds no files.

        DuckDB reads a local table's active Parquet files itself, a partition column from their folders. It
        never scans the Arrow dataset, because it pushes its string filters into Arrow as string_view
        literals, which Arrow 25 cannot compare with the string_view columns delta-rs's MERGE writes. An
        object-store table (DuckDB's httpfs extension is downloaded at run time, so not used) is read into
        Arrow first.
        """
        files = day_files(found, days)
        if not files:
            return None
        if self.lake_uri is None:
            read = con.read_parquet(files, hive_partitioning=True, union_by_name=True)
            return read.select(", ".join(f'"{c}"' for c in columns))
        import pyarrow.dataset as ds  # deferred: see the TYPE_CHECKING import above

        scan = None if days is None else ds.field(DAY_PARTITION).isin(list(days))
        dataset = self._files(found, found.table_uri.rstrip("/"))
        return con.from_arrow(dataset.to_table(columns=columns, filter=scan))

    def read(
        self,
        table: str,
        schema: pa.Schema,
        columns: list[str] | None = None,
        where: ds.Expression | None = None,
        version: int | None = None,
        scan: ds.Expression | None = None,
    ) -> pa.Table:
        """Rows of the table (optionally some columns, an old version) cast to `schema`'s types; an empty
        table of `schema` when nothing was written yet.

        `scan` is pushed into the file scan (partition folders, row-group statistics) and may only compare
        dates, times and numbers: delta-rs's MERGE writes strings as string_view, which Arrow 25 cannot
        compare in a scan. `where` may test anything; it runs on the rows read, once cast to `schema`.
        """
        wanted = schema if columns is None else pa.schema([schema.field(c) for c in columns])
        found = self.dataset(table, version)
        if found is None:
            return wanted.empty_table()
        if where is None:
            return found.to_table(columns=wanted.names, filter=scan).cast(wanted)
        rows = found.to_table(columns=schema.names, filter=scan).cast(schema)
        return rows.filter(where).select(wanted.names)

    def write(
        self,
        table: str,
        data: pa.Table | pa.RecordBatchReader,
        mode: Literal["append", "overwrite"],
        note: str,
        replace_where: str | None = None,
    ) -> int:
        """Append or overwrite (all rows, or those matching `replace_where`) in one transaction; the new
        version. `note` says which step wrote it and what it read; it is kept in the table's history."""
        uri, partitions, properties = self.uri(table), PARTITIONS.get(table), commit_note(note)
        if mode == "append":
            write_deltalake(uri, data, mode="append", partition_by=partitions, commit_properties=properties)
        else:
            write_deltalake(
                uri,
                data,
                mode="overwrite",
                predicate=replace_where,
                partition_by=partitions,
                # a rebuilt feature table may gain or lose columns; a partial overwrite keeps the schema,
                # adding a column a newer Retain writes (the rows written before read it as null)
                schema_mode="overwrite" if replace_where is None else "merge",
                commit_properties=properties,
            )
        version = self.version(table)
        assert version is not None
        return version

    def history(self, table: str, limit: int | None = None) -> list[Commit]:
        """Newest first."""
        found = self.delta(table)
        if found is None:
            return []
        return [_commit(table, entry) for entry in found.history(limit)]

    def compact(self, table: str, retention_hours: int = DEFAULT_RETENTION_HOURS) -> Compacted | None:
        """Small files into large ones (one optimize commit), then remove files no version younger than
        the retention needs. Readers of the current version never lose a file."""
        found = self.delta(table)
        if found is None:
            return None
        before, files_before = found.version(), len(found.file_uris())
        commit_with_retry(table, lambda: _optimize(self.uri(table)))
        vacuumed = DeltaTable(self.uri(table)).vacuum(
            retention_hours=retention_hours,
            dry_run=False,
            enforce_retention_duration=False,
            commit_properties=commit_note("compact: vacuum"),
        )
        after = DeltaTable(self.uri(table))
        return Compacted(table, before, after.version(), files_before, len(after.file_uris()), len(vacuumed))


def commit_with_retry(table: str, attempt: Callable[[], T]) -> T:
    """Run a whole read-then-write again when another writer committed first (Delta's optimistic
    concurrency); each attempt must rebuild its input, since it reads the table anew."""
    for tries in range(1, COMMIT_ATTEMPTS + 1):
        try:
            return attempt()
        except CommitFailedError as e:
            if tries == COMMIT_ATTEMPTS:
                raise StoreConflict(
                    f"table {table}: other writers committed first {tries} times in a row; try again ({e})"
                ) from e
            time.sleep(random.uniform(0.05, 0.2) * tries)
    raise AssertionError("unreachable")


def commit_note(note: str, rows: int | None = None, retries: int | None = None) -> CommitProperties:
    """Commit properties that keep `note` (and the `rows` added, when delta-rs cannot count them) in the
    table's history (`Commit.retain`, `Commit.metrics`); `retries`: delta-rs's own, default its default."""
    metadata = {METADATA_KEY: note} | ({} if rows is None else {ROWS_KEY: str(rows)})
    return CommitProperties(custom_metadata=metadata, max_commit_retries=retries)


def _optimize(uri: str) -> None:
    DeltaTable(uri).optimize.compact(commit_properties=commit_note("compact: optimize"))


def _commit(table: str, entry: dict[str, object]) -> Commit:
    metrics = entry.get("operationMetrics") or {}
    assert isinstance(metrics, dict)
    stamp = entry.get("timestamp")
    assert isinstance(stamp, int)
    note, rows = entry.get(METADATA_KEY), entry.get(ROWS_KEY)
    counted = {"num_added_rows": int(rows)} if isinstance(rows, str) and rows.isdigit() else {}
    return Commit(
        table=table,
        version=int(str(entry.get("version"))),
        at=datetime.fromtimestamp(stamp / 1000, UTC),
        operation=str(entry.get("operation")),
        retain=note if isinstance(note, str) else None,
        metrics={k: v for k, v in metrics.items() if isinstance(v, int)} | counted,
    )


def day_files(found: DeltaTable, days: Sequence[date] | None) -> list[str]:
    """The files of these days' `event_date` partitions in this version of a table (None: every file)."""
    if days is None:
        return found.file_uris()
    wanted = {day.isoformat() for day in days}
    actions = pa.table(found.get_add_actions(flatten=True)).select(["path", f"partition.{DAY_PARTITION}"])
    paths, dates = (actions.column(i).to_pylist() for i in range(2))
    base = found.table_uri.rstrip("/")
    return [f"{base}/{path}" for path, day in zip(paths, dates, strict=True) if day.isoformat() in wanted]
