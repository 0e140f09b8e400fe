"""Data in: `retain simulate`, `retain ingest` and `retain features build`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from core.errors import RetainError
from core.urls import redact
from retain import api
from retain.cli import summaries
from retain.cli.common import (
    EngineOpt,
    JsonOpt,
    StoreOpt,
    emit,
    engine_settings,
    one_date,
    open_store,
    parse_dates,
    stage,
)

features_app = typer.Typer(help="Point-in-time feature tables and the Feast repo.", no_args_is_help=True)


def simulate(
    store: StoreOpt = None,
    out: Annotated[Path | None, typer.Option(help="output folder [default: STORE/simulation]")] = None,
    accounts: Annotated[int, typer.Option(min=1, help="number of accounts")] = 2_000,
    days: Annotated[int, typer.Option(min=30, help="days of telemetry")] = 365,
    seed: Annotated[int, typer.Option(help="random seed: same seed, same bytes")] = 7,
    start: Annotated[str, typer.Option(help="first simulated day (UTC)")] = "2025-01-01",
    holdout_share: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=0.49,
            help="share of accounts held back from every proactive play each quarter, the never-treated "
            "comparison (0: none) [default: 0.1]",
        ),
    ] = None,
    drift: Annotated[
        str | None,
        typer.Option(
            metavar="KIND@DATE",
            help="from DATE the world drifts: release (feature use relabelled) or tier_mix (new tiers)",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Generate a customer base with known truth: telemetry for models, `truth/` kept apart."""
    first = one_date(start, "--start")
    target = out if out is not None else open_store(store).root / "simulation"
    stage(f"simulating {accounts:,} accounts over {days} days from {first} (seed {seed}) into {target}")
    result = api.simulate(
        target, accounts=accounts, days=days, seed=seed, start=first, holdout_share=holdout_share, drift=drift
    )
    emit(result, as_json, summaries.simulation)


def ingest(
    path: Annotated[
        Path | None,
        typer.Argument(help="simulator output folder, event file(s), or adapter source (or --from-sql)"),
    ] = None,
    store: StoreOpt = None,
    from_sql: Annotated[
        str | None,
        typer.Option(
            "--from-sql",
            metavar="URL",
            help="read accounts, interventions and events from a database (SQLAlchemy URL, e.g. "
            "postgresql://USER@HOST:5432/DB); events past the last ingest's watermark only",
        ),
    ] = None,
    adapter: Annotated[
        str | None, typer.Option(help="source adapter: ravenstack, segment, amplitude or mixpanel")
    ] = None,
    mapping: Annotated[
        Path | None,
        typer.Option(
            help="YAML mapping of the source's names to the contract's: for adapters, or --from-sql's "
            "tables, queries and columns"
        ),
    ] = None,
    engine: EngineOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate telemetry against the contract; valid rows to the store, invalid ones to quarantine. With
    `--engine spark`, the duplicate check reads the store's events on Spark's executors, only the input's
    days."""
    if path is not None and from_sql is not None:
        raise RetainError("give a PATH or --from-sql URL, not both")
    if path is None and from_sql is None:
        raise RetainError("give a PATH to ingest, or --from-sql URL to read a database")
    shown = path if from_sql is None else redact(from_sql)
    stage(f"ingesting {shown}: every row checked against the contract")
    ingested = api.ingest(
        path,
        store=open_store(store),
        settings=engine_settings(engine),
        adapter=adapter,
        mapping=mapping,
        from_sql=from_sql,
    )
    emit(ingested, as_json, summaries.ingested)


@features_app.command("build", short_help="Build the feature table as the store's new version; publish it.")
def features_build(
    store: StoreOpt = None,
    cutoffs: Annotated[
        str | None,
        typer.Option(
            help="comma-separated cutoff dates (default: month ends); into the store, they must include "
            "every cutoff its feature table holds"
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="write the table to this file only: the store and the online store stay as they are"
        ),
    ] = None,
    online: Annotated[
        bool | None,
        typer.Option(
            help="publish the new table to Feast's online store (default: yes, unless --out)",
            show_default=False,
        ),
    ] = None,
    as_of_version: Annotated[
        int | None,
        typer.Option(help="rebuild from the table versions that built this version of the feature table"),
    ] = None,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="roll every event day up again and compute every cutoff, rather than only the days and "
            "cutoffs that changed since the last build",
        ),
    ] = False,
    engine: EngineOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Build the point-in-time feature table as the store's new version, then publish it to Feast. Each
    version is one whole build (every cutoff from one read of the inputs), which `--as-of-version` can
    rebuild; so a build replaces the whole table, and `--cutoffs` that leave out cutoffs it holds are refused
    rather than losing its history. `--out FILE` writes only FILE, e.g. to look at one cutoff. A build reads
    only the event days the store's roll-ups lack and keeps the last build's rows at cutoffs nothing changed
    before; `--full` rebuilds everything (the same table)."""
    if out is not None and online:
        raise RetainError("--out writes only its file and publishes nothing; drop --online or --out")
    publish = out is None if online is None else online
    chosen = parse_dates(cutoffs, "--cutoffs")
    where = f" into {out}" if out is not None else ""
    stage(f"building the feature table{where}" + (", then publishing it to Feast" if publish else ""))
    result = api.build_features(
        store=open_store(store),
        settings=engine_settings(engine),
        cutoffs=chosen,
        out=out,
        online=publish,
        as_of_version=as_of_version,
        full=full,
    )
    emit(result, as_json, summaries.features_built)
