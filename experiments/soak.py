"""Soak: `retain serve` with two workers under steady mixed load for ten minutes, with faults injected
part-way.

    .venv/bin/python -m experiments.soak [--store PATH | --work DIR] [--seconds 600] [--concurrency 16]

As root (it mounts a small tmpfs for the decision log and makes files immutable), loopback only, bounded
by --seconds. --concurrency client threads, each with its own keep-alive connection, mix reads and writes:
an account's risk (60%), its next-best actions (20%), a batch score of ten accounts (5%) and feedback on a
recommendation served earlier (15%); a reloader thread asks `POST /v1/admin/reload` every 30 s (it must
reach both workers); a prober asks `/readyz` every second. The faults, each at its share of the run
(`FAULTS`):

- `decision_log`: the log's files made immutable (`chattr +i`);
- `online_store`: Feast's online store file moved away;
- `events_file`: the newest days' events data files moved away, then a reload;
- `full_disk`: the decision log's filesystem filled; half-way, SIGTERM and a restart on the full disk (what
  waits is spilled and replayed once the disk has room);
- `damaged_store`: the server restarted on an online store whose data pages are overwritten, and restarted
  again once the file is whole.

What must hold, and what the JSON reports:
- 0 crashes: every stop was a planned SIGTERM that the server obeyed, and it is alive at the end.
- 0 server errors: no 5xx answer to a client anywhere, fault windows included (feedback the log cannot take
  waits in the service's queue: 202); any there are, counted by fault window. A client refused while the
  server restarts is a transport error, counted apart.
- every decision and feedback accounted for: each decision the client was served (a risk,
  next-best-actions or score answer with a 200) is in the decision log's `decisions` table by its request
  id, and each feedback answered 201 or 202 in its `feedback` table by its id, or counted by the server as
  failed or dropped (`/metrics`); after the faults the log catches up (`pending` 0) and `/readyz` is 200
  again, with the seconds it took.
- ready tells the truth: `/readyz` answers 503 during every fault (after the fault has had `NOTICE_S` to
  show) and 200 outside them (`RECOVER_S` after each fault lifts, restarts aside).

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
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import requests

from experiments.benchmarks.serving import (
    HOST,
    Server,
    free_port,
    latest_rows,
    prepare_store,
    progress,
    retain_server,
    store_arguments,
)
from experiments.faults import pages_overwritten
from experiments.results import record
from serving.keys import KeyFile
from store.delta import Store

RELOAD_EVERY = 30.0
PROBE_EVERY = 1.0
#: seconds a fault may take to show in `/readyz` (a log write must fail first), and to clear once lifted
NOTICE_S = 10.0
RECOVER_S = 30.0
#: share of a fault's probes (after NOTICE_S) that must be 503
NOT_READY_SHARE = 0.9
#: the decision log's own filesystem, and the free space below which the log is not ready
LOG_DISK = "512m"
LOG_FLOOR_MB = "16"
FILL_CHUNK = 1 << 16
#: newest days of events moved away by the events_file fault
EVENT_DAYS_AWAY = 2
#: seconds a SIGTERMed server has to drain before it would be killed (a kill counts as a crash)
STOP_GRACE = 30.0
#: exit codes of a server that obeyed SIGTERM (uvicorn re-raises the signal after its shutdown)
OBEYED = (0, -15)
WORKERS = "2"
#: (share of requests, kind), drawn per request
MIX = ((0.60, "risk"), (0.20, "actions"), (0.05, "score"), (0.15, "feedback"))
BATCH = 10
#: seconds a client waits after a refused connection
REFUSED_PAUSE = 0.5


@dataclass(frozen=True)
class Fault:
    name: str
    #: when it starts, as a share of the run, and how many seconds it lasts
    at: float
    seconds: float


FAULTS = (
    Fault("decision_log", 0.08, 30.0),
    Fault("online_store", 0.20, 15.0),
    Fault("events_file", 0.32, 30.0),
    Fault("full_disk", 0.46, 40.0),
    Fault("damaged_store", 0.64, 30.0),
)


@dataclass(frozen=True)
class Window:
    name: str
    start: float
    end: float

    def holds(self, at: float) -> bool:
        return self.start <= at <= self.end


@dataclass(frozen=True)
class Probe:
    """One `/readyz`: seconds into the run it was asked and answered, and its status (0: no answer)."""

    asked: float
    answered: float
    status: int


@dataclass
class Tally:
    """What the clients saw; shared by the threads under one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter[str] = field(default_factory=Counter)
    #: 5xx answers: (seconds into the run it was asked, kind, status, error code)
    server_errors: list[tuple[float, str, int, str]] = field(default_factory=list)
    #: request ids of answers that each logged decisions, and how many
    decisions: dict[str, int] = field(default_factory=dict)
    recommendations: list[str] = field(default_factory=list)
    #: ids of the feedback the server took (written at once, or queued)
    feedback: list[str] = field(default_factory=list)
    transport_errors: int = 0

    def answered(self, kind: str, status: int, body: dict[str, Any], asked: float) -> None:
        with self.lock:
            self.statuses[f"{kind} {status}"] += 1
            if status >= 500:
                code = str(body.get("error", {}).get("code", "?"))
                self.server_errors.append((asked, kind, status, code))
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


