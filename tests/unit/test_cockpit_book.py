"""The cockpit's book as Redis carries it: compressed JSON that comes back equal to what was scored, and
nothing else read back (never unpickled); and the recent events of a store that has none."""

from __future__ import annotations

import json
import pickle
import zlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from core.contract import EVENT_SCHEMA
from serving.cockpit import book as book_module
from serving.cockpit.book import Book, BookSource, Point, book_bytes, book_from_bytes
from serving.cockpit.keeper import book_key
from serving.cockpit.timeline import COLUMNS, RecentEvents, recent_events
from serving.schemas import Fallback
from store.delta import Store
from tests.support.book import DAY, entry

SOURCE = BookSource("/stores/acme/lake", "churn/3", datetime(2025, 11, 30, tzinfo=UTC), date(2025, 11, 30))


def events() -> RecentEvents:
    """Events of two accounts, out of order, with the columns' types and their nulls."""
    rows = [
        {"account_id": "acc-2", "ts": DAY - timedelta(days=2), "event_type": "error.raised", "count": 3},
        {
            "account_id": "acc-1",
            "ts": DAY - timedelta(days=1, microseconds=7),
            "event_type": "billing.invoice",
            "invoice_id": "inv-1",
            "status": "failed",
            "amount": 1234.5,
        },
        {
            "account_id": "acc-2",
            "ts": DAY - timedelta(days=9),
            "event_type": "subscription.renewed",
            "renewal_date": DAY + timedelta(days=365),
        },
    ]
    schema = pa.schema([EVENT_SCHEMA.field(c) for c in ["account_id", *COLUMNS]])
    return RecentEvents.by_account(pa.Table.from_pylist(rows, schema=schema), DAY - timedelta(days=90))


def a_book() -> Book:
    rules = entry(
        "acc-2",
        source="rules",
        fallback=Fallback(code="stale_features", message="features are 30 days old (limit 14)"),
        churn_probability=None,
        arr=None,
        renewal_date=None,
        days_to_renewal=None,
        segment=None,
    )
    trend = (Point(DAY - timedelta(days=30), 0.25, 60.0), Point(DAY, None, None))
    return Book((entry("acc-1"), rules), {"acc-1": trend}, events(), DAY, SOURCE.published, 4, SOURCE, DAY)


def test_a_book_comes_back_from_redis_bytes_equal_to_itself() -> None:
    book = a_book()
    data = book_bytes(book)
    back = book_from_bytes(data)
    assert back == book
    assert back is not None and back.events.of("acc-2") == book.events.of("acc-2")
    assert [e["event_type"] for e in back.events.of("acc-2")] == ["error.raised", "subscription.renewed"]
    assert back.entry("acc-2") == book.entry("acc-2") and back.fallbacks == {"stale_features": 1}
    stored = json.loads(zlib.decompress(data))  # plain JSON, compressed
    assert stored["scored_from"]["churn"] == "churn/3" and stored["events"]["columns"]["amount"][0] == 1234.5


def test_bytes_it_did_not_write_are_refused_and_never_unpickled(monkeypatch: pytest.MonkeyPatch) -> None:
    book = a_book()
    assert book_from_bytes(zlib.compress(pickle.dumps(book))) is None
    assert book_from_bytes(b"not zlib at all") is None
    written = json.loads(zlib.decompress(book_bytes(book)))
    written["events"]["columns"]["password"] = [None] * 3  # a column the events do not have
    assert book_from_bytes(zlib.compress(json.dumps(written).encode())) is None
    written["events"]["columns"].pop("password")
    written["events"]["columns"]["ts"][0] = None  # every event has a time
    assert book_from_bytes(zlib.compress(json.dumps(written).encode())) is None
    monkeypatch.setattr(book_module, "MAX_BOOK_JSON", 1_000)  # inflating past the cap is not even tried
    assert book_from_bytes(book_bytes(book)) is None


def test_each_book_source_has_its_own_key() -> None:
    other_champion = BookSource(SOURCE.store, "churn/4", SOURCE.published, SOURCE.replay)
    other_store = BookSource("/stores/globex/lake", SOURCE.churn, SOURCE.published, SOURCE.replay)
    keys = {book_key(b) for b in (SOURCE, other_champion, other_store)}
    assert len(keys) == 3 and book_key(SOURCE) == book_key(BookSource(*vars(SOURCE).values()))


def test_a_store_without_events_has_no_recent_events(tmp_path: Path) -> None:
    found = recent_events(Store(tmp_path / "store"), DAY, 90)
    assert found.spans == {} and found.of("acc-1") == [] and found.events.num_rows == 0
