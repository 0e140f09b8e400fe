"""What `retain store` tells a person: a check, a compaction, a table's history, a migration."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group, RenderableType

from retain.cli.summaries.common import count, plain_table

if TYPE_CHECKING:
    from ingest.migrate import Migration
    from products.upkeep.check import StoreCheck
    from products.upkeep.run import Compaction
    from store.delta import Commit


def store_checked(c: StoreCheck) -> RenderableType:
    rows = ([f.part, f.subject, "problem" if f.problem else "ok", f.said] for f in c.findings)
    verdict = f"{count(len(c.problems))} problems" if c.problems else "nothing to fix"
    return Group(
        f"Checked the store {c.store}: {verdict}",
        plain_table("Parts", ["part", "of", "", "said"], rows, figures=False),
    )


def compacted(c: Compaction) -> RenderableType:
    merged = c.merged
    lines: list[RenderableType] = [
        f"Merged {count(merged.pending)} actions recorded through the API into the store "
        f"({count(merged.added)} new)"
        + (f", interventions v{merged.version}" if merged.version is not None else ""),
        plain_table(
            "Compacted",
            ["table", "version", "files before", "files after", "files vacuumed"],
            (
                [
                    t.table,
                    f"{t.version_before} → {t.version_after}",
                    count(t.files_before),
                    count(t.files_after),
                    count(t.files_vacuumed),
                ]
                for t in c.tables
            ),
        ),
    ]
    return Group(*lines)


def history(commits: list[Commit]) -> RenderableType:
    if not commits:
        return "No versions: nothing was written to this table yet"
    return plain_table(
        f"Versions of {commits[0].table}, newest first",
        ["version", "at (UTC)", "operation", "rows added", "written by"],
        (
            [
                str(c.version),
                f"{c.at:%Y-%m-%d %H:%M:%S}",
                c.operation,
                count(c.metrics.get("num_added_rows", c.metrics.get("num_target_rows_inserted", 0))),
                c.retain or "",
            ]
            for c in commits
        ),
        figures=False,
    )


def migrated(m: Migration) -> RenderableType:
    return Group(
        f"Migrated the store {m.source} into {m.store}",
        plain_table(
            None,
            ["table", "rows read", "rows written", "version"],
            ([t.table, count(t.rows_read), count(t.rows_written), str(t.version)] for t in m.tables),
        ),
    )
