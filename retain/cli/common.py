"""What every command of `retain` shares: the `--store`, `--json` and `--engine` options, dates and lists
read from options, the result on stdout (a summary, or JSON with `--json`) and stage lines on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import date
from typing import Annotated, TypeVar

import typer
from rich.console import Console, RenderableType
from rich.text import Text

from core.errors import RetainError
from core.settings import Settings
from retain import api
from store.delta import Store

#: summaries are plain text: a bracket in a path or a message is never read as markup
console = Console(soft_wrap=True, highlight=False, markup=False)
err = Console(stderr=True, soft_wrap=True, highlight=False, markup=False)
Result = TypeVar("Result")


StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="the store folder, or an s3://, gs:// or az:// URI for its tables [default: $RETAIN_HOME, "
        "else ./.retain]",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the whole result as JSON, not a summary")]
EngineOpt = Annotated[
    str | None,
    typer.Option(
        "--engine",
        help="duckdb (embedded) or spark (a local session, or the cluster under spark-submit) "
        "[default: $RETAIN_ENGINE, else duckdb]",
        show_default=False,
    ),
]


def open_store(store: str | None) -> Store:
    return api.open_store(store)


def engine_settings(engine: str | None) -> Settings:
    """The environment's settings, with `--engine` over RETAIN_ENGINE."""
    settings = api.settings_or_default()
    if engine is None:
        return settings
    if engine not in ("duckdb", "spark"):
        raise RetainError(f"--engine: expected duckdb or spark, got {engine!r}")
    return settings.model_copy(update={"engine": engine})


def emit(result: Result, as_json: bool, summary: Callable[[Result], RenderableType]) -> None:
    """The result on stdout: as JSON for a program, else as a person's summary."""
    if as_json:
        sys.stdout.write(json.dumps(api.as_json(result), indent=2, default=str) + "\n")
    else:
        console.print(summary(result))


def stage(text: str) -> None:
    """What is starting, on stderr: the steps that take a while show their own progress bars under it."""
    err.print(Text.assemble((">", "bold cyan"), f" {text}"))


def comma_list(text: str) -> list[str]:
    """`A, B,` as ["A", "B"]: what every option taking `X,X,...` holds."""
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_dates(text: str | None, option: str) -> list[date] | None:
    if not text:
        return None
    try:
        return [date.fromisoformat(part) for part in comma_list(text)]
    except ValueError as e:
        raise RetainError(f"{option}: expected comma-separated dates like 2025-01-31 ({e})") from e


def one_date(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError as e:
        raise RetainError(f"{option}: expected one date like 2025-06-30 ({e})") from e
