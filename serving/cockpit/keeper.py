"""The book kept current for every page: scored again when it is older than `cockpit.book_seconds` or the
champions or features were reloaded, one scoring at a time, the last book shown meanwhile.

Each worker process scores its own book (`cockpit.book = "memory"`), or the deployment's workers share one
through Redis (`"redis"`): one of them scores it and files it under what it was scored from, the
others read it. The book itself, how it is scored and the bytes Redis holds are `serving.cockpit.book`'s.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass

from pydantic import TypeAdapter
from redis.exceptions import RedisError

from serving.cockpit.book import UNSCORABLE, Book, BookSource, book_bytes, book_from_bytes, score_book
from serving.cockpit.shared_values import RedisSharedValues
from serving.outage import Outage
from serving.resources import Loaded, Resources

log = logging.getLogger("retain.serving")
_BOOK_SOURCE = TypeAdapter(BookSource)
#: a shared book's key: one per `BookSource`, under a digest of it; v2 names the JSON's shape, bumped with it
BOOK_KEY = "retain:cockpit:book:v2:"


def book_key(scored_from: BookSource) -> str:
    return BOOK_KEY + hashlib.sha256(_BOOK_SOURCE.dump_json(scored_from)).hexdigest()


@dataclass(frozen=True)
class HeldBook:
    """A book as one process holds it: the resources it stands for (a reload makes it stale) and when it
    was scored, on this process's monotonic clock (a book read from Redis: now, less its age)."""

    book: Book
    loaded: Loaded
    scored_monotonic: float

    @classmethod
    def of(cls, book: Book, loaded: Loaded) -> HeldBook:
        return cls(book, loaded, time.monotonic() - max(0.0, book.age()))


class BookKeeper:
    """The current book, scored again when it is older than `book_seconds` or the resources were
    reloaded; one scoring at a time, and readers keep the old book meanwhile once there is one.

    With `cockpit.book = "redis"` a fresh book comes from Redis, where the deployment keeps one per
    `BookSource`; a worker that finds it missing or stale scores it under Redis's lock and puts it there,
    and one that finds the lock taken waits for that book (`_shared`). Without Redis each worker scores its
    own, as with `"memory"`, until Redis answers again: the cockpit never fails for want of Redis."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources
        settings = resources.settings
        self._values = RedisSharedValues(settings.redis_url) if settings.cockpit.book == "redis" else None
        self._held: HeldBook | None = None
        #: why the book shown is older than it should be: its last scoring failed (None once one succeeds)
        self.stale: str | None = None
        self._lock = threading.Lock()
        self._outage = Outage("cockpit book: Redis", "this worker scores its own")

    def _stale(self, held: HeldBook | None, loaded: Loaded) -> bool:
        return (
            held is None
            or held.loaded is not loaded
            or self._too_old(time.monotonic() - held.scored_monotonic)
        )

    def _too_old(self, age: float) -> bool:
        return age > self.resources.settings.cockpit.book_seconds

    def refresh(self) -> Book:
        """The book, anew if stale. When it cannot be scored, the last one, said in `stale` and tried again
        after `book_seconds`, not on every page (raised when there is none yet: `UNSCORABLE` for data
        that cannot be read)."""
        with self._lock:
            held, loaded = self._held, self.resources.loaded
            if self._stale(held, loaded):
                try:
                    self._held, self.stale = self._fresh(loaded), None
                except Exception as e:  # a book must outlive any failure to score it again
                    if held is None:
                        raise
                    known = isinstance(e, UNSCORABLE)
                    self.stale = str(e) if known else f"{type(e).__name__}: {e}"
                    said = "cockpit book not scored again (%s); showing the last one"
                    log.warning(said, self.stale, exc_info=not known)
                    self._held = HeldBook(held.book, loaded, time.monotonic())
            assert self._held is not None
            return self._held.book

    def _fresh(self, loaded: Loaded) -> HeldBook:
        """A fresh book: the deployment's when it is shared, else (or when Redis fails) scored here."""
        if self._values is not None:
            try:
                return self._shared(self._values, loaded)
            except RedisError as e:  # before any scoring: `_scored_and_put` keeps what it scored
                self._outage.failed(e)
        return self._scored(loaded)

    def _scored(self, loaded: Loaded) -> HeldBook:
        started = time.perf_counter()
        book = score_book(self.resources, loaded, self.resources.settings)
        took = time.perf_counter() - started
        log.info("cockpit book: %d accounts scored in %.2f s", len(book.entries), took)
        return HeldBook.of(book, loaded)

    def _shared(self, values: RedisSharedValues, loaded: Loaded) -> HeldBook:
        """The book in Redis for this `BookSource` when it is fresh. Otherwise whoever takes the lock scores
        it and puts it there, and the others wait for that book; one that waited longer than a lock lasts (its
        holder is slow, or died and another took over) scores its own."""
        scored_from = BookSource.of(self.resources, loaded)
        key = book_key(scored_from)
        deadline = time.monotonic() + values.LOCK_SECONDS
        while (stored := self._stored(values, key, scored_from, loaded)) is None:
            with values.lock(key) as mine:
                if mine:
                    return self._scored_and_put(values, key, loaded)
            if time.monotonic() >= deadline:
                return self._scored(loaded)
            values.wait(key, deadline)
        return stored

    def _stored(
        self, values: RedisSharedValues, key: str, scored_from: BookSource, loaded: Loaded
    ) -> HeldBook | None:
        """The book Redis holds under `key` if it is fresh (a stale one is not even read) and scored from
        `scored_from`."""
        found = values.get(key)
        self._outage.ended()
        if found is None or self._too_old(time.time() - found[0]):
            return None
        book = book_from_bytes(found[1])
        if book is None:
            return None
        if book.scored_from != scored_from:
            log.warning(
                "cockpit book in Redis under %s is from %s, not %s; ignored",
                key,
                book.scored_from,
                scored_from,
            )
            return None
        log.info("cockpit book: %d accounts read from Redis, %.1f s old", len(book.entries), book.age())
        return HeldBook.of(book, loaded)

    def _scored_and_put(self, values: RedisSharedValues, key: str, loaded: Loaded) -> HeldBook:
        held = self._scored(loaded)
        try:
            values.put(key, held.book.scored_at.timestamp(), book_bytes(held.book))
        except RedisError as e:  # this worker shows it all the same
            self._outage.failed(e)
        return held

    def warm(self) -> threading.Thread:
        """Score the book in the background as the server starts, so the first page does not wait."""
        thread = threading.Thread(target=self._warm, name="retain-book-warm", daemon=True)
        thread.start()
        return thread

    def _warm(self) -> None:
        try:
            self.refresh()
        except UNSCORABLE as e:
            log.warning("cockpit book not scored at start: %s", e)
        except Exception:  # a page asks again, and says why
            log.exception("cockpit book not scored at start")

    def get(self) -> Book:
        held, loaded = self._held, self.resources.loaded
        if held is None or held.loaded is not loaded:
            return self.refresh()
        if self._stale(held, loaded) and not self._lock.locked():
            threading.Thread(target=self.refresh, name="retain-book", daemon=True).start()
        return held.book
