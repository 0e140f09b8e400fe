"""The feature build: a pure core that runs the SQL definitions, and the I/O edge that feeds it the store.

`build_feature_table` only runs SQL over the relations `events`, `accounts` and `interventions` of the
connection it is given, so the same definitions run on a store or on a test's hand-made frames; Spark
runs them translated (`features/spark_build.py`). `build_and_publish` has the engine read the store's
Delta tables, writes the result as a new version of the feature table (one transaction) and optionally
publishes it to Feast; or, asked for a file, writes it there only and leaves the store alone. It builds
incrementally: the events' roll-ups of the days already seen come from the store (`features.rollups`),
and rows at cutoffs nothing changed before come from the last build (`features.reuse`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Protocol

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable
from tqdm import tqdm

from core.contract import EVENT_SCHEMA
from core.errors import RetainError
from core.files import write_atomic
from core.settings import Settings
from features.alerts import Alerted
from features.cutoffs import cutoff_table, month_ends, window_start
from features.definitions import ROLLUPS, SQL_DIR, STAGE_PARAMS, STAGES, bind, feature_schema, sql
from features.health import health_params, health_query
from features.reuse import Reuse, plan_reuse
from features.rollups import TABLE as ROLLUP_TABLE
from features.rollups import (
    StoredRollups,
    day_counts,
    read_back,
    rolled_counts,
    stale_days,
    write_rollups,
)
from features.rollups import recipe as rollup_recipe
from features.rollups import table_schema as rollup_schema
from features.stored import (
    INPUTS,
    TABLE,
    BuildNote,
    Versions,
    build_note,
    input_tables,
    refuse_dropping_cutoffs,
)
from store.adopted_events import DAY_COUNTS, AdoptedEvents, on_days
from store.delta import Store

#: rows per batch handed from the engine to the roll-ups' writer
ROLLUP_BATCH_ROWS = 131_072


def build_feature_table(
    con: duckdb.DuckDBPyConnection, cutoffs: Sequence[date], settings: Settings
) -> pa.Table:
    """One row per account active at each cutoff (see sql/account_cutoffs.sql), every feature and the
    health score, sorted by cutoff then account: the roll-up stages over the connection's `events`, then
    the others. Leaves no tables behind."""
    _session(con)
    try:
        for stage in ROLLUPS:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {stage} AS {sql(stage)}")
        return _stages(con, cutoffs, settings)
    finally:
        for stage in ROLLUPS:
            con.execute(f"DROP TABLE IF EXISTS {stage}")


def _session(con: duckdb.DuckDBPyConnection) -> None:
    """UTC days and windows; insertion order dropped (results are sorted); Parquet footers kept in memory
    (several stages read the same files); the macros."""
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET parquet_metadata_cache = true")
    con.execute(sql("macros"))


def _stages(con: duckdb.DuckDBPyConnection, cutoffs: Sequence[date], settings: Settings) -> pa.Table:
    """The stages after the roll-ups (each a temp table, dropped after) and the health score, over the
    roll-up stages' tables."""
    con.register("cutoff_dates", cutoff_table(cutoffs))
    created = ["cutoffs", *STAGES]
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE cutoffs AS SELECT cutoff FROM cutoff_dates")
        for stage in STAGES:
            text = sql(stage)
            con.execute(f"CREATE OR REPLACE TEMP TABLE {stage} AS {text}", bind(text, STAGE_PARAMS))
        table = health_query(con, settings).to_arrow_table()
    finally:
        con.unregister("cutoff_dates")
        for name in reversed(created):
            con.execute(f"DROP TABLE IF EXISTS {name}")
    return table.cast(feature_schema()).sort_by([("cutoff", "ascending"), ("account_id", "ascending")])


def register_store(
    con: duckdb.DuckDBPyConnection,
    store: Store,
    versions: Versions | None = None,
    views: Collection[str] = tuple(INPUTS),
) -> dict[str, int | None]:
    """Expose the store's tables (at `versions`, default the latest) as the views `events`, `accounts` and
    `interventions` (those of them in `views`), in their contract columns (`Store.relation`; adopted
    events through their mapping); the versions read, for reproducing this read."""
    read: dict[str, int | None] = {}
    adopted = store.events_source
    for name, schema, found in input_tables(store, versions):
        if name == "events" and adopted is not None:
            read[name] = adopted.version() if versions is None else versions.get(name)
            if name in views:
                adopted.duckdb_events(con, read[name]).create_view(name, replace=True)
            continue
        read[name] = None if found is None else found.version()
        if name not in views:
            continue
        relation = None if found is None else store.relation(con, found, schema.names)
        if relation is None:
            relation = con.from_arrow(schema.empty_table())
        relation.create_view(name, replace=True)
    return read


