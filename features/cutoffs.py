"""Cutoffs: the instants features are computed at.

A cutoff date D stands for the instant D 00:00 UTC, and features at D see only events strictly before it.
Cutoffs are whole UTC days so windows are whole days and the daily roll-ups give exact answers.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

import duckdb
import pyarrow as pa

from core.contract import TS
from features.definitions import LOOKBACK_DAYS


def cutoff_instant(day: date) -> datetime:
    """The instant a cutoff date stands for; a datetime must already be a UTC midnight."""
    if isinstance(day, datetime):
        if day.tzinfo is None or day.utcoffset() or day.time() != datetime.min.time():
            raise ValueError(f"a cutoff must be a date or a UTC midnight, got {day.isoformat()}")
        return day.astimezone(UTC)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def cutoff_table(days: Iterable[date]) -> pa.Table:
    """The `cutoffs` input table: one `cutoff` column, timestamp[us, UTC], unique and sorted."""
    instants = sorted({cutoff_instant(d) for d in days})
    return pa.table({"cutoff": pa.array(instants, TS)})


def window_start(days: Iterable[date]) -> date:
    """The first UTC day a window of these cutoffs looks at (lookback.sql): the earlier days' roll-ups
    matter only to the stages over all history."""
    return min(days) - timedelta(days=LOOKBACK_DAYS)


def month_ends(after: date, until: date) -> list[date]:
    """Every last day of a month D with after < D <= until."""
    ends = []
    year, month = after.year, after.month
    while (year, month) <= (until.year, until.month):
        end = date(year, month, calendar.monthrange(year, month)[1])
        if after < end <= until:
            ends.append(end)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return ends


def span_cutoffs(first: datetime | None, last: datetime | None) -> list[date]:
    """Month ends inside the span of events from `first` to `last`: each has events before and at or
    after it (its midnight is after the first event and not after the last). None: no events."""
    if first is None or last is None:
        return []
    return month_ends(first.astimezone(UTC).date(), last.astimezone(UTC).date())


def default_cutoffs(con: duckdb.DuckDBPyConnection) -> list[date]:
    """`span_cutoffs` of the connection's `events`."""
    first, last = con.execute("SELECT min(ts), max(ts) FROM events").fetchall()[0]
    return span_cutoffs(first, last)
