"""The feature build: a pure core that runs the SQL definitions, and the I/O edge that feeds it the store.

`build_feature_table` only runs SQL over the relations `events`, `accounts` and `interventions` of the
connection it is given, so the same definitions run on a store or on a test's hand-made frames; Spark
runs them translated (`features/spark_build.py`). `build_and_publish` has the engine read the store's
Delta tables as those relations, writes the result as a new version of the feature table (one
transaction) and optionally publishes it to Feast; or, asked for a file, writes it there only and leaves
the store alone.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from core.errors import RetainError
from core.files import write_atomic
from core.settings import Settings
from features.alerts import Alerted
from features.cutoffs import cutoff_table, span_cutoffs
from features.definitions import RENEWAL_GRACE_DAYS, STAGES, bind, feature_schema, sql
from features.health import health_query
from features.stored import TABLE, BuildNote, Versions, build_note, input_tables, refuse_dropping_cutoffs
from store.delta import Store


def build_feature_table(
    con: duckdb.DuckDBPyConnection, cutoffs: Sequence[date], settings: Settings
) -> pa.Table:
    """One row per account active at each cutoff (see sql/account_cutoffs.sql), every feature and the
    health score, sorted by cutoff then account.

    Sets the session time zone to UTC (days and windows are UTC days), lets DuckDB drop insertion order
    (the result is sorted here) and keep Parquet footers in memory (four stages read the same event files);
    leaves no tables behind.
    """
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET parquet_metadata_cache = true")
    con.execute(sql("macros"))
    con.register("cutoff_dates", cutoff_table(cutoffs))
    params: dict[str, Any] = {"grace_days": RENEWAL_GRACE_DAYS}
    created = ["cutoffs", *STAGES]
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE cutoffs AS SELECT cutoff FROM cutoff_dates")
        for stage in STAGES:
            text = sql(stage)
            con.execute(f"CREATE OR REPLACE TEMP TABLE {stage} AS {text}", bind(text, params))
        table = health_query(con, settings).to_arrow_table()
    finally:
        con.unregister("cutoff_dates")
        for name in reversed(created):
            con.execute(f"DROP TABLE IF EXISTS {name}")
    return table.cast(feature_schema()).sort_by([("cutoff", "ascending"), ("account_id", "ascending")])


def register_store(
    con: duckdb.DuckDBPyConnection, store: Store, versions: Versions | None = None
) -> dict[str, int | None]:
    """Expose the store's tables (at `versions`, default the latest) as the views `events`, `accounts` and
    `interventions`, in their contract columns (`Store.relation`); the versions read, for reproducing
    this read."""
    read: dict[str, int | None] = {}
    for name, schema, found in input_tables(store, versions):
        read[name] = None if found is None else found.version()
        relation = None if found is None else store.relation(con, found, schema.names)
        if relation is None:
            relation = con.from_arrow(schema.empty_table())
        relation.create_view(name, replace=True)
    return read


def actions_last_taken(con: duckdb.DuckDBPyConnection, as_of: datetime) -> dict[str, dict[str, datetime]]:
    """Per account and action, when it was last taken before `as_of`: the cool-downs eligibility reads
    (over the `interventions` view `register_store` made)."""
    taken: dict[str, dict[str, datetime]] = {}
    for account, action, ts in con.execute(
        "SELECT account_id, action, max(ts) FROM interventions WHERE ts < ? GROUP BY ALL", [as_of]
    ).fetchall():
        taken.setdefault(account, {})[action] = ts
    return taken


class FeatureEngine(Protocol):
    """What runs the feature SQL: the store's inputs in, the feature table out."""

    def register(self, store: Store, versions: Versions | None = None) -> dict[str, int | None]: ...

    def event_span(self) -> tuple[datetime | None, datetime | None]: ...

    def build(self, cutoffs: Sequence[date], settings: Settings) -> pa.Table: ...


@dataclass(frozen=True)
class DuckDBFeatures:
    """The embedded engine: one DuckDB connection."""

    con: duckdb.DuckDBPyConnection

    def register(self, store: Store, versions: Versions | None = None) -> dict[str, int | None]:
        return register_store(self.con, store, versions)

    def event_span(self) -> tuple[datetime | None, datetime | None]:
        first, last = self.con.execute("SELECT min(ts), max(ts) FROM events").fetchall()[0]
        return first, last

    def build(self, cutoffs: Sequence[date], settings: Settings) -> pa.Table:
        return build_feature_table(self.con, cutoffs, settings)


