"""Feature build throughput: the SQL definitions on DuckDB against a straightforward pandas groupby build.

    .venv/bin/python -m experiments.benchmarks.features [--sizes 1e6,1e7] [--cache DIR]

Events come from the simulator (about 2.5-3 events per account-day: N events = N/1000 accounts x 365
days), cached under --cache. Both builds start from the same Parquet files and produce features at every
month-end cutoff of the span; both timings include reading the files. DuckDB runs on 2 threads.

The pandas baseline (experiments/benchmarks/pandas_features.py) computes every column of the feature
table, health score included, written from the definitions as a data scientist would in pandas: per cutoff,
filter each event type to its window, group by account and join. The two builds must agree on every
column for every (account, cutoff), categories, counts and flags exactly and other numbers to 1e-9; the
run fails otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

import simulate
from core.settings import Settings
from experiments.benchmarks.pandas_features import pandas_features
from experiments.results import record
from features.cutoffs import default_cutoffs
from features.definitions import FEATURE_NAMES, FEATURES, KEYS
from features.run import build_feature_table
from simulate import SimConfig, simulate_to

DAYS = 365
EVENTS_PER_ACCOUNT = 1_000  # ~2.5-3 events per account-day over a year
THREADS = 2

EVENT_COLUMNS = [
    "event_id",
    "account_id",
    "user_id",
    "ts",
    "event_type",
    "feature",
    "count",
    "core",
    "duration_min",
    "status",
    "amount",
    "invoice_id",
    "integration",
    "ticket_id",
    "priority",
    "sentiment",
    "csat",
    "nps",
    "milestone",
    "seats_to",
    "plan_to",
    "arr_to",
    "renewal_date",
]


@dataclass(frozen=True)
class World:
    folder: Path
    events: list[Path]
    accounts: Path
    interventions: Path


def simulator_version() -> str:
    """A digest of the simulator's source: a changed simulator never reuses a stale cache."""
    digest = hashlib.sha256()
    for path in sorted(Path(simulate.__file__).parent.glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def simulated(n_events: int, cache: Path, seed: int) -> World:
    """The simulator's output for about `n_events` events, generated once and kept under `cache`."""
    accounts = max(1, round(n_events / EVENTS_PER_ACCOUNT))
    folder = cache / f"sim-{accounts}x{DAYS}-seed{seed}-{simulator_version()}"
    done = folder / "simulated.json"
    if not done.exists():
        print(f"simulating {accounts:,} accounts x {DAYS} days into {folder} ...", file=sys.stderr)
        summary = simulate_to(
            SimConfig(accounts=accounts, days=DAYS, seed=seed, start=date(2025, 1, 1)), folder
        )
        done.write_text(json.dumps(asdict(summary), default=str))
    return World(
        folder,
        sorted((folder / "events").rglob("*.parquet")),
        folder / "accounts.parquet",
        folder / "interventions.parquet",
    )


def connect(world: World) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={"threads": THREADS})
    con.read_parquet([str(p) for p in world.events], hive_partitioning=False).create_view("events")
    con.read_parquet(str(world.accounts)).create_view("accounts")
    con.read_parquet(str(world.interventions)).create_view("interventions")
    return con


def ours(world: World, cutoffs: list[date]) -> tuple[pd.DataFrame, float]:
    with connect(world) as con:
        started = time.perf_counter()
        table = build_feature_table(con, cutoffs, Settings())
        seconds = time.perf_counter() - started
    return table.to_pandas(), seconds


def baseline(world: World, cutoffs: list[date]) -> tuple[pd.DataFrame, float, float]:
    """The pandas build: (features, seconds including reading, seconds computing)."""
    started = time.perf_counter()
    events = pd.read_parquet(world.folder / "events", columns=EVENT_COLUMNS)
    accounts = pd.read_parquet(world.accounts)
    interventions = pd.read_parquet(world.interventions)
    loaded = time.perf_counter()
    result = pandas_features(events, accounts, interventions, cutoffs, Settings())
    done = time.perf_counter()
    return result, done - started, done - loaded


def disagreements(ours: pd.DataFrame, theirs: pd.DataFrame) -> list[str]:
    """Columns (or the row set) where the two builds differ: categories, counts and flags exactly, other
    numbers within 1e-9 (relative, or absolute near zero)."""
    keys = list(KEYS)
    left = ours[[*keys, *FEATURE_NAMES]].sort_values(keys).reset_index(drop=True)
    right = theirs[[*keys, *FEATURE_NAMES]].sort_values(keys).reset_index(drop=True)
    left["cutoff"] = left["cutoff"].astype("datetime64[us, UTC]")
    right["cutoff"] = right["cutoff"].astype("datetime64[us, UTC]")
    if not left[keys].equals(right[keys]):
        return [f"rows: {len(left)} (DuckDB) vs {len(right)} (pandas)"]
    bad = []
    for feature in FEATURES:
        a, b = left[feature.name], right[feature.name]
        if feature.unit == "category":
            same = (a.isna() & b.isna()) | (a == b)
        else:
            x, y = a.to_numpy("float64"), b.to_numpy("float64")
            exact = feature.unit in ("count", "flag")
            same = np.isclose(x, y, rtol=0 if exact else 1e-9, atol=0 if exact else 1e-9, equal_nan=True)
        if not np.all(same):
            bad.append(feature.name)
    return bad


def run(n_events: int, cache: Path, seed: int) -> dict[str, object]:
    world = simulated(n_events, cache, seed)
    with connect(world) as con:
        n = int(con.execute("SELECT count(*) FROM events").fetchall()[0][0])
        cutoffs = default_cutoffs(con)
    table, seconds = ours(world, cutoffs)
    theirs, pandas_seconds, pandas_compute = baseline(world, cutoffs)
    bad = disagreements(table, theirs)
    return {
        "events": n,
        "accounts": int(table["account_id"].nunique()),
        "cutoffs": len(cutoffs),
        "rows": len(table),
        "features": table.shape[1] - 2,
        "duckdb_seconds": round(seconds, 2),
        "duckdb_events_per_s": round(n / seconds),
        "pandas_seconds": round(pandas_seconds, 2),
        "pandas_compute_seconds": round(pandas_compute, 2),
        "pandas_events_per_s": round(n / pandas_seconds),
        "speedup": round(pandas_seconds / seconds, 1),
        "pandas_features": len(FEATURE_NAMES),
        "agree": not bad,
        "disagree": bad,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1e6,1e7", help="event counts, comma-separated [1e6,1e7]")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "retain-bench")
    parser.add_argument("--seed", type=int, default=11)
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    sizes = [int(float(s)) for s in args.sizes.split(",") if s.strip()]
    results = []
    for size in sizes:
        result = run(size, args.cache, args.seed)
        results.append(result)
        print(
            f"{result['events']:>12,} events  {result['rows']:>8,} rows x {result['features']} features  "
            f"DuckDB {result['duckdb_seconds']:>7.2f} s {result['duckdb_events_per_s']:>12,} ev/s  "
            f"pandas ({result['pandas_features']} features) {result['pandas_seconds']:>7.2f} s "
            f"{result['pandas_events_per_s']:>10,} ev/s  ratio {result['speedup']:>5.1f}x  "
            f"agree={result['agree']}",
            flush=True,
        )
    print(json.dumps(results, indent=2))
    record("features", "experiments.benchmarks.features", argv, results)
    return 0 if all(r["agree"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
