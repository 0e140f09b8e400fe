"""The book of accounts a CSM works from: every active account scored once, sorted by ARR at risk.

Scoring 5,000 accounts takes a second or two (the online read and the model, without TreeSHAP), too slow
for a page, so the book is scored in the background and reused for `cockpit.book_seconds` or until the
champions or features change; a page filters and slices it in memory. Active means the account's latest
online row comes from the newest published build (`assess.inactive`: the features' own definition of
active), or its contract started since that build: a new account, answered by the rules until the next build.

Each worker process scores its own book (`cockpit.book = "memory"`), or the deployment's workers share one
through Redis (`"redis"`): one of them scores it, the others read it (`serving.cockpit.keeper`).
"""

from __future__ import annotations

import logging
import zlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from typing import Annotated

import numpy as np
import pandas as pd
import pyarrow.compute as pc
from pydantic import PlainSerializer, PlainValidator, TypeAdapter

from core.contract import Tier
from core.settings import Settings
from core.value import arr_at_risk
from serving.assess import Assessment, FeatureRow, assess, inactive
from serving.cockpit.timeline import EventColumns, RecentEvents, recent_events
from serving.online import OnlineStoreUnavailable
from serving.resources import AccountRecord, Loaded, Resources
from serving.schemas import Fallback
from serving.tables import TableUnreadable, reading
from store.delta import Store

log = logging.getLogger("retain.serving")
DAY_SECONDS = 86_400.0
RISK_BANDS = ("critical", "high", "medium", "low")
#: renewal windows a CSM can filter by, in days
RENEWAL_WINDOWS = (30, 60, 90, 180)
#: why a book cannot be scored: the online store or a table cannot be read (a page answers 503)
UNSCORABLE = (OnlineStoreUnavailable, TableUnreadable)


@dataclass(frozen=True)
class Point:
    """An account's churn probability and health score at one past feature build (its trend)."""

    cutoff: datetime
    churn_probability: float | None
    health_score: float | None


@dataclass(frozen=True)
class Entry:
    """One account's line in the book."""

    account_id: str
    name: str
    tier: str
    segment: str | None
    csm_id: str | None
    arr: float | None
    renewal_date: datetime | None
    days_to_renewal: int | None
    source: str
    fallback: Fallback | None
    churn_probability: float | None
    risk_band: str | None
    health_score: float | None
    health_band: str | None

    @property
    def arr_at_risk(self) -> float | None:
        return arr_at_risk(self.churn_probability, self.arr)


@dataclass(frozen=True)
class BookSource:
    """What a book was scored from. A book shared through Redis is filed under it and checked against it,
    so a worker never shows one scored by another churn champion, from another feature build, over another
    store's tables or for another replay day."""

    #: where the store's tables are (`Store.lake`): deployments sharing a Redis keep their own books
    store: str
    #: the churn champion (`churn/3`), the one model a book is scored by; None when the rules score it
    churn: str | None
    #: the newest feature cutoff published online (`Loaded.published`)
    published: datetime | None
    #: the replay day (`serve.as_of`); None when the book is scored as of now
    replay: date | None

    @classmethod
    def of(cls, resources: Resources, loaded: Loaded) -> BookSource:
        churn = loaded.churn.label if loaded.churn is not None else None
        return cls(resources.store.lake, churn, loaded.published, resources.settings.serve.as_of)


#: a book's events travel as JSON column by column (`RecentEvents.as_columns`), typed again on arrival
_EVENT_COLUMNS = TypeAdapter(EventColumns)
EventsAsJson = Annotated[
    RecentEvents,
    # in this order: a validator after the serializer would replace it
    PlainValidator(lambda value: _EVENT_COLUMNS.validate_python(value).events()),
    PlainSerializer(RecentEvents.as_columns, return_type=EventColumns),
]


@dataclass(frozen=True)
class Book:
    """The scored book: its entries, each account's trend and recent events, and what it was scored from.
    All of it is data, which JSON carries through Redis; which process holds it is `HeldBook`'s business."""

    entries: tuple[Entry, ...]
    trends: dict[str, tuple[Point, ...]]
    #: the accounts' recent events, for their timelines
    events: EventsAsJson
    as_of: datetime
    cutoff: datetime | None
    #: accounts left out: their latest row predates the newest build (they churned or cancelled)
    inactive: int
    scored_from: BookSource
    #: when its scoring began, by the wall clock (every worker's and host's clock tells its age)
    scored_at: datetime

    @cached_property
    def _by_id(self) -> dict[str, Entry]:
        return {e.account_id: e for e in self.entries}

    def entry(self, account_id: str) -> Entry | None:
        return self._by_id.get(account_id)

    @property
    def fallbacks(self) -> dict[str, int]:
        """Rules answers in the book by reason code."""
        return dict(Counter(e.fallback.code for e in self.entries if e.fallback is not None))

    def age(self) -> float:
        """Seconds since its scoring began."""
        return (datetime.now(UTC) - self.scored_at).total_seconds()


