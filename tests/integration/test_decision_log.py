"""The decision log on SQLite and a real PostgreSQL, and how it degrades when its database is full or down."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, fields
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pyarrow as pa
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from core.contract import INTERVENTION_SCHEMA
from core.settings import ServeSettings, Settings
from core.urls import sqlalchemy_url
from ingest.run import ingest_path, record_interventions
from products.upkeep.run import merge_taken
from store import log_migrations
from store.decision_log import (
    METADATA,
    Decision,
    DecisionLog,
    DecisionLogUnavailable,
    FeedbackOnAction,
    FeedbackStatus,
    LogBounds,
    LoggedDecision,
    LoggedFeedback,
    LoggedRecommendation,
    Recommendation,
    TakenAction,
)
from store.delta import Store

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
C1, C2 = datetime(2025, 2, 23, tzinfo=UTC), datetime(2025, 3, 2, tzinfo=UTC)
V2: dict[str, str | None] = {"churn": "churn/2", "expansion": None}
V3: dict[str, str | None] = {"churn": "churn/3", "expansion": "expansion/1"}
RULES: dict[str, str | None] = {"churn": None, "expansion": None}
SECRET = "hunter2-not-in-logs"


def counts(**nonzero: int) -> dict[str, int]:
    """A log's `stats`: every count zero but those given."""
    return (
        dict.fromkeys(("written", "dropped", "failed", "pending", "drained", "spilled", "replayed"), 0)
        | nonzero
    )


def score(account: str, at: datetime, cutoff: datetime | None, models: dict[str, str | None]) -> Decision:
    source = "rules" if cutoff is None else "model"
    output = {"churn_probability": 0.1 * at.minute, "reasons": [{"text": f"at {at.isoformat()}"}]}
    return Decision(
        f"req-{account}-{at.isoformat()}", at, "score", account, source, models, cutoff, "h", output
    )


def recommend(account: str, at: datetime, *ids: str) -> Decision:
    recs = tuple(Recommendation(rid, f"action-{rank}", rank, 0.5 / rank) for rank, rid in enumerate(ids, 1))
    output = {"actions": [r.action for r in recs]}
    return Decision(
        f"req-{ids[0]}", at, "recommendation", account, "model", V3, C2, "h2", output, recommendations=recs
    )


def given(
    recommendation_id: str,
    status: FeedbackStatus,
    at: datetime,
    *,
    reason: str | None = None,
    intervention_id: str | None = None,
    key_id: str | None = None,
) -> LoggedFeedback:
    """Feedback as the API builds it: a fresh id, the caller's words."""
    return LoggedFeedback(
        uuid.uuid4().hex, recommendation_id, status, reason, "csm", at, intervention_id, key_id
    )


@pytest.fixture
def decision_log(database_url: str) -> Iterator[DecisionLog]:
    log = DecisionLog(database_url)
    log.start()
    yield log
    log.close()


