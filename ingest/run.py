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
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from core.catalogue import ACTIONS
from core.contract import ACCOUNT_SCHEMA
from core.errors import RetainError
from core.settings import SparkSettings
from ingest.adapters import adapt
from ingest.column_mapping import default_mapping, read_column_mapping
from ingest.commit import Published, Staging, publish
from ingest.readers import Frame, read_path
from ingest.sql_source import BATCH_ROWS, SqlSource, database_name
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
from store.watermarks import read_watermarks, write_watermarks

__all__ = ["IngestSummary", "ingest_path", "ingest_sql", "record_interventions"]

#: rows an ingest from a database commits at a time: the dedup before a commit holds about this many rows
#: (and its memory grows with them), so a table of any size ingests in the memory of this many
COMMIT_ROWS = 200_000


def ingest_path(
    store: Store,
    path: Path,
    adapter: str | None = None,
    actions: Collection[str] = ACTIONS,
    mapping: Path | None = None,
    spark: SparkSettings | None = None,
) -> IngestSummary:
    """Ingest `path` into `store`: what was accepted, skipped as a duplicate and quarantined; `mapping`
    is the adapter's mapping file, for adapters that take one. With `spark`, the duplicate check runs on
    that Spark session's executors (`ingest.spark_dedup`)."""
    path = Path(path)
    if store.lake_uri is None and store.root.exists() and not store.root.is_dir():
        raise RetainError(f"store {store.root} is a file, not a folder")
    if adapter is None:
        read = read_path(path)
        return _commit(store, read.frames(), str(path), len(read.files), read.skipped, actions, spark=spark)[
            0
        ]
    adapted = adapt(adapter, path, mapping)
    accounts_first = sorted(adapted.frames, key=lambda frame: frame.table != "accounts")
    summary, counts = _commit(
        store, iter(accounts_first), str(path), len(adapted.frames), [], actions, spark=spark
    )
    sources = {entry["source"] for entry in adapted.report["tables"].values()}
    quarantined = {s: _by_reason(counts.get(s, Counter())) for s in sources}
    return replace(summary, adapter=AdapterReport.of(adapted.report, quarantined))


def ingest_sql(
    store: Store,
    url: str,
    mapping: Path | None = None,
    actions: Collection[str] = ACTIONS,
    batch_rows: int = BATCH_ROWS,
    commit_rows: int = COMMIT_ROWS,
    spark: SparkSettings | None = None,
) -> IngestSummary:
    """Ingest a database's accounts, interventions and events (the tables or queries `mapping` names, else
    the tables of those names) as a file is ingested, reading incremental tables past their watermarks.

    Rows are committed every `commit_rows` (a commit's dedup grows with its rows, so this bounds memory
    however large the table), and each commit then moves the watermarks to the last row it holds: a crash
    leaves them at the last commit, and the next run reads the rest (any rows read again, the per-id write
    skips). With `spark`, each commit's duplicate check runs on Spark's executors."""
    if store.lake_uri is None and store.root.exists() and not store.root.is_dir():
        raise RetainError(f"store {store.root} is a file, not a folder")
    columns = default_mapping() if mapping is None else read_column_mapping(mapping)
    database = database_name(url)
    now = datetime.now(UTC)
    ingest_id = _ingest_id(now)
    parts = []
    with SqlSource(url, columns, read_watermarks(store, database), batch_rows) as source:
        for run in source.runs(commit_rows):
            tables = len(source.plans)
            commit = _commit(store, run, database, tables, source.skipped, actions, ingest_id, now, spark)
            parts.append(commit[0])
            write_watermarks(store, database, source.advanced(), ingest_id, datetime.now(UTC))
        return replace(_merged(parts), sql=source.report())


def _merged(parts: list[IngestSummary]) -> IngestSummary:
    """One ingest's summary from those of its commits: counts added, each table's last version."""
    if len(parts) == 1:
        return parts[0]

    def added(counts: Iterable[dict[str, int]]) -> Counter[str]:
        total: Counter[str] = Counter()
        for count in counts:
            total.update(count)
        return total

    quarantined = [p.quarantined for p in parts]
    return replace(
        parts[0],
        accepted=dict(added(p.accepted for p in parts)),
        duplicates=dict(added(p.duplicates for p in parts)),
        quarantined=Quarantined(
            total=sum(q.total for q in quarantined),
            new=sum(q.new for q in quarantined),
            by_reason=_by_reason(added(q.by_reason for q in quarantined)),
            by_table=dict(sorted(added(q.by_table for q in quarantined).items())),
        ),
        ignored_columns=sorted({c for p in parts for c in p.ignored_columns}),
        versions={table: v for p in parts for table, v in p.versions.items()},
    )


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
    ingest_id: str | None = None,
    now: datetime | None = None,
    spark: SparkSettings | None = None,
) -> tuple[IngestSummary, dict[str, Counter[str]]]:
    """One ingest (or one commit of an ingest committed in parts, which share its `ingest_id` and clock):
    stage every frame's verdict, then write each table; its summary, and rejections by reason per source
    file (adapters report them per file)."""
    now = datetime.now(UTC) if now is None else now
    ingest_id = _ingest_id(now) if ingest_id is None else ingest_id
    with tempfile.TemporaryDirectory(prefix="retain-ingest-") as folder:
        staging = Staging(Path(folder), ingest_id, now)
        verdicts = _stage(store, frames, staging, actions)
        try:
            published = publish(store, staging, f"ingest {ingest_id} from {source}", spark)
        except OSError as e:
            raise RetainError(f"cannot write to the store {store.location}: {e}") from e
    return _summary(ingest_id, source, store, verdicts, published, files, skipped), verdicts.by_source


def _ingest_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


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
                if store.events_source is not None:
                    raise RetainError(
                        f"the store's events are read in place from {store.events_source.location}; "
                        "ingest its accounts and interventions without events (nothing was written)"
                    )
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
