"""Soak: `retain serve` under steady mixed load for ten minutes, with faults injected part-way.

    .venv/bin/python -m experiments.soak [--store PATH | --work DIR] [--seconds 600] [--concurrency 16]
        [--log-fault-at 0.3] [--log-fault-seconds 30] [--store-fault-at 0.6] [--store-fault-seconds 10]

Loopback only, bounded by --seconds. --concurrency client threads, each with its own keep-alive
connection, mix reads and writes: an account's risk (60%), its next-best actions (20%), a batch score of
ten accounts (5%) and feedback on a recommendation served earlier (15%); a reloader thread asks
`POST /v1/admin/reload` every 30 s. Part-way, the decision log is made immutable (`chattr +i`, as root)
for --log-fault-seconds, and later the online store's file is moved away for --store-fault-seconds.

What must hold, and what the JSON reports:
- 0 crashes: the server process is alive at the end, on the pid it started with.
- 0 server errors: no 500, 503 or other 5xx anywhere, fault windows included (feedback the immutable
  log cannot take waits in the service's queue: 202); any there are, counted by fault window.
- every decision and feedback accounted for: each decision the client was served (a risk,
  next-best-actions or score answer with a 200) is in the decision log's `decisions` table by its request
  id, and each feedback answered 201 or 202 in its `feedback` table by its id, or counted by the server as
  failed or dropped (`/metrics`); after the faults the log catches up (`pending` 0) and `/readyz` is 200
  again, with the seconds it took.

The decision log is a fresh SQLite file per run, so the table holds exactly this run's decisions. The
store: --store reuses a built one (it needs an online store and a churn champion); --work DIR builds one
as the serving benchmark does (400 accounts) and reuses it later; with neither, a temporary one. Progress
goes to stderr, the JSON to stdout and experiments/results/soak.json. Exit 1 if a must-hold failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from experiments.benchmarks.serving import (
    HOST,
    free_port,
    latest_rows,
    prepare_store,
    progress,
    retain_server,
    store_arguments,
)
from experiments.results import record
from retain.core.store import Store
from serving.keys import KeyFile

RELOAD_EVERY = 30.0
#: (share of requests, kind), drawn per request
MIX = ((0.60, "risk"), (0.20, "actions"), (0.05, "score"), (0.15, "feedback"))
BATCH = 10


@dataclass(frozen=True)
class Window:
    name: str
    start: float
    end: float

    def holds(self, at: float) -> bool:
        return self.start <= at <= self.end


@dataclass
class Tally:
    """What the clients saw; shared by the threads under one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter[str] = field(default_factory=Counter)
    #: 5xx answers: (kind, status, error code, the fault window it fell in or "none")
    server_errors: Counter[tuple[str, int, str, str]] = field(default_factory=Counter)
    #: request ids of answers that each logged decisions, and how many
    decisions: dict[str, int] = field(default_factory=dict)
    recommendations: list[str] = field(default_factory=list)
    #: ids of the feedback the server took (written at once, or queued)
    feedback: list[str] = field(default_factory=list)
    transport_errors: int = 0

    def answered(self, kind: str, status: int, body: dict[str, Any], window: str) -> None:
        with self.lock:
            self.statuses[f"{kind} {status}"] += 1
            if status >= 500:
                code = str(body.get("error", {}).get("code", "?"))
                self.server_errors[(kind, status, code, window)] += 1
            if kind == "feedback" and status in (201, 202):
                self.feedback.append(str(body["feedback_id"]))
            if status != 200 or kind == "feedback":
                return
            self.decisions[str(body["request_id"])] = len(body["results"]) if kind == "score" else 1
            if kind == "actions" and body["actions"]:
                self.recommendations.append(str(body["actions"][0]["recommendation_id"]))


