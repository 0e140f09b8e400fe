"""The decision log: every score and recommendation the API serves, and the feedback on recommendations.

SQLite under the store by default, PostgreSQL by configuration; SQLAlchemy Core keeps one code path for
both. The response path only appends to a bounded in-memory queue; a daemon thread writes it in batches.
While the database is unreachable (down, unwritable, deleted) the writer keeps the entries queued and
tries again until it is back; only a full queue drops entries, and an entry the database refuses is
counted as failed: `stats` tells the truth, a rate-limited warning says it. The service starts while the
database is down: the writer creates the schema when it first reaches it. Logs name the database by its
redacted URL only.

A stopping process writes what waits for a bounded time, then spills the rest to a JSON-lines file
(`serving.log_spill`) that the next start's writer replays, each file once, before anything new.

SQLite runs with a rollback journal, not WAL: WAL's shared-memory index is a memory map, and a map over a
file that cannot be written or grown ends the process with SIGBUS instead of answering an error.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import shutil
import sqlite3
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import JsonValue, TypeAdapter
from sqlalchemy.dialects import postgresql, sqlite

from retain.core.errors import RetainError
from retain.core.settings import Settings
from retain.core.store import Store
from retain.core.urls import described, redact, sqlalchemy_url
from serving import log_migrations
from serving.log_spill import Spilled, read_spill, spill_files, spill_prefix, write_spill

log = logging.getLogger("retain.decision_log")

#: entries per transaction: one executemany per table
BATCH = 500
#: how long the writer lets entries gather after the first arrives, so a busy API commits a batch rather
#: than one transaction per answer (each costs the GIL a request's worth of work); `flush` cuts it short
GATHER_SECONDS = 0.1
#: at most one warning of a kind (dropped, failed) per this many seconds; `stats` has the counts
WARN_EVERY = 10.0
#: how long SQLite waits for the other writer's lock (the writer thread or a feedback request)
SQLITE_BUSY_SECONDS = 5.0
PG_CONNECT_TIMEOUT = 5
#: how long a write under way may take to end on its own (a locked SQLite file, a PostgreSQL connect)
WRITE_SECONDS = max(SQLITE_BUSY_SECONDS, PG_CONNECT_TIMEOUT)
#: recommendation ids of lost entries (dropped or refused) remembered, so feedback on one is told "lost"
LOST_REMEMBERED = 100_000
#: how long a lookup of a just-served recommendation waits for the queue to drain
LOOKUP_FLUSH_SECONDS = 2.0
#: PostgreSQL advisory lock key held while creating the schema (arbitrary, fixed)
SCHEMA_LOCK_KEY = 0x5E7A1D
#: how far beyond its size feedback may fill the queue, as a share of the size: while the database is
#: away, decisions are dropped first (counted, and feedback on one is told so), and feedback a caller
#: sent, small and rarer, still has room to wait
FEEDBACK_ROOM = 0.25


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC in and out: SQLite stores no zone, and PostgreSQL answers in the session's zone."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value}: the decision log stores aware times")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


METADATA = sa.MetaData()
DECISIONS = sa.Table(
    "decisions",
    METADATA,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String, nullable=False),
    sa.Column("served_at", UTCDateTime, nullable=False),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("account_id", sa.String, nullable=False),
    sa.Column("source", sa.String, nullable=False),
    sa.Column("models", sa.JSON, nullable=False),
    sa.Column("cutoff", UTCDateTime),
    sa.Column("inputs_hash", sa.String, nullable=False),
    sa.Column("output", sa.JSON, nullable=False),
    sa.Column("key_id", sa.String),
    sa.Index("ix_decisions_account_served", "account_id", "served_at"),
)
RECOMMENDATIONS = sa.Table(
    "recommendations",
    METADATA,
    sa.Column("recommendation_id", sa.String, primary_key=True),
    sa.Column("request_id", sa.String, nullable=False),
    sa.Column("served_at", UTCDateTime, nullable=False),
    sa.Column("account_id", sa.String, nullable=False),
    sa.Column("action", sa.String, nullable=False),
    sa.Column("rank", sa.Integer, nullable=False),
    sa.Column("expected_value", sa.Float),
    sa.Column("source", sa.String, nullable=False),
    #: the probability that this account was offered this action at this rank: 1 for the deterministic
    #: ranking (an off-policy estimate weights by it); and how sure the model was that the action helps
    sa.Column("propensity", sa.Float),
    sa.Column("p_helps", sa.Float),
)
FEEDBACK = sa.Table(
    "feedback",
    METADATA,
    sa.Column("feedback_id", sa.String, primary_key=True),
    sa.Column("recommendation_id", sa.String, nullable=False, index=True),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("reason", sa.String),
    sa.Column("actor", sa.String),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("intervention_id", sa.String),
    sa.Column("key_id", sa.String),
)

#: one row rewritten by every readiness check: the only proof that the log can be written is a write
WRITE_PROBE = sa.Table(
    "write_probe",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("checked_at", UTCDateTime, nullable=False),
)

#: the spill files replayed, each by its unique stem, recorded in the transaction that writes its entries:
#: a start that finds the file again (its removal cut short, a second worker) writes nothing twice
SPILLS_REPLAYED = sa.Table(
    "spills_replayed",
    METADATA,
    sa.Column("spill_id", sa.String, primary_key=True),
    sa.Column("entries", sa.Integer, nullable=False),
    sa.Column("replayed_at", UTCDateTime, nullable=False),
)

#: actions taken, reported through the API: durable here at once, folded into the store's Delta table
#: `interventions` by `retain store compact` (folded_version says which table version holds the row)
TAKEN = sa.Table(
    "interventions_taken",
    METADATA,
    sa.Column("intervention_id", sa.String, primary_key=True),
    sa.Column("account_id", sa.String, nullable=False),
    sa.Column("ts", UTCDateTime, nullable=False),
    sa.Column("action", sa.String, nullable=False),
    sa.Column("owner", sa.String),
    sa.Column("channel", sa.String),
    sa.Column("assignment", sa.String, nullable=False),
    sa.Column("propensity", sa.Float),
    sa.Column("request_id", sa.String, nullable=False),
    sa.Column("folded_version", sa.Integer, index=True),
    sa.Column("key_id", sa.String),
)

#: API keys when `serve.keys` is `database` (`serving.keys.KeyTable`): hosts that share this database share
#: them. Scopes comma-separated; only a SHA-256 digest of each key.
API_KEYS = sa.Table(
    "api_keys",
    METADATA,
    sa.Column("key_id", sa.String, primary_key=True),
    sa.Column("name", sa.String),
    sa.Column("scopes", sa.String, nullable=False),
    sa.Column("sha256", sa.String, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime),
)

#: webhook subscriptions (`serving.webhooks`): where alerts of the listed types (comma-separated, or `*`)
#: are pushed, and the current secret that signs them, which is kept as it is: a signature needs it;
#: `legacy_signature` marks a secret from before Standard Webhooks (its deliveries carry Retain-Signature)
WEBHOOKS = sa.Table(
    "webhooks",
    METADATA,
    sa.Column("webhook_id", sa.String, primary_key=True),
    sa.Column("url", sa.String, nullable=False),
    sa.Column("events", sa.String, nullable=False),
    sa.Column("secret", sa.String, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("removed_at", UTCDateTime),
    sa.Column("legacy_signature", sa.Boolean, nullable=False, server_default=sa.false()),
)

#: the secrets a rotation replaced: each still signs beside the webhook's current one until `expires_at`
WEBHOOK_RETIRING_SECRETS = sa.Table(
    "webhook_retiring_secrets",
    METADATA,
    sa.Column("webhook_id", sa.String, primary_key=True),
    sa.Column("secret", sa.String, primary_key=True),
    sa.Column("legacy_signature", sa.Boolean, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
)

#: alerts recorded for delivery, each once by its stable id; `payload` is the exact JSON body sent, so
#: every attempt sends and signs the same bytes
ALERTS = sa.Table(
    "alerts",
    METADATA,
    sa.Column("alert_id", sa.String, primary_key=True),
    sa.Column("type", sa.String, nullable=False),
    sa.Column("account_id", sa.String),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
)

#: the outbox: one row per alert and subscription, written with the alert; a worker claims due rows
#: for `claimed_until` (a lease) and marks each delivered, pending again later, or dead
DELIVERIES = sa.Table(
    "deliveries",
    METADATA,
    sa.Column("alert_id", sa.String, primary_key=True),
    sa.Column("webhook_id", sa.String, primary_key=True),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("claimed_until", UTCDateTime),
    sa.Column("last_error", sa.String),
    sa.Column("delivered_at", UTCDateTime),
    sa.Index("ix_deliveries_due", "status", "next_attempt_at"),
)

#: what the autopilot executed (`serving.autopilot_log`): one row per plan week, account and action, keyed by
#: the execution id that is also its outbox event's id (every delivery's idempotency key) and its row in
#: `interventions_taken`; who acted (`actor`, and the API key), from which policy and with what propensity
AUTOPILOT_EXECUTIONS = sa.Table(
    "autopilot_executions",
    METADATA,
    sa.Column("execution_id", sa.String, primary_key=True),
    sa.Column("week", UTCDateTime, nullable=False),
    sa.Column("account_id", sa.String, nullable=False),
    sa.Column("action", sa.String, nullable=False),
    sa.Column("channel", sa.String, nullable=False),
    sa.Column("arm", sa.String, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String, nullable=False),
    sa.Column("key_id", sa.String),
    sa.Column("policy_version", sa.String, nullable=False),
    sa.Column("propensity", sa.Float),
    sa.Column("run_id", sa.String, nullable=False),
    sa.Index("ix_autopilot_executions_account", "account_id", "at"),
    sa.Index("ix_autopilot_executions_at", "at"),
)

#: the held-out accounts each run found that the autopilot would have executed an action for: the
#: comparison its harm check holds the executions against
AUTOPILOT_COMPARISONS = sa.Table(
    "autopilot_comparisons",
    METADATA,
    sa.Column("week", UTCDateTime, primary_key=True),
    sa.Column("account_id", sa.String, primary_key=True),
    sa.Column("action", sa.String, primary_key=True),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
)

#: the kill switch: per scope (`*` for the whole autopilot, or an action), paused or not, by whom and why;
#: an automatic pause keeps the figures that caused it in `evidence`
AUTOPILOT_SWITCHES = sa.Table(
    "autopilot_switches",
    METADATA,
    sa.Column("scope", sa.String, primary_key=True),
    sa.Column("paused", sa.Boolean, nullable=False),
    sa.Column("reason", sa.String),
    sa.Column("actor", sa.String, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("evidence", sa.JSON),
)

#: accounts a CSM stopped the autopilot for (from the cockpit), and who let it act again
AUTOPILOT_STOPS = sa.Table(
    "autopilot_stops",
    METADATA,
    sa.Column("account_id", sa.String, primary_key=True),
    sa.Column("stopped", sa.Boolean, nullable=False),
    sa.Column("actor", sa.String, nullable=False),
    sa.Column("key_id", sa.String),
    sa.Column("at", UTCDateTime, nullable=False),
)


def upsert_into(conn: sa.Connection, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that can say what to do on a key already present (`on_conflict_do_nothing`, `..._update`),
    in the dialect of `conn`: both back ends have it, under their own classes."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


#: canonical JSON (sorted keys), so equal `models` dicts are equal text and compare in SQL on both
#: backends; no NaN, which PostgreSQL's json rejects and the API's responses cannot carry either
_dumps = functools.partial(json.dumps, sort_keys=True, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True)
class Recommendation:
    recommendation_id: str
    action: str
    rank: int
    expected_value: float | None
    #: the probability with which this action was offered at this rank (1: the deterministic ranking)
    propensity: float = 1.0
    #: the posterior probability that the action lowers churn risk (None: ranked by the rules)
    p_helps: float | None = None


@dataclass(frozen=True)
class LoggedDecision:
    """One served answer for one account, as the `decisions` table holds it."""

    request_id: str
    served_at: datetime
    kind: Literal["score", "recommendation"]
    account_id: str
    source: str
    #: model versions by task, e.g. {"churn": "churn/3", "expansion": None}
    models: dict[str, str | None]
    #: the feature row's cutoff the answer used; None when there was no row
    cutoff: datetime | None
    inputs_hash: str
    #: the answer as its JSON
    output: dict[str, JsonValue]
    #: the API key that asked (None for an answer given without HTTP)
    key_id: str | None = None


@dataclass(frozen=True)
class Decision(LoggedDecision):
    """One served answer to log, with the actions it recommended (kept in `recommendations`)."""

    recommendations: tuple[Recommendation, ...] = ()

    def logged_recommendations(self) -> list[LoggedRecommendation]:
        """Its recommendations as the `recommendations` table holds them."""
        return [
            LoggedRecommendation(
                r.recommendation_id,
                self.request_id,
                self.served_at,
                self.account_id,
                r.action,
                r.rank,
                r.expected_value,
                self.source,
                r.propensity,
                r.p_helps,
            )
            for r in self.recommendations
        ]


@dataclass(frozen=True)
class LoggedRecommendation:
    """One recommended action, as the `recommendations` table holds it."""

    recommendation_id: str
    request_id: str
    served_at: datetime
    account_id: str
    action: str
    rank: int
    expected_value: float | None
    source: str
    propensity: float | None = None
    p_helps: float | None = None


FeedbackStatus = Literal["accepted", "rejected", "done"]


@dataclass(frozen=True)
class LoggedFeedback:
    """Feedback on a recommendation, as the `feedback` table holds it."""

    feedback_id: str
    recommendation_id: str
    status: FeedbackStatus
    reason: str | None
    actor: str | None
    at: datetime
    intervention_id: str | None
    #: the API key that gave it; `actor` is what the caller says of itself
    key_id: str | None


@dataclass(frozen=True)
class FeedbackOnAction(LoggedFeedback):
    """Feedback with the account and the action of the recommendation it answers."""

    account_id: str
    action: str


@dataclass(frozen=True)
class AnswerSource:
    """Answers served by one source: the model (code None) or the rules for one fallback code."""

    source: str
    code: str | None
    answers: int


@dataclass(frozen=True)
class FeedbackCount:
    action: str
    status: str
    reason: str | None
    n: int


@dataclass(frozen=True)
class TakenAction:
    """An action taken, as the contract's interventions table holds it."""

    intervention_id: str
    account_id: str
    ts: datetime
    action: str
    owner: str | None
    channel: str | None
    assignment: str
    propensity: float | None


