"""Part (1) of `make bench-spark` (`experiments.benchmarks.spark`): one store's feature build on DuckDB,
Spark `local[2]` and a standalone Spark cluster, and each engine's daily builds after that store's
history; with the Spark session helpers the whole run shares.

At each size the feature benchmark's simulated events (about N/1000 accounts x 365 days, cached under
--cache) are ingested into a store kept beside them, and each engine builds every month end of the span
from it through `feature_engine`: DuckDB on 2 threads; the cluster of `experiments.spark_cluster`, started
for the size and stopped after it (a master, two one-core workers of --executor-memory each and a Spark
Connect server, separate JVMs on 127.0.0.1; `SparkSettings(remote=...)` with local[2]'s shuffle
partitions); then Spark `local[2]` (`Settings(engine="spark")`), after the cluster so the cluster's JVMs
never share the machine with local[2]'s heap grown by the same size. Each engine's setup (Spark: starting
or connecting a session; all: registering the store's tables) is timed apart from the build, the
cluster's start apart from both, and both Spark engines must build DuckDB's rows. Every size pays a
session start; local[2]'s first also launches its JVM.

Then each engine runs `incremental.daily_builds` on the same world ingested up to December 29: a full
build, December 29, 30 and 31 ingested and built one day at a time, and a full rebuild the last daily
table must equal, with its session already up as a running service's would be. A daily build's cost per
new event is its time over its day's events; across the sizes, that cost as history grows. Must hold at
the largest size, on every engine: the worst daily build costs at most 10% of the same engine's full
build, and the daily table equals the full one row for row.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark.sql import SparkSession

from core.settings import Settings, SparkSettings
from core.spark import SparkFailure, session, spark_session_conf
from experiments.benchmarks.features import World, simulated
from experiments.benchmarks.incremental import AIM, daily_builds, events_in, history_store
from experiments.spark_cluster import Cluster
from features.cutoffs import span_cutoffs
from features.definitions import KEYS
from features.run import feature_engine
from ingest.run import ingest_path
from store.delta import Store

#: DuckDB's threads, as the feature benchmark runs it
THREADS = 2
#: two one-core workers: as many cores as local[2]
CLUSTER_WORKERS = 2
#: the Connect server's heap and the largest result it gathers for the client (a feature table crosses
#: whole: about 300 MB at 50M events)
CLUSTER_DRIVER_MEMORY = "2g"
CLUSTER_MAX_RESULT = "1g"
#: the engines in the JSON's order, and their names on a line
ENGINES = {"duckdb": "DuckDB", "spark": "Spark local[2]", "cluster": "Spark cluster"}


def spark_cores(spark: SparkSettings) -> int:
    """The cores a `local[N]` master uses."""
    found = re.fullmatch(r"local\[(\d+)\]", spark.master)
    if found is None:
        raise SystemExit(f"this benchmark runs Spark on local[N], not {spark.master}")
    return int(found.group(1))


def start_spark() -> float:
    """Seconds to start the Spark session `SparkSettings()` describes (the engines' default)."""
    started = time.perf_counter()
    session(SparkSettings())
    return round(time.perf_counter() - started, 2)


def stop_spark() -> None:
    """Stop the running session, so the next part pays its own start (a classic one's JVM stays up), and
    lift the Connect mark a Connect session leaves on the process, so the next may be classic."""
    running = SparkSession.getActiveSession()
    if running is not None:
        running.stop()
    os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)


def failure(error: SparkFailure) -> dict[str, str]:
    """A Spark run that failed, recorded instead of its figures: the rest of the run goes on."""
    print(f"{error}", file=sys.stderr, flush=True)
    stop_spark()
    return {"failed": str(error)}


@dataclass(frozen=True)
class Size:
    """One size's inputs, the same for every engine, and DuckDB's figures the others are set beside."""

    world: World
    store: Store
    events: int
    cutoffs: list[date]
    duckdb: pa.Table
    duckdb_figures: dict[str, Any]
    #: the world ingested up to the first daily day
    history: Store


