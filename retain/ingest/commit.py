"""Publish one ingest: drop what the store already holds, write the rest, all inside one transaction.

Events and interventions are append-only and keyed by their id, so a row whose id is live (or came
earlier in the same input) is a duplicate, counted and not written. Accounts are a snapshot keyed by
account_id: new or changed rows win and the table is rewritten whole. Quarantined rows are keyed by
a hash of the raw row, so the same bad file quarantines nothing new the second time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from retain.core.contract import ACCOUNT_SCHEMA, EVENT_SCHEMA, INTERVENTION_SCHEMA, TS
from retain.core.store import Store, Transaction
from retain.ingest.validate import Checked

#: Events files stay small enough to read one at a time on a laptop.
MAX_ROWS_PER_FILE = 2_000_000
QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("quarantine_id", pa.string(), nullable=False),
        pa.field("ingest_id", pa.string(), nullable=False),
        pa.field("source", pa.string()),
        pa.field("table", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string()),
        pa.field("raw", pa.string()),
        pa.field("quarantined_at", TS, nullable=False),
    ]
)
APPEND_ONLY = {
    "events": ("event_id", EVENT_SCHEMA),
    "interventions": ("intervention_id", INTERVENTION_SCHEMA),
}


@dataclass(frozen=True)
class Published:
    """What one ingest wrote: rows accepted and duplicates skipped per table, new quarantined rows."""

    accepted: dict[str, int]
    duplicates: dict[str, int]
    quarantined_new: int


def read_live(store: Store, table: str, schema: pa.Schema, columns: list[str] | None = None) -> pa.Table:
    """The live rows of a table (optionally only some columns), empty when nothing is live yet."""
    files = store.files(table)
    wanted = schema if columns is None else pa.schema([schema.field(c) for c in columns])
    if not files:
        return wanted.empty_table()
    return pa.concat_tables([pq.read_table(f, columns=wanted.names).cast(wanted) for f in files])


def publish(txn: Transaction, checked: list[Checked], ingest_id: str, now: datetime) -> Published:
    accepted: dict[str, int] = {}
    duplicates: dict[str, int] = {}
    accepted["accounts"], duplicates["accounts"] = _merge_accounts(
        txn, _valid(checked, "accounts", ACCOUNT_SCHEMA)
    )
    for table, (key, schema) in APPEND_ONLY.items():
        accepted[table], duplicates[table] = _append(txn, table, key, _valid(checked, table, schema))
    return Published(accepted, duplicates, _quarantine(txn, checked, ingest_id, now))


def _valid(checked: list[Checked], table: str, schema: pa.Schema) -> pa.Table:
    return pa.concat_tables([schema.empty_table()] + [c.valid for c in checked if c.table == table])


def _fresh(ids: pa.ChunkedArray | pa.Array, live: pa.ChunkedArray) -> np.ndarray:
    """Rows whose id is neither live nor seen earlier in the batch."""
    n = len(ids)
    firsts = (
        pa.table({"id": ids, "row": np.arange(n)})
        .group_by("id", use_threads=False)
        .aggregate([("row", "min")])
    )
    fresh = np.zeros(n, dtype=bool)
    fresh[firsts.column("row_min").to_numpy()] = True
    if len(live):
        fresh &= ~np.asarray(pc.is_in(ids, value_set=live.combine_chunks()).to_numpy(zero_copy_only=False))
    return fresh


def _write(txn: Transaction, table: str, data: pa.Table, order: pa.Array | None = None) -> list[Path]:
    """Files of at most MAX_ROWS_PER_FILE rows, in `order` if given: one file's rows are copied at a time."""
    paths = []
    for offset in range(0, data.num_rows, MAX_ROWS_PER_FILE):
        path = txn.new_file(table)
        rows = (
            data.slice(offset, MAX_ROWS_PER_FILE)
            if order is None
            else data.take(order.slice(offset, MAX_ROWS_PER_FILE))
        )
        pq.write_table(rows, path, compression="zstd")
        paths.append(path)
    return paths


def _append(txn: Transaction, table: str, key: str, batch: pa.Table) -> tuple[int, int]:
    if not batch.num_rows:
        return 0, 0
    schema = APPEND_ONLY[table][1]
    fresh = _fresh(batch.column(key), read_live(txn.store, table, schema, [key]).column(key))
    new = batch if fresh.all() else batch.filter(pa.array(fresh))
    order = pc.sort_indices(new, sort_keys=[("account_id", "ascending"), ("ts", "ascending")])
    for path in _write(txn, table, new, order):
        txn.add(table, path)
    return new.num_rows, batch.num_rows - new.num_rows


def _merge_accounts(txn: Transaction, batch: pa.Table) -> tuple[int, int]:
    """Later rows of the batch win over earlier ones, and changed rows over live ones."""
    if not batch.num_rows:
        return 0, 0
    latest = {row["account_id"]: row for row in batch.to_pylist()}
    live = {row["account_id"]: row for row in read_live(txn.store, "accounts", ACCOUNT_SCHEMA).to_pylist()}
    changed = {k: row for k, row in latest.items() if live.get(k) != row}
    if changed:
        merged = {**live, **changed}
        table = pa.Table.from_pylist([merged[k] for k in sorted(merged)], schema=ACCOUNT_SCHEMA)
        txn.replace("accounts", _write(txn, "accounts", table))
    return len(changed), batch.num_rows - len(changed)


def _quarantine(txn: Transaction, checked: list[Checked], ingest_id: str, now: datetime) -> int:
    parts = [QUARANTINE_SCHEMA.empty_table()]
    for c in checked:
        n = c.rejected.num_rows
        if n:
            extra = {
                "ingest_id": pa.array([ingest_id] * n),
                "table": pa.array([c.table] * n),
                "quarantined_at": pa.array([now] * n, TS),
            }
            columns = {
                f.name: extra[f.name] if f.name in extra else c.rejected.column(f.name)
                for f in QUARANTINE_SCHEMA
            }
            parts.append(pa.table(columns, schema=QUARANTINE_SCHEMA))
    rows = pa.concat_tables(parts)
    if not rows.num_rows:
        return 0
    live = read_live(txn.store, "quarantine", QUARANTINE_SCHEMA, ["quarantine_id"]).column("quarantine_id")
    new = rows.filter(pa.array(_fresh(rows.column("quarantine_id"), live)))
    for path in _write(txn, "quarantine", new):
        txn.add("quarantine", path)
    return new.num_rows
