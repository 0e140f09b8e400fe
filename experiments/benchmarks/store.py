"""The store: ingest throughput and memory, and API intervention writes, against the previous store.

    .venv/bin/python -m experiments.benchmarks.store [--quick] [--sizes 1e6,1e7] [--levels 100,1000,10000]
        [--window 300] [--peer-seconds 300] [--cache DIR]

The Delta store (this checkout) against its peer, the manifest store of commit 468c718 (tables as folders
of Parquet files named by one manifest.json, rewritten per transaction). The peer is checked out into a
temporary git worktree, removed afterwards. Both run in subprocesses of the same venv interpreter with
PYTHONPATH at their code (`python -P`, so the current folder never shadows it), one process per run, so
peak memory is per run.

(a) Ingest: the feature benchmark's simulated events (about N/1000 accounts x 365 days, cached under
--cache), handed over as the accounts file and the daily event files, ingested into an empty store by
`ingest.ingest_path`. Events/s: the input's events over the seconds inside `ingest_path`. Peak
memory: the process's peak RSS (VmHWM, Linux), imports included (their share is reported). Memory is flat
when the peak at the largest size is close to the peak at the smallest.

(b) API writes: `retain serve` over a small store (the 1e5-event input, ingested by the same code) with a
key scoped actions:write; POST /v1/interventions one at a time, cycling over the accounts. At each level
the interventions posted so far are brought up to it, then a window of --window posts is timed (p50/p99).
The Delta store's server writes each to its decision log, merged into the store later; the peer's commits
a Parquet file and a new manifest per post, so it slows as files accumulate: it gets --peer-seconds in all,
and a level it cannot reach is reported as not reached, with its latency at the count it got to.

Must hold: the Delta store's p99 at the top level over its p99 at the first level stays below 1.5; exit 1
if not, or if the two stores accepted different event counts. --quick (1e5 and 2e5 events, levels 100
and 1,000, peer 120 s) checks the run end to end and stamps its JSON into --cache, not
experiments/results/.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from experiments.benchmarks import load
from experiments.benchmarks.features import simulated
from experiments.benchmarks.serving import HOST, Server, free_port, progress
from experiments.results import RESULTS_DIR, record

ROOT = Path(__file__).resolve().parents[2]
MODULE = "experiments.benchmarks.store"
#: the last commit of the manifest store, before the tables became Delta tables
PEER_COMMIT = "468c718"
#: the input the API's small store is ingested from
API_EVENTS = 100_000
ACTION = "health_check_call"
MUST_HOLD_P99_GROWTH = 1.5
QUICK = {"sizes": "1e5,2e5", "levels": "100,1000", "peer_seconds": 120.0}

#: run in the measured process: one ingest into an empty store, its figures written to argv[3]. Peak memory
#: is the process's VmHWM: `ru_maxrss` would not do, since a child keeps the parent's high-water mark from
#: before its exec (this process's, several hundred MiB)
INGEST = """
import json, sys, time
from pathlib import Path
from store.delta import Store
from ingest.run import ingest_path
def peak_kib():
    return int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0])
imported = peak_kib()
started = time.perf_counter()
summary = ingest_path(Store(Path(sys.argv[1])), Path(sys.argv[2]))
seconds = time.perf_counter() - started
Path(sys.argv[3]).write_text(json.dumps({"seconds": seconds, "imports_kib": imported, "peak_kib": peak_kib(),
    "accepted": summary.accepted, "quarantined": summary.quarantined.total}))
"""


@dataclass(frozen=True)
class Code:
    """One store implementation: the checkout its packages are imported from."""

    name: str
    folder: Path
    commit: str

    def python(self, *args: str) -> list[str]:
        return [sys.executable, "-P", *args]

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(self.folder), **extra}


@dataclass(frozen=True)
class Input:
    """An ingest's input folder (accounts.parquet and events/) and what it holds."""

    folder: Path
    events: int
    accounts: int


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