def partitions(
    con: duckdb.DuckDBPyConnection,
    store: Store,
    found: DeltaTable | None,
    schema: pa.Schema,
    days: Sequence[date] | None,
) -> duckdb.DuckDBPyRelation:
    """`schema`'s columns of some days (None: all) of a table partitioned by `event_date` (the events,
    the roll-ups) at version `found` (`Store.relation`); no rows when it holds none."""
    relation = None if found is None else store.relation(con, found, schema.names, days)
    return con.from_arrow(schema.empty_table()) if relation is None else relation


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
    """What runs the feature SQL: the store's inputs in, the feature table out.

    `build` runs every stage over the registered `events`. A build into the store instead rolls up only
    the days its stored roll-ups lack (`roll_up`), writes them into the store (`store_rollups`) and runs
    the other stages over the stored roll-ups plus those (`build_over_rollups`)."""

    def register(
        self, store: Store, versions: Versions | None = None, views: Collection[str] = tuple(INPUTS)
    ) -> dict[str, int | None]: ...

    def event_span(self) -> tuple[datetime | None, datetime | None]: ...

    def build(self, cutoffs: Sequence[date], settings: Settings) -> pa.Table: ...

    def adopted_days(self, adopted: AdoptedEvents, version: int | None) -> dict[date, int | None]: ...

    def roll_up(self, store: Store, version: int | None, days: Sequence[date] | None) -> None: ...

    def store_rollups(
        self, store: Store, days: Sequence[date] | None, counts: Mapping[date, int | None], read: int | None
    ) -> int | None: ...

    def build_over_rollups(
        self,
        cutoffs: Sequence[date],
        settings: Settings,
        store: Store,
        rollups: StoredRollups,
    ) -> pa.Table: ...


@dataclass(frozen=True)
class DuckDBFeatures:
    """The embedded engine: one DuckDB connection."""

    con: duckdb.DuckDBPyConnection

    def register(
        self, store: Store, versions: Versions | None = None, views: Collection[str] = tuple(INPUTS)
    ) -> dict[str, int | None]:
        return register_store(self.con, store, versions, views)

    def event_span(self) -> tuple[datetime | None, datetime | None]:
        first, last = self.con.execute("SELECT min(ts), max(ts) FROM events").fetchall()[0]
        return first, last

    def build(self, cutoffs: Sequence[date], settings: Settings) -> pa.Table:
        return build_feature_table(self.con, cutoffs, settings)

    def adopted_days(self, adopted: AdoptedEvents, version: int | None) -> dict[date, int | None]:
        """Events per UTC day of an adopted table, by one grouped scan."""
        _session(self.con)
        adopted.duckdb_events(self.con, version).create_view("events", replace=True)
        return dict(self.con.execute(DAY_COUNTS).fetchall())

    def roll_up(self, store: Store, version: int | None, days: Sequence[date] | None) -> None:
        """The roll-up stages over the events (at `version`) of `days` (None: all), as the temp tables
        `fresh_<stage>`."""
        _session(self.con)
        if store.events_source is None:
            found = None if version is None else store.delta("events", version)
            with_day = EVENT_SCHEMA.append(pa.field("event_date", pa.date32()))
            read = partitions(self.con, store, found, with_day, days)
            read = read.select(", ".join(f'"{c}"' for c in EVENT_SCHEMA.names))
        else:
            read = store.events_source.duckdb_events(self.con, version)
            read = read if days is None else read.filter(on_days(days))
        read.create_view("events", replace=True)
        for stage in ROLLUPS:
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE fresh_{stage} AS {sql(stage)}")

    def store_rollups(
        self, store: Store, days: Sequence[date] | None, counts: Mapping[date, int | None], read: int | None
    ) -> int | None:
        """`write_rollups` of the fresh roll-ups (events version `read`), streamed in batches."""
        rows = (
            (stage, self.con.sql(f"SELECT * FROM fresh_{stage}").to_arrow_reader(ROLLUP_BATCH_ROWS))
            for stage in ROLLUPS
        )
        return write_rollups(store, rows, days, counts, read)

    def build_over_rollups(
        self, cutoffs: Sequence[date], settings: Settings, store: Store, rollups: StoredRollups
    ) -> pa.Table:
        """The stages at `cutoffs` over the stored roll-ups of the days kept (of a windowed one, those from
        the cutoffs' `window_start` on) and the fresh ones; with no cutoffs, only the fresh ones are
        dropped."""
        con = self.con
        try:
            if not cutoffs:
                return feature_schema().empty_table()
            stored = partitions(con, store, rollups.table, rollup_schema(), rollups.kept)
            stored.create_view("event_rollups", replace=True)
            since = window_start(cutoffs)
            for stage in ROLLUPS:
                con.execute(
                    f"CREATE OR REPLACE TEMP TABLE {stage} AS "
                    f"{read_back(stage, since)} UNION ALL BY NAME SELECT * FROM fresh_{stage}"
                )
                con.execute(f"DROP TABLE fresh_{stage}")
            return _stages(con, cutoffs, settings)
        finally:
            for stage in ROLLUPS:
                con.execute(f"DROP TABLE IF EXISTS {stage}")
                con.execute(f"DROP TABLE IF EXISTS fresh_{stage}")


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
    #: the cutoffs this build computed; the rest were kept from the last build (`features.reuse`)
    cutoffs_computed: list[date] = field(default_factory=list)
    #: the event days it rolled up from the events; the others were read from the stored roll-ups
    days_rolled_up: int = 0


