"""The Spark engine on this machine's cores and on a two-worker cluster against the embedded engines, in
one run: the feature build (full, and daily after a year of history), batch scoring and the uplift fits,
each beside its single-machine peer, and what the measured per-core rates would make of 100,000 accounts
and 10B events on a 32-core cluster.

    .venv/bin/python -m experiments.benchmarks.spark [--sizes 1M,10M,50M] [--accounts 10000] [--days 400]
        [--score-rows 1e6] [--trials 20] [--executor-memory 3g] [--no-scoring] [--no-uplift] [--cache DIR]
        [--results DIR]

(1) Features (`experiments.benchmarks.spark_features`): at each size, one stored world's feature build on
DuckDB (2 threads), a standalone cluster started for the size (`experiments.spark_cluster`: two one-core
workers of --executor-memory, through Spark Connect) and Spark `local[2]`, each timed apart from its
setup and checked against DuckDB's rows; then each engine's daily builds after the world's history up to
December 29 (`experiments.benchmarks.incremental`): their share of the same engine's full build, their
equality with it and their cost per new event, across the sizes. Must hold at the largest size: a daily
build costs at most 10% of the full build on the same engine, and equals it row for row.

(2) Scoring: a world of --accounts x --days gets its churn and expansion champions as the training
benchmark gets them (`experiments.benchmarks.train.pipeline`, --trials each), then the latest cutoff's
feature rows are tiled to --score-rows accounts (a new version of that temporary store's feature table)
and `score_store` scores them in this process (engine duckdb) and on Spark's executors (engine spark),
each timed whole as `score_store` reports it (loading the champions and writing the `scores` table
included); the two must agree. Training the champions takes minutes: --no-scoring skips (2).

(3) Uplift: the same world's weekly design (`store_design`, as uplift training reads it) and `fit_uplift`
from scratch (no cache) on one process (`Workers(1)`), two local processes (`Workers(2)`) and Spark's
executors (`Workers(2, SparkSettings())`); all three must give the same estimates. --no-uplift skips (3).

(4) Extrapolation: the per-core rates of the largest measured size on `local[2]` times 32 cores, assuming
Spark scales linearly with cores (no shuffle, scheduling or skew cost that grows with the cluster: an
assumption, not a measurement), and that scoring and uplift time grow linearly with accounts. Session
start and registering are left out.

A Spark run (or the cluster) that fails is recorded as failed and the run goes on; it exits 1 then, when
the engines disagree (feature rows, daily and full tables, scores or uplift estimates) or when the daily
must-hold is broken, and lists why under `problems`. The JSON goes to experiments/results/spark.json, or
to --results DIR (a quick check of the whole run: --sizes 1M --accounts 1000 --score-rows 20000 --trials 2
--results /tmp).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.catalogue import ACTIONS
from core.parallel import Workers
from core.settings import Settings, SparkSettings
from core.spark import SparkFailure
from experiments.benchmarks.spark_features import (
    CLUSTER_DRIVER_MEMORY,
    CLUSTER_MAX_RESULT,
    CLUSTER_WORKERS,
    failure,
    feature_problems,
    features_part,
    spark_cores,
    start_spark,
    stop_spark,
)
from experiments.benchmarks.train import _timed, pipeline
from experiments.results import RESULTS_DIR, record
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
    features: dict[str, Any], scoring: dict[str, Any] | None, uplift: dict[str, Any] | None
) -> dict[str, Any]:
    """Time on a 32-core cluster, from this run's per-core rates on Spark, with the arithmetic shown."""
    n = CLUSTER_CORES
    out: dict[str, Any] = {
        "assumption": f"Spark scales linearly across cores: {n} cores do {n}x the per-core rate measured on "
        "local[2] here (no shuffle, scheduling or skew cost growing with the cluster, which a real cluster "
        "adds); scoring and uplift time grow linearly with accounts; session start and registering the "
        "tables are left out. Feature rates from the largest size Spark local[2] built.",
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
    if uplift is not None:
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
    parser.add_argument("--executor-memory", default="3g", help="each cluster worker's executor heap [3g]")
    parser.add_argument("--no-scoring", action="store_true", help="skip (2): no champions trained")
    parser.add_argument("--no-uplift", action="store_true", help="skip (3)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "retain-bench")
    parser.add_argument("--seed", type=int, default=11, help="the feature sizes' simulation seed [11]")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="where spark.json goes")
    return parser.parse_args(argv)


def problems(report: dict[str, Any]) -> list[str]:
    """Spark runs that failed, answers that differ from the peer's (feature rows, daily and full tables,
    scores, estimates) and the daily must-hold when it is broken."""
    found = feature_problems(report["features"])
    scoring = report["scoring"]
    if isinstance(scoring, dict) and (
        "failed" in scoring["spark"]
        or scoring["max_churn_probability_difference"] > 1e-9
        or not scoring["same_reasons"]
    ):
        found.append("scoring: Spark failed or scored differently")
    uplift = report["uplift"]
    if isinstance(uplift, dict) and ("failed" in uplift["spark"] or uplift["max_ate_difference"] > 1e-9):
        found.append("uplift: Spark failed or the estimates differ")
    return found


def model_parts(args: argparse.Namespace, report: dict[str, Any]) -> None:
    """(2) and (3) on one world, each unless skipped, and the extrapolation, into `report`."""
    scoring = uplift = None
    if not (args.no_scoring and args.no_uplift):
        with tempfile.TemporaryDirectory(prefix="retain-bench-spark-") as tmp:
            store, settings, timings = world(
                Path(tmp), args.accounts, args.days, args.trials, not args.no_scoring
            )
            report["world"] = {"accounts": args.accounts, "days": args.days, "timings_s": timings}
            uplift = None if args.no_uplift else uplift_part(store, settings, args.accounts)
            scoring = None if args.no_scoring else scoring_part(store, settings, args.score_rows, Path(tmp))
    report["scoring"] = scoring if scoring is not None else "skipped (--no-scoring)"
    report["uplift"] = uplift if uplift is not None else "skipped (--no-uplift)"
    report["extrapolation"] = extrapolation(report["features"], scoring, uplift)


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
        "cluster": {
            "workers": CLUSTER_WORKERS,
            "executor_memory": args.executor_memory,
            "driver_memory": CLUSTER_DRIVER_MEMORY,
            "max_result_size": CLUSTER_MAX_RESULT,
        },
    }
    report["features"] = features_part(sizes, args.cache, args.seed, args.executor_memory)
    model_parts(args, report)
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["problems"] = problems(report)
    print(report["features"]["verdict"], *report["problems"], sep="\n", file=sys.stderr)
    print(json.dumps(report, indent=2, default=str))
    record("spark", MODULE, argv, report, args.results)
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
