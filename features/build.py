"""The feature build: a pure core that runs the SQL definitions, and the I/O edge that feeds it the store.

`build_feature_table` only runs SQL over the relations `events`, `accounts` and `interventions` of the
connection it is given, so the same definitions run on a store, on a test's hand-made frames, or (through
the dialect shim in sql/macros.sql) on another engine. `build_and_publish` registers the store's live
Parquet files as those relations, writes the table atomically and optionally publishes it to Feast.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from features.cutoffs import cutoff_table, default_cutoffs
from features.definitions import RENEWAL_GRACE_DAYS, STAGES, bind, feature_schema, sql
from features.health import health_query
from retain.core.contract import ACCOUNT_SCHEMA, EVENT_SCHEMA, INTERVENTION_SCHEMA
from retain.core.errors import RetainError
from retain.core.files import atomic_path
from retain.core.settings import Settings
from retain.core.store import Store

INPUTS: dict[str, pa.Schema] = {
    "events": EVENT_SCHEMA,
    "accounts": ACCOUNT_SCHEMA,
    "interventions": INTERVENTION_SCHEMA,
}


def build_feature_table(
    con: duckdb.DuckDBPyConnection, cutoffs: Sequence[date], settings: Settings
) -> pa.Table:
    """One row per account active at each cutoff (see sql/account_cutoffs.sql), every feature and the
    health score, sorted by cutoff then account.

    Sets the session time zone to UTC (days and windows are UTC days) and lets DuckDB drop insertion order
    (the result is sorted here); leaves no tables behind.
    """
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = false")
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


def register_store(con: duckdb.DuckDBPyConnection, store: Store) -> None:
    """Expose the store's live files as the views `events`, `accounts` and `interventions`."""
    for name, schema in INPUTS.items():
        files = [str(p) for p in store.files(name)]
        relation = (
            con.read_parquet(files, union_by_name=True) if files else con.from_arrow(schema.empty_table())
        )
        relation.create_view(name, replace=True)


def write_atomic(table: pa.Table, path: Path) -> None:
    """Write Parquet so readers see the old file or the new one, never a partial one."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


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
    path: Path
    #: the extra copy asked for with `out`
    out: Path | None
    #: None when the build was not published online
    feast: FeastPublished | None


def build_and_publish(
    store: Store,
    settings: Settings,
    cutoffs: Sequence[date] | None,
    out: Path | None,
    *,
    online: bool = True,
    threads: int = 2,
) -> FeatureBuild:
    """Build the feature table from the store (month-end cutoffs by default), write it to the store and to
    `out`, and when `online` apply the Feast repo and materialise it. A step bar on stderr (a terminal
    only) says which of these is running."""
    started = time.perf_counter()
    steps = tqdm(total=2 + online, desc="features", unit="step", disable=None)
    with steps, duckdb.connect(config={"threads": threads}) as con:
        register_store(con, store)
        chosen = sorted(set(cutoffs)) if cutoffs else default_cutoffs(con)
        if not chosen:
            raise RetainError(f"no events in the store {store.root}; run `retain ingest` first")
        steps.set_postfix_str(f"{len(chosen)} cutoffs")
        table = build_feature_table(con, chosen, settings)
        steps.update()
        write_atomic(table, store.feature_table)
        if out is not None:
            write_atomic(table, out)
        steps.update()
        seconds = round(time.perf_counter() - started, 3)
        feast = None
        if online:
            # deferred: importing Feast takes seconds, and a --no-online build never needs it
            from features.feast_repo import publish

            steps.set_postfix_str("Feast: apply and materialise")
            feast = FeastPublished(**publish(store, settings, store.feature_table))
            steps.update()
    return FeatureBuild(
        rows=table.num_rows,
        accounts=pc.count_distinct(table["account_id"]).as_py(),
        cutoffs=chosen,
        columns=table.num_columns,
        seconds=seconds,
        path=store.feature_table,
        out=out,
        feast=feast,
    )
