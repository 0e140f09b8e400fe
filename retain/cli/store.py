"""`retain store`: the store's Delta tables compacted, their history, a check of what the store needs to
serve, and the migration of a store of the earlier layout."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from core.errors import RetainError
from retain import api
from retain.cli import summaries
from retain.cli.common import JsonOpt, StoreOpt, emit, err, open_store
from store.delta import DEFAULT_RETENTION_HOURS, TABLES

store_app = typer.Typer(help="The store's Delta tables: upkeep, history, migration.", no_args_is_help=True)


@store_app.command("compact")
def store_compact(
    store: StoreOpt = None,
    retention_hours: Annotated[
        int, typer.Option(help="vacuum files no version younger than this needs")
    ] = DEFAULT_RETENTION_HOURS,
    as_json: JsonOpt = False,
) -> None:
    """Merge the API's recorded actions into the store; compact small files; vacuum old ones."""
    result = api.compact_store(store=open_store(store), retention_hours=retention_hours)
    emit(result, as_json, summaries.compacted)


@store_app.command("history")
def store_history(
    table: Annotated[str, typer.Argument(help=f"one of {', '.join(TABLES)}")],
    store: StoreOpt = None,
    limit: Annotated[int, typer.Option(help="newest versions to show")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """A table's versions, newest first: which step wrote each, and what it read."""
    if table not in TABLES:
        raise RetainError(f"table: expected one of {', '.join(TABLES)}, got {table!r}")
    emit(api.store_history(table, store=open_store(store), limit=limit), as_json, summaries.history)


@store_app.command("check")
def store_check(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """What the store needs to serve from where it is now (after a copy, a restore or a move): its tables
    read, its Feast repo answers, its champions load from its own files, its decision log takes a write.
    Exits 1 with one line per problem on stderr."""
    result = api.check_store(store=open_store(store))
    emit(result, as_json, summaries.store_checked)
    for problem in result.problems:
        err.print(Text.assemble(("problem:", "red"), f" {problem.part} {problem.subject}: {problem.said}"))
    if result.problems:
        raise typer.Exit(1)


@store_app.command("migrate")
def store_migrate(
    old: Annotated[Path, typer.Option("--from", help="a store of the earlier layout (with manifest.json)")],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Convert a store of the earlier layout into Delta tables; the old store is only read."""
    emit(api.migrate_store(old, store=store), as_json, summaries.migrated)
