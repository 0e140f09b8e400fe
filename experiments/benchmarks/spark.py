"""The Spark engine on this machine's cores against the embedded engines, in one run: the feature build,
batch scoring and the uplift fits, each beside its single-machine peer, and what the measured per-core rates
would make of 100,000 accounts and 10B events on a 32-core cluster.

    .venv/bin/python -m experiments.benchmarks.spark [--sizes 1M,10M,50M] [--accounts 10000] [--days 400]
        [--score-rows 1e6] [--trials 20] [--no-scoring] [--cache DIR] [--results DIR]

(1) Features: the feature benchmark's simulated events (about N/1000 accounts x 365 days, cached under
--cache) ingested into a store, kept beside them; DuckDB on 2 threads and Spark `local[2]`
(`Settings(engine="spark")`), both through `feature_engine`, build every month end of the span from that
store. Each engine's setup (Spark: starting a session; both: registering the store's tables) is timed
apart from the build, and the two must build the same rows. The Spark session is stopped after each size,
so every size pays a start; the first also launches the JVM.

(2) Scoring: a world of --accounts x --days gets its churn and expansion champions as the training
benchmark gets them (`experiments.benchmarks.train.pipeline`, --trials each), then the latest cutoff's
feature rows are tiled to --score-rows accounts (a new version of that temporary store's feature table)
and `score_store` scores them in this process (engine duckdb) and on Spark's executors (engine spark),
each timed whole as `score_store` reports it (loading the champions and writing the `scores` table
included); the two must agree. Training the champions takes minutes: --no-scoring skips (2).

(3) Uplift: the same world's weekly design (`store_design`, as uplift training reads it) and `fit_uplift`
from scratch (no cache) on one process (`Workers(1)`), two local processes (`Workers(2)`) and Spark's
executors (`Workers(2, SparkSettings())`); all three must give the same estimates.

(4) Extrapolation: the per-core rates of the largest measured size times 32 cores, assuming Spark scales
linearly with cores (no shuffle, scheduling or skew cost that grows with the cluster: an assumption, not a
measurement), and that scoring and uplift time grow linearly with accounts. Session start and registering
are left out.

A Spark run that fails is recorded as failed and the run goes on; it exits 1 then, or when the engines
disagree (feature rows, scores or uplift estimates), and lists why under `problems`. The JSON goes to
experiments/results/spark.json, or to --results DIR (a quick check of the whole run: --sizes 1M
--accounts 1000 --score-rows 20000 --trials 2 --results /tmp).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyspark.sql import SparkSession

from core.catalogue import ACTIONS
from core.parallel import Workers
from core.settings import Settings, SparkSettings
from core.spark import SparkFailure, session
from experiments.benchmarks.features import simulated
from experiments.benchmarks.train import _timed, pipeline
from experiments.results import RESULTS_DIR, record
from features.cutoffs import span_cutoffs
from features.definitions import KEYS
from features.run import feature_engine
from features.stored import TABLE as FEATURES
from features.stored import read_features
from ingest.run import ingest_path
from serving.batch import StoreScores, score_store
from simulate import SimConfig, simulate_to
from store.delta import Store
from training.causal.design import Design, store_design
from training.causal.run import fit_uplift
from training.causal.uplift import OUTCOMES
from training.config import UpliftConfig

MODULE = "experiments.benchmarks.spark"
#: DuckDB's threads, as the feature benchmark runs it
THREADS = 2
CLUSTER_CORES = 32
TARGET_EVENTS = 10_000_000_000
TARGET_ACCOUNTS = 100_000
NOT_MEASURED = "not measured: Spark failed (its part says how)"
SUFFIXES = {"K": 1_000, "M": 1_000_000, "B": 1_000_000_000}


def count(text: str) -> int:
    """`1M`, `50M`, `1e6` or `20000` as a number."""
    text = text.strip().upper()
    if text and text[-1] in SUFFIXES:
        return int(float(text[:-1]) * SUFFIXES[text[-1]])
    return int(float(text))


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
    """Stop the running session, so the next part pays its own start (the JVM stays up)."""
    running = SparkSession.getActiveSession()
    if running is not None:
        running.stop()


def failure(error: SparkFailure) -> dict[str, str]:
    """A Spark run that failed, recorded instead of its figures: the rest of the run goes on."""
    print(f"{error}", file=sys.stderr, flush=True)
    stop_spark()
    return {"failed": str(error)}


def stored_events(n_events: int, cache: Path, seed: int) -> tuple[Store, int]:
    """The feature benchmark's simulated world for about `n_events` events, ingested once into a store kept
    beside it under `cache`, and its event count. Its files are read once, so neither engine meets a cold
    page cache."""
    world = simulated(n_events, cache, seed)
    store = Store(world.folder.with_name(world.folder.name + "-store"))
    done = store.root / "ingested.json"
    if not done.exists():
        print(f"ingesting {world.folder} into {store.root} ...", file=sys.stderr)
        summary = ingest_path(store, world.folder)
        done.write_text(json.dumps(asdict(summary), default=str))
    for path in store.root.rglob("*.parquet"):
        path.read_bytes()
    return store, sum(pq.ParquetFile(p).metadata.num_rows for p in world.events)


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


def build_spark(store: Store, cutoffs: list[date]) -> tuple[pa.Table, dict[str, float]]:
    """Spark's feature table at the same cutoffs, timing the session start, registering and the build."""
    settings = Settings(engine="spark")
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


