"""Scores: `retain score` (the store's accounts at a cutoff, or a table of your own) and `retain
example-account`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from core.errors import RetainError
from retain import api
from retain.cli import summaries
from retain.cli.common import EngineOpt, JsonOpt, StoreOpt, emit, engine_settings, one_date, open_store, stage


def score(
    out: Annotated[
        str,
        typer.Option(
            help="output: Parquet with --cutoff, CSV with --table; or, with --cutoff, a database table "
            "whose rows at the cutoff it replaces: 'postgresql://USER@HOST:PORT/DB#TABLE', "
            "'sqlite:///PATH#TABLE'"
        ),
    ],
    store: StoreOpt = None,
    cutoff: Annotated[
        str | None, typer.Option(help="score every account active at this date with the champions")
    ] = None,
    table: Annotated[Path | None, typer.Option(help="score this CSV or Parquet table with --model")] = None,
    model: Annotated[str | None, typer.Option(help="with --table: NAME, NAME@alias or NAME/version")] = None,
    id_column: Annotated[
        str | None,
        typer.Option("--id", help="with --table: its id column (default: the model's, else account_id)"),
    ] = None,
    engine: EngineOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Batch scoring with reasons: the store's accounts at a cutoff, or a table of your own; with
    `--engine spark`, the store's accounts are scored on Spark's executors."""
    if (cutoff is None) == (table is None):
        raise RetainError("give either --cutoff (score the store's accounts) or --table (score a file)")
    if table is not None:
        if model is None:
            raise RetainError("--table needs --model, e.g. --model churn@champion")
        stage(f"scoring {table} with {model}, each row with its top reasons")
        scored = api.score_table(table, model, out, id_column=id_column, store=open_store(store))
        emit(scored, as_json, summaries.table_scored)
        return
    if model is not None:
        raise RetainError("--cutoff scores with churn@champion and expansion@champion; drop --model")
    day = one_date(str(cutoff), "--cutoff")
    stage(f"scoring the accounts active at {day} with the churn and expansion champions")
    at_cutoff = api.score(day, out, store=open_store(store), settings=engine_settings(engine))
    emit(at_cutoff, as_json, summaries.scored)


def example_account(
    cutoff: Annotated[
        str, typer.Option(help="the cutoff the scores are at: the newest, which the API serves")
    ],
    scores: Annotated[Path, typer.Option(help="the scores `retain score --cutoff` wrote")],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """An account to try the API with: the riskiest active account the churn model answers itself (not the
    rules). Prints its id."""
    found = api.example_account(one_date(cutoff, "--cutoff"), scores, store=open_store(store))
    emit(found, as_json, summaries.example_account)