_BOOK = TypeAdapter(Book)
#: a book's JSON is ~5 kB an account, mostly its events (the demo's 1,444: 6.7 MB, 0.63 MB compressed);
#: a value that inflates past this was not written by `book_bytes` and is refused before it fills memory
MAX_BOOK_JSON = 512 * 2**20


def book_bytes(book: Book) -> bytes:
    """The book as zlib-compressed JSON (JSON, never pickle: writing to Redis must not run code here)."""
    return zlib.compress(_BOOK.dump_json(book))


def book_from_bytes(data: bytes) -> Book | None:
    """The book `book_bytes` wrote; None for bytes it did not (another version's, or damaged)."""
    inflate = zlib.decompressobj()
    try:
        text = inflate.decompress(data, MAX_BOOK_JSON)
        if inflate.unconsumed_tail:
            raise ValueError(f"it inflates past {MAX_BOOK_JSON:,} bytes")
        return _BOOK.validate_json(text)
    except (zlib.error, ValueError) as e:  # pydantic's ValidationError is a ValueError
        said = str(e).splitlines()[0] if str(e) else ""
        log.warning("cockpit book in Redis unreadable (%s: %s); scoring it again", type(e).__name__, said)
        return None


#: the book's filters a query string may give, by name, with the values each admits (`csm` admits any)
FILTER_VALUES: dict[str, tuple[str, ...]] = {
    "tier": tuple(t.value for t in Tier),
    "band": RISK_BANDS,
    "renewal": tuple(str(d) for d in RENEWAL_WINDOWS),
    "source": ("model", "rules"),
}


@dataclass(frozen=True)
class Filters:
    """What a CSM narrows the book to; empty means everything."""

    tier: str = ""
    band: str = ""
    csm: str = ""
    renewal_days: int | None = None
    source: str = ""
    page: int = 1

    def query(self) -> dict[str, str]:
        """The filters set, as a query string names them (without the page): a link to the same view."""
        named = {
            "tier": self.tier,
            "band": self.band,
            "csm": self.csm,
            "renewal": "" if self.renewal_days is None else str(self.renewal_days),
            "source": self.source,
        }
        return {name: value for name, value in named.items() if value}

    def admits(self, e: Entry) -> bool:
        return (
            (not self.tier or e.tier == self.tier)
            and (not self.band or e.risk_band == self.band)
            and (not self.csm or e.csm_id == self.csm)
            and (not self.source or e.source == self.source)
            and (
                self.renewal_days is None
                or (e.days_to_renewal is not None and 0 <= e.days_to_renewal <= self.renewal_days)
            )
        )


@dataclass(frozen=True)
class Problem:
    """A value of the query string the book does not understand, and what is wrong with it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def parse_filters(query: Mapping[str, str]) -> tuple[Filters, list[Problem]]:
    """The book's filters from a query string; a bad value is named, and left out of the filters."""
    problems = []

    def pick(name: str) -> str:
        value, allowed = query.get(name, ""), FILTER_VALUES[name]
        if value and value not in allowed:
            problems.append(Problem(name, f"{value!r} is not one of {', '.join(allowed)}"))
            return ""
        return value

    renewal = pick("renewal")
    page = query.get("page", "1")
    if not page.isdigit() or int(page) < 1:
        problems.append(Problem("page", f"{page!r} is not a page number"))
        page = "1"
    filters = Filters(
        tier=pick("tier"),
        band=pick("band"),
        csm=query.get("csm", "")[:200],
        renewal_days=int(renewal) if renewal else None,
        source=pick("source"),
        page=int(page),
    )
    return filters, problems


def filtered(book: Book, filters: Filters) -> list[Entry]:
    """The accounts the filters admit, in the book's order: by ARR at risk."""
    return [e for e in book.entries if filters.admits(e)]


