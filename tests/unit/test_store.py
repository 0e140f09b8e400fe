"""The store's commit is all-or-nothing, and orphans of a failed commit are never read."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from retain.core.store import Store


def _write(txn, table: str, values: list[int]) -> Path:
    path = txn.new_file(table)
    pq.write_table(pa.table({"x": values}), path)
    txn.add(table, path)
    return path


def test_committed_files_become_live(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with store.transaction() as txn:
        path = _write(txn, "events", [1, 2])
    assert store.files("events") == [path]
    assert store.files("accounts") == []


def test_failed_transaction_changes_nothing_and_leaves_no_files(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with store.transaction() as txn:
        first = _write(txn, "events", [1])
    with pytest.raises(RuntimeError), store.transaction() as txn:
        _write(txn, "events", [2])
        _write(txn, "quarantine", [3])
        raise RuntimeError("crash mid-ingest")
    assert store.files("events") == [first]
    assert store.files("quarantine") == []
    assert sorted(p.name for p in (tmp_path / "tables").rglob("*.parquet")) == [first.name]


def test_orphans_of_a_killed_writer_are_removed_by_the_next_transaction(tmp_path: Path) -> None:
    store = Store(tmp_path)
    orphan = store.table_dir("events") / "part-orphan.parquet"
    orphan.parent.mkdir(parents=True)
    pq.write_table(pa.table({"x": [9]}), orphan)
    assert store.files("events") == []
    with store.transaction() as txn:
        kept = _write(txn, "events", [1])
    assert not orphan.exists()
    assert store.files("events") == [kept]


def test_replace_swaps_a_snapshot_table(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with store.transaction() as txn:
        _write(txn, "accounts", [1])
    with store.transaction() as txn:
        new = txn.new_file("accounts")
        pq.write_table(pa.table({"x": [1, 2]}), new)
        txn.replace("accounts", [new])
    assert store.files("accounts") == [new]
    assert pq.read_table(new)["x"].to_pylist() == [1, 2]


def test_unknown_table_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown table"):
        Store(tmp_path).files("labels")