def test_round_trip_previous_score_and_feedback(decision_log: DecisionLog) -> None:
    log = decision_log
    plus_two = timezone(timedelta(hours=2))
    entries = [
        score("a-1", T0, C1, V2),
        score("a-1", T0 + timedelta(minutes=1), C2, V2),  # new data
        score("a-1", T0 + timedelta(minutes=2), C2, V3),  # new model
        score("a-1", (T0 + timedelta(minutes=3)).astimezone(plus_two), C2, dict(reversed(V3.items()))),
        recommend("a-1", T0 + timedelta(minutes=4), "rec-1", "rec-2"),
        score("a-2", T0, None, RULES),
    ]
    assert all(log.submit(d) for d in entries)
    assert log.flush()
    assert log.stats == counts(written=6)

    newest = log.decisions("a-1")
    assert [d.served_at for d in newest] == [T0 + timedelta(minutes=m) for m in (4, 3, 2, 1, 0)]
    assert all(d.served_at.tzinfo == UTC for d in newest)
    assert newest[0].kind == "recommendation" and newest[0].output == {"actions": ["action-1", "action-2"]}
    assert (newest[1].cutoff, newest[1].models, newest[1].output) == (C2, V3, entries[3].output)
    assert newest[4] == LoggedDecision(
        **{f.name: getattr(entries[0], f.name) for f in fields(LoggedDecision)}
    )
    assert [d.account_id for d in log.decisions(kind="score", limit=2)] == ["a-1", "a-1"]
    assert log.decisions("a-2")[0].cutoff is None

    assert log.recommendation("rec-2") == LoggedRecommendation(
        recommendation_id="rec-2",
        request_id="req-rec-1",
        served_at=T0 + timedelta(minutes=4),
        account_id="a-1",
        action="action-2",
        rank=2,
        expected_value=0.25,
        source="model",
        propensity=1.0,
    )
    assert log.recommendation("rec-unknown") is None

    # the same (cutoff, models) as the latest two scores, key order aside: the one before the new model
    previous = log.previous_score("a-1", C2, dict(reversed(V3.items())))
    assert previous is not None
    assert (previous.served_at, previous.cutoff, previous.models) == (
        T0 + timedelta(minutes=1),
        C2,
        V2,
    )
    assert previous.source == "model" and previous.output == entries[1].output
    # only the cutoff differs, and a missing row (None) differs from any cutoff
    for cutoff in (C1, None):
        found = log.previous_score("a-1", cutoff, V3)
        assert found is not None and found.served_at == T0 + timedelta(minutes=3)
    assert log.previous_score("a-2", None, RULES) is None
    found = log.previous_score("a-2", C2, V3)
    assert found is not None and found.source == "rules" and found.cutoff is None
    assert log.previous_score("a-unknown", C2, V3) is None

    at = T0 + timedelta(hours=1)
    rejected = given("rec-1", "rejected", at.astimezone(plus_two), reason="already in touch", key_id="key-1")
    assert log.record_feedback(rejected)
    assert log.record_feedback(given("rec-2", "done", at + timedelta(days=1), intervention_id="int_rec-2"))
    assert [(f.recommendation_id, f.status, f.action, f.account_id) for f in log.feedback("a-1")] == [
        ("rec-2", "done", "action-2", "a-1"),
        ("rec-1", "rejected", "action-1", "a-1"),
    ]
    stored = log.feedback()[1]
    assert stored == FeedbackOnAction(**asdict(rejected), account_id="a-1", action="action-1")
    assert stored.at == at and stored.at.tzinfo == UTC
    assert log.feedback("a-2") == [] and len(log.feedback(limit=1)) == 1


def test_a_recommendation_is_found_moments_after_it_was_served(decision_log: DecisionLog) -> None:
    for i in range(3_000):
        decision_log.submit(recommend(f"a-{i}", T0, f"rec-{i}"))
    found = decision_log.recommendation("rec-2999")
    assert found is not None and found.account_id == "a-2999"


def test_concurrent_submits_reads_and_feedback_do_not_lock_each_other_out(decision_log: DecisionLog) -> None:
    log = decision_log
    log.submit(recommend("a-0", T0, "rec-0"))
    assert log.flush()
    errors: list[BaseException] = []
    submitted = threading.Event()

    def submit(worker: int) -> None:
        for i in range(250):
            log.submit(score(f"a-{worker}", T0 + timedelta(seconds=i), C2, V3))

    def read_and_write() -> None:
        try:
            while not submitted.is_set():
                log.decisions(limit=10)
                log.previous_score("a-1", C1, V2)
                log.recommendation("rec-0")
                log.record_feedback(given("rec-0", "accepted", datetime.now(UTC)))
        except BaseException as e:
            errors.append(e)

    reader = threading.Thread(target=read_and_write)
    reader.start()
    submitters = [threading.Thread(target=submit, args=(w,)) for w in range(4)]
    for t in submitters:
        t.start()
    for t in submitters:
        t.join()
    assert log.flush(10)
    submitted.set()
    reader.join()
    assert errors == []
    assert log.stats == counts(written=1_001)
    assert len(log.decisions(kind="score", limit=2_000)) == 1_000
    assert len(log.feedback(limit=10_000)) >= 1


def test_flush_waits_for_what_was_submitted_before_it_not_for_a_quiet_moment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = DecisionLog(f"sqlite:///{tmp_path}/decisions.db", queue_size=1_000)
    insert = log._insert

    def slow_insert(batch: list[Decision]) -> None:  # a slow database: entries arrive during every write
        time.sleep(0.05)
        insert(batch)

    monkeypatch.setattr(log, "_insert", slow_insert)
    log.start()
    busy = threading.Event()
    stop = threading.Event()

    def keep_submitting() -> None:
        for i in range(10**9):
            log.submit(score(f"a-{i}", T0, C2, V3))
            busy.set()
            if stop.wait(0.002):
                return

    submitter = threading.Thread(target=keep_submitting)
    submitter.start()
    busy.wait()
    drained = log.flush(5)  # pending never reaches 0 while the submitter runs
    stop.set()
    submitter.join()
    log.close()
    assert drained
    assert log.stats["written"] > 0


