"""The ingest's duplicate check on Spark: which staged ids a fact table already holds, found by a join on
the executors, so the table's history is read where it lies and never comes to the driver.

Only the staged ids travel to Spark (the input, deduplicated), and only the stored ids among them come
back (at most as many as the input has); the rows to append are then chosen and written by the same path
as DuckDB's (`ingest.commit`), on the driver.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

import pyarrow as pa

from core.settings import SparkSettings
from core.spark import read_delta, session, spark_errors

if TYPE_CHECKING:
    from deltalake import DeltaTable


def stored_among(
    settings: SparkSettings,
    uri: str,
    target: DeltaTable,
    read: pa.Schema,
    staged: pa.Table,
    days: list[date] | None,
) -> pa.Table:
    """The ids of `staged` (one column, the key) that version `target` of the table at `uri` holds. `read`
    names the key and, with `days`, the partition column: only those days' partitions are scanned."""
    spark = session(settings)
    key = staged.column_names[0]
    with spark_errors(f"looking up the staged ids in {uri}"):
        stored = read_delta(spark, target, uri, read, settings)
        if days is not None:
            stored = stored.where(stored[read.names[1]].isin(days))
        ids = spark.createDataFrame(staged)
        return stored.select(key).join(ids, key, "left_semi").toArrow()
