"""The uplift design's labels on Spark: the label SQL of `training/sql` translated (`features.dialect`) and
run over the events where Spark reads them, so that what comes to the driver is the design's own rows
(one per account and week, with their labels), never the events.

The feature rows come from the Spark feature build (`features.spark_build`); the label macros are ported
here, as `features/sql/macros_spark.sql` ports the feature macros.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa

from core.spark import spark_errors
from features.dialect import spark_macros, to_spark
from training.labels import Target, in_key_order, label_keys, label_query

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: training/sql/macros.sql as Spark SQL functions, with the same names and arithmetic
LABEL_MACROS = (
    "CREATE OR REPLACE TEMPORARY FUNCTION rose_by(new DOUBLE, old DOUBLE, share DOUBLE) RETURNS BOOLEAN "
    "RETURN new > old AND new >= old * (1 + share)",
    # DuckDB's epoch() of an interval: its exact microseconds, as a double, in seconds
    "CREATE OR REPLACE TEMPORARY FUNCTION elapsed_days(t0 TIMESTAMP, t1 TIMESTAMP) RETURNS DOUBLE "
    "RETURN CAST(unix_micros(t1) - unix_micros(t0) AS DOUBLE) / 1000000.0D / 86400.0D",
)


def spark_label_frame(
    spark: SparkSession, rows: pd.DataFrame, target: Target, horizon_days: int
) -> pd.DataFrame:
    """`training.labels.label_frame` on Spark, over the session's temp views `events` and `accounts`
    (`SparkFeatures.register`): the same labels, in `rows`' key order. Only the (account, cutoff) pairs go
    to Spark and only their labels come back."""
    query = label_query(target, horizon_days)
    keys = label_keys(rows)
    cached: list[DataFrame] = []
    with spark_errors(f"computing the {target} labels"):
        try:
            for statement in (*spark_macros(), *LABEL_MACROS):
                spark.sql(statement)
            spark.createDataFrame(pa.Table.from_pandas(keys, preserve_index=False)).createOrReplaceTempView(
                "term_pairs"
            )
            for name, text in query.stages.items():
                frame = spark.sql(to_spark(text, query.params)).cache()
                frame.createOrReplaceTempView(name)
                cached.append(frame)
            labels = spark.sql(to_spark(query.text, query.params)).toArrow()
        finally:
            for frame in cached:
                frame.unpersist()
            for name in ("term_pairs", *query.stages):
                spark.catalog.dropTempView(name)
    return in_key_order(labels.to_pandas(), keys)