def build_and_publish(
    store: Store,
    settings: Settings,
    cutoffs: Sequence[date] | None,
    out: Path | None,
    *,
    online: bool = True,
    threads: int = 2,
    as_of_version: int | None = None,
    full: bool = False,
) -> FeatureBuild:
    """Build the feature table from the store (month-end cutoffs by default) as the store's new version,
    and when `online` publish it to Feast. With `out`, an export: that file only, the store and the online
    store left as they were. With `as_of_version`, read the inputs and cutoffs that built that version.
    `settings.engine` runs the SQL on DuckDB (`threads` threads) or on Spark; a step bar on stderr (a
    terminal only) says which step runs. Incremental: only the event days the stored roll-ups lack are
    read (`features.rollups`), the last build's rows where nothing changed kept (`features.reuse`): the
    table a `full` build makes. Cutoffs that would drop some the stored table holds are refused."""
    started = time.perf_counter()
    past = None if as_of_version is None else build_note(store, as_of_version)
    steps = tqdm(total=2 + (online and out is None), desc="features", unit="step", disable=None)
    with steps, feature_engine(settings, threads) as runner:
        read = runner.register(
            store, None if past is None else past.read, views=("accounts", "interventions")
        )
        counts = _event_days(store, runner, read["events"])
        asked = sorted(set(cutoffs)) if cutoffs else (None if past is None else past.chosen_cutoffs())
        chosen = _chosen(store, asked, counts, refuse=bool(cutoffs) and out is None)
        steps.set_postfix_str(f"{len(chosen)} cutoffs")
        recipe = build_recipe(settings)
        reuse = Reuse(None, chosen) if full else plan_reuse(store, chosen, read, counts, recipe)
        rollups = _roll_up(
            store, runner, read["events"], counts, full=full, write=out is None and past is None
        )
        table = _combined(reuse, runner.build_over_rollups(reuse.compute, settings, store, rollups))
        steps.update()
        note = BuildNote(read, None if asked is None else [c.isoformat() for c in asked], recipe)
        version = _write(store, table, note, out)
        steps.update()
        seconds, feast = round(time.perf_counter() - started, 3), None
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
        cutoffs_computed=reuse.compute,
        days_rolled_up=len(counts) if rollups.fresh is None else len(rollups.fresh),
    )


def _event_days(store: Store, runner: FeatureEngine, version: int | None) -> dict[date, int | None]:
    """Events per UTC day at `version`: of the store's events from their Delta log (no file read), of an
    adopted table by the engine's grouped scan."""
    if store.events_source is None:
        return day_counts(None if version is None else store.delta("events", version))
    return runner.adopted_days(store.events_source, version)


def _chosen(
    store: Store, asked: list[date] | None, counts: Mapping[date, int | None], *, refuse: bool
) -> list[date]:
    """The cutoffs asked for, else the month ends of the events' days; with `refuse`, refused when they
    would drop cutoffs the stored table holds."""
    held = sorted(day for day, n in counts.items() if n != 0)
    chosen = asked or (month_ends(held[0], held[-1]) if held else [])
    if not chosen:
        raise RetainError(f"no events in the store {store.location}; run `retain ingest` first")
    if refuse:
        refuse_dropping_cutoffs(store, chosen)
    return chosen


def build_recipe(settings: Settings) -> str:
    """A digest of what makes a feature row besides the data: every SQL definition, the health settings,
    the columns and the engine (whose float sums round alike only within itself)."""
    parts = [path.read_text() for path in sorted(SQL_DIR.glob("*.sql"))]
    parts += [json.dumps(health_params(settings), sort_keys=True), json.dumps(STAGE_PARAMS, sort_keys=True)]
    parts += [str(feature_schema()), settings.engine]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _roll_up(
    store: Store,
    runner: FeatureEngine,
    version: int | None,
    counts: Mapping[date, int | None],
    *,
    full: bool,
    write: bool,
) -> StoredRollups:
    """Roll up the days the stored roll-ups lack or hold stale (all of them when `full`); with `write`
    (a build into the store from the latest inputs), replace those days' roll-ups in the store."""
    stored = None if full else store.delta(ROLLUP_TABLE)
    rolled = rolled_counts(store, stored)
    fresh = None if full else stale_days(counts, rolled, rollup_recipe())
    runner.roll_up(store, version, fresh)
    if write:
        runner.store_rollups(store, fresh, counts, version)
    kept = [] if fresh is None else sorted(rolled.keys() - set(fresh))
    return StoredRollups(stored, kept, fresh)


def _combined(reuse: Reuse, built: pa.Table) -> pa.Table:
    """The rows kept from the last build and those just built, sorted as a build sorts them."""
    table = built if reuse.kept is None else pa.concat_tables([reuse.kept.cast(built.schema), built])
    return table.sort_by([("cutoff", "ascending"), ("account_id", "ascending")])


def _write(store: Store, table: pa.Table, note: BuildNote, out: Path | None) -> int | None:
    """The table to `out` alone (an export: no version, None), else as the store's new version."""
    if out is not None:
        write_atomic(table, out)
        return None
    return store.write(TABLE, table, "overwrite", note.text())