#: what the queue holds: served answers, and feedback that could not be written at once
LogEntry = Decision | LoggedFeedback

_DECISION = TypeAdapter(Decision)
_FEEDBACK = TypeAdapter(LoggedFeedback)


def _spill_line(entry: LogEntry) -> str:
    """An entry as a line of a spill file."""
    if isinstance(entry, Decision):
        return _dumps({"decision": _DECISION.dump_python(entry, mode="json")})
    return _dumps({"feedback": _FEEDBACK.dump_python(entry, mode="json")})


def _spilled_entry(line: str) -> LogEntry:
    """A line of a spill file as the entry it was."""
    record = json.loads(line)
    if "decision" in record:
        return _DECISION.validate_python(record["decision"])
    return _FEEDBACK.validate_python(record["feedback"])


@dataclass(frozen=True)
class LogBounds:
    """When the log stops being ready, and what happens to what waits when it closes."""

    #: a SQLite log's disk with less free than this is not ready (0: not checked)
    min_free_bytes: int = 0
    #: more entries waiting than this is not ready
    max_pending: int | None = None
    #: how long `close` keeps writing what waits
    drain_seconds: float = 5.0
    #: where `close` spills what it could not write, the first folder that takes it; none: counted failed
    spill_dirs: tuple[Path, ...] = ()

    @classmethod
    def configured(cls, store: Store, settings: Settings) -> LogBounds:
        """The settings' bounds; spills go to the configured folder, else the store's, else the system's
        temporary folder, so one still lands when the store's disk is full."""
        serve = settings.serve
        folders = (
            serve.log_spill_dir,
            store.serving_dir / "spill",
            Path(tempfile.gettempdir()) / "retain-spill",
        )
        return cls(
            min_free_bytes=int(serve.log_min_free_mb * 1_000_000),
            max_pending=serve.log_max_pending,
            drain_seconds=serve.log_drain_seconds,
            spill_dirs=tuple(folder for folder in folders if folder is not None),
        )


