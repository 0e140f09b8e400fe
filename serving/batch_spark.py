"""Batch scoring on Spark: the champions shipped to the executors inside the scoring function and applied
to the feature table's rows at a cutoff with `mapInPandas` (the DataFrame API only, so a Spark Connect
server runs it as a classic session does).

Each executor runs `score_accounts`, the same function the single-process batch runs on its chunks, so
probabilities, health and worded TreeSHAP reasons are the same values; only the work is spread. The
scored rows (a few columns per account) come back to the driver as Arrow, where `score_store` writes
the Parquet file and the `scores` Delta table as it does for a local batch: a failed job writes
neither.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date

import pandas as pd
import pyarrow as pa

from core.errors import RetainError
from core.settings import Settings
from core.spark import read_delta, session, spark_errors
from features.cutoffs import cutoff_instant
from features.definitions import KEYS, feature_schema
from features.stored import TABLE as FEATURES
from store.delta import Store
from training.artifact import ScoringModel

JOIN_KEY, TIMESTAMP = KEYS


Models = tuple[ScoringModel, ScoringModel | None]
#: how a chunk of rows is scored: `serving.batch.score_accounts`, passed in so both batches run it
ScoreRows = Callable[[ScoringModel, ScoringModel | None, pd.DataFrame], pa.Table]


def _scorer(
    score_rows: ScoreRows, models: Models
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """The function each executor maps its batches through: a closure over the models, so they travel
    pickled with it (a classic session broadcasts a function that large once to each executor)."""

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        churn, expansion = models
        for rows in batches:
            yield score_rows(churn, expansion, rows.reset_index(drop=True)).to_pandas()

    return score


def score_cutoff(
    store: Store,
    settings: Settings,
    cutoff: date,
    columns: list[str],
    version: int | None,
    models: Models,
    score_rows: ScoreRows,
    output: pa.Schema,
) -> pa.Table:
    """The rows of feature table `version` at `cutoff` (`columns` of them) scored on Spark by
    `score_rows`, as `output`; an error when the table has no rows at `cutoff`."""
    spark = session(settings.spark)
    found = store.delta(FEATURES, version)
    if found is None:
        raise RetainError(f"no feature table in {store.location}; run `retain features build` first")
    schema = feature_schema()
    wanted = pa.schema([schema.field(c) for c in columns])
    from pyspark.sql.functions import col, lit
    from pyspark.sql.pandas.types import from_arrow_schema

    with spark_errors(f"scoring the accounts at {cutoff.isoformat()}"):
        table = read_delta(spark, found, store.uri(FEATURES), schema, settings.spark)
        rows = table.where(col(TIMESTAMP) == lit(cutoff_instant(cutoff))).select(wanted.names)
        scored = rows.mapInPandas(_scorer(score_rows, models), schema=from_arrow_schema(output)).toArrow()
    if scored.num_rows == 0:
        raise RetainError(f"no feature rows at cutoff {cutoff.isoformat()}")
    return scored.cast(output)
