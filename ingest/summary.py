"""What one ingest did, as the CLI and the Python API hand it to a person: typed, JSON-able."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Quarantined:
    """Rows that failed the contract: all of this input's, and those the quarantine had not held yet."""

    total: int
    new: int
    by_reason: dict[str, int]
    by_table: dict[str, int]


@dataclass(frozen=True)
class FilesRead:
    read: int
    #: files under the input folder that were not data (truth/, hidden files, other suffixes)
    skipped: list[str]


@dataclass(frozen=True)
class AdaptedTable:
    """One source file of an adapter: what it held, what the mapping kept, and what validation refused."""

    source: str
    source_rows: int
    mapped: int
    rejected: dict[str, int]
    produced: dict[str, int]
    unmapped_columns: dict[str, str]
    quarantined: dict[str, int]


@dataclass(frozen=True)
class AdapterReport:
    name: str
    tables: dict[str, AdaptedTable]
    notes: list[str]

    @staticmethod
    def of(report: dict[str, Any], quarantined: dict[str, dict[str, int]]) -> AdapterReport:
        """The adapter's own report, with what validation quarantined of each source file's rows."""
        tables = {
            name: AdaptedTable(**entry, quarantined=quarantined[entry["source"]])
            for name, entry in report["tables"].items()
        }
        return AdapterReport(name=report["name"], tables=tables, notes=list(report["notes"]))


@dataclass(frozen=True)
class SqlTableRead:
    """One contract table read from a database: its source, the rows read, and its watermark (the last
    "ts / id" read) before and after; a table read whole has none."""

    source: str
    rows_read: int
    incremental: bool
    watermark_before: str | None
    watermark_after: str | None


@dataclass(frozen=True)
class SqlRead:
    """What an ingest from a database read, per contract table, and the default tables it lacks."""

    #: the database's URL, without its password
    database: str
    rows_read: int
    tables: dict[str, SqlTableRead]
    skipped: list[str]


@dataclass(frozen=True)
class IngestSummary:
    """Rows accepted and duplicates skipped per table, what went to quarantine and why."""

    ingest_id: str
    source: str
    accepted: dict[str, int]
    duplicates: dict[str, int]
    quarantined: Quarantined
    files: FilesRead
    ignored_columns: list[str]
    #: the store's folder, or its tables' URI
    store: str
    #: each table's version after this ingest's commit (absent: nothing written to it)
    versions: dict[str, int]
    #: with a source adapter: how its files were mapped
    adapter: AdapterReport | None = None
    #: from a database: what each table read and how far its watermark moved
    sql: SqlRead | None = None