@contextlib.contextmanager
def feature_engine(settings: Settings, threads: int = 2) -> Iterator[FeatureEngine]:
    """`settings.engine`: DuckDB on `threads` threads, or the Spark session `settings.spark` describes."""
    if settings.engine == "spark":
        # deferred: PySpark is optional, and a DuckDB build never needs it
        from core.spark import session
        from features.spark_build import SparkFeatures

        yield SparkFeatures(session(settings.spark), settings.spark)
        return
    with duckdb.connect(config={"threads": threads}) as con:
        yield DuckDBFeatures(con)


@dataclass(frozen=True)
class FeastPublished:
    """The Feast repo a build applied, and the online rows it materialised (each account's latest)."""

    project: str
    registry: str
    online_store: str
    features: int
    services: list[str]
    rows_materialised: int
    latest_cutoff: str
    seconds: float


@dataclass(frozen=True)
class FeatureBuild:
    """One feature build: its size, its cutoffs, where the table is and what Feast published."""

    rows: int
    accounts: int
    cutoffs: list[date]
    columns: int
    #: building and writing the table; Feast's publish has its own
    seconds: float
    #: the feature table's version this build wrote; None for an export to `out`, which writes no version
    version: int | None
    #: the versions of the input tables it read
    read: dict[str, int | None]
    #: the file an export wrote (the store's feature table and the online store left as they were)
    out: Path | None
    #: None when the build was not published online
    feast: FeastPublished | None
    #: the MLflow run that records it (set by `retain.api.build_features`)
    mlflow_run: str | None = None
    #: the playbook's alerts at the latest cutoff, recorded for the webhooks (set by `retain.api`)
    alerts: Alerted | None = None


def build_and_publish(
    store: Store,
    settings: Settings,
    cutoffs: Sequence[date] | None,
    out: Path | None,
    *,
    online: bool = True,
    threads: int = 2,
    as_of_version: int | None = None,
) -> FeatureBuild:
    """Build the feature table from the store (month-end cutoffs by default), write it as a new version of
    the store's feature table, and when `online` apply the Feast repo and materialise it. With `out`, an
    export: the table goes to that file only, and the store's feature table and the online store are left
    as they were (`online` does not apply). With `as_of_version`, read the inputs and cutoffs that built
    that version instead. `settings.engine` runs the SQL on DuckDB (`threads` threads) or on Spark. A
    step bar on stderr (a terminal only) says which step is running.

    A new version replaces the whole table, so asked-for `cutoffs` that leave out some the stored table
    holds are refused before anything is built (`refuse_dropping_cutoffs`)."""
    started = time.perf_counter()
    past = None if as_of_version is None else build_note(store, as_of_version)
    steps = tqdm(total=2 + (online and out is None), desc="features", unit="step", disable=None)
    with steps, feature_engine(settings, threads) as runner:
        read = runner.register(store, None if past is None else past.read)
        asked = sorted(set(cutoffs)) if cutoffs else (None if past is None else past.chosen_cutoffs())
        chosen = asked or span_cutoffs(*runner.event_span())
        if not chosen:
            raise RetainError(f"no events in the store {store.location}; run `retain ingest` first")
        if cutoffs and out is None:
            refuse_dropping_cutoffs(store, chosen)
        steps.set_postfix_str(f"{len(chosen)} cutoffs")
        table = runner.build(chosen, settings)
        steps.update()
        note = BuildNote(read, None if asked is None else [c.isoformat() for c in asked])
        version = _write(store, table, note, out)
        steps.update()
        seconds = round(time.perf_counter() - started, 3)
        feast = None
        if online and version is not None:
            # deferred: importing Feast takes seconds, and a --no-online build never needs it
            from features.feast_repo import publish

            steps.set_postfix_str("Feast: apply and materialise")
            feast = FeastPublished(**publish(store, settings, table, version))
            steps.update()
    return FeatureBuild(
        rows=table.num_rows,
        accounts=pc.count_distinct(table["account_id"]).as_py(),
        cutoffs=chosen,
        columns=table.num_columns,
        seconds=seconds,
        version=version,
        read=read,
        out=out,
        feast=feast,
    )


def _write(store: Store, table: pa.Table, note: BuildNote, out: Path | None) -> int | None:
    """The table to `out` alone (an export: no version, None), else as the store's new version."""
    if out is not None:
        write_atomic(table, out)
        return None
    return store.write(TABLE, table, "overwrite", note.text())