def test_several_logs_starting_at_once_create_the_schema_once(database_url: str) -> None:
    logs = [DecisionLog(database_url) for _ in range(4)]
    barrier = threading.Barrier(len(logs))
    errors: list[BaseException] = []

    def first_read(log: DecisionLog) -> None:
        barrier.wait()
        try:
            log.decisions()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=first_read, args=(log,)) for log in logs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for log in logs:
        log.close()
    assert errors == []


def test_an_unreachable_database_costs_no_time_keeps_the_entries_and_its_password_stays_out_of_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="retain.decision_log")
    log = DecisionLog(f"postgresql://retain:{SECRET}@127.0.0.1:1/x", retry_delays=(0.05, 0.1))
    assert log.url == "postgresql://retain:***@127.0.0.1:1/x"
    log.start()
    began = time.perf_counter()
    assert log.submit(score("a-1", T0, C2, V3))
    assert time.perf_counter() - began < 0.05
    assert not log.flush(0.5)  # still waiting for the database, not dropped
    assert log.stats == counts(pending=1)
    with pytest.raises(DecisionLogUnavailable) as unavailable:
        log.recommendation("rec-1")
    log.close(timeout=0.2)
    assert log.stats == counts(failed=1)  # closing gave it up
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "is unreachable (OperationalError" in warnings[0] and "1 entries wait to be written" in warnings[0]
    assert "retain:***@127.0.0.1:1/x" in warnings[0] and "closed with 1 entries not written" in warnings[-1]
    assert SECRET not in caplog.text and SECRET not in str(unavailable.value)


def test_the_writer_keeps_entries_until_the_database_can_be_reached(tmp_path: Path) -> None:
    folder = tmp_path / "not-yet"
    log = DecisionLog(f"sqlite:///{folder}/decisions.db", retry_delays=(0.05,))
    log.start()
    assert log.submit(score("a-1", T0, C2, V3)) and not log.flush(0.3)
    assert log.stats == counts(pending=1)
    folder.mkdir()
    assert log.submit(score("a-2", T0, C2, V3)) and log.flush()
    assert log.stats == counts(written=2)
    assert {d.account_id for d in log.decisions()} == {"a-1", "a-2"}
    log.close()


def test_a_full_queue_drops_entries_without_blocking(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="retain.decision_log")
    log = DecisionLog(f"sqlite:///{tmp_path}/decisions.db", queue_size=2)
    assert log.submit(score("a-1", T0, C2, V3)) and log.submit(score("a-2", T0, C2, V3))
    began = time.perf_counter()
    assert not log.submit(score("a-3", T0, C2, V3)) and not log.submit(score("a-4", T0, C2, V3))
    assert time.perf_counter() - began < 0.05
    assert log.stats == counts(dropped=2, pending=2)
    assert [r.getMessage() for r in caplog.records if r.name == "retain.decision_log"] == [
        f"decision log {log.url}: queue full, 1 entries dropped so far"  # rate-limited: one warning
    ]
    assert not log.flush(0.1)
    log.start()
    assert log.flush()
    assert [d.account_id for d in log.decisions()] == ["a-2", "a-1"]
    assert log.submit(score("a-5", T0, C2, V3))
    log.close()
    assert log.stats == counts(written=3, dropped=2, drained=1)  # closing wrote the last


