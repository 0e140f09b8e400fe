"""What a feature build may keep of the last one: its rows at every cutoff nothing changed before.

A feature row at cutoff T is a function of what happened before T (the build is point in time): events
of days before T's day, interventions before T, and the accounts snapshot's rows whose contract started
before T, under the same definitions and settings (the build's `recipe`). So against the last build's
note (the input versions it read), a build finds the earliest instant any input changed at: the first
day whose event count differs (events are only ever added, so a changed day has a changed count), the
earliest contract start among accounts rows that differ, the earliest time among interventions rows
that differ. The last build's rows at cutoffs up to that instant are kept as they are; later cutoffs,
and cutoffs it did not hold, are computed. A daily build after one more day of events computes no
cutoff at all, or the one new month end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from deltalake.exceptions import DeltaError

from core.contract import ACCOUNT_SCHEMA, INTERVENTION_SCHEMA
from core.errors import RetainError
from features.cutoffs import cutoff_instant
from features.rollups import day_counts
from features.stored import TABLE, BuildNote, Versions
from store.delta import Store

#: commits that rewrite files or remove old ones without changing a table's rows
_ROWS_KEPT = ("OPTIMIZE", "VACUUM START", "VACUUM END")
#: how far back the last build's note is looked for
_HISTORY = 50
#: a change too old to place: nothing is kept
_ALWAYS = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Reuse:
    """The last build's rows a build keeps, and the cutoffs it computes."""

    kept: pa.Table | None
    compute: list[date]


def plan_reuse(
    store: Store, chosen: Sequence[date], read: Versions, counts: Mapping[date, int | None], recipe: str
) -> Reuse:
    """Keep the last build's rows at the chosen cutoffs no input changed before (see the module); compute
    the others. Nothing is kept without a last build of the same recipe, nor over adopted events, whose
    table has no versions in the store to tell what changed since."""
    last = None if store.events_source is not None else _last_build(store, recipe)
    if last is None:
        return Reuse(None, list(chosen))
    since = _earliest_change(store, last.read, read, counts)
    found = store.dataset(TABLE)
    if found is None:
        return Reuse(None, list(chosen))
    rows = found.to_table()
    held = {instant.date() for instant in pc.unique(rows["cutoff"]).to_pylist()}
    keep = [c for c in chosen if c in held and (since is None or cutoff_instant(c) <= since)]
    if not keep:
        return Reuse(None, list(chosen))
    instants = pa.array([cutoff_instant(c) for c in keep], rows.schema.field("cutoff").type)
    return Reuse(
        rows.filter(pc.is_in(rows["cutoff"], value_set=instants)), [c for c in chosen if c not in keep]
    )


def _last_build(store: Store, recipe: str) -> BuildNote | None:
    """The note of the build whose rows the feature table holds now, if it was made by `recipe`."""
    for commit in store.history(TABLE, _HISTORY):
        if commit.operation in _ROWS_KEPT:
            continue
        note = BuildNote.of(commit.retain)
        return note if note is not None and note.recipe == recipe else None
    return None


def _earliest_change(
    store: Store, before: Versions, now: Versions, counts: Mapping[date, int | None]
) -> datetime | None:
    """The earliest instant an input changed at between two reads (None: none changed)."""
    try:
        found = [
            _events_changed(store, before.get("events"), now.get("events"), counts),
            _rows_changed(store, "accounts", ACCOUNT_SCHEMA, "contract_start", before, now),
            _rows_changed(store, "interventions", INTERVENTION_SCHEMA, "ts", before, now),
        ]
    except (RetainError, DeltaError, OSError):  # an old version vacuumed away: nothing is kept
        return _ALWAYS
    known = [instant for instant in found if instant is not None]
    return min(known) if known else None


def _events_changed(
    store: Store, before: int | None, now: int | None, counts: Mapping[date, int | None]
) -> datetime | None:
    if before == now:
        return None
    earlier = day_counts(None if before is None else store.delta("events", before))
    days = counts.keys() | earlier.keys()
    changed = [day for day in days if counts.get(day) is None or counts.get(day) != earlier.get(day)]
    return datetime.combine(min(changed), time(), UTC) if changed else None


def _rows_changed(
    store: Store, table: str, schema: pa.Schema, column: str, before: Versions, now: Versions
) -> datetime | None:
    """The earliest `column` among rows in one read of `table` and not the other (null where never)."""
    old, new = before.get(table), now.get(table)
    if old == new:
        return None
    with duckdb.connect() as con:
        for name, version in (("old", old), ("new", new)):
            rows = schema.empty_table() if version is None else store.read(table, schema, version=version)
            con.from_arrow(rows).create_view(name)
        query = (
            f"SELECT min({column}) FROM ((SELECT * FROM old EXCEPT ALL SELECT * FROM new) "
            f"UNION ALL (SELECT * FROM new EXCEPT ALL SELECT * FROM old))"
        )
        (earliest,) = con.execute(query).fetchall()[0]
    return None if earliest is None else earliest.astimezone(UTC)
