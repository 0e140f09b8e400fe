"""Ingest from a database: peak memory flat in the table's size, throughput, and an incremental run.

    .venv/bin/python -m experiments.benchmarks.sql_ingest [--quick] [--sizes 1.12e5,1.12e6] [--new 10000]
        [--dsn postgresql://postgres@127.0.0.1:5432/postgres] [--cache DIR]

For each size, the feature benchmark's simulated accounts and events (about N events, cached under
--cache) are copied into a fresh PostgreSQL database under the contract's names, then ingested into an
empty store by `ingest.ingest_sql` (`retain ingest --from-sql URL`), in a process of its own. Rows/s: the
rows read over the seconds inside `ingest_sql`. Peak memory: the process's peak RSS (VmHWM, Linux),
imports included (their share is reported). The same input is ingested from its files by `ingest_path`
as the peer: the two must accept the same rows. Then --new events are added to the database and a second
ingest must read exactly those (past the watermark), in a fraction of the first run's time.

Must hold: peak RSS of the largest size over that of the smallest stays below 1.5; exit 1 if not, if the
database and the files accepted different rows, or if the second run read anything but the new rows.
--quick (1e4 and 1e5 events, 1,000 new) checks the run end to end and stamps its JSON into --cache, not
experiments/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from core.contract import ACCOUNT_SCHEMA, EVENT_SCHEMA, TS
from experiments.benchmarks.features import simulated
from experiments.benchmarks.serving import progress
from experiments.benchmarks.store import ROOT, Code, git, prepared
from experiments.benchmarks.store import ingest as file_ingest
from experiments.results import RESULTS_DIR, record

MODULE = "experiments.benchmarks.sql_ingest"
MUST_HOLD_PEAK_GROWTH = 1.5
QUICK = {"sizes": "1e4,1e5", "new": 1_000}
_PG_TYPES = {
    pa.string(): "TEXT",
    TS: "TIMESTAMPTZ",
    pa.float64(): "DOUBLE PRECISION",
    pa.int64(): "BIGINT",
    pa.bool_(): "BOOLEAN",
}

#: run in the measured process: one ingest from the database, its figures written to argv[3]. Peak memory
#: is the process's VmHWM (`ru_maxrss` of a child keeps the parent's high-water mark from before its exec)
INGEST = """
import json, sys, time
from pathlib import Path
from store.delta import Store
from ingest.run import ingest_sql
def peak_kib():
    return int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0])
imported = peak_kib()
started = time.perf_counter()
summary = ingest_sql(Store(Path(sys.argv[1])), sys.argv[2])
seconds = time.perf_counter() - started
Path(sys.argv[3]).write_text(json.dumps({"seconds": seconds, "imports_kib": imported, "peak_kib": peak_kib(),
    "rows_read": {t: r.rows_read for t, r in summary.sql.tables.items()}, "accepted": summary.accepted,
    "quarantined": summary.quarantined.total, "watermark": summary.sql.tables["events"].watermark_after}))
"""


def copy_table(con: psycopg.Connection[Any], name: str, schema: pa.Schema, tables: list[pa.Table]) -> int:
    """A new table `name` typed as the contract types `schema`, filled by COPY from Arrow's CSV."""
    columns = ", ".join(f'"{f.name}" {_PG_TYPES[f.type]}' for f in schema)
    con.execute(f"CREATE TABLE {name} ({columns})")
    rows = 0
    quoted = ", ".join(f'"{n}"' for n in schema.names)
    with con.cursor().copy(f"COPY {name} ({quoted}) FROM STDIN WITH (FORMAT csv)") as copy:
        for table in tables:
            sink = pa.BufferOutputStream()
            pcsv.write_csv(
                table.select(schema.names).cast(schema), sink, pcsv.WriteOptions(include_header=False)
            )
            copy.write(sink.getvalue().to_pybytes())
            rows += table.num_rows
    return rows


