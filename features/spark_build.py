"""The feature build on Spark: the same `features/sql` stages, translated (`features.dialect`), over the
store's Delta tables read by Spark.

Each stage is cached once it is computed, as the DuckDB build makes each a temp table: later stages read
`daily` or `sparse_events` several times, and a lazy view would recompute the event scan each time. The
finished table (one row per account and cutoff, small next to the events) comes back to the driver as
Arrow, where `build_and_publish` writes it as the store's new Delta version through delta-rs, exactly as
the DuckDB build does.

A build into the store reads the same per-day roll-ups as DuckDB's (`features.rollups`): only the days
they lack are rolled up here from the events. The executors write those rows as Parquet into the roll-up
table's folder and the driver commits the files (`store.engine_writes`), so however much history a `--full`
build rolls up, none of it comes back to the driver.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import pyarrow as pa
from deltalake.exceptions import CommitFailedError

from core.contract import EVENT_SCHEMA
from core.settings import Settings, SparkSettings
from core.spark import empty_frame, read_delta, spark_errors, spark_schema
from features.cutoffs import cutoff_table, window_start
from features.definitions import ROLLUPS, STAGE_PARAMS, STAGES, feature_schema, sql
from features.dialect import spark_macros, to_spark
from features.health import health_params
from features.rollups import (
    DAY,
    StoredRollups,
    read_back,
    replaced_days,
    rollup_note,
    source_rows,
)
from features.rollups import TABLE as ROLLUP_TABLE
from features.rollups import table_schema as rollup_schema
from features.stored import INPUTS, Versions, input_tables
from store.adopted_events import DAY_COUNTS, SOURCE_VIEW, AdoptedEvents, on_days
from store.delta import Store
from store.engine_writes import commit_written

if TYPE_CHECKING:
    from deltalake import DeltaTable
    from pyspark.sql import DataFrame, SparkSession

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: the events' partition column, read beside the contract's to pick the days rolled up
DAY_FIELD = pa.field("event_date", pa.date32())


@dataclass(frozen=True)
class SparkFeatures:
    """The feature build's inputs and stages on one Spark session."""

    spark: SparkSession
    how: SparkSettings

    def register(
        self, store: Store, versions: Versions | None = None, views: Collection[str] = tuple(INPUTS)
    ) -> dict[str, int | None]:
        """The store's input tables (at `versions`, default the latest) as the temp views `events`,
        `accounts` and `interventions` (those in `views`); the versions read."""
        read: dict[str, int | None] = {}
        adopted = store.events_source
        with spark_errors("reading the store"):
            for name, schema, found in input_tables(store, versions):
                if name == "events" and adopted is not None:
                    read[name] = adopted.version() if versions is None else versions.get(name)
                    if name in views:
                        self._adopted(adopted, read[name]).createOrReplaceTempView(name)
                    continue
                read[name] = None if found is None else found.version()
                if name in views:
                    self._table(store, name, found, schema).createOrReplaceTempView(name)
        return read

    def adopted_days(self, adopted: AdoptedEvents, version: int | None) -> dict[date, int | None]:
        """Events per UTC day of an adopted table, by one grouped query (one row per day comes back)."""
        with spark_errors("counting the adopted events per day"):
            self._adopted(adopted, version).createOrReplaceTempView("events")
            return {row["day"]: row["n"] for row in self.spark.sql(DAY_COUNTS).collect()}

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
            self._roll_up()
            return self._build(cutoffs, settings, None)

    def roll_up(self, store: Store, version: int | None, days: Sequence[date] | None) -> None:
        """The roll-up stages over the events (at `version`) of `days` (None: all), cached as
        `fresh_<stage>`."""
        with spark_errors("rolling up the events"):
            if store.events_source is None:
                found = None if version is None else store.delta("events", version)
                read = self._table(store, "events", found, EVENT_SCHEMA.append(DAY_FIELD))
                if days is not None:
                    read = read.where(read["event_date"].isin(list(days)))
                read = read.select(*EVENT_SCHEMA.names)
            else:
                read = self._adopted(store.events_source, version)
                read = read if days is None else read.where(on_days(days))
            read.createOrReplaceTempView("events")
            self._roll_up()

    def store_rollups(
        self, store: Store, days: Sequence[date] | None, counts: Mapping[date, int | None], read: int | None
    ) -> int | None:
        """`write_rollups` by the executors: the fresh roll-ups and their source rows as Parquet, one file
        per day, then moved into the days' folders and committed from their footers (`commit_written`)."""
        replaced = replaced_days(days, counts)
        if days is not None and not replaced:
            return None
        target = store.create(ROLLUP_TABLE, rollup_schema())
        folder = f"spark-{uuid.uuid4().hex}"
        with spark_errors("writing the roll-ups"):
            rows = self._rollup_rows(replaced, counts).repartition(DAY_FIELD.name)
            rows.write.partitionBy(DAY_FIELD.name).parquet(f"{store.uri(ROLLUP_TABLE)}/{folder}")
        note = rollup_note(read, replaced)
        try:
            return commit_written(
                store, ROLLUP_TABLE, target, folder, note, None if days is None else replaced
            )
        except CommitFailedError:
            return None

    def _rollup_rows(self, replaced: Sequence[date], counts: Mapping[date, int | None]) -> DataFrame:
        """Each fresh roll-up stage in the table's columns (`rollup_schema`), then the source rows."""
        from pyspark.sql import functions as F

        schema = spark_schema(rollup_schema())
        sources = pa.Table.from_batches([source_rows(replaced, counts)])
        frame = self.spark.createDataFrame(sources, schema)
        for stage in ROLLUPS:
            fresh = self.spark.table(f"fresh_{stage}")
            given = {name: F.col(name) for name in fresh.columns}
            day = given.get(DAY, F.to_date(F.col("ts")))
            named = {**given, "rollup": F.lit(stage), DAY_FIELD.name: day}
            columns = [named.get(f.name, F.lit(None)).cast(f.dataType).alias(f.name) for f in schema.fields]
            frame = fresh.select(*columns).unionByName(frame)
        return frame

    def build_over_rollups(
        self, cutoffs: Sequence[date], settings: Settings, store: Store, rollups: StoredRollups
    ) -> pa.Table:
        """The stages at `cutoffs` over the stored roll-ups of the days kept and the fresh ones; with no
        cutoffs, only the fresh roll-ups are released."""
        with spark_errors("building the feature table"):
            if not cutoffs:
                self._release()
                return feature_schema().empty_table()
            stored = self._table(store, ROLLUP_TABLE, rollups.table, rollup_schema())
            stored.where(stored["event_date"].isin(rollups.kept)).createOrReplaceTempView("event_rollups")
            return self._build(cutoffs, settings, "event_rollups")

    def _adopted(self, adopted: AdoptedEvents, version: int | None) -> DataFrame:
        """The contract's events of an adopted table, read where it is: a Delta version's files, a Parquet
        folder, or a table of the session's catalog."""
        found = adopted.delta(version)
        if found is not None:
            schema = pa.schema(found.schema().to_arrow())
            source = read_delta(self.spark, found, adopted.location, schema, self.how)
        elif adopted.is_path():
            source = self.spark.read.parquet(adopted.location)
        else:
            source = self.spark.table(adopted.location)
        source.createOrReplaceTempView(SOURCE_VIEW)
        return self.spark.sql(adopted.contract_sql(source.columns, "spark"))

    def _table(self, store: Store, name: str, found: DeltaTable | None, schema: pa.Schema) -> DataFrame:
        if found is None:
            return empty_frame(self.spark, schema)
        return read_delta(self.spark, found, store.uri(name), schema, self.how)

    def _roll_up(self) -> None:
        for statement in spark_macros():
            self.spark.sql(statement)
        for stage in ROLLUPS:
            frame = self.spark.sql(to_spark(sql(stage), {})).cache()
            frame.createOrReplaceTempView(f"fresh_{stage}")

    def _release(self) -> None:
        for stage in ROLLUPS:
            if self.spark.catalog.tableExists(f"fresh_{stage}"):
                self.spark.table(f"fresh_{stage}").unpersist()
                self.spark.catalog.dropTempView(f"fresh_{stage}")

    def _build(self, cutoffs: Sequence[date], settings: Settings, stored: str | None) -> pa.Table:
        """The stages over the fresh roll-ups and, when `stored` names a view of them, the stored ones (of
        a windowed roll-up, the days from the cutoffs' `window_start` on)."""
        self.spark.createDataFrame(cutoff_table(cutoffs)).createOrReplaceTempView("cutoffs")
        cached: list[DataFrame] = []
        try:
            for stage in ROLLUPS:
                frame = self.spark.table(f"fresh_{stage}")
                if stored is not None:
                    back = read_back(stage, window_start(cutoffs))
                    frame = self.spark.sql(to_spark(back, {})).unionByName(frame)
                cached.append(frame.cache())
                cached[-1].createOrReplaceTempView(stage)
            for stage in STAGES:
                frame = self.spark.sql(to_spark(sql(stage), STAGE_PARAMS)).cache()
                frame.createOrReplaceTempView(stage)
                cached.append(frame)
            table = self.spark.sql(to_spark(sql("health"), health_params(settings))).toArrow()
        finally:
            for frame in cached:
                frame.unpersist()
            self._release()
            for name in ("cutoffs", "event_rollups", *ROLLUPS, *STAGES):
                self.spark.catalog.dropTempView(name)
        schema = feature_schema()
        return (
            table.select(schema.names)
            .cast(schema)
            .sort_by([("cutoff", "ascending"), ("account_id", "ascending")])
        )