def feature_size(n_events: int, cache: Path, seed: int) -> dict[str, Any]:
    """One size: both engines on the same store and cutoffs."""
    store, events = stored_events(n_events, cache, seed)
    duck, cutoffs, duck_timings = build_duckdb(store)
    row: dict[str, Any] = {
        "events": events,
        "cutoffs": len(cutoffs),
        "rows": duck.num_rows,
        "duckdb": _engine(events, THREADS, duck_timings),
    }
    try:
        spark, spark_timings = build_spark(store, cutoffs)
    except SparkFailure as e:
        return row | {"spark": failure(e)}
    keys = list(KEYS)
    row["same_rows"] = duck.select(keys).equals(spark.select(keys))
    row["spark"] = _engine(events, spark_cores(SparkSettings()), spark_timings)
    row["spark_over_duckdb_seconds"] = {
        "build": round(row["spark"]["build_s"] / row["duckdb"]["build_s"], 2),
        "with_setup": round(row["spark"]["total_s"] / row["duckdb"]["total_s"], 2),
    }
    duckdb_s, spark_s = row["duckdb"]["build_s"], row["spark"]["build_s"]
    print(
        f"{events:>13,} events  DuckDB {duckdb_s:7.1f} s  Spark {spark_s:7.1f} s"
        f" (+{row['spark']['setup_s']:.1f} s setup)  Spark/DuckDB build {spark_s / duckdb_s:.2f}x"
        f"  same rows: {row['same_rows']}",
        file=sys.stderr,
        flush=True,
    )
    return row


def _line(events: list[int], seconds: list[float]) -> tuple[float, float]:
    """seconds = fixed + events / rate, fitted through the sizes: (fixed seconds, events per second)."""
    slope, fixed = np.polyfit(np.array(events, float), np.array(seconds, float), 1)
    return float(fixed), float(1 / slope) if slope > 0 else float("inf")


def verdict(sizes: list[dict[str, Any]]) -> str:
    """Where Spark overtakes DuckDB, or by how much it trails, in a sentence."""
    measured = [s for s in sizes if "failed" not in s["spark"]]
    failed = ", ".join(f"{s['events']:,}" for s in sizes if "failed" in s["spark"])
    tail = f" Spark failed at {failed} events." if failed else ""
    if not measured:
        return "Spark local[2] finished no feature build." + tail
    ratios = [(s["events"], s["spark_over_duckdb_seconds"]["with_setup"]) for s in measured]
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


def features_part(sizes: Sequence[int], cache: Path, seed: int) -> dict[str, Any]:
    rows = [feature_size(n, cache, seed) for n in sizes]
    return {
        "sizes": rows,
        "curve": {
            "events": [r["events"] for r in rows],
            "duckdb_total_s": [r["duckdb"]["total_s"] for r in rows],
            "spark_total_s": [r["spark"].get("total_s") for r in rows],
            "duckdb_build_s": [r["duckdb"]["build_s"] for r in rows],
            "spark_build_s": [r["spark"].get("build_s") for r in rows],
        },
        "verdict": verdict(rows),
    }


