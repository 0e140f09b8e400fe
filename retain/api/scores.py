"""Scores: the store's accounts at a cutoff by the champions, a table of your own by one model, and an
account to try the serving API with."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import RetainError
from core.settings import Settings
from retain.api.common import StoreLike, open_store, settings_or_default

if TYPE_CHECKING:
    from serving.batch import ModelAnswered, StoreScores, TableScores


def score(
    cutoff: date, out: Path | str, *, store: StoreLike = None, settings: Settings | None = None
) -> StoreScores:
    """Every account active at `cutoff`, scored by the churn and expansion champions with the top reasons,
    into a Parquet file, or a database table (`postgresql://...#TABLE`, `sqlite:///PATH#TABLE`) whose rows
    at `cutoff` they replace."""
    from core.sql_out import destination  # deferred: SQLAlchemy
    from features.playbook_file import store_playbook
    from products import alerting
    from serving.batch import score_store  # deferred: MLflow and the models

    target = destination(out)
    settings = settings_or_default(settings)
    where = open_store(store, settings)
    playbook = store_playbook(where, settings)  # what the alerts recommend, checked before scoring
    scored = score_store(where, settings, cutoff, target)
    alerts = alerting.record(where, settings, alerting.score_alerts(where, settings, cutoff, playbook))
    return dataclasses.replace(scored, alerts=alerts)


def score_table(
    table: Path,
    model: str,
    out: Path | str,
    *,
    id_column: str | None = None,
    store: StoreLike = None,
    settings: Settings | None = None,
) -> TableScores:
    """A CSV or Parquet table scored by one registered model (`NAME`, `NAME@alias`, `NAME/version`) into a
    CSV of its id, probability and reasons."""
    from core.sql_out import destination  # deferred: SQLAlchemy
    from serving.batch import score_table as score_file  # deferred: MLflow and the models

    target = destination(out)
    if not isinstance(target, Path):
        raise RetainError(f"--out {target}: --table writes a CSV file; a database table takes --cutoff's")
    settings = settings_or_default(settings)
    return score_file(open_store(store, settings), settings, Path(table), model, target, id_column=id_column)


def example_account(
    cutoff: date, scores: Path, *, store: StoreLike = None, settings: Settings | None = None
) -> ModelAnswered:
    """From a batch's scores at the newest cutoff, the riskiest account the API answers with the model (not
    the rules): a first request that shows what the model says."""
    from serving.batch import riskiest_model_answered  # deferred: MLflow and the models

    settings = settings_or_default(settings)
    return riskiest_model_answered(open_store(store, settings), settings, Path(scores), cutoff)