#: the columns a `TakenAction` holds
TAKEN_COLUMNS = [TAKEN.c[f.name] for f in fields(TakenAction)]


#: the columns a `LoggedDecision` holds (all but the row id)
DECISION_COLUMNS = [DECISIONS.c[f.name] for f in fields(LoggedDecision)]


def _previous_score_query() -> sa.Select[Any]:
    """`previous_score`'s query, built once: a request that serves an account for the first time asks
    it, and building the statement costs several times running it."""
    d = DECISIONS.c
    other_data = d.cutoff.is_distinct_from(sa.bindparam("cutoff", type_=UTCDateTime))
    other_models = sa.cast(d.models, sa.Text) != sa.bindparam("models", type_=sa.Text)
    return (
        sa.select(*DECISION_COLUMNS)
        .where(d.account_id == sa.bindparam("account_id"), d.kind == "score")
        .where(sa.or_(other_data, other_models))
        .order_by(d.served_at.desc(), d.id.desc())
        .limit(1)
    )


_PREVIOUS_SCORE = _previous_score_query()


class DecisionLogUnavailable(RetainError):
    """A synchronous read or write could not reach the decision log's database."""


def _unreachable(error: Exception) -> bool:
    """Errors a retry may cure: the database is down, locked or full, or dropped the connection."""
    transient = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)
    return isinstance(error, transient) or (
        isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated
    )