@contextlib.contextmanager
def peer_checkout(scratch: Path) -> Iterator[Code]:
    """The manifest store's code in a git worktree for the length of the run."""
    folder = scratch / "peer"
    git("worktree", "add", "--detach", str(folder), PEER_COMMIT)
    try:
        yield Code("manifest", folder, git("-C", str(folder), "rev-parse", "HEAD"))
    finally:
        git("worktree", "remove", "--force", str(folder))


def _link(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def prepared(n_events: int, cache: Path, seed: int, scratch: Path) -> Input:
    """The simulator's accounts and events for about `n_events` events (not its interventions or truth),
    linked into a folder of their own and read once, so neither store pays for a cold page cache."""
    world = simulated(n_events, cache, seed)
    folder = scratch / f"input-{n_events}"
    if not folder.exists():
        folder.mkdir()
        _link(str(world.accounts), str(folder / "accounts.parquet"))
        shutil.copytree(world.folder / "events", folder / "events", copy_function=_link)
    for path in folder.rglob("*.parquet"):
        path.read_bytes()
    events = sum(pq.ParquetFile(p).metadata.num_rows for p in world.events)
    return Input(folder, events, pq.ParquetFile(world.accounts).metadata.num_rows)


def ingest(code: Code, source: Input, store: Path) -> dict[str, Any]:
    """One ingest into the empty `store`, in a process of its own: speed, peak memory, what it kept."""
    out = store.with_suffix(".json")
    started = time.perf_counter()
    process = subprocess.Popen(
        code.python("-c", INGEST, str(store), str(source.folder), str(out)),
        env=code.env(),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
    process.wait()
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{code.name} ingest of {source.folder} exited with {process.returncode}")
    done = json.loads(out.read_text())
    return {
        "seconds": round(done["seconds"], 2),
        "events_per_s": round(source.events / done["seconds"]),
        "peak_rss_mib": round(done["peak_kib"] / 1024),
        "imports_rss_mib": round(done["imports_kib"] / 1024),
        "process_seconds": round(wall, 2),
        "accepted_events": done["accepted"]["events"],
        "accepted_accounts": done["accepted"]["accounts"],
        "quarantined": done["quarantined"],
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def ingest_figures(codes: list[Code], inputs: list[Input], scratch: Path) -> dict[str, Any]:
    """(a) per size: each store's ingest, new/old ratios; and per store, how its peak grows with size."""
    delta, manifest = codes
    sizes = []
    for source in inputs:
        row: dict[str, Any] = {"events": source.events, "accounts": source.accounts}
        for code in (manifest, delta):
            progress(f"ingesting {source.events:,} events with the {code.name} store ...")
            row[code.name] = ingest(code, source, scratch / f"{code.name}-{source.events}")
            progress(f"  {json.dumps(row[code.name])}")
        new, old = row[delta.name], row[manifest.name]
        row["new_over_old"] = {
            "events_per_s": _ratio(new["events_per_s"], old["events_per_s"]),
            "peak_rss": _ratio(new["peak_rss_mib"], old["peak_rss_mib"]),
        }
        row["same_accepted"] = new["accepted_events"] == old["accepted_events"]
        sizes.append(row)
    first, last = sizes[0], sizes[-1]
    growth = {
        "from_events": first["events"],
        "to_events": last["events"],
        **{c.name: _ratio(last[c.name]["peak_rss_mib"], first[c.name]["peak_rss_mib"]) for c in codes},
    }
    return {"sizes": sizes, "peak_rss_growth": growth}


def create_key(code: Code, store: Path) -> str:
    """A key that may record interventions: `retain keys create` prints it last."""
    command = code.python("-m", "retain", "keys", "create", "--scopes", "actions:write")
    done = subprocess.run(
        [*command, "--name", "bench-store", "--store", str(store)],
        env=code.env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{code.name}: retain keys create failed:\n{done.stderr[-2000:]}")
    return lines[-1].strip()


def intervention_requests(port: int, key: str, accounts: list[str]) -> list[bytes]:
    """One POST per account (the server names each intervention, so a repeat is a new one)."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    return [
        load.encode(
            "POST",
            HOST,
            port,
            "/v1/interventions",
            headers,
            json.dumps({"account_id": a, "action": ACTION}).encode(),
        )
        for a in accounts
    ]


def post(port: int, requests: list[bytes], total: int, deadline: float) -> np.ndarray:
    """Latencies (ms) of up to `total` posts, one at a time, sent before `deadline`; every answer a 201."""
    result = load.run(HOST, port, requests, total=total, seconds=max(deadline - time.perf_counter(), 1e-3))
    wrong = {status: n for status, n in result.statuses.items() if status != 201}
    if wrong:
        raise RuntimeError(f"POST /v1/interventions answered {wrong}, e.g. {result.error_sample}")
    return result.latencies_ms


def window(level: int, before: int, latencies: np.ndarray, reached: bool) -> dict[str, Any]:
    return {
        "level": level,
        "reached": reached,
        "interventions_before": before,
        "requests": int(latencies.size),
        "p50_ms": round(float(np.percentile(latencies, 50)), 2) if latencies.size else None,
        "p99_ms": round(float(np.percentile(latencies, 99)), 2) if latencies.size else None,
        "max_ms": round(float(latencies.max()), 2) if latencies.size else None,
    }


def climb(port: int, requests: list[bytes], levels: list[int], size: int, seconds: float) -> dict[str, Any]:
    """Posts up to each level, then a timed window there; stops where `seconds` run out (a level short of
    its posts is not reached, and its window is the last posts made; a window cut short has fewer)."""
    deadline = time.perf_counter() + seconds
    posted, windows = 0, []
    for level in levels:
        if level > posted:
            filled = post(port, requests, level - posted, deadline)
            posted += filled.size
            if posted < level:
                tail = filled[-size:]
                windows.append(window(level, posted - tail.size, tail, reached=False))
                break
        timed = post(port, requests, size, deadline)
        windows.append(window(level, posted, timed, reached=True))
        posted += timed.size
        if timed.size < size:
            break
    return {"levels": windows, "posted": posted, "capped": posted < levels[-1] + size}


def api_writes(code: Code, source: Input, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    """(b) for one store: its server over a small store, interventions posted up the levels."""
    store = scratch / f"api-{code.name}"
    ingest(code, source, store)
    key = create_key(code, store)
    accounts = pq.read_table(source.folder / "accounts.parquet", columns=["account_id"])
    port = free_port()
    command = code.python("-m", "retain", "serve", "--store", str(store), "--host", HOST, "--port", str(port))
    env = code.env(RETAIN_SERVE__RELOAD_SECONDS="0")
    server = Server(f"retain serve ({code.name})", command, env, port, scratch / f"serve-{code.name}.log")
    seconds = args.peer_seconds if code.name == "manifest" else float("inf")
    try:
        server.start()
        server.wait_ready("/healthz", 180)
        requests = intervention_requests(port, key, accounts.column("account_id").to_pylist())
        climbed = climb(port, requests, args.level_list, args.window, seconds)
    finally:
        server.stop()
    for w in climbed["levels"]:
        progress(f"  {code.name:<9} {json.dumps(w)}")
    return {**climbed, "seconds_allowed": None if seconds == float("inf") else seconds}


def p99_growth(climbed: dict[str, Any]) -> float | None:
    """p99 at the top level reached over p99 at the first."""
    done = [w for w in climbed["levels"] if w["reached"]]
    return _ratio(done[-1]["p99_ms"], done[0]["p99_ms"]) if len(done) > 1 else None


def api_figures(codes: list[Code], source: Input, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    figures: dict[str, Any] = {"window": args.window, "action": ACTION}
    for code in codes:
        progress(f"posting interventions to the {code.name} store's server ...")
        figures[code.name] = api_writes(code, source, args, scratch)
        figures[code.name]["p99_growth"] = p99_growth(figures[code.name])
    growth = figures[codes[0].name]["p99_growth"]
    figures["must_hold"] = {
        "what": f"Delta store: p99 at {args.level_list[-1]:,} / p99 at {args.level_list[0]:,} "
        f"< {MUST_HOLD_P99_GROWTH}",
        "value": growth,
        "holds": growth is not None and growth < MUST_HOLD_P99_GROWTH,
    }
    return figures


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help=f"a small check of the whole run: {QUICK}")
    parser.add_argument("--sizes", help="event counts to ingest, comma-separated [1e6,1e7]")
    parser.add_argument("--levels", help="interventions accumulated when timed [100,1000,10000]")
    parser.add_argument("--window", type=int, default=300, help="posts timed at each level [300]")
    parser.add_argument("--peer-seconds", type=float, help="the peer's time for all its posts [300]")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "retain-bench")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    defaults = (
        QUICK if args.quick else {"sizes": "1e6,1e7", "levels": "100,1000,10000", "peer_seconds": 300.0}
    )
    args.sizes = args.sizes or defaults["sizes"]
    args.levels = args.levels or defaults["levels"]
    args.peer_seconds = args.peer_seconds or defaults["peer_seconds"]
    args.size_list = [int(float(s)) for s in str(args.sizes).split(",") if s.strip()]
    args.level_list = sorted(int(float(s)) for s in str(args.levels).split(",") if s.strip())
    return args


def summary_lines(figures: dict[str, Any]) -> list[str]:
    lines = []
    for row in figures["ingest"]["sizes"]:
        d, m, r = row["delta"], row["manifest"], row["new_over_old"]
        lines.append(
            f"{row['events']:>12,} events  delta {d['events_per_s']:>9,} ev/s {d['peak_rss_mib']:>6,} MiB  "
            f"manifest {m['events_per_s']:>9,} ev/s {m['peak_rss_mib']:>6,} MiB  "
            f"new/old: speed {r['events_per_s']}x, memory {r['peak_rss']}x"
        )
    growth = figures["ingest"]["peak_rss_growth"]
    lines.append(
        f"peak RSS at {growth['to_events']:,} / at {growth['from_events']:,} events: "
        f"delta {growth['delta']}, manifest {growth['manifest']}"
    )
    api = figures["interventions"]
    for name in ("delta", "manifest"):
        lines.append(f"POST /v1/interventions, {name} store (posts timed, after how many interventions):")
        for w in api[name]["levels"]:
            short = "" if w["requests"] == api["window"] else f" of {api['window']}: time ran out"
            lines.append(
                f"  level {w['level']:>6,} {'reached' if w['reached'] else 'NOT reached':<11} "
                f"{w['requests']:>4} posts{short} after {w['interventions_before']:,}: "
                f"p50 {w['p50_ms']} ms, p99 {w['p99_ms']} ms"
            )
    must = api["must_hold"]
    lines.append(f"must hold: {must['what']}: {must['value']} -> {'holds' if must['holds'] else 'FAILS'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="store-", dir=args.cache) as tmp:
        scratch = Path(tmp)
        delta = Code("delta", ROOT, git("rev-parse", "HEAD"))
        with peer_checkout(scratch) as manifest:
            inputs = [prepared(n, args.cache, args.seed, scratch) for n in args.size_list]
            figures = {
                "peer": {"commit": manifest.commit, "store": "Parquet files named by manifest.json"},
                "ingest": ingest_figures([delta, manifest], inputs, scratch),
                "interventions": api_figures(
                    [delta, manifest], prepared(API_EVENTS, args.cache, args.seed, scratch), args, scratch
                ),
            }
    for line in summary_lines(figures):
        print(line, flush=True)
    print(json.dumps(figures, indent=2))
    # a quick run checks the benchmark; its figures never stand in for the real run's
    folder = args.cache / "quick" if args.quick else RESULTS_DIR
    path = record("store", MODULE, argv, figures, folder)
    progress(f"wrote {path}")
    same = all(row["same_accepted"] for row in figures["ingest"]["sizes"])
    return 0 if same and figures["interventions"]["must_hold"]["holds"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