def request_one(
    session: requests.Session, base: str, kind: str, accounts: list[str], tally: Tally, key: str
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {key}"}
    account = random.choice(accounts)
    body: dict[str, Any]
    if kind == "risk":
        answer = session.get(f"{base}/v1/accounts/{account}/risk", headers=headers, timeout=60)
    elif kind == "actions":
        answer = session.get(f"{base}/v1/accounts/{account}/next-best-actions", headers=headers, timeout=60)
    elif kind == "score":
        body = {"accounts": [{"account_id": a} for a in random.sample(accounts, BATCH)]}
        answer = session.post(f"{base}/v1/score", json=body, headers=headers, timeout=60)
    else:
        with tally.lock:
            recommendation = random.choice(tally.recommendations)
        body = {"status": "accepted", "actor": "soak"}
        path = f"{base}/v1/recommendations/{recommendation}/feedback"
        answer = session.post(path, json=body, headers=headers, timeout=60)
    try:
        return answer.status_code, answer.json()
    except ValueError:
        return answer.status_code, {}


def client(
    base: str, accounts: list[str], key: str, tally: Tally, windows: list[Window], until: float, began: float
) -> None:
    shares = [share for share, _ in MIX]
    kinds = [kind for _, kind in MIX]
    with requests.Session() as session:
        while time.monotonic() < until:
            kind = random.choices(kinds, shares)[0]
            if kind == "feedback" and not tally.recommendations:
                kind = "actions"  # nothing recommended yet to give feedback on
            asked = time.monotonic() - began  # a request made during a fault belongs to it
            try:
                status, body = request_one(session, base, kind, accounts, tally, key)
            except requests.RequestException:
                with tally.lock:
                    tally.transport_errors += 1
                continue
            window = next((w.name for w in windows if w.holds(asked)), "none")
            tally.answered(kind, status, body, window)


def reloader(base: str, key: str, until: float, tally: Tally) -> None:
    while time.monotonic() + RELOAD_EVERY < until:
        time.sleep(RELOAD_EVERY)
        answer = requests.post(
            f"{base}/v1/admin/reload", headers={"Authorization": f"Bearer {key}"}, timeout=120
        )
        with tally.lock:
            tally.statuses[f"reload {answer.status_code}"] += 1


@contextlib.contextmanager
def immutable(paths: list[Path]) -> Iterator[None]:
    subprocess.run(["chattr", "+i", *map(str, paths)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *map(str, paths)], check=True)


@contextlib.contextmanager
def moved_away(path: Path) -> Iterator[None]:
    aside = path.with_name(path.name + ".soak-aside")
    path.rename(aside)
    try:
        yield
    finally:
        aside.rename(path)


def faults(store: Store, log_file: Path, windows: list[Window], began: float, events: list[str]) -> None:
    """Inject each fault at its window's start and lift it at its end (relative to `began`)."""
    for window in windows:
        time.sleep(max(0.0, began + window.start - time.monotonic()))
        if window.name == "decision_log":
            fault = immutable(sorted(log_file.parent.glob(log_file.name + "*")))
        else:
            fault = moved_away(store.feast_dir / "online.db")
        with fault:
            events.append(f"{time.monotonic() - began:.1f}s {window.name} fault on")
            time.sleep(max(0.0, began + window.end - time.monotonic()))
        events.append(f"{time.monotonic() - began:.1f}s {window.name} fault off")


def decision_log_metrics(port: int, key: str) -> dict[str, float]:
    text = requests.get(f"http://{HOST}:{port}/metrics", timeout=30).text
    return {
        line.split()[0].removeprefix("retain_decision_log_").removesuffix("_total"): float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("retain_decision_log_")
    }


def settle(port: int, key: str, timeout: float = 120.0) -> tuple[float, dict[str, float]]:
    """Seconds until `/readyz` is 200 and nothing waits in the decision log's queue, and its counts."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        counts = decision_log_metrics(port, key)
        ready = requests.get(f"http://{HOST}:{port}/readyz", timeout=30).status_code == 200
        if ready and counts.get("pending", 1) == 0:
            return time.monotonic() - started, counts
        time.sleep(0.5)
    return float("inf"), decision_log_metrics(port, key)


def accounted(tally: Tally, log_file: Path, counts: dict[str, float]) -> dict[str, Any]:
    """Each served decision is a row in the log by its request id, and each feedback the server took a
    row by its id, or counted failed or dropped."""
    with contextlib.closing(sqlite3.connect(log_file)) as db:
        rows = Counter(request_id for (request_id,) in db.execute("SELECT request_id FROM decisions"))
        given = {feedback_id for (feedback_id,) in db.execute("SELECT feedback_id FROM feedback")}
    served = sum(tally.decisions.values())
    missing = sum(n - min(n, rows.get(rid, 0)) for rid, n in tally.decisions.items())
    feedback_missing = sum(feedback_id not in given for feedback_id in tally.feedback)
    lost = int(counts.get("failed", 0) + counts.get("dropped", 0))
    return {
        "served": served,
        "in_log": sum(min(n, rows.get(rid, 0)) for rid, n in tally.decisions.items()),
        "missing_from_log": missing,
        "feedback_taken": len(tally.feedback),
        "feedback_missing_from_log": feedback_missing,
        "counted_failed_or_dropped": lost,
        "unaccounted": max(0, missing + feedback_missing - lost),
        "written_metric": int(counts.get("written", 0)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    store_arguments(parser, accounts=400)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--log-fault-at", type=float, default=0.3)
    parser.add_argument("--log-fault-seconds", type=float, default=30.0)
    parser.add_argument("--store-fault-at", type=float, default=0.6)
    parser.add_argument("--store-fault-seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    random.seed(7)
    with tempfile.TemporaryDirectory(prefix="retain-soak-") as scratch:
        store = Store(prepare_store(args, Path(scratch)))
        figures, ok = soak(store, Path(scratch), args)
    print(json.dumps(figures, indent=2))
    path = record("soak", "experiments.soak", sys.argv[1:] if argv is None else argv, figures)
    progress(f"wrote {path}")
    return 0 if ok else 1


def fault_windows(args: argparse.Namespace) -> list[Window]:
    log_at, store_at = args.seconds * args.log_fault_at, args.seconds * args.store_fault_at
    return [
        Window("decision_log", log_at, log_at + args.log_fault_seconds),
        Window("online_store", store_at, store_at + args.store_fault_seconds),
    ]


def load(
    base: str, accounts: list[str], key: str, store: Store, log_file: Path, args: argparse.Namespace
) -> tuple[Tally, list[str]]:
    """The clients, the reloader and the faults, side by side for --seconds."""
    windows = fault_windows(args)
    tally, events = Tally(), list[str]()
    began = time.monotonic()
    until = began + args.seconds
    threads = [
        threading.Thread(target=client, args=(base, accounts, key, tally, windows, until, began))
        for _ in range(args.concurrency)
    ]
    threads.append(threading.Thread(target=reloader, args=(base, key, until, tally)))
    threads.append(threading.Thread(target=faults, args=(store, log_file, windows, began, events)))
    progress(f"soak: {args.seconds:.0f} s at concurrency {args.concurrency} over {len(accounts)} accounts")
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return tally, events


def soak(store: Store, scratch: Path, args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    rows, latest = latest_rows(store)
    accounts = sorted(rows["account_id"])
    key = KeyFile.for_store(store).create(["admin"], name="soak")[1]
    log_file = scratch / "soak-decisions.db"
    port = free_port()
    server = retain_server(
        store.root,
        port,
        scratch / "soak-server.log",
        latest,
        RETAIN_SERVE__DECISION_LOG_URL=f"sqlite:///{log_file}",
        RETAIN_SERVE__RELOAD_SECONDS="0",
    )
    server.start()
    server.wait_ready("/healthz", 120)
    assert server.process is not None
    pid = server.process.pid
    tally, events = load(f"http://{HOST}:{port}", accounts, key, store, log_file, args)
    alive = server.process.poll() is None and server.process.pid == pid
    recovery, counts = settle(port, key) if alive else (float("inf"), {})
    warnings = server.problems()
    server.stop()
    ledger = accounted(tally, log_file, counts) if alive else {"unaccounted": None}
    figures = summary(tally, args, len(accounts), alive, ledger, recovery)
    figures.update(faults=events, server_warnings=warnings)
    return figures, bool(figures["held"])


def summary(
    tally: Tally,
    args: argparse.Namespace,
    accounts: int,
    alive: bool,
    ledger: dict[str, Any],
    recovery: float,
) -> dict[str, Any]:
    requests_made = sum(tally.statuses.values())
    server_errors = sum(tally.server_errors.values())
    held = alive and server_errors == 0 and ledger["unaccounted"] == 0 and recovery < float("inf")
    return {
        "held": held,
        "seconds": args.seconds,
        "concurrency": args.concurrency,
        "accounts": accounts,
        "requests": requests_made,
        "requests_per_s": round(requests_made / args.seconds, 1),
        "statuses": dict(sorted(tally.statuses.items())),
        "crashes": 0 if alive else 1,
        "server_errors": server_errors,
        "server_errors_by_window": {" ".join(map(str, k)): n for k, n in sorted(tally.server_errors.items())},
        "transport_errors": tally.transport_errors,
        "decisions": ledger,
        "recovered_after_s": round(recovery, 1),
    }


if __name__ == "__main__":
    sys.exit(main())
