"""The one CLI, `retain`: each pipeline stage is a command; the Makefile only wraps these."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from retain.errors import RetainError
from retain.settings import Settings, get_settings
from retain.store import Store

app = typer.Typer(
    help="Retain: churn risk, explained; next-best actions by causal uplift.", no_args_is_help=True
)
features_app = typer.Typer(help="Point-in-time feature tables and the Feast repo.", no_args_is_help=True)
app.add_typer(features_app, name="features")
err = Console(stderr=True)

StoreOpt = Annotated[
    Path | None,
    typer.Option(
        "--store", help="the store folder [default: $RETAIN_HOME, else ./.retain]", show_default=False
    ),
]


def _settings() -> Settings:
    try:
        return get_settings()
    except ValueError as e:
        raise RetainError(f"bad configuration: {e}") from e


def _store(store: Path | None) -> Store:
    return Store(store if store is not None else _settings().home)


def _emit(summary: Any) -> None:
    """Machine-readable result on stdout; progress and messages go to stderr."""
    sys.stdout.write(json.dumps(summary, indent=2, default=str) + "\n")


def _parse_dates(text: str | None, option: str) -> list[date] | None:
    if not text:
        return None
    try:
        return [date.fromisoformat(part.strip()) for part in text.split(",") if part.strip()]
    except ValueError as e:
        raise RetainError(f"{option}: expected comma-separated dates like 2025-01-31 ({e})") from e


@app.command()
def simulate(
    store: StoreOpt = None,
    out: Annotated[Path | None, typer.Option(help="output folder [default: STORE/simulation]")] = None,
    accounts: Annotated[int, typer.Option(min=1, help="number of accounts")] = 2_000,
    days: Annotated[int, typer.Option(min=30, help="days of telemetry")] = 365,
    seed: Annotated[int, typer.Option(help="random seed: same seed, same bytes")] = 7,
    start: Annotated[str, typer.Option(help="first simulated day (UTC)")] = "2025-01-01",
) -> None:
    """Generate a customer base with known truth: telemetry for models, `truth/` kept apart."""
    from retain.simulate import SimConfig, simulate_to

    try:
        first = date.fromisoformat(start)
    except ValueError as e:
        raise RetainError(f"--start: expected a date like 2025-01-01 ({e})") from e
    target = out if out is not None else _store(store).root / "simulation"
    _emit(simulate_to(SimConfig(accounts=accounts, days=days, seed=seed, start=first), target))


@app.command()
def ingest(
    path: Annotated[Path, typer.Argument(help="simulator output folder, event file(s), or adapter source")],
    store: StoreOpt = None,
    adapter: Annotated[str | None, typer.Option(help="source adapter, e.g. ravenstack")] = None,
) -> None:
    """Validate telemetry against the contract; valid rows to the store, invalid ones to quarantine."""
    from retain.ingest import ingest_path

    _emit(ingest_path(_store(store), path, adapter=adapter))


@features_app.command("build")
def features_build(
    store: StoreOpt = None,
    cutoffs: Annotated[
        str | None, typer.Option(help="comma-separated cutoff dates [default: month ends]")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="also write the feature table here")] = None,
    online: Annotated[bool, typer.Option(help="apply the Feast repo and materialise online")] = True,
) -> None:
    """Build the point-in-time feature table, then apply and materialise the Feast repo."""
    from features.build import build_and_publish

    _emit(
        build_and_publish(_store(store), _settings(), _parse_dates(cutoffs, "--cutoffs"), out, online=online)
    )


def main() -> None:
    try:
        app()
    except RetainError as e:
        err.print(f"[red]error:[/red] {e}")
        raise SystemExit(2) from None