def _engine(url: str, *, pooled: bool = True) -> sa.Engine:
    """The log's engine; not `pooled`, each connection is opened when asked for and closed after."""
    target = sa.make_url(sqlalchemy_url(url))
    # hide_parameters: SQLAlchemy's error messages would otherwise carry whole rows into the logs
    options: dict[str, Any] = {"json_serializer": _dumps, "hide_parameters": True}
    if not pooled:
        options["poolclass"] = sa.pool.NullPool
    backend = target.get_backend_name()
    if backend == "postgresql":
        return sa.create_engine(
            target, pool_pre_ping=True, connect_args={"connect_timeout": PG_CONNECT_TIMEOUT}, **options
        )
    if backend != "sqlite":
        raise RetainError(f"decision log URL must be sqlite:///path or postgresql://..., got {redact(url)}")
    engine = sa.create_engine(
        target, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_SECONDS}, **options
    )

    @sa.event.listens_for(engine, "connect")
    def _rollback_journal(connection: Any, _record: Any) -> None:
        # a file an earlier version left in WAL mode is switched back; that needs the only connection, so
        # one opened beside another tries again until the busy timeout
        deadline = time.monotonic() + SQLITE_BUSY_SECONDS
        while True:
            try:
                # asked first: setting it needs a write, which a file that is only readable refuses
                if connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                    connection.execute("PRAGMA journal_mode=DELETE")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    return engine


