"""Feature build throughput: the SQL definitions on DuckDB against a straightforward pandas groupby build.

    .venv/bin/python -m experiments.benchmarks.features [--sizes 1e6,1e7] [--cache DIR]

Events come from the simulator (about 2.5-3 events per account-day: N events = N/1000 accounts x 365
days), cached under --cache. Both builds start from the same Parquet files and produce features at every
month-end cutoff of the span; both timings include reading the files. DuckDB runs on 2 threads.

The pandas baseline computes a subset of the features that covers every shape of the full build:
windowed counts and sums (sessions, feature uses, errors over 7/30/90 days), distinct counts (active
users, features used), a distinct-per-day count (stickiness), trends (week over week, 30 vs prior 30),
ratios (seat utilisation against the seats in force, error rate), recency over all history (last
session, last sponsor touch), the latest state per key (open overdue invoices), the contract terms in
force (seats, renewal date) and the active-account filter. The two builds must agree on those columns
for every (account, cutoff); the run fails otherwise.
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

import retain.simulate
from experiments.results import record
from features.build import build_feature_table
from features.cutoffs import cutoff_instant, default_cutoffs
from features.definitions import RENEWAL_GRACE_DAYS
from retain.core.contract import EVENT_TYPES
from retain.core.settings import Settings
from retain.simulate import SimConfig, simulate_to

DAYS = 365
EVENTS_PER_ACCOUNT = 1_000  # ~2.5-3 events per account-day over a year
THREADS = 2
DAY = pd.Timedelta(days=1)

#: The columns both builds compute.
COMPARED = (
    "tenure_days",
    "days_to_renewal",
    "seats_purchased",
    "sessions_7d",
    "sessions_30d",
    "sessions_90d",
    "sessions_wow",
    "sessions_30v30",
    "active_users_7d",
    "active_users_30d",
    "stickiness_30d",
    "seat_utilisation",
    "days_since_last_session",
    "feature_uses_30d",
    "features_used_30d",
    "errors_30d",
    "error_rate_30d",
    "days_since_sponsor_touch",
    "invoices_overdue",
)
EVENT_COLUMNS = [
    "event_id",
    "account_id",
    "user_id",
    "ts",
    "event_type",
    "feature",
    "count",
    "status",
    "invoice_id",
    "seats_to",
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
    for path in sorted(Path(retain.simulate.__file__).parent.glob("*.py")):
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


def _latest(frame: pd.DataFrame, keys: list[str], column: str) -> pd.Series:
    return frame.sort_values(["ts", "event_id"]).groupby(keys)[column].last()


def _before(frame: pd.DataFrame, t: pd.Timestamp, days: int | None = None, skip: int = 0) -> pd.DataFrame:
    """Rows in the `days` days ending `skip` days before t (all history before t when days is None)."""
    end = t - skip * DAY
    mask = frame["ts"] < end
    if days is not None:
        mask &= frame["ts"] >= end - days * DAY
    return frame[mask]


def _days(later: pd.Series | pd.Timestamp, earlier: pd.Series | pd.Timestamp) -> pd.Series:
    return pd.Series(later - earlier).dt.total_seconds() / 86_400


def _change(recent: pd.Series, prior: pd.Series) -> pd.Series:
    return (recent - prior) / prior.clip(lower=1)


def _terms(accounts: pd.DataFrame, by_type: dict[str, pd.DataFrame], t: pd.Timestamp) -> pd.DataFrame:
    """Accounts active at t with the seats and renewal date in force."""
    acc = accounts[accounts["contract_start"] < t].set_index("account_id")
    seats = _latest(_before(by_type["seats.changed"], t), ["account_id"], "seats_to")
    renewal = _latest(_before(by_type["subscription.renewed"], t), ["account_id"], "renewal_date")
    terms = pd.DataFrame(
        {
            "contract_start": acc["contract_start"],
            "seats_purchased": seats.reindex(acc.index).fillna(acc["seats_purchased"]).astype("float64"),
            "renewal_date": renewal.reindex(acc.index).fillna(acc["renewal_date"]),
        }
    )
    gone = terms.index.isin(_before(by_type["subscription.cancelled"], t)["account_id"])
    lapsed = terms["renewal_date"] + RENEWAL_GRACE_DAYS * DAY < t
    return terms[~gone & ~lapsed]


def _at_cutoff(accounts: pd.DataFrame, by_type: dict[str, pd.DataFrame], t: pd.Timestamp) -> pd.DataFrame:
    terms = _terms(accounts, by_type, t)
    idx = terms.index
    sessions, uses = by_type["user.session"], by_type["feature.used"]

    def count(frame: pd.DataFrame) -> pd.Series:
        return frame.groupby("account_id").size().reindex(idx, fill_value=0)

    def total(frame: pd.DataFrame) -> pd.Series:
        return frame.groupby("account_id")["count"].sum().reindex(idx, fill_value=0)

    def distinct(frame: pd.DataFrame, column: str) -> pd.Series:
        return frame.groupby("account_id")[column].nunique().reindex(idx, fill_value=0)

    def since_last(frame: pd.DataFrame) -> pd.Series:
        return _days(t, frame.groupby("account_id")["ts"].max().reindex(idx))

    row = pd.DataFrame(index=idx)
    row["tenure_days"] = _days(t, terms["contract_start"])
    row["days_to_renewal"] = _days(terms["renewal_date"], t)
    row["seats_purchased"] = terms["seats_purchased"]
    s7, s30 = _before(sessions, t, 7), _before(sessions, t, 30)
    row["sessions_7d"] = count(s7)
    row["sessions_30d"] = count(s30)
    row["sessions_90d"] = count(_before(sessions, t, 90))
    row["sessions_wow"] = _change(row["sessions_7d"], count(_before(sessions, t, 7, skip=7)))
    row["sessions_30v30"] = _change(row["sessions_30d"], count(_before(sessions, t, 30, skip=30)))
    row["active_users_7d"] = distinct(s7, "user_id")
    row["active_users_30d"] = distinct(s30, "user_id")
    user_days = s30[s30["user_id"].notna()].assign(day=s30["ts"].dt.floor("D"))
    user_days = user_days.drop_duplicates(["account_id", "user_id", "day"])
    active = row["active_users_30d"].where(row["active_users_30d"] > 0)
    row["stickiness_30d"] = count(user_days) / 30 / active
    row["seat_utilisation"] = row["active_users_30d"] / row["seats_purchased"].where(
        row["seats_purchased"] > 0
    )
    row["days_since_last_session"] = since_last(_before(sessions, t))
    u30 = _before(uses, t, 30)
    row["feature_uses_30d"] = total(u30)
    row["features_used_30d"] = distinct(u30, "feature")
    row["errors_30d"] = total(_before(by_type["error.raised"], t, 30))
    row["error_rate_30d"] = row["errors_30d"] / row["sessions_30d"].clip(lower=1)
    row["days_since_sponsor_touch"] = since_last(_before(by_type["sponsor.touch"], t))
    status = _latest(_before(by_type["billing.invoice"], t), ["account_id", "invoice_id"], "status")
    row["invoices_overdue"] = count(status[status == "overdue"].reset_index())
    return row.assign(cutoff=t).reset_index()


def pandas_features(events: pd.DataFrame, accounts: pd.DataFrame, cutoffs: list[date]) -> pd.DataFrame:
    """The COMPARED columns: per cutoff, filter each event type to its window and group by account."""
    by_type = {name: events.iloc[0:0] for name in EVENT_TYPES}
    for name, frame in events.groupby("event_type"):
        by_type[str(name)] = frame
    frames = [_at_cutoff(accounts, by_type, pd.Timestamp(cutoff_instant(day))) for day in cutoffs]
    return pd.concat(frames, ignore_index=True)


def baseline(world: World, cutoffs: list[date]) -> tuple[pd.DataFrame, float, float]:
    """The pandas build: (features, seconds including reading, seconds computing)."""
    started = time.perf_counter()
    events = pd.read_parquet(world.folder / "events", columns=EVENT_COLUMNS)
    accounts = pd.read_parquet(world.accounts)
    loaded = time.perf_counter()
    result = pandas_features(events, accounts, cutoffs)
    done = time.perf_counter()
    return result, done - started, done - loaded


def disagreements(ours: pd.DataFrame, theirs: pd.DataFrame) -> list[str]:
    """Columns (or the row set) where the two builds differ."""
    keys = ["account_id", "cutoff"]
    left = ours[[*keys, *COMPARED]].sort_values(keys).reset_index(drop=True)
    right = theirs[[*keys, *COMPARED]].sort_values(keys).reset_index(drop=True)
    left["cutoff"] = left["cutoff"].astype("datetime64[us, UTC]")
    right["cutoff"] = right["cutoff"].astype("datetime64[us, UTC]")
    if not left[keys].equals(right[keys]):
        return [f"rows: {len(left)} (DuckDB) vs {len(right)} (pandas)"]
    bad = []
    for column in COMPARED:
        a, b = left[column].to_numpy("float64"), right[column].to_numpy("float64")
        if not np.allclose(a, b, rtol=1e-9, atol=1e-9, equal_nan=True):
            bad.append(column)
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
        "pandas_features": len(COMPARED),
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
