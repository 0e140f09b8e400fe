"""Keeping a store in shape: merge the API's recorded actions into the store, compact and vacuum tables.

The API records actions taken in the decision log's database (one row, one insert: its write time does
not grow with history). `merge_taken` merges the pending ones into the Delta table `interventions` on
their ids, then marks them with the version that holds them; a crash between the two only means the next
merge merges them again, which adds nothing. `compact` merges, then compacts and vacuums every table.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pyarrow as pa

from core.contract import INTERVENTION_SCHEMA
from core.settings import Settings
from features.playbook_file import store_playbook
from ingest.run import record_interventions
from store.decision_log import DecisionLog
from store.delta import DEFAULT_RETENTION_HOURS, TABLES, Compacted, Store


@dataclass(frozen=True)
class Merged:
    """Actions the API recorded that this merge moved into the store."""

    pending: int
    #: not in the Delta table before (the rest were already there, e.g. from a merge cut short)
    added: int
    #: the interventions table's version holding them (None: nothing was pending)
    version: int | None


@dataclass(frozen=True)
class Compaction:
    merged: Merged
    tables: list[Compacted]


def merge_taken(store: Store, settings: Settings) -> Merged:
    """Merge the decision log's pending actions into the store's interventions, exactly once."""
    log = DecisionLog.for_store(store, settings)
    try:
        pending = log.taken(pending_only=True)
        if not pending:
            return Merged(0, 0, None)
        rows = pa.Table.from_pylist([dataclasses.asdict(t) for t in pending], schema=INTERVENTION_SCHEMA)
        actions = store_playbook(store, settings).names
        summary = record_interventions(store, rows, "the API's recorded actions", actions)
        version = store.version("interventions")
        assert version is not None
        log.mark_merged([t.intervention_id for t in pending], version)
        return Merged(len(pending), summary.accepted["interventions"], version)
    finally:
        log.close()


def compact(store: Store, settings: Settings, retention_hours: int = DEFAULT_RETENTION_HOURS) -> Compaction:
    """Merge the API's actions in, then rewrite each table's small files into large ones and remove files
    that no version younger than `retention_hours` needs."""
    merged = merge_taken(store, settings)
    tables = [found for table in TABLES if (found := store.compact(table, retention_hours)) is not None]
    return Compaction(merged, tables)