def client(base: str, accounts: list[str], key: str, tally: Tally, until: float, began: float) -> None:
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
                time.sleep(REFUSED_PAUSE)  # the server is restarting: ask again soon, not in a busy loop
                continue
            tally.answered(kind, status, body, asked)


def reload(port: int, key: str) -> int:
    answer = requests.post(
        f"http://{HOST}:{port}/v1/admin/reload", headers={"Authorization": f"Bearer {key}"}, timeout=120
    )
    return answer.status_code


def reloader(port: int, key: str, until: float, tally: Tally) -> None:
    while time.monotonic() + RELOAD_EVERY < until:
        time.sleep(RELOAD_EVERY)
        try:
            status = reload(port, key)
        except requests.RequestException:
            status = 0  # the server is restarting
        with tally.lock:
            tally.statuses[f"reload {status}"] += 1


def prober(port: int, until: float, began: float, probes: list[Probe]) -> None:
    """`/readyz` every PROBE_EVERY seconds."""
    while time.monotonic() < until:
        asked = time.monotonic() - began
        try:
            status = requests.get(f"http://{HOST}:{port}/readyz", timeout=10).status_code
        except requests.RequestException:
            status = 0
        probes.append(Probe(asked, time.monotonic() - began, status))
        time.sleep(PROBE_EVERY)


@dataclass
class Served:
    """The soak's `retain serve`, which some faults restart on purpose: each start logs to its own file,
    and each stop is a SIGTERM whose exit code is kept."""

    store: Store
    port: int
    scratch: Path
    as_of: date
    env: dict[str, str]
    #: the run's length, which the faults' shares are of
    seconds: float
    servers: list[Server] = field(default_factory=list)
    #: exit codes of the planned stops
    exits: list[int | None] = field(default_factory=list)

    def start(self, until: str = "/healthz") -> None:
        """Start a server and wait until `until` answers 200 (a restart into a fault waits for life only)."""
        log = self.scratch / f"soak-server-{len(self.servers) + 1}.log"
        server = retain_server(self.store.root, self.port, log, self.as_of, **self.env)
        self.servers.append(server)
        server.start()
        server.wait_ready(until, 180)

    def stop(self) -> None:
        server = self.servers[-1]
        server.stop(grace=STOP_GRACE)
        self.exits.append(server.process.returncode if server.process is not None else None)

    def alive(self) -> bool:
        process = self.servers[-1].process
        return process is not None and process.poll() is None

    def disobeyed(self) -> int:
        """Stops that did not end in the server's own SIGTERM shutdown."""
        return sum(code not in OBEYED for code in self.exits)

    def problems(self) -> dict[str, Any]:
        found = [server.problems() for server in self.servers]
        return {
            "count": sum(p["count"] for p in found),
            "first": [line for p in found for line in p["first"]][:5],
        }


@contextlib.contextmanager
def immutable(paths: list[Path]) -> Iterator[None]:
    subprocess.run(["chattr", "+i", *map(str, paths)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *map(str, paths)], check=True)


