"""An events table adopted where it lives: read in place through a column mapping instead of ingested.

A data team with years of events in a lake or a catalog should not copy them into the store first. The
store's events may instead come from a Delta or Parquet folder outside it, or (on Spark) a catalog table,
each contract field read from the source column the mapping names (or from a column of its own name), cast
to the contract's type; a field the source lacks reads as null. The rows are the source's own: not
validated or quarantined as ingest would, only those without an id, an account or a time left out.

The store's Delta log knows nothing of such a table, so a build counts its events per UTC day with one
grouped scan of its time column (`DAY_COUNTS`), against which the per-day roll-ups are kept or redone.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from core.contract import EVENT_SCHEMA
from core.errors import RetainError

if TYPE_CHECKING:
    # types only: the store's module imports this one, and the API's start should not pay for DuckDB
    import duckdb

#: the view an engine registers the source under, before the mapping makes the contract's `events` of it
SOURCE_VIEW = "adopted_source"
#: the fields without which a row cannot be placed: it is left out
REQUIRED = ("event_id", "account_id", "ts")
#: events per UTC day of the mapped `events` relation (both engines' SQL)
DAY_COUNTS = "SELECT CAST(ts AS DATE) AS day, count(*) AS n FROM events GROUP BY 1"
#: each contract type's name in either engine's SQL (times are UTC instants: a source's naive time is read
#: as UTC, both sessions being set to it)
SQL_TYPES: dict[str, dict[pa.DataType, str]] = {
    "duckdb": {
        pa.string(): "VARCHAR",
        pa.float64(): "DOUBLE",
        pa.int64(): "BIGINT",
        pa.bool_(): "BOOLEAN",
        pa.timestamp("us", "UTC"): "TIMESTAMPTZ",
    },
    "spark": {
        pa.string(): "STRING",
        pa.float64(): "DOUBLE",
        pa.int64(): "BIGINT",
        pa.bool_(): "BOOLEAN",
        pa.timestamp("us", "UTC"): "TIMESTAMP",
    },
}


def on_days(days: Collection[date]) -> str:
    """A filter of the mapped `events` to some UTC days (both engines' SQL)."""
    listed = ", ".join(f"DATE '{day.isoformat()}'" for day in sorted(days)) or "NULL"
    return f"CAST(ts AS DATE) IN ({listed})"


@dataclass(frozen=True)
class AdoptedEvents:
    """Where the events are read from (a folder path or URI, or a catalog table's name), and which source
    column holds each contract field the mapping names."""

    location: str
    columns: Mapping[str, str] = field(default_factory=dict, hash=False)

    def delta(self, version: int | None = None) -> DeltaTable | None:
        """The source at `version` (default: the latest) when it is a Delta table, else None."""
        try:
            return DeltaTable(self.location, version=version)
        except (TableNotFoundError, OSError):
            return None

    def version(self) -> int | None:
        """The latest version of a Delta source, what a build records reading; None for other sources."""
        found = self.delta()
        return None if found is None else found.version()

    def is_path(self) -> bool:
        """Whether the location names files (a folder, a file or a URI) rather than a catalog table; asked
        once `delta` found no Delta table there, so the files are Parquet."""
        return "://" in self.location or Path(self.location).exists()

    def contract_sql(self, available: Collection[str], engine: str) -> str:
        """The SELECT that reads `SOURCE_VIEW` (whose columns are `available`) as the contract's events."""
        types, quote = SQL_TYPES[engine], "`" if engine == "spark" else '"'
        missing = [f for f in REQUIRED if self.columns.get(f, f) not in available]
        if missing:
            named = ", ".join(f"{f} (column {self.columns.get(f, f)!r})" for f in missing)
            raise RetainError(f"the adopted events table {self.location} has no column for {named}")
        selected = []
        for column in EVENT_SCHEMA:
            source = self.columns.get(column.name, column.name)
            value = f"{quote}{source}{quote}" if source in available else "NULL"
            selected.append(f"CAST({value} AS {types[column.type]}) AS {column.name}")
        kept = " AND ".join(f"{quote}{self.columns.get(f, f)}{quote} IS NOT NULL" for f in REQUIRED)
        return f"SELECT {', '.join(selected)} FROM {SOURCE_VIEW} WHERE {kept}"

    def read_between(self, columns: list[str], since: datetime, until: datetime) -> pa.Table:
        """Some contract columns of the events from `since` to `until` (both included), in the contract's
        types: what a reader outside a feature build (the cockpit's timeline) asks of the store's events."""
        import duckdb  # deferred: see the TYPE_CHECKING import above

        with duckdb.connect() as con:
            con.execute("SET TimeZone = 'UTC'")
            self.duckdb_events(con).create_view("events")
            listed = ", ".join(f'"{c}"' for c in columns)
            query = f"SELECT {listed} FROM events WHERE ts >= ? AND ts <= ?"
            found = con.sql(query, params=[since, until]).to_arrow_table()
        return found.cast(pa.schema([EVENT_SCHEMA.field(c) for c in columns]))

    def duckdb_events(
        self, con: duckdb.DuckDBPyConnection, version: int | None = None
    ) -> duckdb.DuckDBPyRelation:
        """The contract's events of the source (a Delta one at `version`) as a DuckDB relation."""
        source = self._duckdb_source(con, version)
        source.create_view(SOURCE_VIEW, replace=True)
        return con.sql(self.contract_sql(source.columns, "duckdb"))

    def _duckdb_source(self, con: duckdb.DuckDBPyConnection, version: int | None) -> duckdb.DuckDBPyRelation:
        """The source's rows as DuckDB reads them in place: a Delta version's active files, or every
        Parquet file of a folder (partition columns from `key=value` folder names)."""
        found = self.delta(version)
        if found is not None:
            files = found.file_uris()
        elif self.is_path():
            path = Path(self.location)
            files = [str(path / "**" / "*.parquet")] if path.is_dir() else [str(path)]
        else:
            raise RetainError(
                f"the adopted events table {self.location} is neither a Delta nor a Parquet folder; a "
                "catalog table is read by Spark: set RETAIN_ENGINE=spark"
            )
        if not files:
            raise RetainError(f"the adopted events table {self.location} holds no files")
        return con.read_parquet(files, hive_partitioning=True, union_by_name=True)