def world(work: Path, accounts: int, days: int, trials: int, champions: bool) -> tuple[Store, Settings, Any]:
    """The uplift benchmark's world (seed 7 from 2024-07-01) in a store, with the training benchmark's
    champions when `champions`; the timings of its steps."""
    if champions:
        store, settings, report = pipeline(work, accounts, days, trials)
        return store, settings, report["timings_s"]
    timings: dict[str, float] = {}
    sim, store = work / "sim", Store(work / "store")
    _timed("simulate", timings, simulate_to, SimConfig(accounts, days, 7, date(2024, 7, 1)), sim)
    _timed("ingest", timings, ingest_path, store, sim)
    return store, Settings(home=store.root), timings


def tile_latest(store: Store, rows: int) -> tuple[date, int]:
    """Replace the feature table with its latest cutoff's rows repeated to `rows` accounts (each copy's
    ids suffixed `~k`); that cutoff and the accounts it had."""
    table = read_features(store)
    latest = pc.max(table["cutoff"])
    at = table.filter(pc.equal(table["cutoff"], latest))
    tiled = at.take(pa.array(np.resize(np.arange(at.num_rows), rows)))
    copy = pa.array((np.arange(rows) // at.num_rows).astype(str))
    ids = pc.binary_join_element_wise(tiled["account_id"], copy, "~")
    tiled = tiled.set_column(tiled.schema.get_field_index("account_id"), "account_id", ids)
    note = json.dumps({"step": "bench-spark: tiled", "rows": rows, "from_accounts": at.num_rows})
    store.write(FEATURES, tiled, "overwrite", note)
    return latest.as_py().date(), at.num_rows


def _scored(engine: str, seconds: float, rows: int, cores: int) -> dict[str, Any]:
    return {
        "engine": engine,
        "seconds": round(seconds, 2),
        "cores": cores,
        "rows_per_s": round(rows / seconds),
        "rows_per_s_per_core": round(rows / seconds / cores),
    }


def _score_on_spark(store: Store, settings: Settings, cutoff: date, out: Path) -> tuple[StoreScores, float]:
    """`score_store` on Spark's executors, and the seconds its session took to start (timed apart)."""
    started = start_spark()
    scored = score_store(store, settings.model_copy(update={"engine": "spark"}), cutoff, out)
    stop_spark()
    return scored, started


def scoring_part(store: Store, settings: Settings, rows: int, work: Path) -> dict[str, Any]:
    """`score_store` on the tiled rows in this process (LightGBM and TreeSHAP on every core) and on
    Spark's executors; their outputs compared."""
    cutoff, accounts = tile_latest(store, rows)
    local = score_store(store, settings, cutoff, work / "scores-local.parquet")
    print(f"scoring {rows:,} rows in one process {local.seconds:8.1f} s", file=sys.stderr)
    machine = spark_cores(SparkSettings())
    figures: dict[str, Any] = {
        "rows": local.rows,
        "tiled_from_accounts": accounts,
        "cutoff": cutoff.isoformat(),
        "model": f"churn v{local.models.churn.version}, expansion "
        + (f"v{local.models.expansion.version}" if local.models.expansion else "missing"),
        "one_process": _scored("duckdb", local.seconds, local.rows, machine),
    }
    try:
        spark, started = _score_on_spark(store, settings, cutoff, work / "scores-spark.parquet")
    except SparkFailure as e:
        return figures | {"spark": failure(e)}
    print(f"scoring {rows:,} rows on Spark       {spark.seconds:8.1f} s", file=sys.stderr)
    ours, theirs = (pq.read_table(s.out).sort_by("account_id") for s in (local, spark))
    gap = pc.max(pc.abs(pc.subtract(ours["churn_probability"], theirs["churn_probability"]))).as_py()
    return figures | {
        "spark": _scored("spark", spark.seconds, spark.rows, machine) | {"session_start_s": started},
        "spark_over_one_process_seconds": round(spark.seconds / local.seconds, 2),
        "max_churn_probability_difference": gap,
        "same_reasons": ours["reasons"].equals(theirs["reasons"]),
    }


def uplift_part(store: Store, settings: Settings, accounts: int) -> dict[str, Any]:
    """`fit_uplift` from scratch on one process, two processes and Spark's executors, on one design."""
    config = UpliftConfig().resolved(settings)
    started = time.perf_counter()
    design = store_design(store, settings, int(config.horizon_days or 0), config.threads)
    design_s = round(time.perf_counter() - started, 2)
    runs = {"sequential": Workers(1), "processes": Workers(2), "spark": Workers(2, SparkSettings())}
    cores = {"sequential": 1, "processes": 2, "spark": spark_cores(SparkSettings())}
    out: dict[str, Any] = {}
    models = {}
    for name, workers in runs.items():
        try:
            session_s = start_spark() if workers.spark is not None else None
            seconds, models[name] = _fit(design, config, workers)
        except SparkFailure as e:
            out[name] = {"workers": workers.where} | failure(e)
            continue
        out[name] = {
            "workers": workers.where,
            "seconds": seconds,
            "cores": cores[name],
            "accounts_per_s_per_core": round(accounts / seconds / cores[name], 2),
            "speedup_over_sequential": round(out["sequential"]["seconds"] / seconds, 2) if out else 1.0,
        } | ({} if session_s is None else {"session_start_s": session_s})
        print(f"uplift fits on {workers.where:<24} {seconds:8.1f} s", file=sys.stderr, flush=True)
    stop_spark()
    first = models.pop("sequential")
    gaps = [
        abs(m.average[key].ate - first.average[key].ate) for m in models.values() for key in first.average
    ]
    return {
        "accounts": accounts,
        "design_rows": len(design.rows),
        "design_s": design_s,
        "folds": config.folds,
        **out,
        "max_ate_difference": max(gaps, default=0.0),
    }


def _fit(design: Design, config: UpliftConfig, workers: Workers) -> tuple[float, Any]:
    started = time.perf_counter()
    model = fit_uplift(design, config, "uplift", cache=None, workers=workers)
    return round(time.perf_counter() - started, 2), model


def _seconds(text: str, seconds: float) -> dict[str, Any]:
    return {
        "arithmetic": f"{text} = {seconds:,.1f} s ({seconds / 60:,.1f} min)",
        "seconds": round(seconds, 1),
    }


def _features_10b(sizes: list[dict[str, Any]], n: int) -> dict[str, Any]:
    done = [s for s in sizes if "failed" not in s["spark"]]
    if not done:
        return {"spark": NOT_MEASURED}
    largest = max(done, key=lambda s: s["events"])
    spark_rate, duck_rate = largest["spark"]["events_per_s_per_core"], largest["duckdb"]["events_per_s"]
    return {
        "rates_from_events": largest["events"],
        "spark": _seconds(
            f"{TARGET_EVENTS:,} events / ({spark_rate:,} events/s/core x {n} cores)",
            TARGET_EVENTS / (spark_rate * n),
        ),
        "duckdb_this_machine": _seconds(
            f"{TARGET_EVENTS:,} events / {duck_rate:,} events/s (2 threads)", TARGET_EVENTS / duck_rate
        ),
    }


def _uplift_100k(uplift: dict[str, Any], n: int) -> dict[str, Any]:
    if "failed" in uplift["spark"]:
        return {"spark": NOT_MEASURED}
    rate = uplift["spark"]["accounts_per_s_per_core"]
    folds = uplift["folds"]
    tasks = len(ACTIONS) * folds + len(OUTCOMES) * (folds + 1)
    return _seconds(
        f"{TARGET_ACCOUNTS:,} accounts / ({rate:,} accounts/s/core x {n} cores)", TARGET_ACCOUNTS / (rate * n)
    ) | {
        "caveat": f"with {n} jobs the fits split into {tasks} tasks ({len(ACTIONS)} actions x {folds} folds "
        f"+ {len(OUTCOMES)} outcomes x ({folds} folds + 1 on every row)), and the per-action effects after "
        "them run on the driver alone: a lower bound on the time"
    }


def extrapolation(
    features: dict[str, Any], scoring: dict[str, Any] | None, uplift: dict[str, Any]
) -> dict[str, Any]:
    """Time on a 32-core cluster, from this run's per-core rates on Spark, with the arithmetic shown."""
    n = CLUSTER_CORES
    out: dict[str, Any] = {
        "assumption": f"Spark scales linearly across cores: {n} cores do {n}x the per-core rate measured on "
        "local[2] here (no shuffle, scheduling or skew cost growing with the cluster, which a real cluster "
        "adds); scoring and uplift time grow linearly with accounts; session start and registering the "
        "tables are left out. Feature rates from the largest size Spark built.",
        "cluster_cores": n,
        "features_10b_events": _features_10b(features["sizes"], n),
    }
    if scoring is not None and "failed" in scoring["spark"]:
        out["scoring_100k_accounts"] = {"spark": NOT_MEASURED}
    elif scoring is not None:
        rate = scoring["spark"]["rows_per_s_per_core"]
        out["scoring_100k_accounts"] = _seconds(
            f"{TARGET_ACCOUNTS:,} rows / ({rate:,} rows/s/core x {n} cores)", TARGET_ACCOUNTS / (rate * n)
        )
    out["uplift_100k_accounts"] = _uplift_100k(uplift, n)
    return out


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1M,10M,50M", help="event counts, comma-separated [1M,10M,50M]")
    parser.add_argument("--accounts", type=int, default=10_000, help="the uplift and scoring world [10000]")
    parser.add_argument("--days", type=int, default=400)
    parser.add_argument("--score-rows", type=count, default=1_000_000, help="feature rows scored [1e6]")
    parser.add_argument("--trials", type=int, default=20, help="tuning trials per champion [20]")
    parser.add_argument("--no-scoring", action="store_true", help="skip (2): no champions trained")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "retain-bench")
    parser.add_argument("--seed", type=int, default=11, help="the feature sizes' simulation seed [11]")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="where spark.json goes")
    return parser.parse_args(argv)