@contextlib.contextmanager
def moved_away(paths: list[Path]) -> Iterator[None]:
    asides = [path.with_name(path.name + ".soak-aside") for path in paths]
    for path, aside in zip(paths, asides, strict=True):
        path.rename(aside)
    try:
        yield
    finally:
        for path, aside in zip(paths, asides, strict=True):
            aside.rename(path)


@contextlib.contextmanager
def disk_filled(folder: Path) -> Iterator[None]:
    """`folder`'s filesystem filled to its last byte."""
    filler = folder / "soak-filler"
    try:
        with filler.open("wb", buffering=0) as out, contextlib.suppress(OSError):  # full: the fault
            while True:
                out.write(bytes(FILL_CHUNK))
        yield
    finally:
        filler.unlink()


@contextlib.contextmanager
def small_disk(folder: Path) -> Iterator[Path]:
    """A tmpfs of LOG_DISK mounted on `folder`, for the decision log."""
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={LOG_DISK}", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=False)


def newest_event_days(store: Store) -> list[Path]:
    return sorted(Path(store.uri("events")).glob("event_date=*"))[-EVENT_DAYS_AWAY:]


@contextlib.contextmanager
def injected(name: str, served: Served, log_file: Path, key: str) -> Iterator[None]:
    """The fault in place for the body of the block (`damaged_store` restarts the server into it and out)."""
    online = served.store.feast_dir / "online.db"
    if name == "decision_log":
        with immutable(sorted(log_file.parent.glob(log_file.name + "*"))):
            yield
    elif name == "online_store":
        with moved_away([online]):
            yield
    elif name == "events_file":
        with moved_away(newest_event_days(served.store)):
            reload(served.port, key)
            yield
        reload(served.port, key)
    elif name == "full_disk":
        with disk_filled(log_file.parent):
            yield
    else:
        served.stop()
        with pages_overwritten(online):
            served.start()
            yield
            served.stop()
        served.start()


def faults(served: Served, log_file: Path, key: str, began: float, held: list[Window]) -> None:
    """Inject each fault at its share of the run and lift it after its seconds; `held` gets the windows
    each was really in place (a restart takes its time). Half-way through `full_disk` the server is
    SIGTERMed and started again on the full disk."""
    for fault in FAULTS:
        time.sleep(max(0.0, began + fault.at * served.seconds - time.monotonic()))
        with injected(fault.name, served, log_file, key):
            start = time.monotonic() - began
            if fault.name == "full_disk":
                time.sleep(fault.seconds / 2)
                served.stop()  # what waits for the full disk is spilled, and replayed once it has room
                served.start()
            time.sleep(max(0.0, began + start + fault.seconds - time.monotonic()))
            end = time.monotonic() - began
        held.append(Window(fault.name, start, end))


def readiness(probes: list[Probe], windows: list[Window]) -> dict[str, Any]:
    """`/readyz` against the faults: 503s among the probes asked and answered while each was in place
    (after NOTICE_S), anything but 200 outside them (more than RECOVER_S after each lifted); probes
    nothing answered (restarts) are left out."""
    during = {w.name: Counter[int]() for w in windows}
    outside = Counter[int]()
    stray: list[Probe] = []
    for probe in probes:
        if probe.status == 0:
            continue
        inside = next(
            (w for w in windows if w.start + NOTICE_S <= probe.asked and probe.answered <= w.end), None
        )
        if inside is not None:
            during[inside.name][probe.status] += 1
        elif not any(w.start <= probe.asked <= w.end + RECOVER_S for w in windows):
            outside[probe.status] += 1
            if probe.status != 200:
                stray.append(probe)
    faults = {name: {"probes": c.total(), "not_ready": c[503]} for name, c in during.items()}
    not_200 = outside.total() - outside[200]
    held = not_200 == 0 and all(
        f["probes"] and f["not_ready"] >= NOT_READY_SHARE * f["probes"] for f in faults.values()
    )
    outside_figures = {
        "probes": outside.total(),
        "not_200": not_200,
        "not_200_at": [asdict(p) for p in stray],
    }
    return {"held": held, "during_faults": faults, "outside": outside_figures}


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
    args = parser.parse_args(argv)
    random.seed(7)
    with tempfile.TemporaryDirectory(prefix="retain-soak-") as scratch:
        store = Store(prepare_store(args, Path(scratch)))
        figures, ok = soak(store, Path(scratch), args)
    print(json.dumps(figures, indent=2))
    path = record("soak", "experiments.soak", sys.argv[1:] if argv is None else argv, figures)
    progress(f"wrote {path}")
    return 0 if ok else 1


