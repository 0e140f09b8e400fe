"""What `retain simulate`, `retain ingest` and `retain features build` tell a person."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group, RenderableType

from retain.cli.summaries.common import alerted, count, plain_table

if TYPE_CHECKING:
    from features.run import FeatureBuild
    from ingest.run import IngestSummary
    from ingest.summary import SqlRead
    from simulate import Simulation


def simulation(s: Simulation) -> RenderableType:
    return Group(
        f"Simulated {count(s.accounts)} accounts over {s.days} days from {s.start} (seed {s.seed}) "
        f"in {s.seconds:.1f} s",
        f"  {count(s.events)} events, {count(s.interventions)} interventions "
        f"({s.random_share:.0%} by the experiment arm), {count(s.held_out)} account-quarters held "
        f"out; {count(s.churned)} churned, "
        f"{count(s.expanded)} expanded",
        f"  telemetry in {s.out}, the truth kept apart in {s.out / 'truth'}",
    )


def ingested(s: IngestSummary) -> RenderableType:
    tables = sorted(set(s.accepted) | set(s.quarantined.by_table))
    rows = [
        [
            t,
            count(s.accepted.get(t, 0)),
            count(s.duplicates.get(t, 0)),
            count(s.quarantined.by_table.get(t, 0)),
        ]
        for t in tables
    ]
    lines: list[RenderableType] = [
        f"Ingested {s.source} into the store {s.store} (ingest {s.ingest_id})",
        plain_table(None, ["table", "accepted", "duplicates", "quarantined"], rows),
    ]
    if s.quarantined.total:
        reasons = ", ".join(f"{reason} {count(n)}" for reason, n in s.quarantined.by_reason.items())
        lines.append(f"  quarantined rows by reason: {reasons} ({count(s.quarantined.new)} new)")
    if s.ignored_columns:
        lines.append(f"  columns not in the contract, ignored: {', '.join(s.ignored_columns)}")
    if s.adapter is not None:
        lines += [f"  {s.adapter.name}: {note}" for note in s.adapter.notes]
    if s.sql is not None:
        lines += _sql_read(s.sql)
    return Group(*lines)


def _sql_read(sql: SqlRead) -> list[RenderableType]:
    """Rows read per source and where each watermark moved to: what the next run reads past."""
    lines: list[RenderableType] = [f"  read {count(sql.rows_read)} rows from {sql.database}:"]
    for table, read in sql.tables.items():
        if not read.incremental:
            moved = "read whole"
        elif read.watermark_after is None:
            moved = "no watermark yet"
        elif read.watermark_after == read.watermark_before:
            moved = f"watermark stays at {read.watermark_after}"
        else:
            moved = f"watermark now {read.watermark_after}"
        lines.append(f"    {table} from {read.source}: {count(read.rows_read)} rows, {moved}")
    lines += [f"    skipped {skipped}" for skipped in sql.skipped]
    return lines


def features_built(b: FeatureBuild) -> RenderableType:
    span = f"{b.cutoffs[0]} to {b.cutoffs[-1]}" if b.cutoffs else "none"
    written = (
        f"feature table version {b.version}"
        if b.version is not None
        else f"written to {b.out} only (the store's feature table and online store unchanged)"
    )
    lines: list[RenderableType] = [
        f"Built {count(b.rows)} feature rows ({count(b.accounts)} accounts at {len(b.cutoffs)} cutoffs, "
        f"{span}; {b.columns} columns) in {b.seconds:.1f} s",
        f"  {written}, built from "
        + ", ".join(f"{table} v{version}" for table, version in b.read.items() if version is not None),
    ]
    if b.feast is not None:
        lines.append(
            f"  Feast: {count(b.feast.rows_materialised)} accounts' latest rows in the "
            f"{b.feast.online_store} online store, in {b.feast.seconds:.1f} s"
        )
    return Group(*lines, *alerted(b.alerts))
