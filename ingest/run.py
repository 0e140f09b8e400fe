"""Ingestion with a contract: read, validate every row, publish valid rows and quarantine the rest.

One path for every input (a simulator folder, event files, or a source adapter): frames are read in
bounded batches, judged by `validate`, staged on local disk, and written by `commit` into each table in
one Delta transaction, so a crash leaves every table at a version it had and re-ingesting the same input
changes nothing.
"""

from __future__ import annotations

import tempfile
import uuid
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from core.catalogue import ACTIONS
from core.contract import ACCOUNT_SCHEMA
from core.errors import RetainError
from ingest.adapters import adapt
from ingest.commit import Published, Staging, publish
from ingest.readers import Frame, read_path
from ingest.summary import (
    AdapterReport,
    FilesRead,
    IngestSummary,
    Quarantined,
)
from ingest.validate import (
    REJECTION_REASONS,
    Checked,
    check_accounts,
    check_events,
    check_interventions,
)
from store.delta import Store

__all__ = ["IngestSummary", "ingest_path", "record_interventions"]


def ingest_path(
    store: Store,
    path: Path,
    adapter: str | None = None,
    actions: Collection[str] = ACTIONS,
    mapping: Path | None = None,
) -> IngestSummary:
    """Ingest `path` into `store`: what was accepted, skipped as a duplicate and quarantined; `mapping`
    is the adapter's mapping file, for adapters that take one."""
    path = Path(path)
    if store.lake_uri is None and store.root.exists() and not store.root.is_dir():
        raise RetainError(f"store {store.root} is a file, not a folder")
    if adapter is None:
        read = read_path(path)
        return _commit(store, read.frames(), str(path), len(read.files), read.skipped, actions)[0]
    adapted = adapt(adapter, path, mapping)
    accounts_first = sorted(adapted.frames, key=lambda frame: frame.table != "accounts")
    summary, counts = _commit(store, iter(accounts_first), str(path), len(adapted.frames), [], actions)
    sources = {entry["source"] for entry in adapted.report["tables"].values()}
    quarantined = {s: _by_reason(counts.get(s, Counter())) for s in sources}
    return replace(summary, adapter=AdapterReport.of(adapted.report, quarantined))


def record_interventions(
    store: Store, rows: pa.Table, source: str, actions: Collection[str] = ACTIONS
) -> IngestSummary:
    """Interventions handed over as a table (the API's recorded actions, merged in) take the path of a
    file: validated, quarantined if bad, deduplicated by id, written in one transaction."""
    frames = iter([Frame(table="interventions", source=source, data=rows)])
    return _commit(store, frames, source, 1, [], actions)[0]


def _commit(
    store: Store,
    frames: Iterator[Frame],
    source: str,
    files: int,
    skipped: list[str],
    actions: Collection[str],
) -> tuple[IngestSummary, dict[str, Counter[str]]]:
    """One ingest: stage every frame's verdict, then write each table; its summary, and rejections by
    reason per source file (adapters report them per file)."""
    now = datetime.now(UTC)
    ingest_id = f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="retain-ingest-") as folder:
        staging = Staging(Path(folder), ingest_id, now)
        verdicts = _stage(store, frames, staging, actions)
        try:
            published = publish(store, staging, f"ingest {ingest_id} from {source}")
        except OSError as e:
            raise RetainError(f"cannot write to the store {store.location}: {e}") from e
    return _summary(ingest_id, source, store, verdicts, published, files, skipped), verdicts.by_source


@dataclass
class _Verdicts:
    """What validation said of the input, counted as batches pass (the rows themselves are staged)."""

    by_table: Counter[str] = field(default_factory=Counter)
    by_reason: Counter[str] = field(default_factory=Counter)
    by_source: dict[str, Counter[str]] = field(default_factory=dict)
    ignored_columns: set[str] = field(default_factory=set)

    def count(self, checked: Checked) -> None:
        reasons = checked.rejected.column("reason").to_pylist()
        self.by_table[checked.table] += len(reasons)
        self.by_reason.update(reasons)
        self.by_source.setdefault(checked.source, Counter()).update(reasons)
        self.ignored_columns.update(checked.ignored_columns)


def _stage(store: Store, frames: Iterator[Frame], staging: Staging, actions: Collection[str]) -> _Verdicts:
    """Validate and stage frame by frame; accounts come first, so later events may name them. Every
    frame's timestamps are judged against the ingest's one clock (`staging.now`)."""
    verdicts = _Verdicts()
    live = store.read("accounts", ACCOUNT_SCHEMA, ["account_id"]).column("account_id")
    known = pc.unique(live.combine_chunks())
    with tqdm(desc="ingest: checking", unit="row", unit_scale=True, disable=None) as bar:
        for frame in frames:
            if frame.table == "accounts":
                checked = check_accounts(frame, staging.now)
                added = checked.valid.column("account_id").combine_chunks()
                known = pc.unique(pa.concat_arrays([known, added.cast(pa.string())]))
            elif frame.table == "events":
                checked = check_events(frame, known, staging.now)
            else:
                checked = check_interventions(frame, known, staging.now, actions)
            staging.add(checked)
            verdicts.count(checked)
            bar.update(frame.data.num_rows)
    return verdicts


def _by_reason(counts: Counter[str]) -> dict[str, int]:
    return {reason: counts[reason] for reason in REJECTION_REASONS if counts[reason]}


def _summary(
    ingest_id: str,
    source: str,
    store: Store,
    verdicts: _Verdicts,
    published: Published,
    files: int,
    skipped: list[str],
) -> IngestSummary:
    return IngestSummary(
        ingest_id=ingest_id,
        source=source,
        accepted=published.accepted,
        duplicates=published.duplicates,
        quarantined=Quarantined(
            total=sum(verdicts.by_table.values()),
            new=published.quarantined_new,
            by_reason=_by_reason(verdicts.by_reason),
            by_table=dict(sorted(verdicts.by_table.items())),
        ),
        files=FilesRead(read=files, skipped=skipped),
        ignored_columns=sorted(verdicts.ignored_columns),
        store=store.location,
        versions=published.versions,
    )