def select_page(book: Book, filters: Filters, page_size: int) -> tuple[list[Entry], int, int]:
    """The filtered book's page, how many accounts match, and how many pages there are."""
    matching = filtered(book, filters)
    pages = max(1, -(-len(matching) // page_size))
    page = min(max(1, filters.page), pages)
    return matching[(page - 1) * page_size : page * page_size], len(matching), pages


def _sort_key(e: Entry) -> tuple[int, float, str]:
    """ARR at risk, largest first; rules answers (no probability) after, riskiest health band first."""
    at_risk = e.arr_at_risk
    if at_risk is not None:
        return (0, -at_risk, e.account_id)
    order = {band: i for i, band in enumerate(RISK_BANDS)}
    return (1, float(order.get(e.risk_band or "", len(order))), e.account_id)


def days_between(later: datetime | None, earlier: datetime) -> int | None:
    return None if later is None else int((later - earlier).total_seconds() // DAY_SECONDS)


def renewal_date(row: FeatureRow, account: AccountRecord) -> datetime | None:
    """The renewal in force: the feature row's (renewals and plan changes move it), else the account
    table's, which keeps the date of the first contract."""
    days, cutoff = row.get("days_to_renewal"), row.get("cutoff")
    if isinstance(days, int | float) and isinstance(cutoff, datetime) and not np.isnan(days):
        return cutoff + timedelta(days=float(days))
    return account.renewal_date


def entries(accounts: dict[str, AccountRecord], assessed: list[Assessment], as_of: datetime) -> list[Entry]:
    """The assessed accounts as the book's entries, by ARR at risk."""
    out = []
    for assessment in assessed:
        account = accounts.get(assessment.account_id) or AccountRecord(assessment.account_id)
        renewal = renewal_date(assessment.row, account)
        out.append(
            Entry(
                account_id=assessment.account_id,
                name=account.name or assessment.account_id,
                tier=account.tier or "unknown",
                segment=account.segment,
                csm_id=account.csm_id,
                arr=account.arr,
                renewal_date=renewal,
                days_to_renewal=days_between(renewal, as_of),
                source=assessment.source,
                fallback=assessment.fallback,
                churn_probability=assessment.churn_probability,
                risk_band=assessment.risk_band,
                health_score=assessment.health.score,
                health_band=assessment.health.band,
            )
        )
    return sorted(out, key=_sort_key)


def trends(
    store: Store, loaded: Loaded, account_ids: set[str], as_of: datetime, cutoffs: int
) -> dict[str, tuple[Point, ...]]:
    """Each account's churn probability (current champion) and health score at its last `cutoffs` feature
    builds before `as_of`, from the offline feature table: the newest builds for an active account, the
    last month ends it was active at for one that has left."""
    if not account_ids:
        return {}
    features = store.dataset("features")
    if features is None:
        return {}
    ids = pc.field("account_id").isin(sorted(account_ids))
    keys = features.to_table(columns=["account_id", "cutoff"], filter=ids).to_pandas()
    keys = (
        keys[keys["cutoff"] <= as_of].sort_values("cutoff", kind="stable").groupby("account_id").tail(cutoffs)
    )
    if keys.empty:
        return {}
    wanted = sorted(c.to_pydatetime() for c in keys["cutoff"].drop_duplicates())
    rows = features.to_table(filter=ids & pc.field("cutoff").isin(wanted)).to_pandas()
    rows = rows.merge(keys, on=["account_id", "cutoff"]).reset_index(drop=True)
    churn = loaded.churn.model.predict(rows) if loaded.churn is not None else np.full(len(rows), np.nan)
    frame = pd.DataFrame(
        {
            "account_id": rows["account_id"],
            "cutoff": rows["cutoff"],
            "churn": churn,
            "health": pd.to_numeric(rows["health_score"], errors="coerce"),
        }
    ).sort_values(["account_id", "cutoff"])
    out: dict[str, tuple[Point, ...]] = {}
    for account_id, group in frame.groupby("account_id", sort=False):
        out[str(account_id)] = tuple(
            Point(c.to_pydatetime(), None if np.isnan(p) else float(p), None if np.isnan(h) else float(h))
            for c, p, h in zip(group["cutoff"], group["churn"], group["health"], strict=True)
        )
    return out


def started_since(account: AccountRecord, newest: datetime | None, as_of: datetime) -> bool:
    """A contract that started after the newest feature build: a new account, not yet in the features.
    (One that started before it and has no row was never active at a cutoff: it left at once.)"""
    start = account.contract_start
    return start is not None and (newest is None or start >= newest) and start <= as_of


def score_book(resources: Resources, loaded: Loaded, settings: Settings) -> Book:
    """Every active account scored by the churn champion (or the rules), with trends and recent events."""
    scored_at = datetime.now(UTC)
    as_of = resources.as_of()
    rows = resources.online_rows(loaded, sorted(loaded.accounts))
    records = rows.records()
    newest = loaded.published

    def active(row: FeatureRow) -> bool:
        cutoff = row.get("cutoff")
        if isinstance(cutoff, datetime):
            return not inactive(cutoff, newest)
        account_id = str(row["account_id"])
        account = loaded.accounts.get(account_id) or AccountRecord(account_id)
        return cutoff is None and started_since(account, newest, as_of)

    keep = [i for i, row in enumerate(records) if active(row)]
    kept = rows if len(keep) == len(records) else rows.take(keep)
    assessed = assess(
        kept, loaded.churn, None, settings, as_of, explain=False, unloaded=loaded.errors.get("churn")
    )
    scored = entries(loaded.accounts, assessed, as_of)
    with reading("features"):
        history = trends(
            resources.store,
            loaded,
            {e.account_id for e in scored},
            as_of,
            settings.cockpit.trend_cutoffs,
        )
    with reading("events"):
        events = recent_events(resources.store, as_of, settings.cockpit.timeline_days)
    left = len(records) - len(keep)
    scored_from = BookSource.of(resources, loaded)
    return Book(tuple(scored), history, events, as_of, newest, left, scored_from, scored_at)
