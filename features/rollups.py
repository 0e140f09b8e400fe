"""Per-day roll-ups of the events, kept in the store so a feature build scans only the days it has not seen.

The stages that scan raw events (`ROLLUPS`: sparse_events, daily, user_days, feature_days) each group
within one UTC day, so a day's rows depend on that day's events alone. A build into the store keeps them
in one Delta table, `event_rollups`, partitioned by `event_date`, a `rollup` column naming the stage;
the other stages read them back in the stage's own columns (`read_back`). Beside each day's rows a
`source` row records how many events they were made from and the roll-up SQL's digest (`recipe`).

A day is rolled up again when the events table's count for it (summed from the Delta log's per-file
`numRecords`: no file is read) differs from the count its source row recorded: events are written only
as ids the table lacks, so a late event raises its day's count, while a compaction, which rewrites files,
leaves it. A day gone from the events loses its rows, and a changed roll-up SQL rolls every day again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError

from core.contract import EVENT_SCHEMA
from features.definitions import ROLLUPS, WINDOWED, sql
from store.delta import Store

TABLE = "event_rollups"
ROLLUP_STEP = "features rollup"
#: the `rollup` of the row that says what a day's roll-ups were made from
SOURCE = "source"
#: the column the stages name their day by; the table keeps it as its partition, `event_date`
DAY = "day"


@dataclass(frozen=True)
class StoredRollups:
    """The roll-ups a build reads: the stored table's version and the days read from it, and the days
    rolled up from the events instead (None: every day)."""

    table: DeltaTable | None
    kept: list[date]
    fresh: list[date] | None


@cache
def stage_schemas() -> dict[str, pa.Schema]:
    """Each roll-up stage's columns and types, as DuckDB makes them (the stage SQL over no events)."""
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(sql("macros"))
        con.from_arrow(EVENT_SCHEMA.empty_table()).create_view("events")
        return {stage: con.sql(sql(stage)).to_arrow_table().schema for stage in ROLLUPS}


@cache
def table_schema() -> pa.Schema:
    """The table's columns: the stage's name and day, every stage's columns once, and the source row's."""
    fields: dict[str, pa.Field] = {}
    for schema in stage_schemas().values():
        for field in schema:
            if field.name != DAY:
                fields.setdefault(field.name, field.with_nullable(True))
    return pa.schema(
        [
            pa.field("rollup", pa.string(), nullable=False),
            pa.field("event_date", pa.date32(), nullable=False),
            *fields.values(),
            #: on a source row: the events the day's roll-ups were made from, and the recipe's digest
            pa.field("events", pa.int64()),
            pa.field("recipe", pa.string()),
        ]
    )