def load(
    served: Served, accounts: list[str], key: str, log_file: Path, args: argparse.Namespace
) -> tuple[Tally, list[Window], dict[str, Any]]:
    """The clients, the reloader, the prober and the faults, side by side for --seconds."""
    tally, held, probes = Tally(), list[Window](), list[Probe]()
    began = time.monotonic()
    until = began + args.seconds
    base = f"http://{HOST}:{served.port}"
    threads = [
        threading.Thread(target=client, args=(base, accounts, key, tally, until, began))
        for _ in range(args.concurrency)
    ]
    threads.append(threading.Thread(target=reloader, args=(served.port, key, until, tally)))
    threads.append(threading.Thread(target=prober, args=(served.port, until, began, probes)))
    threads.append(threading.Thread(target=faults, args=(served, log_file, key, began, held)))
    progress(f"soak: {args.seconds:.0f} s at concurrency {args.concurrency} over {len(accounts)} accounts")
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return tally, held, readiness(probes, held)


def soak(store: Store, scratch: Path, args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    rows, latest = latest_rows(store)
    accounts = sorted(rows["account_id"])
    key = KeyFile.for_store(store).create(["admin"], name="soak")[1]
    with small_disk(scratch / "log-disk") as log_disk:
        log_file = log_disk / "soak-decisions.db"
        served = Served(
            store,
            free_port(),
            scratch,
            latest,
            {
                "RETAIN_SERVE__DECISION_LOG_URL": f"sqlite:///{log_file}",
                "RETAIN_SERVE__RELOAD_SECONDS": "0",
                "RETAIN_SERVE__WORKERS": WORKERS,
                "RETAIN_SERVE__LOG_MIN_FREE_MB": LOG_FLOOR_MB,
                "RETAIN_COCKPIT__SESSIONS": "redis",
            },
            args.seconds,
        )
        served.start("/readyz")  # ready before the load begins
        tally, held, ready = load(served, accounts, key, log_file, args)
        alive = served.alive()
        recovery, counts = settle(served.port, key) if alive else (float("inf"), {})
        served.stop()
        ledger = accounted(tally, log_file, counts) if alive else {"unaccounted": None}
    crashes = (0 if alive else 1) + served.disobeyed()
    figures = summary(tally, held, args, len(accounts), crashes, ledger, recovery)
    figures.update(
        held=figures["held"] and ready["held"],
        readiness=ready,
        workers=int(WORKERS),
        restarts=len(served.servers) - 1,
        stop_exit_codes=served.exits,
        faults=[asdict(window) for window in held],
        server_warnings=served.problems(),
    )
    return figures, bool(figures["held"])


def summary(
    tally: Tally,
    faults: list[Window],
    args: argparse.Namespace,
    accounts: int,
    crashes: int,
    ledger: dict[str, Any],
    recovery: float,
) -> dict[str, Any]:
    requests_made = sum(tally.statuses.values())
    server_errors = len(tally.server_errors)
    by_window = Counter(
        (next((w.name for w in faults if w.holds(at)), "none"), kind, status, code)
        for at, kind, status, code in tally.server_errors
    )
    held = crashes == 0 and server_errors == 0 and ledger["unaccounted"] == 0 and recovery < float("inf")
    return {
        "held": held,
        "seconds": args.seconds,
        "concurrency": args.concurrency,
        "accounts": accounts,
        "requests": requests_made,
        "requests_per_s": round(requests_made / args.seconds, 1),
        "statuses": dict(sorted(tally.statuses.items())),
        "crashes": crashes,
        "server_errors": server_errors,
        "server_errors_by_window": {" ".join(map(str, k)): n for k, n in sorted(by_window.items())},
        "transport_errors": tally.transport_errors,
        "decisions": ledger,
        "recovered_after_s": round(recovery, 1),
    }


if __name__ == "__main__":
    sys.exit(main())
