"""Appending rows to a Delta table with memory that stays flat however many rows come.

delta-rs's own writers (write_deltalake, MERGE) keep one open file per partition until the write ends, so
an ingest spanning many event days held all its rows in memory. Here the rows arrive sorted by partition,
one Parquet file is open at a time, and the files are committed together in one Delta transaction (their
add actions), so a crash before the commit leaves orphan files no version references.

The commit refuses to land if another writer committed since `target` was read (no automatic retries):
the caller chose the rows to add against that version, so it must choose again (`commit_with_retry`).
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake.fs import DeltaStorageHandler
from deltalake.transaction import AddAction

from store.delta import PARTITIONS, Store, commit_note, is_object_store

#: rows per row group: a file's buffer in memory is at most this many rows
ROW_GROUP_ROWS = 128_000
#: rows per file of an unpartitioned table
FILE_ROWS = 2_000_000


@dataclass(frozen=True)
class Appended:
    rows: int
    version: int


def append_sorted(
    store: Store, table: str, target: DeltaTable, rows: pa.RecordBatchReader, note: str
) -> Appended:
    """Write `rows` (sorted by the table's partition columns) as new files of `table` and commit them as one
    transaction on top of `target`'s version; `CommitFailedError` if another writer committed first, with
    the files removed again."""
    uri, read_version = store.uri(table), target.version()
    filesystem, root = table_filesystem(uri)
    added = list(_write_files(filesystem, root, rows, PARTITIONS.get(table, [])))
    if not added:
        return Appended(0, read_version)
    try:
        target.create_write_transaction(
            [action for action, _ in added],
            "append",
            rows.schema,
            PARTITIONS.get(table),
            commit_properties=commit_note(note, rows=sum(n for _, n in added), retries=0),
        )
    except BaseException:
        for action, _ in added:
            filesystem.delete_file(under(root, action.path))
        raise
    # no retries: the commit landed on the version after the one read, or not at all
    return Appended(sum(n for _, n in added), read_version + 1)


def under(root: str, path: str) -> str:
    """A path relative to a table's folder, as `filesystem` names it (an object store's is relative)."""
    return f"{root}/{path}" if root else path


def table_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """A local table is written by Arrow's own filesystem; an object-store table through delta-rs's, which
    reads the same credentials from the environment as its reads and commits."""
    if is_object_store(uri):
        return pafs.PyFileSystem(DeltaStorageHandler(uri)), ""
    return pafs.LocalFileSystem(), uri


def _write_files(
    filesystem: pafs.FileSystem, root: str, rows: pa.RecordBatchReader, partitions: list[str]
) -> Iterator[tuple[AddAction, int]]:
    """One file per partition value (or per FILE_ROWS rows), each closed before the next opens."""
    writer: _OpenFile | None = None
    for batch in rows:
        for values, piece in _by_partition(batch, partitions):
            if writer is not None and (writer.values != values or writer.rows >= FILE_ROWS):
                yield writer.close()
                writer = None
            if writer is None:
                writer = _OpenFile(filesystem, root, values, rows.schema.remove_metadata(), partitions)
            writer.write(piece)
    if writer is not None:
        yield writer.close()


def _by_partition(
    batch: pa.RecordBatch, partitions: list[str]
) -> Iterator[tuple[dict[str, str], pa.RecordBatch]]:
    """Consecutive runs of one partition value in a sorted batch."""
    if not partitions or not batch.num_rows:
        yield {}, batch
        return
    keys = pc.cast(batch.column(partitions[0]), pa.string())
    changed = pc.not_equal(keys.slice(1), keys.slice(0, len(keys) - 1)).to_numpy(zero_copy_only=False)
    starts = [0, *(np.flatnonzero(changed) + 1).tolist(), len(keys)]
    for start, end in itertools.pairwise(starts):
        yield {partitions[0]: keys[start].as_py()}, batch.slice(start, end - start)


class _OpenFile:
    """A Parquet file being written into one partition folder of a table."""

    def __init__(
        self,
        filesystem: pafs.FileSystem,
        root: str,
        values: dict[str, str],
        schema: pa.Schema,
        partitions: list[str],
    ) -> None:
        folder = "/".join(f"{k}={v}" for k, v in values.items())
        self.path = (
            f"{folder}/part-{uuid.uuid4().hex}.parquet" if folder else f"part-{uuid.uuid4().hex}.parquet"
        )
        self.values, self.rows, self._filesystem, self._root = values, 0, filesystem, root
        #: partition values live in the path, not in the file (the Delta protocol's layout)
        self._columns = [name for name in schema.names if name not in partitions]
        if root and folder:  # an object store has no folders to make
            filesystem.create_dir(under(root, folder))
        self._sink = filesystem.open_output_stream(under(root, self.path))
        self._writer = pq.ParquetWriter(
            self._sink, pa.schema([schema.field(c) for c in self._columns]), compression="zstd"
        )

    def write(self, piece: pa.RecordBatch) -> None:
        self._writer.write_batch(piece.select(self._columns), row_group_size=ROW_GROUP_ROWS)
        self.rows += piece.num_rows

    def close(self) -> tuple[AddAction, int]:
        self._writer.close()
        self._sink.close()
        size = self._filesystem.get_file_info(under(self._root, self.path)).size
        stats = json.dumps({"numRecords": self.rows})
        action = AddAction(self.path, size, self.values, int(time.time() * 1000), True, stats)
        return action, self.rows
