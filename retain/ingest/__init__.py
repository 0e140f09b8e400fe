"""Ingestion with a contract: read, validate every row, publish valid rows and quarantine the rest.

One path for every input (a simulator folder, event files, or a source adapter): frames are read,
judged by `validate`, and published by `commit` in one store transaction, so a crash leaves the
store as it was and re-ingesting the same input changes nothing.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from retain.core.contract import ACCOUNT_SCHEMA
from retain.core.errors import RetainError
from retain.core.store import Store
from retain.ingest.adapters import adapt
from retain.ingest.commit import Published, publish, read_live
from retain.ingest.readers import Frame, read_path
from retain.ingest.summary import (
    AdapterReport,
    FilesRead,
    IngestSummary,
    Quarantined,
    RecordedInterventions,
    Rejection,
)
from retain.ingest.validate import (
    REJECTION_REASONS,
    Checked,
    check_accounts,
    check_events,
    check_interventions,
)

__all__ = ["IngestSummary", "ingest_path", "record_interventions"]


def ingest_path(store: Store, path: Path, adapter: str | None = None) -> IngestSummary:
    """Ingest `path` into `store`: what was accepted, skipped as a duplicate and quarantined."""
    path = Path(path)
    if store.root.exists() and not store.root.is_dir():
        raise RetainError(f"store {store.root} is a file, not a folder")
    if adapter is None:
        read = read_path(path)
        return _commit(store, read.frames, str(path), read.files, read.skipped)[0]
    adapted = adapt(adapter, path)
    summary, checked = _commit(store, adapted.frames, str(path), len(adapted.frames), [])
    sources = {entry["source"] for entry in adapted.report["tables"].values()}
    quarantined = {s: _by_reason([c for c in checked if c.source == s]) for s in sources}
    return replace(summary, adapter=AdapterReport.of(adapted.report, quarantined))


def record_interventions(store: Store, rows: pa.Table, source: str) -> RecordedInterventions:
    """Interventions reported one at a time (by the API) take the same path as a file: validated against
    the contract, quarantined with a reason if bad, deduplicated by id, committed atomically."""
    summary, checked = _commit(store, [Frame(table="interventions", source=source, data=rows)], source, 1, [])
    rejected = [
        Rejection(reason=reason, detail=detail)
        for c in checked
        for reason, detail in zip(
            c.rejected.column("reason").to_pylist(), c.rejected.column("detail").to_pylist(), strict=True
        )
    ]
    return RecordedInterventions(summary=summary, rejected=rejected)


def _commit(
    store: Store, frames: list[Frame], source: str, files: int, skipped: list[str]
) -> tuple[IngestSummary, list[Checked]]:
    """One ingest transaction: its summary, and the verdicts for the caller to report from."""
    now = datetime.now(UTC)
    ingest_id = f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    try:
        with store.transaction() as txn:
            checked = _check_frames(frames, read_live(store, "accounts", ACCOUNT_SCHEMA, ["account_id"]))
            published = publish(txn, checked, ingest_id, now)
    except OSError as e:
        raise RetainError(f"cannot write to the store {store.root}: {e}") from e
    return _summary(ingest_id, source, store, checked, published, files, skipped), checked


def _check_frames(frames: list[Frame], live_accounts: pa.Table) -> list[Checked]:
    """Accounts first: an event may name an account that arrives in the same input."""
    accounts = [check_accounts(f) for f in frames if f.table == "accounts"]
    ids = [live_accounts.column("account_id")] + [c.valid.column("account_id") for c in accounts]
    known = pc.unique(pa.chunked_array([chunk for col in ids for chunk in col.chunks], pa.string()))
    others = [
        check_events(f, known) if f.table == "events" else check_interventions(f, known)
        for f in frames
        if f.table != "accounts"
    ]
    return accounts + others


def _by_reason(checked: list[Checked]) -> dict[str, int]:
    counts = Counter(r for c in checked for r in c.rejected.column("reason").to_pylist())
    return {reason: counts[reason] for reason in REJECTION_REASONS if counts[reason]}


def _summary(
    ingest_id: str,
    source: str,
    store: Store,
    checked: list[Checked],
    published: Published,
    files: int,
    skipped: list[str],
) -> IngestSummary:
    by_table: Counter[str] = Counter()
    for c in checked:
        by_table[c.table] += c.rejected.num_rows
    return IngestSummary(
        ingest_id=ingest_id,
        source=source,
        accepted=published.accepted,
        duplicates=published.duplicates,
        quarantined=Quarantined(
            total=sum(by_table.values()),
            new=published.quarantined_new,
            by_reason=_by_reason(checked),
            by_table=dict(sorted(by_table.items())),
        ),
        files=FilesRead(read=files, skipped=skipped),
        ignored_columns=sorted({name for c in checked for name in c.ignored_columns}),
        store=store.root,
    )