def loaded(admin: str, n_events: int, cache: Path, seed: int) -> tuple[str, int]:
    """A fresh database holding the simulated accounts and about `n_events` events; its URL and events."""
    world = simulated(n_events, cache, seed)
    name = f"retain_bench_sql_{n_events}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    url = f"{admin.rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(url) as con:
        copy_table(con, "accounts", ACCOUNT_SCHEMA, [pq.read_table(world.accounts)])
        events = copy_table(
            con, "events", EVENT_SCHEMA, [pq.read_table(p, schema=EVENT_SCHEMA) for p in world.events]
        )
        con.execute("ANALYZE")
    return url, events


def drop(admin: str, url: str) -> None:
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def ingest(url: str, store: Path) -> dict[str, Any]:
    """One ingest from `url` into `store`, in a process of its own: speed, peak memory, what it read."""
    out = store.with_suffix(f".{time.monotonic_ns()}.json")
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-P", "-c", INGEST, str(store), url, str(out)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"ingest from {url} exited with {done.returncode}")
    said = json.loads(out.read_text())
    read = sum(said["rows_read"].values())
    return {
        "seconds": round(said["seconds"], 2),
        "rows_per_s": round(read / said["seconds"]),
        "peak_rss_mib": round(said["peak_kib"] / 1024),
        "imports_rss_mib": round(said["imports_kib"] / 1024),
        "process_seconds": round(time.perf_counter() - started, 2),
        "rows_read": said["rows_read"],
        "accepted": said["accepted"],
        "quarantined": said["quarantined"],
        "watermark": said["watermark"],
    }


def add_events(url: str, n: int) -> None:
    """`n` new events past every stored one: copies of the latest, a minute after the last, new ids."""
    properties = ", ".join(f'"{name}"' for name in EVENT_SCHEMA.names[5:])
    with psycopg.connect(url) as con:
        con.execute(
            "INSERT INTO events SELECT 'new-' || event_id, account_id, user_id, "
            f"(SELECT max(ts) FROM events) + INTERVAL '1 minute', event_type, {properties} "
            f"FROM (SELECT * FROM events ORDER BY ts DESC LIMIT {n}) AS latest"
        )


def size_figures(admin: str, n_events: int, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    """One size: the database ingest, the files' ingest of the same input, then the incremental run."""
    progress(f"loading about {n_events:,} simulated events into PostgreSQL ...")
    url, events = loaded(admin, n_events, args.cache, args.seed)
    try:
        store = scratch / f"sql-{n_events}"
        progress(f"ingesting {events:,} events from the database ...")
        first = ingest(url, store)
        progress(f"  {json.dumps(first)}")
        files = prepared(n_events, args.cache, args.seed, scratch)
        delta = Code("delta", ROOT, git("rev-parse", "HEAD"))
        peer = file_ingest(delta, files, scratch / f"files-{n_events}")
        progress(f"  files: {json.dumps(peer)}")
        add_events(url, args.new)
        progress(f"ingesting again after {args.new:,} new events ...")
        second = ingest(url, store)
        progress(f"  {json.dumps(second)}")
    finally:
        drop(admin, url)
    return {
        "events": events,
        "sql": first,
        "files": peer,
        "same_accepted": first["accepted"]["events"] == peer["accepted_events"],
        "incremental": {
            **second,
            "new_events": args.new,
            "read_only_new": second["rows_read"]["events"] == args.new,
        },
    }


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help=f"a small check of the whole run: {QUICK}")
    parser.add_argument(
        "--sizes", help="event counts to ask the simulator for, comma-separated [1.12e5,1.12e6]"
    )
    parser.add_argument("--new", type=int, help="events added before the incremental run [10000]")
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres", help="an admin URL")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "retain-bench")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else {"sizes": "1.12e5,1.12e6", "new": 10_000}
    args.sizes = args.sizes or defaults["sizes"]
    args.new = args.new or defaults["new"]
    args.size_list = [int(float(s)) for s in str(args.sizes).split(",") if s.strip()]
    return args


def summary_lines(figures: dict[str, Any]) -> list[str]:
    lines = []
    for row in figures["sizes"]:
        sql, files, again = row["sql"], row["files"], row["incremental"]
        lines.append(
            f"{row['events']:>10,} events  database {sql['rows_per_s']:>8,} rows/s "
            f"{sql['peak_rss_mib']:>5,} MiB  "
            f"files {files['events_per_s']:>8,} ev/s {files['peak_rss_mib']:>5,} MiB  "
            f"then {again['rows_read']['events']:,} new read in {again['seconds']} s"
        )
    must = figures["must_hold"]
    lines.append(f"must hold: {must['what']}: {must['value']} -> {'holds' if must['holds'] else 'FAILS'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sql-ingest-", dir=args.cache) as tmp:
        sizes = [size_figures(args.dsn, n, args, Path(tmp)) for n in args.size_list]
    first, last = sizes[0], sizes[-1]
    growth = round(last["sql"]["peak_rss_mib"] / first["sql"]["peak_rss_mib"], 3)
    figures = {
        "database": "PostgreSQL on 127.0.0.1, the simulator's tables under the contract's names",
        "sizes": sizes,
        "must_hold": {
            "what": f"peak RSS at {last['events']:,} events / at {first['events']:,} "
            f"< {MUST_HOLD_PEAK_GROWTH}",
            "value": growth,
            "holds": growth < MUST_HOLD_PEAK_GROWTH,
        },
    }
    for line in summary_lines(figures):
        print(line, flush=True)
    print(json.dumps(figures, indent=2))
    # a quick run checks the benchmark; its figures never stand in for the real run's
    folder = args.cache / "quick" if args.quick else RESULTS_DIR
    path = record("sql_ingest", MODULE, argv, figures, folder)
    progress(f"wrote {path}")
    sound = all(row["same_accepted"] and row["incremental"]["read_only_new"] for row in sizes)
    return 0 if sound and figures["must_hold"]["holds"] else 1


if __name__ == "__main__":
    sys.exit(main())