@cache
def recipe() -> str:
    """A digest of the SQL the roll-ups are made by: a changed definition rolls every day again."""
    text = "\n".join([sql("macros"), *(sql(stage) for stage in ROLLUPS)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_back(stage: str, since: date | None = None) -> str:
    """A SELECT of one stage's rows from the relation `event_rollups`, in the stage's own columns; of a
    roll-up read only through the lookback (`WINDOWED`), only the days from `since` on (the cutoffs'
    `window_start`), which no earlier day's row can change."""
    columns = ", ".join(
        f"event_date AS {DAY}" if name == DAY else f'"{name}"' for name in stage_schemas()[stage].names
    )
    days = f" AND event_date >= DATE '{since.isoformat()}'" if since and stage in WINDOWED else ""
    return f"SELECT {columns} FROM event_rollups WHERE rollup = '{stage}'{days}"


def day_counts(events: DeltaTable | None) -> dict[date, int | None]:
    """Events per `event_date` in this version of the events table, from the Delta log's file statistics
    (None for a day with a file that has none: it is rolled up on every build)."""
    if events is None:
        return {}
    actions = pa.table(events.get_add_actions(flatten=True)).select(["num_records", "partition.event_date"])
    counts: dict[date, int | None] = {}
    for rows, day in zip(*(actions.column(i).to_pylist() for i in range(2)), strict=True):
        known = counts.get(day, 0)
        counts[day] = None if rows is None or known is None else known + rows
    return counts


def rolled_counts(store: Store, rollups: DeltaTable | None) -> dict[date, tuple[int | None, str | None]]:
    """Per day the stored roll-ups hold: the events they were made from and the recipe."""
    if rollups is None:
        return {}
    wanted = pa.schema([table_schema().field(c) for c in ("event_date", "events", "recipe")])
    rows = store.read(TABLE, wanted, version=rollups.version(), scan=ds.field("events").is_valid())
    return {row["event_date"]: (row["events"], row["recipe"]) for row in rows.to_pylist()}


def stale_days(
    counts: Mapping[date, int | None], rolled: Mapping[date, tuple[int | None, str | None]], digest: str
) -> list[date]:
    """The days whose stored roll-ups are missing or differ from the events: a count or recipe that
    differs, a count unknown, or a day the events no longer hold."""
    changed = {day for day, n in counts.items() if n is None or rolled.get(day) != (n, digest)}
    return sorted(changed | (rolled.keys() - counts.keys()))


def write_rollups(
    store: Store,
    fresh: Iterable[tuple[str, pa.RecordBatchReader]],
    days: Sequence[date] | None,
    counts: Mapping[date, int | None],
    events_version: int | None,
) -> int | None:
    """Replace the roll-ups of `days` (None: all of them) with `fresh` (each stage's rows of those days)
    and their source rows, in one transaction; the table's new version. A build that loses a race with
    another writer keeps its own roll-ups and writes none: the next build rolls those days up again."""
    replaced = replaced_days(days, counts)
    if days is not None and not replaced:
        return None
    where = None if days is None else " OR ".join(f"event_date = '{day.isoformat()}'" for day in replaced)
    batches = _table_batches(fresh, source_rows(replaced, counts))
    reader = pa.RecordBatchReader.from_batches(table_schema(), batches)
    try:
        return store.write(
            TABLE, reader, "overwrite", rollup_note(events_version, replaced), replace_where=where
        )
    except CommitFailedError:
        return None


def replaced_days(days: Sequence[date] | None, counts: Mapping[date, int | None]) -> list[date]:
    """The days a write of `days` (None: every day the events hold) replaces."""
    return sorted(counts) if days is None else list(days)


def rollup_note(events_version: int | None, replaced: Sequence[date]) -> str:
    """The commit note of a roll-up write: the events' version it rolled up and how many days."""
    return json.dumps({"step": ROLLUP_STEP, "events": events_version, "days": len(replaced)}, sort_keys=True)


def _table_batches(
    fresh: Iterable[tuple[str, pa.RecordBatchReader]], sources: pa.RecordBatch
) -> Iterator[pa.RecordBatch]:
    """Each stage's rows in the table's columns, then the source rows, one batch at a time."""
    for stage, reader in fresh:
        for batch in reader:
            day = batch.column(DAY) if DAY in batch.schema.names else pc.cast(batch.column("ts"), pa.date32())
            given = {name: batch.column(name) for name in batch.schema.names if name != DAY}
            yield _padded({"rollup": pa.array([stage] * batch.num_rows), "event_date": day, **given})
    yield sources


def source_rows(days: Sequence[date], counts: Mapping[date, int | None]) -> pa.RecordBatch:
    """The source rows of the days rolled up (none for a day the events no longer hold)."""
    held = [day for day in days if day in counts]
    return _padded(
        {
            "rollup": pa.array([SOURCE] * len(held)),
            "event_date": pa.array(held, pa.date32()),
            "events": pa.array([counts[day] for day in held], pa.int64()),
            "recipe": pa.array([recipe()] * len(held)),
        }
    )


def _padded(given: Mapping[str, pa.Array]) -> pa.RecordBatch:
    """A batch of the table's columns from `given`, the columns it lacks null."""
    schema, n = table_schema(), len(next(iter(given.values())))
    columns = [given[f.name].cast(f.type) if f.name in given else pa.nulls(n, f.type) for f in schema]
    return pa.RecordBatch.from_arrays(columns, schema=schema)