def stored_events(n_events: int, cache: Path, seed: int) -> tuple[World, Store, int]:
    """The feature benchmark's simulated world for about `n_events` events, ingested once into a store kept
    beside it under `cache`, and its event count. Its files are read once, so no engine meets a cold page
    cache."""
    world = simulated(n_events, cache, seed)
    store = Store(world.folder.with_name(world.folder.name + "-store"))
    done = store.root / "ingested.json"
    if not done.exists():
        print(f"ingesting {world.folder} into {store.root} ...", file=sys.stderr)
        summary = ingest_path(store, world.folder)
        done.write_text(json.dumps(asdict(summary), default=str))
    for path in store.root.rglob("*.parquet"):
        path.read_bytes()
    return world, store, events_in(world.events)


def build_duckdb(store: Store) -> tuple[pa.Table, list[date], dict[str, float]]:
    """DuckDB's feature table, the cutoffs (every month end of the events' span) and its timings."""
    settings = Settings()
    with feature_engine(settings, THREADS) as engine:
        started = time.perf_counter()
        engine.register(store)
        registered = time.perf_counter()
        cutoffs = span_cutoffs(*engine.event_span())
        begun = time.perf_counter()
        table = engine.build(cutoffs, settings)
        built = time.perf_counter()
    return table, cutoffs, {"register_s": registered - started, "build_s": built - begun}


def build_spark(store: Store, cutoffs: list[date], settings: Settings) -> tuple[pa.Table, dict[str, float]]:
    """The feature table on the Spark session `settings` describes, at the same cutoffs, timing the
    session's start, registering and the build."""
    started = time.perf_counter()
    with feature_engine(settings) as engine:
        entered = time.perf_counter()
        engine.register(store)
        registered = time.perf_counter()
        table = engine.build(cutoffs, settings)
        built = time.perf_counter()
    stop_spark()
    timings = {"session_start_s": entered - started, "register_s": registered - entered}
    return table, timings | {"build_s": built - registered}


def _engine(events: int, cores: int, timings: dict[str, float]) -> dict[str, Any]:
    setup = sum(v for k, v in timings.items() if k != "build_s")
    build = timings["build_s"]
    return {
        **{k: round(v, 2) for k, v in timings.items()},
        "setup_s": round(setup, 2),
        "total_s": round(setup + build, 2),
        "cores": cores,
        "events_per_s": round(events / build),
        "events_per_s_per_core": round(events / build / cores),
        "events_per_s_with_setup": round(events / (setup + build)),
    }


def _daily(size: Size, settings: Settings) -> dict[str, Any]:
    """`daily_builds` on `settings`' engine, in a folder of its own removed after."""
    with tempfile.TemporaryDirectory(prefix="retain-bench-daily-") as work:
        return asdict(daily_builds(size.world, size.history, settings, Path(work)))


