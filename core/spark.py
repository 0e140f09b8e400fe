"""The Spark engine's edge: one session per process, the store's Delta tables as DataFrames, and Spark's
failures said in words.

PySpark is imported only here and only when the Spark engine is asked for: DuckDB stays the embedded
default and a DuckDB run never starts a JVM. Under `spark-submit` the session the cluster launched is
used as it is; run as a plain Python process, a session is started with `Settings.spark` (`local[2]` by
default, so the same commands run on a laptop); with `Settings.spark.remote`, a Spark Connect server
runs them, as every Spark path uses the DataFrame API only. Every table is read at a version the caller
chose from delta-rs, and written back through `Store.write` (delta-rs) only after Spark has finished: a
job that fails part-way commits nothing.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pyarrow as pa

from core.errors import RetainError
from core.settings import SparkSettings

if TYPE_CHECKING:
    from deltalake import DeltaTable
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
#: Spark's own defaults for a cluster; a local session on few cores spends more on 200 shuffle partitions
#: than on the work
LOCAL_CONF = {
    "spark.sql.shuffle.partitions": "8",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    # errors only, set at start (Spark Connect has no SparkContext to lower the level on afterwards)
    "spark.log.level": "ERROR",
}

#: on every session: UTC days, and Parquet times as Arrow and delta-rs read them (not Spark's INT96)
SESSION_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}


class SparkFailure(RetainError):
    """Spark could not start, or a job failed (an executor lost, the session gone): nothing was written."""


def spark_session_conf(settings: SparkSettings, local: bool = True) -> dict[str, str]:
    """What Retain sets on a session, the user's `conf` last: `SESSION_CONF`, and, for a session it starts
    itself rather than a cluster's, sizes for few cores."""
    return {**(LOCAL_CONF if local else {}), **SESSION_CONF, **settings.conf}


def session(settings: SparkSettings) -> SparkSession:
    """The process's Spark session: through Spark Connect when `settings.remote` is set, else the one
    spark-submit launched or one started from `settings`. Every path uses the DataFrame API only (no
    SparkContext), so the same code runs on a classic session and on a Connect server."""
    try:
        import pyspark  # noqa: F401
    except ImportError as e:
        raise SparkFailure("the Spark engine needs PySpark: pip install 'retain[spark]'") from e
    if settings.remote is not None:
        with spark_errors(f"connecting to the Spark Connect server at {settings.remote}"):
            return _remote(settings.remote, settings)
    with spark_errors("starting a Spark session"):
        from pyspark import SparkConf
        from pyspark.sql import SparkSession

        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = SparkSession.builder.appName(settings.app_name)
        launched = SparkConf().contains("spark.master")
        if not launched:
            builder = builder.master(settings.master)
        for key, value in spark_session_conf(settings, local=not launched).items():
            builder = builder.config(key, value)
        return builder.getOrCreate()


def _remote(url: str, settings: SparkSettings) -> SparkSession:
    """A Spark Connect session. The server fixes its cluster's settings; the builder's options are set on
    the session where they may be (the SQL ones: UTC days, shuffle partitions), the others ignored."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.remote(url)
    for key, value in spark_session_conf(settings, local=False).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


@contextlib.contextmanager
def spark_errors(doing: str) -> Iterator[None]:
    """Turn Spark's and Py4J's exceptions (a Java stack trace) into a SparkFailure naming the step."""
    from grpc import RpcError
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    try:
        yield
    except (PySparkException, Py4JError, RpcError, ConnectionError) as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        # Py4J's own line ("An error occurred while calling ...") comes before the Java error that says why
        if len(lines) > 1 and lines[0].startswith("An error occurred while calling"):
            del lines[0]
        first = lines[0].removeprefix(": ") if lines else type(e).__name__
        hint = ""
        if "JAVA_GATEWAY_EXITED" in first or "JAVA_HOME" in first:
            hint = " (Spark needs a Java runtime: apt-get install openjdk-17-jre-headless)"
        raise SparkFailure(f"Spark failed while {doing}: {first[:300]}{hint}; nothing was written") from e


def has_delta(spark: SparkSession) -> bool:
    """Whether the session can read Delta tables itself (Delta Lake's extension is configured)."""
    return DELTA_EXTENSION in (spark.conf.get("spark.sql.extensions", "") or "")


def read_delta(
    spark: SparkSession, found: DeltaTable, uri: str, schema: pa.Schema, how: SparkSettings
) -> DataFrame:
    """Version `found` of the Delta table at `uri` as a DataFrame of `schema`'s columns: natively where
    the session has Delta, else from the version's active Parquet files (partition columns from their
    folders)."""
    columns = [f"`{name}`" for name in schema.names]
    native = how.delta == "native" or (how.delta == "auto" and has_delta(spark))
    if native:
        return spark.read.format("delta").option("versionAsOf", found.version()).load(uri).select(columns)
    files = found.file_uris()
    if not files:
        return empty_frame(spark, schema)
    # a schema given up front spares Spark reading every file's footer to infer one (seconds per
    # hundred daily partitions); a file without a column reads it as null
    return spark.read.schema(spark_schema(schema)).option("basePath", uri).parquet(*files).select(columns)


def empty_frame(spark: SparkSession, schema: pa.Schema) -> DataFrame:
    """No rows, in `schema`'s columns: given the schema, since Spark Connect cannot infer one from an empty
    table (a classic session can)."""
    return spark.createDataFrame([], spark_schema(schema))


def spark_schema(schema: pa.Schema) -> StructType:
    """`schema` in Spark's types, every field nullable (as Spark reads Parquet)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(pa.schema([field.with_nullable(True) for field in schema]))
