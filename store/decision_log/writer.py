"""The decision log: every score and recommendation the API serves, and the feedback on recommendations.

SQLite under the store by default, PostgreSQL by configuration; SQLAlchemy Core keeps one code path for
both. The response path only appends to a bounded in-memory queue; a daemon thread writes it in batches.
While the database is unreachable (down, unwritable, deleted) the writer keeps the entries queued and
tries again until it is back; only a full queue drops entries, and an entry the database refuses is
counted as failed: `stats` tells the truth, a rate-limited warning says it. The service starts while the
database is down: the writer creates the schema when it first reaches it. Logs name the database by its
redacted URL only.

A stopping process writes what waits for a bounded time, then spills the rest to a JSON-lines file
(`spill.py`) that the next start's writer replays, each file once, before anything new. The database
side is `connection.py`, the synchronous reads `queries.py`.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections import deque
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from core.settings import Settings
from core.urls import redact
from store.decision_log.bounds import LogBounds
from store.decision_log.connection import (
    BATCH,
    PG_CONNECT_TIMEOUT,
    SQLITE_BUSY_SECONDS,
    DecisionLogUnavailable,
    unreachable,
)
from store.decision_log.queries import DECISION_COLUMNS, LogQueries
from store.decision_log.records import Decision, LogEntry, LoggedFeedback, LoggedRecommendation
from store.decision_log.spill import (
    Spilled,
    read_spill,
    spill_files,
    spill_line,
    spill_prefix,
    spilled_entry,
    write_spill,
)
from store.decision_log.tables import (
    DECISIONS,
    FEEDBACK,
    RECOMMENDATIONS,
    SPILLS_REPLAYED,
    WRITE_PROBE,
    upsert_into,
)
from store.delta import Store

log = logging.getLogger("retain.decision_log")

#: how long the writer lets entries gather after the first arrives, so a busy API commits a batch rather
#: than one transaction per answer (each costs the GIL a request's worth of work); `flush` cuts it short
GATHER_SECONDS = 0.1
#: at most one warning of a kind (dropped, failed) per this many seconds; `stats` has the counts
WARN_EVERY = 10.0
#: how long a write under way may take to end on its own (a locked SQLite file, a PostgreSQL connect)
WRITE_SECONDS = max(SQLITE_BUSY_SECONDS, PG_CONNECT_TIMEOUT)
#: recommendation ids of lost entries (dropped or refused) remembered, so feedback on one is told "lost"
LOST_REMEMBERED = 100_000
#: how long a lookup of a just-served recommendation waits for the queue to drain
LOOKUP_FLUSH_SECONDS = 2.0
#: how far beyond its size feedback may fill the queue, as a share of the size: while the database is
#: away, decisions are dropped first (counted, and feedback on one is told so), and feedback a caller
#: sent, small and rarer, still has room to wait
FEEDBACK_ROOM = 0.25


class DecisionLog(LogQueries):
    """A bounded queue in front of a database, written by one daemon thread; reads are synchronous."""

    def __init__(
        self,
        url: str,
        *,
        queue_size: int = 10_000,
        retry_delays: tuple[float, ...] = (0.2, 1.0),
        bounds: LogBounds = LogBounds(),
    ):
        self._bounds = bounds
        self._spill_prefix = spill_prefix(redact(url))
        super().__init__(url)
        self._queue_size = queue_size
        #: the pauses between tries while the database is unreachable, the last repeated for as long as
        #: it stays so: short, since a lookup of a queued recommendation waits for the queue to drain
        self._retry_delays = retry_delays or (0.2,)
        self._queue: deque[LogEntry] = deque()
        #: the batch the writer took from the queue and is writing
        self._writing: list[LogEntry] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._quiet_until: dict[str, float] = {}
        self._written = self._dropped = self._failed = 0
        self._drained = self._spilled = self._replayed = 0
        #: why the writer's last try failed; None once a write lands
        self._last_error: str | None = None
        #: recommendation ids of lost entries, oldest first (a dict: ordered, and a set to look in)
        self._lost: dict[str, None] = {}
        #: entries queued and entries written or given up on, in queue order: their difference (queued plus
        #: being written) bounds memory, and `flush` waits for the second to reach the first
        self._accepted = self._processed = 0
        #: the entries a waiting `flush` needs processed: the writer writes at once until they are
        self._wanted = 0

    @classmethod
    def for_store(cls, store: Store, settings: Settings) -> DecisionLog:
        """The configured database, else SQLite in the store's serving folder."""
        url = settings.serve.decision_log_url
        if url is None:
            store.serving_dir.mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{(store.serving_dir / 'decisions.db').resolve()}"
        return cls(
            url, queue_size=settings.serve.decision_log_queue, bounds=LogBounds.configured(store, settings)
        )

    @property
    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "written": self._written,
                "dropped": self._dropped,
                "failed": self._failed,
                "pending": self._accepted - self._processed,
                "drained": self._drained,
                "spilled": self._spilled,
                "replayed": self._replayed,
            }

    def start(self) -> None:
        """Start the writer; touches no database, so a database that is down cannot stop the service."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="decision-log-writer", daemon=True)
            self._thread.start()

    def submit(self, decision: Decision) -> bool:
        """Queue an entry without waiting; False (and counted as dropped) when the queue is full."""
        with self._changed:
            if self._enqueue(decision, self._queue_size):
                return True
            self._dropped += 1
            dropped = self._dropped
            self._remember_lost([decision])
        self._warn("dropped", "decision log %s: queue full, %d entries dropped so far", self.url, dropped)
        return False

    def _enqueue(self, entry: LogEntry, limit: int) -> bool:
        """Under `_lock`: queue the entry unless `limit` entries already wait."""
        if self._accepted - self._processed >= limit:
            return False
        self._queue.append(entry)
        self._accepted += 1
        if len(self._queue) in (1, BATCH):  # the writer waits for a first entry, or a full batch
            self._changed.notify_all()
        return True

    def lost(self, recommendation_id: str) -> bool:
        """Whether this recommendation was served but its entry lost (a full queue, or refused)."""
        with self._lock:
            return recommendation_id in self._lost

    def _remember_lost(self, entries: list[LogEntry]) -> None:
        """Under `_lock`: keep the lost entries' recommendation ids, the oldest forgotten first."""
        for decision in entries:
            for recommendation in decision.recommendations if isinstance(decision, Decision) else ():
                self._lost[recommendation.recommendation_id] = None
        while len(self._lost) > LOST_REMEMBERED:
            del self._lost[next(iter(self._lost))]

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything submitted so far is written or given up on (later entries need not be);
        False if some of it is still pending."""
        with self._changed:
            target = self._accepted
            if self._thread is None or not self._thread.is_alive():
                return self._processed >= target
            self._wanted = max(self._wanted, target)
            self._changed.notify_all()
            return self._changed.wait_for(lambda: self._processed >= target, timeout)

    def close(self, timeout: float | None = None) -> None:
        """Write what waits for up to `timeout` (default: the bounds' drain time), stop, and spill what is
        left to a file the next start replays; one line says how many were drained and spilled, and
        counts what no folder took as failed."""
        with self._lock:
            written = self._written
        self.flush(self._bounds.drain_seconds if timeout is None else timeout)
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(WRITE_SECONDS)  # a write under way ends within its own timeout
        with self._changed:
            left = list(self._queue)
            # a write still under way may yet land: not spilled, so never written twice; counted lost
            in_flight = len(self._writing) if self._thread is not None and self._thread.is_alive() else 0
            self._queue.clear()
            self._drained += self._written - written
            drained = self._written - written
        self._spill(left, in_flight, drained)
        self._engine.dispose()

    def _spill(self, left: list[LogEntry], in_flight: int, drained: int) -> None:
        """Spill the entries `close` could not write, count them and say so."""
        if not left and not in_flight:
            if drained:
                log.info("decision log %s closed: %d entries drained", self.url, drained)
            return
        records = [spill_line(e) for e in left]
        spilled = (
            write_spill(records, self._bounds.spill_dirs, self._spill_prefix) if left else Spilled(None, ())
        )
        kept = len(left) if spilled.path is not None else 0
        lost = len(left) - kept + in_flight
        with self._changed:
            self._spilled += kept
            self._failed += lost
            self._processed += len(left) + in_flight
        decisions = sum(isinstance(e, Decision) for e in left)
        unspilled, unspilled_decisions = len(left) - kept, 0 if kept else decisions
        if kept:
            log.warning(
                "decision log %s closed: %d entries drained, %d spilled to %s (%d decisions, %d feedback) "
                "for the next start to replay",
                *(self.url, drained, kept, spilled.path, decisions, kept - decisions),
            )
        if lost:
            log.warning(
                "decision log %s closed with %d entries not written: %d drained before; %d could not be "
                "spilled either (%d decisions, %d feedback; %s); %d in a write that had not ended",
                *(self.url, lost, drained, unspilled, unspilled_decisions, unspilled - unspilled_decisions),
                *("; ".join(spilled.refusals) or "no spill folder", in_flight),
            )

    def check_writable(self) -> None:
        """Raises `DecisionLogUnavailable` when the log cannot take its entries now: the writer's last try
        failed, too many entries wait, its disk is below the free-space floor, or the probe row cannot be
        rewritten on a connection opened now (the probe alone passes on a disk where one row fits but a
        batch does not)."""
        if (problem := self._falling_behind()) is not None:
            raise DecisionLogUnavailable(f"decision log {self.url}: {problem}")
        with self.connect(write=True, opened_now=True) as conn:
            conn.execute(WRITE_PROBE.delete())
            conn.execute(WRITE_PROBE.insert(), {"id": 1, "checked_at": datetime.now(UTC)})

    def _falling_behind(self) -> str | None:
        """Why entries are not being written, or soon will not be; None when they are."""
        with self._lock:
            pending, error = self._accepted - self._processed, self._last_error
        if error is not None:
            return f"its last write failed ({error}); {pending} entries wait to be written"
        if self._bounds.max_pending is not None and pending > self._bounds.max_pending:
            return f"{pending} entries wait to be written, more than {self._bounds.max_pending}"
        floor = self._bounds.min_free_bytes
        if self._file is None or not floor:
            return None
        try:
            free = shutil.disk_usage(self._file.parent).free
        except OSError:  # no folder yet: the probe's write says what is wrong
            return None
        if free < floor:
            return f"{free / 1e6:.2f} MB free on its disk, below the floor of {floor / 1e6:g} MB"
        return None

    def recommendation(self, recommendation_id: str) -> LoggedRecommendation | None:
        """A served recommendation: from the entries still waiting to be written (while the database was
        away, or milliseconds after serving), else from the database, waiting once for a batch being
        written; while entries cannot be written it may be one of them: unavailable, not unknown."""
        if (waiting := self._waiting(recommendation_id)) is not None:
            return waiting
        query = sa.select(RECOMMENDATIONS).where(RECOMMENDATIONS.c.recommendation_id == recommendation_id)
        row = self._one(query)
        if row is None and self.stats["pending"]:
            drained = self.flush(LOOKUP_FLUSH_SECONDS)
            row = self._one(query)
            if row is None and not drained:
                raise DecisionLogUnavailable(
                    f"decision log {self.url} is behind: {self.stats['pending']} entries are waiting to be "
                    "written, perhaps this recommendation; try again"
                )
        return None if row is None else LoggedRecommendation(**row)

    def _waiting(self, recommendation_id: str) -> LoggedRecommendation | None:
        """The recommendation, if its entry is queued or in the batch being written (a scan of at most
        the queue's size, only while entries wait)."""
        with self._lock:
            if self._accepted == self._processed:
                return None
            for decision in (*self._writing, *self._queue):
                # the ids first: building every queued row would cost the scan far more
                if isinstance(decision, Decision) and any(
                    r.recommendation_id == recommendation_id for r in decision.recommendations
                ):
                    logged = decision.logged_recommendations()
                    return next(r for r in logged if r.recommendation_id == recommendation_id)
        return None

    def record_feedback(self, feedback: LoggedFeedback, *, now: bool = True) -> bool:
        """Store feedback on a recommendation (the caller checks it exists with `recommendation`): True
        when written now; False when it waits in the queue, to be written when the database is back:
        because the database could not take it, or `now` is False (the caller just failed to reach it).
        `DecisionLogUnavailable` when the queue has no room either."""
        if now:
            try:
                with self.connect(write=True) as conn:
                    conn.execute(FEEDBACK.insert(), asdict(feedback))
                return True
            except DecisionLogUnavailable as e:
                unavailable = e
        else:
            unavailable = DecisionLogUnavailable(f"decision log {self.url} is unavailable")
        with self._changed:
            if self._enqueue(feedback, self._queue_size + max(1, int(self._queue_size * FEEDBACK_ROOM))):
                return False
        raise DecisionLogUnavailable(f"{unavailable}, and its queue is full") from unavailable

    def _run(self) -> None:
        def gathered() -> bool:
            return len(self._queue) >= BATCH or self._wanted > self._processed or self._stop.is_set()

        self._replay_spills()
        failures = 0
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._queue or self._stop.is_set())
                self._changed.wait_for(gathered, GATHER_SECONDS)
                if self._stop.is_set():
                    return
                batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
                self._writing = batch
            again = self._write(batch)
            with self._changed:
                self._queue.extendleft(reversed(again))
                self._writing = []
            if not again:
                failures = 0
                continue
            self._stop.wait(self._retry_delays[min(failures, len(self._retry_delays) - 1)])
            failures += 1

    def _replay_spills(self) -> None:
        """Before anything queued, write the spill files earlier processes left, trying again while the
        database is unreachable; a file that cannot be read or is refused stays, said in the log."""
        for path in spill_files(self._bounds.spill_dirs, self._spill_prefix):
            failures = 0
            while not self._stop.is_set():
                try:
                    self._replay(path)
                    break
                except Exception as e:
                    if not unreachable(e):
                        log.error(
                            "decision log %s: spill %s not replayed, left in place: %s", self.url, path, e
                        )
                        break
                    self._reopen()
                    with self._lock:
                        self._last_error = self._describe(e)
                    self._warn(
                        "unreachable", "decision log %s is unreachable (%s)", self.url, self._describe(e)
                    )
                self._stop.wait(self._retry_delays[min(failures, len(self._retry_delays) - 1)])
                failures += 1

    def _replay(self, path: Path) -> None:
        """Write one spill file's entries and the file's stem in one transaction, then remove the file."""
        entries = [spilled_entry(line) for line in read_spill(path)]
        fresh = self._insert(entries, spill_id=path.stem)
        path.unlink(missing_ok=True)
        replayed = len(entries) if fresh else 0
        with self._lock:
            self._replayed += replayed
            self._last_error = None
        decisions = sum(isinstance(e, Decision) for e in entries)
        log.warning(
            "decision log %s: %d entries replayed from %s (%d decisions, %d feedback)%s",
            *(self.url, replayed, path, decisions * fresh, (len(entries) - decisions) * fresh),
            "" if fresh else ", replayed before; removed",
        )

    def _write(self, batch: list[LogEntry]) -> list[LogEntry]:
        """Write a batch; the entries to try again because the database could not be reached. An entry
        the database refuses (a duplicate id, an answer that is not JSON) is counted as failed, and must
        not lose the rest of its batch."""
        error = self._insert_or_error(batch)
        if error is None:
            errors: dict[int, Exception] = {}
        elif unreachable(error) or len(batch) == 1:
            errors = dict.fromkeys(range(len(batch)), error)
        else:
            errors = {i: e for i, entry in enumerate(batch) if (e := self._insert_or_error([entry]))}
        again = [batch[i] for i, e in errors.items() if unreachable(e)]
        refused = {i: e for i, e in errors.items() if not unreachable(e)}
        if again:
            self._reopen()
            self._warn(
                "unreachable",
                "decision log %s is unreachable (%s); %d entries wait to be written",
                self.url,
                self._describe(next(e for e in errors.values() if unreachable(e))),
                self.stats["pending"],
            )
        if refused:
            self._warn(
                "failed",
                "decision log %s: %d of %d entries refused (%s); %d lost since start",
                self.url,
                len(refused),
                len(batch),
                self._describe(next(iter(refused.values()))),
                self._failed + len(refused),
            )
        with self._changed:
            self._last_error = self._describe(next(iter(errors.values()))) if again else None
            self._remember_lost([batch[i] for i in refused])
            self._written += len(batch) - len(errors)
            self._failed += len(refused)
            self._processed += len(batch) - len(again)
            self._changed.notify_all()
        return again

    def _insert_or_error(self, batch: list[LogEntry]) -> Exception | None:
        try:
            self._insert(batch)
        except Exception as e:
            return e
        return None

    def _insert(self, batch: list[LogEntry], spill_id: str | None = None) -> bool:
        """Write a batch in one transaction. With `spill_id`, a spill file's entries, once: nothing is
        written (False) when that file was replayed before, and an id already present is skipped."""
        self._ensure_schema()
        served = [d for d in batch if isinstance(d, Decision)]
        decisions = [{c.name: getattr(d, c.name) for c in DECISION_COLUMNS} for d in served]
        recommendations = [asdict(r) for d in served for r in d.logged_recommendations()]
        feedback = [asdict(f) for f in batch if not isinstance(f, Decision)]
        with self._engine.begin() as conn:
            if spill_id is not None:
                mark = {"spill_id": spill_id, "entries": len(batch), "replayed_at": datetime.now(UTC)}
                first = upsert_into(conn, SPILLS_REPLAYED).on_conflict_do_nothing()
                if conn.execute(first.returning(SPILLS_REPLAYED.c.spill_id), mark).first() is None:
                    return False
            for table, rows in (
                (DECISIONS, decisions),
                (RECOMMENDATIONS, recommendations),
                (FEEDBACK, feedback),
            ):
                if rows:
                    insert = (
                        table.insert()
                        if spill_id is None
                        else upsert_into(conn, table).on_conflict_do_nothing()
                    )
                    conn.execute(insert, rows)
        return True

    def _warn(self, kind: str, message: str, *args: object) -> None:
        now = time.monotonic()
        with self._lock:
            if now < self._quiet_until.get(kind, 0.0):
                return
            self._quiet_until[kind] = now + WARN_EVERY
        log.warning(message, *args)