def on_spark(size: Size, settings: Settings, cores: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A Spark engine's full build beside DuckDB's, then its daily builds, each recorded as failed when
    Spark fails."""
    built: dict[str, Any]
    daily: dict[str, Any]
    try:
        table, timings = build_spark(size.store, size.cutoffs, settings)
    except SparkFailure as e:
        built = failure(e)
    else:
        keys, duck = list(KEYS), size.duckdb_figures
        built = _engine(size.events, cores, timings)
        built["same_rows"] = size.duckdb.select(keys).equals(table.select(keys))
        built["over_duckdb_seconds"] = {
            "build": round(built["build_s"] / duck["build_s"], 2),
            "with_setup": round(built["total_s"] / duck["total_s"], 2),
        }
    try:
        daily = _daily(size, settings)
    except SparkFailure as e:
        daily = failure(e)
    stop_spark()
    return built, daily


def cluster_settings(remote: str) -> Settings:
    """The Spark engine through the cluster's Connect server, with the shuffle partitions local[2] runs
    on (a Connect session takes none of a local one's defaults): the two differ in where they run."""
    shuffle = "spark.sql.shuffle.partitions"
    conf = {shuffle: spark_session_conf(Settings().spark)[shuffle]}
    return Settings(engine="spark", spark=SparkSettings(remote=remote, conf=conf))


def on_cluster(size: Size, memory: str, folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """`on_spark` on a cluster started in `folder` for this size and stopped after it; a cluster that
    does not start is recorded as failed in both parts."""
    cluster = Cluster(folder, memory, CLUSTER_DRIVER_MEMORY, CLUSTER_MAX_RESULT)
    started = time.perf_counter()
    try:
        try:
            cluster.start(workers=CLUSTER_WORKERS)
        except (RuntimeError, OSError) as e:
            print(e, file=sys.stderr, flush=True)
            failed = {"failed": f"the cluster did not start: {str(e).splitlines()[0]}"}
            return failed, failed
        ready = round(time.perf_counter() - started, 2)
        built, daily = on_spark(size, cluster_settings(cluster.remote), CLUSTER_WORKERS)
    finally:
        cluster.stop()
    return built if "failed" in built else built | {"cluster_start_s": ready}, daily


def feature_size(n_events: int, cache: Path, seed: int, memory: str) -> dict[str, Any]:
    """One size: every engine's full build from the same store and cutoffs, and its daily builds."""
    world, store, events = stored_events(n_events, cache, seed)
    duck, cutoffs, timings = build_duckdb(store)
    figures = _engine(events, THREADS, timings)
    size = Size(world, store, events, cutoffs, duck, figures, history_store(world, cache))
    daily = {"duckdb": _daily(size, Settings())}
    with tempfile.TemporaryDirectory(prefix="retain-bench-cluster-") as folder:
        cluster, daily["cluster"] = on_cluster(size, memory, Path(folder))
    spark, daily["spark"] = on_spark(size, Settings(engine="spark"), spark_cores(SparkSettings()))
    row = {"events": events, "cutoffs": len(cutoffs), "rows": duck.num_rows, "duckdb": figures}
    row |= {"spark": spark, "cluster": cluster, "daily": {engine: daily[engine] for engine in ENGINES}}
    print(_summary(row), file=sys.stderr, flush=True)
    return row


def _summary(row: dict[str, Any]) -> str:
    """A size's line: each engine's full build and its worst daily build's share of it."""
    parts = []
    for engine, name in ENGINES.items():
        built, daily = row[engine], row["daily"][engine]
        full = "failed" if "failed" in built else f"{built['build_s']:.1f} s"
        day = "failed" if "failed" in daily else f"{daily['worst_share']:.1%}"
        equal = "" if "failed" in daily or daily["equal_to_full"] else ", NOT equal"
        parts.append(f"{name} {full} (daily/full {day}{equal})")
    return f"{row['events']:>13,} events  " + "  ".join(parts)


def _line(events: list[int], seconds: list[float]) -> tuple[float, float]:
    """seconds = fixed + events / rate, fitted through the sizes: (fixed seconds, events per second)."""
    slope, fixed = np.polyfit(np.array(events, float), np.array(seconds, float), 1)
    return float(fixed), float(1 / slope) if slope > 0 else float("inf")


def verdict(sizes: list[dict[str, Any]]) -> str:
    """Where Spark local[2] overtakes DuckDB, or by how much it trails, and the cluster beside it."""
    measured = [s for s in sizes if "failed" not in s["spark"]]
    failed = ", ".join(f"{s['events']:,}" for s in sizes if "failed" in s["spark"])
    tail = f" Spark local[2] failed at {failed} events." if failed else ""
    tail += _on_the_cluster(sizes)
    if not measured:
        return "Spark local[2] finished no feature build." + tail
    ratios = [(s["events"], s["spark"]["over_duckdb_seconds"]["with_setup"]) for s in measured]
    faster = [n for n, r in ratios if r < 1]
    listed = ", ".join(f"{r}x at {n:,}" for n, r in ratios)
    if faster:
        head = f"Spark local[2] beats DuckDB from {faster[0]:,} events on (Spark/DuckDB time: {listed})."
    else:
        head = f"Spark local[2] trails DuckDB at every size measured (Spark/DuckDB time: {listed})."
    if len(ratios) < 2:
        return head + tail
    events = [s["events"] for s in measured]
    duck = _line(events, [s["duckdb"]["total_s"] for s in measured])
    spark = _line(events, [s["spark"]["total_s"] for s in measured])
    fits = (
        f" On lines fitted to these sizes (seconds = fixed + events / rate), DuckDB is {duck[0]:.1f} s + "
        f"{duck[1]:,.0f} events/s and Spark {spark[0]:.1f} s + {spark[1]:,.0f} events/s on the same 2 cores"
    )
    if spark[1] <= duck[1]:
        return head + fits + ", so on this machine Spark does not overtake at any size." + tail
    cross = (spark[0] - duck[0]) / (1 / duck[1] - 1 / spark[1])
    return head + fits + f", so the lines cross at about {cross:,.0f} events (an extrapolation)." + tail


def _on_the_cluster(sizes: list[dict[str, Any]]) -> str:
    measured = [s for s in sizes if "failed" not in s["cluster"]]
    if not measured:
        return " The cluster finished no feature build."
    listed = ", ".join(
        f"{s['cluster']['over_duckdb_seconds']['with_setup']}x at {s['events']:,}" for s in measured
    )
    return f" On the cluster (two one-core workers, Spark Connect) Spark/DuckDB time is {listed}."


def daily_must_hold(sizes: list[dict[str, Any]]) -> dict[str, Any]:
    """At the largest size, on every engine: the worst daily build within `AIM` of the same engine's full
    build, and the daily table equal to the full one. A failed engine does not hold."""
    largest = max(sizes, key=lambda s: s["events"])
    engines: dict[str, Any] = {}
    for engine in ENGINES:
        daily = largest["daily"][engine]
        if "failed" in daily:
            engines[engine] = {"holds": False, "failed": daily["failed"]}
            continue
        share, equal = daily["worst_share"], daily["equal_to_full"]
        engines[engine] = {"worst_share": share, "equal_to_full": equal, "holds": share <= AIM and equal}
    holds = all(e["holds"] for e in engines.values())
    return {"events": largest["events"], "aim": AIM, "engines": engines, "holds": holds}


def features_part(sizes: Sequence[int], cache: Path, seed: int, memory: str) -> dict[str, Any]:
    rows = [feature_size(n, cache, seed, memory) for n in sizes]

    def across(pick: str, daily: bool = False) -> dict[str, list[Any]]:
        return {e: [(r["daily"] if daily else r)[e].get(pick) for r in rows] for e in ENGINES}

    return {
        "sizes": rows,
        "curve": {
            "events": [r["events"] for r in rows],
            "total_s": across("total_s"),
            "build_s": across("build_s"),
            "daily_share_of_full": across("worst_share", daily=True),
            "seconds_per_new_event": across("seconds_per_new_event", daily=True),
        },
        "daily_must_hold": daily_must_hold(rows),
        "verdict": verdict(rows),
    }


def feature_problems(part: dict[str, Any]) -> list[str]:
    """Spark builds that failed or built other rows than DuckDB, daily builds that failed or differ from
    the full build, and the daily must-hold when it is broken."""
    found = []
    for size in part["sizes"]:
        at = f"at {size['events']:,} events"
        for engine in ("spark", "cluster"):
            if "failed" in size[engine] or not size[engine]["same_rows"]:
                found.append(f"features {at}: {ENGINES[engine]} failed or built other rows")
        for engine, daily in size["daily"].items():
            if "failed" in daily or not daily["equal_to_full"]:
                found.append(f"daily builds {at}: {ENGINES[engine]} failed or differ from the full build")
    must = part["daily_must_hold"]
    broken = [ENGINES[e] for e, held in must["engines"].items() if not held["holds"]]
    if broken:
        found.append(
            f"at {must['events']:,} events a daily build costs over {must['aim']:.0%} of the full build, or "
            f"differs from it, on: {', '.join(broken)}"
        )
    return found
