"""Parquet files another engine wrote into a table's folder, committed as one Delta transaction.

Spark's executors can write a large result where the table lives (a folder of `key=value` partition
folders, as `DataFrameWriter.partitionBy` lays them out) without Delta's JVM library; the driver then
moves those files beside delta-rs's own and commits them by their footers alone, so no row passes through
it. Until the commit lands no version references them, so a crash leaves the previous version (and
orphan files that `compact` vacuums).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import date
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake.transaction import AddAction, RemoveAction

from store.appends import table_filesystem, under
from store.delta import DAY_PARTITION, PARTITIONS, Store, commit_note


def commit_written(
    store: Store,
    table: str,
    target: DeltaTable,
    folder: str,
    note: str,
    days: Sequence[date] | None,
) -> int:
    """Commit the Parquet files under `folder` (relative to `table`'s folder) on top of `target`'s version,
    replacing the `event_date` partitions of `days` (None: every row of the table); the new version.
    Each file first moves into its partition's folder at the table's top, named after `folder`, where
    delta-rs writes its own: every reader then finds one layout (Spark's partition discovery refuses
    partition folders under differing parents). `CommitFailedError` if another writer committed first,
    with the files removed again."""
    filesystem, root = table_filesystem(store.uri(table))
    actions: list[AddAction] = []
    try:
        _move_into_place(filesystem, root, folder, actions)
        filters = None if days is None else [(DAY_PARTITION, "in", [day.isoformat() for day in days])]
        rows = sum(json.loads(action.stats)["numRecords"] for action in actions)
        committed: list[AddAction | RemoveAction] = [*actions]
        target.create_write_transaction(
            committed,
            "overwrite",
            pa.schema(target.schema().to_arrow()),
            PARTITIONS.get(table),
            partition_filters=filters,
            commit_properties=commit_note(note, rows=rows, retries=0),
        )
    except BaseException:
        for action in actions:
            filesystem.delete_file(under(root, action.path))
        raise
    finally:
        filesystem.delete_dir(under(root, folder))
    return target.version() + 1


def _move_into_place(filesystem: pafs.FileSystem, root: str, folder: str, actions: list[AddAction]) -> None:
    """Move each data file under `folder` to its partition folder (from its folders' `key=value` names),
    adding its action to `actions`: its rows from its footer (the writer's marker and checksum files,
    named `_*` and `.*`, are left to go with the folder)."""
    now = int(time.time() * 1000)
    for info in filesystem.get_file_info(pafs.FileSelector(under(root, folder), recursive=True)):
        if info.type != pafs.FileType.File or info.base_name.startswith(("_", ".")):
            continue
        partition = [part for part in info.path.removeprefix(root).split("/")[:-1] if "=" in part]
        path = "/".join([*partition, f"{folder}-{info.base_name}"])
        with filesystem.open_input_file(info.path) as file:
            stats = json.dumps({"numRecords": pq.read_metadata(file).num_rows})
        if root and partition:  # an object store has no folders to make
            filesystem.create_dir(under(root, "/".join(partition)))
        filesystem.move(info.path, under(root, path))
        values = dict(unquote(part).split("=", 1) for part in partition)
        actions.append(AddAction(path, info.size, values, now, True, stats))
