"""The Delta store: each write is one version, a failed write leaves the last one, old versions stay readable,
compaction keeps the rows, and a writer that loses a race runs again."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError, DeltaError

from core.contract import ACCOUNT_SCHEMA
from core.errors import RetainError
from store.appends import append_sorted
from store.delta import TABLES, Store, StoreConflict, commit_with_retry

ROWS = pa.schema([pa.field("id", pa.string()), pa.field("x", pa.int64())])


def rows(*ids: str) -> pa.Table:
    return pa.table({"id": list(ids), "x": list(range(len(ids)))}, schema=ROWS)


def ids(store: Store, version: int | None = None) -> list[str]:
    return sorted(store.read("scores", ROWS, version=version)["id"].to_pylist())


def insert_missing(target: DeltaTable | None, *new: str) -> None:
    """MERGE the ids `target` lacks into it, as an ingest does: a read of its version, then a commit."""
    assert target is not None
    merge = target.merge(rows(*new), predicate="t.id = s.id", source_alias="s", target_alias="t")
    merge.when_not_matched_insert_all().execute()


def test_each_write_is_a_new_version_and_every_version_stays_readable(tmp_path: Path) -> None:
    store = Store(tmp_path)
    assert store.write("scores", rows("a", "b"), "append", "first") == 0
    assert store.write("scores", rows("c"), "append", "second") == 1
    assert store.write("scores", rows("z"), "overwrite", "third") == 2

    assert ids(store) == ["z"]
    assert (ids(store, 0), ids(store, 1), ids(store, 2)) == (["a", "b"], ["a", "b", "c"], ["z"])
    assert store.versions(("scores", "events")) == {"scores": 2, "events": None}
    assert store.read("scores", ROWS, columns=["x"], version=1).schema == pa.schema([ROWS.field("x")])


def test_a_write_that_fails_midway_leaves_the_previous_version(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write("scores", rows("a"), "append", "good")

    def batches() -> Iterator[pa.RecordBatch]:
        yield rows("b", "c").to_batches()[0]
        raise RuntimeError("the source broke after one batch")

    reader = pa.RecordBatchReader.from_batches(ROWS, batches())
    with pytest.raises(DeltaError, match="the source broke after one batch"):
        store.write("scores", reader, "append", "broken")

    assert store.version("scores") == 0
    assert ids(store) == ["a"]
    assert [c.retain for c in store.history("scores")] == ["good"]
    assert store.write("scores", rows("d"), "append", "after") == 1
    assert ids(store) == ["a", "d"]


def test_unknown_table_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with pytest.raises(ValueError, match="unknown table 'labels'"):
        store.write("labels", rows("a"), "append", "no such table")
    with pytest.raises(ValueError, match="unknown table 'labels'"):
        store.read("labels", ROWS)
    assert not (tmp_path / "lake" / "labels").exists()


def test_a_never_written_table_reads_as_empty_rows_of_its_schema(tmp_path: Path) -> None:
    store = Store(tmp_path)
    empty = store.read("accounts", ACCOUNT_SCHEMA)
    assert (empty.num_rows, empty.schema) == (0, ACCOUNT_SCHEMA)
    assert store.read("accounts", ACCOUNT_SCHEMA, columns=["account_id"]).column_names == ["account_id"]
    assert (store.version("accounts"), store.history("accounts"), store.compact("accounts")) == (
        None,
        [],
        None,
    )
    assert store.versions() == dict.fromkeys(TABLES)


def test_a_missing_version_is_a_clear_error(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write("scores", rows("a"), "append", "only")
    with pytest.raises(RetainError, match="table scores has no version 5"):
        store.read("scores", ROWS, version=5)


def test_creating_a_table_twice_gives_the_one_empty_table(tmp_path: Path) -> None:
    """Two first ingests racing to create a table both get version 0, so both MERGE into one table."""
    store = Store(tmp_path)
    assert store.create("scores", ROWS).version() == store.create("scores", ROWS).version() == 0
    assert ids(store) == []
    insert_missing(store.delta("scores"), "a")
    assert (store.version("scores"), ids(store)) == (1, ["a"])


def test_a_merged_table_reads_with_a_string_where_and_a_numeric_scan(tmp_path: Path) -> None:
    """delta-rs's MERGE writes strings as string_view, which Arrow cannot compare inside a scan: `scan`
    narrows the files by numbers, and `where` tests strings on the rows read."""
    store = Store(tmp_path)
    store.create("scores", ROWS)
    insert_missing(store.delta("scores"), "a", "b", "c")
    found = store.read("scores", ROWS, columns=["id"], where=pc.field("id") != "b", scan=pc.field("x") >= 1)
    assert found.to_pylist() == [{"id": "c"}]
    assert found.schema == pa.schema([ROWS.field("id")])


def test_history_keeps_the_note_each_write_gave_newest_first(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write("scores", rows("a", "b", "c"), "append", "ingest 1 from a.csv")
    store.write("scores", rows("d"), "append", "ingest 2 from b.csv")

    history = store.history("scores")
    assert [(c.version, c.retain) for c in history] == [
        (1, "ingest 2 from b.csv"),
        (0, "ingest 1 from a.csv"),
    ]
    assert {c.operation for c in history} == {"WRITE"}
    assert [c.metrics["num_added_rows"] for c in history] == [1, 3]
    assert [c.version for c in store.history("scores", limit=1)] == [1]


def test_compact_folds_small_files_into_one_and_keeps_the_rows(tmp_path: Path) -> None:
    store = Store(tmp_path)
    for name in "abcdef":
        store.write("scores", rows(name), "append", f"write {name}")

    kept = store.compact("scores")  # default retention: the files of older versions stay
    assert kept is not None
    assert (kept.files_before, kept.files_after, kept.files_vacuumed) == (6, 1, 0)
    assert ids(store) == ids(store, kept.version_before) == list("abcdef")
    compaction = store.history("scores", limit=kept.version_after - kept.version_before)
    assert {c.operation: c.retain for c in compaction}["OPTIMIZE"] == "compact: optimize"

    store.write("scores", rows("g"), "append", "write g")
    swept = store.compact("scores", retention_hours=0)
    assert swept is not None
    # vacuumed: the six files the first compaction rewrote, and the two rewritten now
    assert (swept.files_before, swept.files_after, swept.files_vacuumed) == (2, 1, 8)
    assert ids(store) == list("abcdefg")
    delta = store.delta("scores")
    assert delta is not None and len(delta.file_uris()) == 1


def test_commit_with_retry_reruns_the_writer_that_lost_a_race(tmp_path: Path) -> None:
    """Two threads read the same version, then both merge: the second commit conflicts and is rerun."""
    store = Store(tmp_path)
    store.write("scores", rows("a"), "append", "seed")
    both_read = threading.Barrier(2)
    attempts: dict[str, int] = {}

    def ingest(name: str) -> None:
        def attempt() -> None:
            attempts[name] = attempts.get(name, 0) + 1
            target = store.delta("scores")
            if attempts[name] == 1:
                both_read.wait(timeout=30)
            insert_missing(target, name)

        commit_with_retry("scores", attempt)

    threads = [threading.Thread(target=ingest, args=(name,)) for name in ("left", "right")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(attempts.values()) == [1, 2]
    assert ids(store) == ["a", "left", "right"]
    assert store.version("scores") == 2


def test_a_writer_that_keeps_losing_is_told_to_try_again(tmp_path: Path) -> None:
    """A snapshot older than the table conflicts on every attempt; the retries end in StoreConflict."""
    store = Store(tmp_path)
    store.write("scores", rows("a"), "append", "seed")
    stale = store.delta("scores")
    store.write("scores", rows("b"), "append", "a newer version")

    with pytest.raises(StoreConflict, match="other writers committed first 8 times") as raised:
        commit_with_retry("scores", lambda: insert_missing(stale, "c"))
    assert isinstance(raised.value.__cause__, CommitFailedError)
    assert ids(store) == ["a", "b"]


def test_an_append_that_lost_a_race_fails_and_leaves_no_files(tmp_path: Path) -> None:
    """The rows to append were chosen against a version; once another writer commits, they must be chosen
    again, so the commit is refused and the files written for it are removed."""
    store = Store(tmp_path)
    schema = pa.schema([("id", pa.string()), ("event_date", pa.date32())])
    target = store.create("events", schema)
    store.write(
        "events", pa.table({"id": ["a"], "event_date": [date(2025, 1, 1)]}, schema=schema), "append", "other"
    )
    late = pa.table({"id": ["b", "c"], "event_date": [date(2025, 1, 1), date(2025, 1, 2)]}, schema=schema)
    before = sorted(p.name for p in (tmp_path / "lake" / "events").rglob("*.parquet"))
    with pytest.raises(CommitFailedError):
        append_sorted(
            store, "events", target, pa.RecordBatchReader.from_batches(schema, late.to_batches()), "late"
        )
    assert sorted(p.name for p in (tmp_path / "lake" / "events").rglob("*.parquet")) == before
    fresh = append_sorted(
        store,
        "events",
        store.create("events", schema),
        pa.RecordBatchReader.from_batches(schema, late.to_batches()),
        "on time",
    )
    assert (fresh.rows, fresh.version) == (2, 2)
    read = store.read("events", schema).sort_by("id")
    assert read.column("id").to_pylist() == ["a", "b", "c"]
    assert read.column("event_date").to_pylist() == [date(2025, 1, 1), date(2025, 1, 1), date(2025, 1, 2)]
    newest = store.history("events", 1)[0]
    assert (newest.retain, newest.metrics["num_added_rows"]) == ("on time", 2)
