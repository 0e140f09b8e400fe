"""The feature build on Spark: the same `features/sql` stages, translated (`features.dialect`), over the
store's Delta tables read by Spark.

Each stage is cached once it is computed, as the DuckDB build makes each a temp table: later stages read
`daily` or `sparse_events` several times, and a lazy view would recompute the event scan each time. The
finished table (one row per account and cutoff, small next to the events) comes back to the driver as
Arrow, where `build_and_publish` writes it as the store's new Delta version through delta-rs, exactly as
the DuckDB build does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from core.settings import Settings, SparkSettings
from core.spark import read_delta, spark_errors
from features.cutoffs import cutoff_table
from features.definitions import RENEWAL_GRACE_DAYS, STAGES, feature_schema, sql
from features.dialect import spark_macros, to_spark
from features.health import health_params
from features.stored import Versions, input_tables
from store.delta import Store

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SparkFeatures:
    """The feature build's inputs and stages on one Spark session."""

    spark: SparkSession
    how: SparkSettings

    def register(self, store: Store, versions: Versions | None = None) -> dict[str, int | None]:
        """The store's input tables (at `versions`, default the latest) as the temp views `events`,
        `accounts` and `interventions`; the versions read."""
        read: dict[str, int | None] = {}
        with spark_errors("reading the store"):
            for name, schema, found in input_tables(store, versions):
                read[name] = None if found is None else found.version()
                if found is None:
                    frame = self.spark.createDataFrame(schema.empty_table())
                else:
                    frame = read_delta(self.spark, found, store.uri(name), schema, self.how)
                frame.createOrReplaceTempView(name)
        return read

    def event_span(self) -> tuple[datetime | None, datetime | None]:
        """The first and last event instant, in UTC (Spark hands timestamps to Python in the process's
        local zone, so they cross as microseconds)."""
        with spark_errors("reading the events' span"):
            query = "SELECT unix_micros(min(ts)), unix_micros(max(ts)) FROM events"
            span = self.spark.sql(query).collect()[0]
        first, last = (None if us is None else EPOCH + timedelta(microseconds=us) for us in span)
        return first, last

    def build(self, cutoffs: Sequence[date], settings: Settings) -> pa.Table:
        """`build_feature_table` on Spark: the same rows, columns, types and order."""
        with spark_errors("building the feature table"):
            return self._build(cutoffs, settings)

    def _build(self, cutoffs: Sequence[date], settings: Settings) -> pa.Table:
        for statement in spark_macros():
            self.spark.sql(statement)
        self.spark.createDataFrame(cutoff_table(cutoffs)).createOrReplaceTempView("cutoffs")
        params: dict[str, Any] = {"grace_days": RENEWAL_GRACE_DAYS}
        cached: list[DataFrame] = []
        try:
            for stage in STAGES:
                frame = self.spark.sql(to_spark(sql(stage), params)).cache()
                frame.createOrReplaceTempView(stage)
                cached.append(frame)
            table = self.spark.sql(to_spark(sql("health"), health_params(settings))).toArrow()
        finally:
            for frame in cached:
                frame.unpersist()
            for name in ("cutoffs", *STAGES):
                self.spark.catalog.dropTempView(name)
        schema = feature_schema()
        return (
            table.select(schema.names)
            .cast(schema)
            .sort_by([("cutoff", "ascending"), ("account_id", "ascending")])
        )