def _sqlite_file(url: str) -> Path | None:
    """The SQLite file of a decision log URL; None for a server database or an in-memory one."""
    target = sa.make_url(sqlalchemy_url(url))
    database = target.database
    if target.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    return Path(database)


def _identity(path: Path) -> tuple[int, int] | None:
    """Which file is at `path` now (device and inode); None when there is none."""
    try:
        found = path.stat()
    except FileNotFoundError:
        return None
    return found.st_dev, found.st_ino


class DecisionLog:
    """A bounded queue in front of a database, written by one daemon thread; reads are synchronous."""

    def __init__(
        self,
        url: str,
        *,
        queue_size: int = 10_000,
        retry_delays: tuple[float, ...] = (0.2, 1.0),
        bounds: LogBounds = LogBounds(),
    ):
        self._url = url
        self._bounds = bounds
        self._spill_prefix = spill_prefix(redact(url))
        self._engine = _engine(url)
        #: the readiness probe's: a pooled connection can keep writing a file that no longer takes writes
        #: (on a tmpfs, one opened before `chattr +i`), while every connection opened since only reads it
        self._unpooled = _engine(url, pooled=False)
        self._queue_size = queue_size
        #: the pauses between tries while the database is unreachable, the last repeated for as long as
        #: it stays so: short, since a lookup of a queued recommendation waits for the queue to drain
        self._retry_delays = retry_delays or (0.2,)
        #: the SQLite file, and which file (device, inode) the connections opened: one deleted or replaced
        #: under a running server is noticed before the next read or write, not written into the void
        self._file = _sqlite_file(url)
        self._opened: tuple[int, int] | None = None
        self._queue: deque[LogEntry] = deque()
        #: the batch the writer took from the queue and is writing
        self._writing: list[LogEntry] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._schema_lock = threading.Lock()
        self._schema_ready = False
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
    def url(self) -> str:
        return redact(self._url)

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
        records = [_spill_line(e) for e in left]
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

    def record_taken(self, action: TakenAction, request_id: str, key_id: str | None) -> bool:
        """Store an action taken, durably before answering, with who reported it; False when its id was
        recorded before."""
        row = {
            **{f.name: getattr(action, f.name) for f in fields(TakenAction)},
            "request_id": request_id,
            "key_id": key_id,
        }
        try:
            with self.connect(write=True) as conn:
                conn.execute(TAKEN.insert(), row)
        except sa.exc.IntegrityError:
            return False
        return True

    def taken(self, *, pending_only: bool, account_id: str | None = None) -> list[TakenAction]:
        """Actions recorded here, oldest first: all, or those not yet folded into the store; of one account,
        or of all."""
        query = sa.select(*TAKEN_COLUMNS).order_by(TAKEN.c.ts, TAKEN.c.intervention_id)
        if pending_only:
            query = query.where(TAKEN.c.folded_version.is_(None))
        if account_id is not None:
            query = query.where(TAKEN.c.account_id == account_id)
        with self.connect() as conn:
            return [TakenAction(**row) for row in conn.execute(query).mappings()]

    def mark_folded(self, intervention_ids: list[str], version: int) -> None:
        """Say these actions are in the store's interventions table as of `version`."""
        with self.connect(write=True) as conn:
            for start in range(0, len(intervention_ids), BATCH):
                chunk = intervention_ids[start : start + BATCH]
                conn.execute(
                    TAKEN.update().where(TAKEN.c.intervention_id.in_(chunk)).values(folded_version=version)
                )

    def previous_score(
        self, account_id: str, cutoff: datetime | None, models: dict[str, str | None]
    ) -> LoggedDecision | None:
        """The latest score for the account from other data or other models: what changed since then."""
        row = self._one(
            _PREVIOUS_SCORE, {"account_id": account_id, "cutoff": cutoff, "models": _dumps(models)}
        )
        return None if row is None else LoggedDecision(**row)

    def decisions(
        self, account_id: str | None = None, kind: str | None = None, limit: int = 50
    ) -> list[LoggedDecision]:
        """Newest first."""
        query = (
            sa.select(*DECISION_COLUMNS)
            .order_by(DECISIONS.c.served_at.desc(), DECISIONS.c.id.desc())
            .limit(limit)
        )
        if account_id is not None:
            query = query.where(DECISIONS.c.account_id == account_id)
        if kind is not None:
            query = query.where(DECISIONS.c.kind == kind)
        with self.connect() as conn:
            return [LoggedDecision(**row) for row in conn.execute(query).mappings()]

    def feedback(self, account_id: str | None = None, limit: int = 50) -> list[FeedbackOnAction]:
        """Newest first, with the recommendation's account and action."""
        r = RECOMMENDATIONS.c
        query = (
            sa.select(FEEDBACK, r.account_id, r.action)
            .join(RECOMMENDATIONS, FEEDBACK.c.recommendation_id == r.recommendation_id)
            .order_by(FEEDBACK.c.at.desc())
            .limit(limit)
        )
        if account_id is not None:
            query = query.where(r.account_id == account_id)
        with self.connect() as conn:
            return [FeedbackOnAction(**row) for row in conn.execute(query).mappings()]

    def exists(self) -> bool:
        """False for a SQLite log whose file was never created: a store that never served."""
        return self._file is None or self._file.exists()

    def answer_sources(self, since: datetime | None = None) -> list[AnswerSource]:
        """How many answers came from the model and from the rules (by fallback code) since `since`."""
        code = DECISIONS.c.output[("fallback_reason", "code")].as_string()
        query = sa.select(DECISIONS.c.source, code.label("code"), sa.func.count().label("answers"))
        if since is not None:
            query = query.where(DECISIONS.c.served_at >= since)
        with self.connect() as conn:
            rows = conn.execute(query.group_by(DECISIONS.c.source, code)).all()
        return [AnswerSource(source, code, int(answers)) for source, code, answers in rows]

    def feedback_counts(self, since: datetime | None = None) -> list[FeedbackCount]:
        """Feedback since `since` counted by the recommendation's action, the status and the reason."""
        f, r = FEEDBACK.c, RECOMMENDATIONS.c
        query = sa.select(r.action, f.status, f.reason, sa.func.count().label("n")).join(
            RECOMMENDATIONS, f.recommendation_id == r.recommendation_id
        )
        if since is not None:
            query = query.where(f.at >= since)
        with self.connect() as conn:
            rows = conn.execute(query.group_by(r.action, f.status, f.reason)).all()
        return [FeedbackCount(action, status, reason, int(n)) for action, status, reason, n in rows]

    def _one(self, query: sa.Select[Any], values: dict[str, Any] | None = None) -> sa.RowMapping | None:
        with self.connect() as conn:
            return conn.execute(query, values).mappings().one_or_none()

    @contextlib.contextmanager
    def connect(self, *, write: bool = False, opened_now: bool = False) -> Iterator[sa.Connection]:
        """A connection to the log's database with its schema up to date (one transaction with `write`;
        with `opened_now`, not one from the pool); for the log's own reads and writes and the API keys
        kept beside them. What a retry may cure raises `DecisionLogUnavailable`, and the pool is opened
        anew."""
        engine = self._unpooled if opened_now else self._engine
        try:
            self._ensure_schema()
            with engine.begin() if write else engine.connect() as conn:
                yield conn
        except Exception as e:
            if not _unreachable(e):
                raise
            self._reopen()
            raise DecisionLogUnavailable(
                f"decision log {self.url} is unavailable: {self._describe(e)}"
            ) from e

    def _reopen(self) -> None:
        """Drop every pooled connection and check the schema again on the next use: a connection SQLite
        opened read-only, or one to a file since deleted, would otherwise fail (or vanish) for good."""
        with self._schema_lock:
            self._schema_ready = False
            self._opened = None
        self._engine.dispose()

    def _ensure_schema(self) -> None:
        # `_opened` first, unlocked: a `_reopen` on another thread clears it, and a cleared one is no news
        opened = self._opened
        if self._file is not None and opened is not None and _identity(self._file) != opened:
            log.warning("decision log %s: the file was deleted or replaced; opening it anew", self.url)
            self._reopen()
        with self._schema_lock:
            if self._schema_ready:
                return
            with self._engine.begin() as conn:
                # several API workers may start at once: take the write lock, so one creates and the rest
                # find the tables (SQLAlchemy emits no BEGIN for pysqlite, so this one opens the transaction)
                if conn.dialect.name == "sqlite":
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                else:
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(SCHEMA_LOCK_KEY)))
                log_migrations.upgrade(conn)
            self._opened = _identity(self._file) if self._file is not None else None
            self._schema_ready = True

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
                    if not _unreachable(e):
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
        entries = [_spilled_entry(line) for line in read_spill(path)]
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
        elif _unreachable(error) or len(batch) == 1:
            errors = dict.fromkeys(range(len(batch)), error)
        else:
            errors = {i: e for i, entry in enumerate(batch) if (e := self._insert_or_error([entry]))}
        again = [batch[i] for i, e in errors.items() if _unreachable(e)]
        refused = {i: e for i, e in errors.items() if not _unreachable(e)}
        if again:
            self._reopen()
            self._warn(
                "unreachable",
                "decision log %s is unreachable (%s); %d entries wait to be written",
                self.url,
                self._describe(next(e for e in errors.values() if _unreachable(e))),
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

    def _describe(self, error: Exception) -> str:
        return described(error, self._url)