def problems(report: dict[str, Any]) -> list[str]:
    """Spark runs that failed, and answers that differ from the peer's (feature rows, scores, estimates)."""
    found = []
    for size in report["features"]["sizes"]:
        if "failed" in size["spark"] or not size["same_rows"]:
            found.append(f"features at {size['events']:,} events: Spark failed or built other rows")
    scoring = report["scoring"]
    if isinstance(scoring, dict) and (
        "failed" in scoring["spark"]
        or scoring["max_churn_probability_difference"] > 1e-9
        or not scoring["same_reasons"]
    ):
        found.append("scoring: Spark failed or scored differently")
    uplift = report["uplift"]
    if "failed" in uplift["spark"] or uplift["max_ate_difference"] > 1e-9:
        found.append("uplift: Spark failed or the estimates differ")
    return found


def main() -> int:
    argv = sys.argv[1:]
    args = parse(argv)
    started = time.perf_counter()
    sizes = [count(s) for s in args.sizes.split(",") if s.strip()]
    report: dict[str, Any] = {
        "machine_cores": os.cpu_count(),
        "spark_master": SparkSettings().master,
        # the JVM starts with the features part's settings (RETAIN_SPARK__CONF), e.g. its driver memory
        "spark_conf": Settings().spark.conf,
    }
    report["features"] = features_part(sizes, args.cache, args.seed)
    with tempfile.TemporaryDirectory(prefix="retain-bench-spark-") as tmp:
        store, settings, timings = world(
            Path(tmp), args.accounts, args.days, args.trials, not args.no_scoring
        )
        report["world"] = {"accounts": args.accounts, "days": args.days, "timings_s": timings}
        uplift = uplift_part(store, settings, args.accounts)
        scoring = None if args.no_scoring else scoring_part(store, settings, args.score_rows, Path(tmp))
    report["scoring"] = scoring if scoring is not None else "skipped (--no-scoring)"
    report["uplift"] = uplift
    report["extrapolation"] = extrapolation(report["features"], scoring, uplift)
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["problems"] = problems(report)
    print(report["features"]["verdict"], *report["problems"], sep="\n", file=sys.stderr)
    print(json.dumps(report, indent=2, default=str))
    record("spark", MODULE, argv, report, args.results)
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