def test_feedback_waits_in_the_queue_while_the_database_is_away_with_room_beyond_decisions(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "not-yet"
    log = DecisionLog(f"sqlite:///{folder}/decisions.db", queue_size=8, retry_delays=(0.05,))
    log.start()
    for i in range(8):
        assert log.submit(recommend(f"a-{i}", T0, f"rec-{i}"))
    assert not log.submit(recommend("a-8", T0, "rec-8"))  # decisions are dropped first
    waiting = given("rec-0", "accepted", T0)
    assert not log.record_feedback(waiting)  # queued: a quarter of the size is kept for feedback
    assert not log.record_feedback(given("rec-1", "accepted", T0), now=False)
    with pytest.raises(DecisionLogUnavailable, match="its queue is full"):
        log.record_feedback(given("rec-2", "accepted", T0))
    folder.mkdir()
    assert log.flush()
    assert [(f.feedback_id, f.account_id) for f in log.feedback() if f.recommendation_id == "rec-0"] == [
        (waiting.feedback_id, "a-0")
    ]
    assert log.stats == counts(written=10, dropped=1)
    log.close()


def test_a_lost_recommendation_is_known_as_lost_not_as_unknown(tmp_path: Path) -> None:
    """In the 10-minute soak, feedback on recommendations whose entries a full queue dropped was 404
    'no recommendation', as if never served."""
    log = DecisionLog(f"sqlite:///{tmp_path}/decisions.db", queue_size=1)
    assert log.submit(recommend("a-1", T0, "rec-kept"))
    assert not log.submit(recommend("a-2", T0, "rec-dropped"))
    log.start()
    assert log.flush()
    assert log.recommendation("rec-dropped") is None and log.lost("rec-dropped")
    assert log.recommendation("rec-kept") is not None and not log.lost("never-served")
    log.close()


def test_a_bad_entry_loses_only_itself_not_its_batch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = DecisionLog(f"sqlite:///{tmp_path}/decisions.db")
    log.submit(recommend("a-1", T0, "rec-1"))
    log.submit(recommend("a-2", T0, "rec-1"))  # the same recommendation id twice
    log.submit(score("a-3", T0, C2, V3))
    log.start()  # after the submits: all three are one batch
    assert log.flush()
    assert log.stats == counts(written=2, failed=1)
    assert {d.account_id for d in log.decisions()} == {"a-1", "a-3"}
    assert "IntegrityError" in caplog.text
    log.close()


def test_for_store_defaults_to_sqlite_in_the_serving_folder(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    log = DecisionLog.for_store(store, Settings(home=store.root))
    assert log.url == f"sqlite:///{store.serving_dir.resolve()}/decisions.db" and store.serving_dir.is_dir()
    configured = Settings(serve=ServeSettings(decision_log_url=f"postgresql://u:{SECRET}@db/log"))
    assert DecisionLog.for_store(store, configured).url == "postgresql://u:***@db/log"


def taken_action(intervention_id: str, minute: int) -> TakenAction:
    return TakenAction(
        intervention_id,
        "acc-1",
        T0 + timedelta(minutes=minute),
        "in_app_nudge",
        "csm-1",
        "in_app",
        "targeted",
        None,
    )


def test_actions_taken_are_stored_once_and_marked_when_folded(decision_log: DecisionLog) -> None:
    assert decision_log.record_taken(taken_action("int-b", 2), "req-1", "key-1") is True
    assert decision_log.record_taken(taken_action("int-a", 1), "req-2", None) is True
    assert (
        decision_log.record_taken(taken_action("int-a", 5), "req-3", "key-1") is False
    )  # same id: kept once
    pending = decision_log.taken(pending_only=True)
    assert [t.intervention_id for t in pending] == ["int-a", "int-b"]  # oldest first
    assert pending[0] == taken_action("int-a", 1)
    decision_log.mark_merged(["int-a"], version=4)
    assert [t.intervention_id for t in decision_log.taken(pending_only=True)] == ["int-b"]
    assert [t.intervention_id for t in decision_log.taken(pending_only=False)] == ["int-a", "int-b"]


def test_a_fold_cut_short_before_marking_adds_nothing_the_second_time(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    settings = Settings(home=store.root)
    accounts = tmp_path / "accounts.csv"
    accounts.write_text(
        "account_id,name,tier,segment,seats_purchased,arr,contract_start,renewal_date,csm_id\n"
        "acc-1,One Co,small_business,smb,10,12000,2024-08-01T00:00:00Z,2025-08-01T00:00:00Z,csm-1\n"
    )
    ingest_path(store, accounts)
    log = DecisionLog.for_store(store, settings)
    try:
        for i in range(3):
            assert log.record_taken(taken_action(f"int-{i}", i), f"req-{i}", None)
        # the crash: the merge landed, the marks did not
        rows = [asdict(t) for t in log.taken(pending_only=True)]
        record_interventions(store, pa.Table.from_pylist(rows, schema=INTERVENTION_SCHEMA), "cut short")
    finally:
        log.close()
    merged = merge_taken(store, settings)
    assert (merged.pending, merged.added) == (3, 0)
    assert merge_taken(store, settings).pending == 0
    stored = store.read("interventions", INTERVENTION_SCHEMA, ["intervention_id"]).column("intervention_id")
    assert sorted(stored.to_pylist()) == ["int-0", "int-1", "int-2"]


# -- faults: a file made unwritable or deleted under a running log, a server that drops its connections --

IMMUTABLE_WRITER = """
import subprocess, sys
from datetime import UTC, datetime
from store.decision_log import Decision, DecisionLog, DecisionLogUnavailable, Recommendation

path = sys.argv[1]
log = DecisionLog(f"sqlite:///{path}", retry_delays=(0.05,))
log.start()

def served(i):
    rec = (Recommendation(f"rec-{i}", "qbr", 1, None),)
    return Decision(
        f"r{i}", datetime.now(UTC), "recommendation", "a", "model", {}, None, "h", {}, recommendations=rec
    )

log.submit(served(0))
assert log.flush()
subprocess.run(f"chattr +i {path}*", shell=True, check=True)
try:
    log.submit(served(1))
    assert not log.flush(0.5)
    print("waiting", log.recommendation("rec-1").recommendation_id)  # found in the queue, not unknown
    # the failed write left a hot journal: SQLite cannot read either until it can roll it back
    for check in (log.check_writable, lambda: log.recommendation("rec-0")):
        try:
            check()
        except DecisionLogUnavailable:
            print("unavailable")
finally:
    subprocess.run(f"chattr -i {path}*", shell=True, check=True)
assert log.flush(10), log.stats
log.check_writable()
print("recovered", log.recommendation("rec-1").recommendation_id, log.stats)
log.close()
"""


def test_an_unwritable_sqlite_file_is_an_error_not_a_crash_and_its_entries_wait(tmp_path: Path) -> None:
    """An immutable file ended the process with SIGBUS (WAL's memory-mapped index); a lookup of a
    recommendation still queued answered 'not found' (it is found in the queue); a pool opened meanwhile
    stayed read-only."""
    done = subprocess.run(
        [sys.executable, "-c", IMMUTABLE_WRITER, str(tmp_path / "decisions.db")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == [
        "waiting rec-1",
        "unavailable",
        "unavailable",
        "recovered rec-1 {'written': 2, 'dropped': 0, 'failed': 0, 'pending': 0, 'drained': 0, 'spilled': 0, "
        "'replayed': 0}",
    ]


def test_a_deleted_sqlite_file_is_made_anew_and_no_entry_is_counted_written_into_it(tmp_path: Path) -> None:
    """The writer kept writing to the deleted file's inode, counted as written, and the schema was
    believed present: feedback then failed with 'no such table' until a restart."""
    path = tmp_path / "decisions.db"
    log = DecisionLog(f"sqlite:///{path}")
    log.start()
    log.submit(recommend("a-1", T0, "rec-1"))
    assert log.flush() and log.recommendation("rec-1") is not None
    path.unlink()
    log.submit(recommend("a-2", T0, "rec-2"))
    assert log.flush()
    assert log.recommendation("rec-2") is not None and log.recommendation("rec-1") is None
    assert log.record_feedback(given("rec-2", "accepted", T0))
    log.close()
    with contextlib.closing(sqlite3.connect(path)) as on_disk:
        assert on_disk.execute("SELECT account_id FROM decisions").fetchall() == [("a-2",)]
        assert on_disk.execute("SELECT recommendation_id FROM feedback").fetchall() == [("rec-2",)]
    assert log.stats["written"] == 2


@pytest.mark.service
def test_the_log_survives_postgresql_dropping_every_connection(postgres_database: str) -> None:
    log = DecisionLog(postgres_database, retry_delays=(0.05,))
    log.start()
    log.submit(recommend("a-1", T0, "rec-1"))
    assert log.flush()
    database = postgres_database.rsplit("/", 1)[1]
    admin = postgres_database.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as con:
        ended = con.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s", (database,)
        ).fetchone()
    assert ended is not None and ended[0] >= 1  # the pool's connections were cut
    log.submit(recommend("a-2", T0, "rec-2"))
    assert log.flush(10)
    assert log.recommendation("rec-2") is not None
    assert log.record_feedback(given("rec-1", "done", T0))
    assert log.stats == counts(written=2)
    log.close()


def test_what_a_closing_log_cannot_write_is_spilled_and_the_next_start_replays_it_once(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A SIGTERM dropped every waiting entry with one log line. Now they go to a spill file, in the first
    folder that takes it (not one that cannot be made), which the next start writes once: a copy found
    again after the replay (its removal cut short, or a second worker) adds nothing."""
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the configured spill folder should be")
    bounds = LogBounds(drain_seconds=0.2, spill_dirs=(blocked / "spill", tmp_path / "spill"))
    stopping = DecisionLog(database_url, bounds=bounds)  # its writer never ran: nothing was written
    entries = [recommend("a-1", T0, "rec-1", "rec-2"), score("a-2", T0, C2, V3)]
    for entry in entries:
        assert stopping.submit(entry)
    feedback = given("rec-1", "accepted", T0, key_id="key-1")
    assert not stopping.record_feedback(feedback, now=False)
    with caplog.at_level(logging.INFO, logger="retain.decision_log"):
        stopping.close()
    assert stopping.stats == counts(spilled=3)
    [spill] = (tmp_path / "spill").iterdir()
    assert (
        f"3 spilled to {spill} (2 decisions, 1 feedback)" in caplog.text and str(blocked) not in caplog.text
    )
    kept = spill.read_bytes()

    started = DecisionLog(database_url, bounds=bounds)
    started.start()
    assert wait_until(lambda: started.stats["replayed"] == 3)
    assert not spill.exists()
    assert started.recommendation("rec-2") == entries[0].logged_recommendations()[1]
    assert [f.feedback_id for f in started.feedback()] == [feedback.feedback_id]
    logged = [LoggedDecision(**{f.name: getattr(e, f.name) for f in fields(LoggedDecision)}) for e in entries]
    assert sorted(started.decisions(), key=lambda d: d.account_id) == logged  # as they were served
    started.close()

    spill.write_bytes(kept)
    again = DecisionLog(database_url, bounds=bounds)
    again.start()
    assert wait_until(lambda: not spill.exists())
    assert again.stats["replayed"] == 0 and len(again.decisions()) == 2 and len(again.feedback()) == 1
    again.close()


def wait_until(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# -- the schema under Alembic ----------------------------------------------------------------------------


def test_the_migrations_build_exactly_the_tables_the_log_uses(
    decision_log: DecisionLog, database_url: str
) -> None:
    decision_log.submit(score("a-1", T0, C2, V3))
    assert decision_log.flush()
    engine = sa.create_engine(sqlalchemy_url(database_url))
    with engine.connect() as conn:
        assert log_migrations.revision(conn) == "0009"
        assert compare_metadata(MigrationContext.configure(conn), METADATA) == []
    engine.dispose()


def test_a_log_the_first_release_made_is_stamped_then_upgraded_keeping_its_rows(tmp_path: Path) -> None:
    """The first release made its tables with `create_all` and no version stamp; revision 0001 is them."""
    url = f"sqlite:///{tmp_path}/decisions.db"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        log_migrations.upgrade_to(conn, log_migrations.BASELINE)
        conn.exec_driver_sql("DROP TABLE alembic_version")
        conn.exec_driver_sql(
            "INSERT INTO feedback (feedback_id, recommendation_id, status, at) "
            "VALUES ('f-old', 'rec-old', 'accepted', '2025-03-03 09:00:00')"
        )
        conn.exec_driver_sql(
            "INSERT INTO interventions_taken (intervention_id, account_id, ts, action, assignment, "
            "request_id, folded_version) VALUES ('i-old', 'a-1', '2025-03-03 09:00:00', 'call', 'targeted', "
            "'r-1', 4)"
        )
    engine.dispose()
    log = DecisionLog(url)
    log.start()
    log.submit(dataclasses.replace(score("a-1", T0, C2, V3), key_id="key-7"))
    assert log.flush() and log.stats["written"] == 1
    assert log.decisions()[0].key_id == "key-7"
    log.close()
    with sqlite3.connect(tmp_path / "decisions.db") as on_disk:
        assert on_disk.execute("SELECT version_num FROM alembic_version").fetchall() == [("0009",)]
        assert on_disk.execute("SELECT feedback_id, key_id FROM feedback").fetchall() == [("f-old", None)]
        # the merge's mark survives its column's rename
        assert on_disk.execute(
            "SELECT intervention_id, merged_version FROM interventions_taken"
        ).fetchall() == [("i-old", 4)]
