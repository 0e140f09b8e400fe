"""Serving latency and throughput: our risk endpoint against `mlflow models serve` on the same churn model.

    .venv/bin/python -m experiments.benchmarks.serving [--store PATH | --work DIR] [--accounts 2000]
        [--days 400] [--trials 3] [--requests 2000] [--concurrency 16] [--seconds 10] [--warmup 200]
        [--actions 3] [--no-two-workers]

Both servers run in the same run, on the same machine, from the project venv, with the same champion:
(a) `retain serve`, `GET /v1/accounts/{id}/risk?actions=3`: reads the account's online features from the
store, scores churn and expansion, explains (reasons), ranks the top next-best actions by the uplift
champion's expected value and logs the decision; (b) `mlflow models serve -m models:/churn@champion` with
its defaults (access log on), `POST /invocations` with the account's feature row: the bare pyfunc
(probability and reasons). Requests cycle over the accounts active at the store's latest cutoff; the
serving clock (`RETAIN_SERVE__AS_OF`) is that cutoff, so features count as fresh. Before measuring, the
first 50 risk answers are read: how many came from the model (not the rules fallback) is reported.

With one worker process each: latency (p50/p99) at concurrency 1 over --requests, then throughput at
--concurrency for --seconds (or --max-requests, whichever ends first), each after --warmup requests.
`GET /healthz` on our server is measured the same way: the load client's own ceiling. Then both servers
start again with two worker processes each (`retain serve --workers 2`, its cockpit sessions and book in
the local Redis; `mlflow models serve --workers 2`) and their throughput at --concurrency is measured:
what a second core buys each. The client
(experiments/benchmarks/load.py) is socket-level; each run reports the client's CPU per request, the
server's (its process group, from /proc) and `others`: cores kept busy by other processes meanwhile (above
~0.1 the figures are disturbed). After a server answers its readiness check, the run waits until its CPU
use settles (the cockpit scores its book of accounts in the background as ours starts), so no phase
measures a start-up warm-up.

The store: --store reuses a built one (e.g. `make demo`'s .retain); --work DIR builds one into DIR/store
(simulate -> ingest -> features + Feast online store -> train and register the churn, expansion and uplift
models) and reuses it on later runs with the same DIR; with neither, a temporary store is built and
removed. A table goes to stderr as figures come in, the JSON summary to stdout. Exit 1 if any answer was
not a 200, 2 if a server did not start or answer its first request.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd

from core.settings import Settings
from experiments.benchmarks import load
from experiments.benchmarks.train import pipeline
from experiments.results import record
from features.stored import read_features
from registry.models import load_scoring_model
from registry.tracking import tracking_uri
from retain import api
from store.delta import Store

ROOT = Path(__file__).resolve().parents[2]
#: the venv's bin: `retain`, `mlflow`, and `uvicorn` (which `mlflow models serve` looks up on PATH)
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
MODEL = "churn@champion"
#: what the benchmark aims at on 2 cores: (a) p50/p99 at concurrency 1, and (a)/(b) requests/s at 16
AIM_P50_MS = 3.0
AIM_P99_MS = 15.0
AIM_THROUGHPUT_RATIO = 10.0
#: two worker processes over one, on 2 cores
AIM_SCALING = 1.7
#: a latency run stops after this many seconds even if --requests are not all sent
LATENCY_SECONDS_CAP = 120.0
#: accounts whose risk answer is read and checked before measuring
CHECKED = 50
#: a server counts as settled once it uses less than this share of a core over QUIET_WINDOW seconds
QUIET_SHARE = 0.05
QUIET_WINDOW = 1.0
BUILT = "bench-serve.json"
UPLIFT_CONFIG = ROOT / "experiments" / "uplift.yaml"
#: several workers share the cockpit's sessions and scored book in Redis (the local server, default URL)
SHARED = {"RETAIN_COCKPIT__SESSIONS": "redis", "RETAIN_COCKPIT__BOOK": "redis"}


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def fetch(
    port: int, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None
) -> tuple[int, bytes]:
    """One plain request (for readiness and checks, not measured): (status, body)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU of every live process in a process group, from /proc (Linux; 0 elsewhere)."""
    ticks, total = os.sysconf("SC_CLK_TCK"), 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()  # from field 3 (state) on
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Server:
    """A server process in its own process group, its output in a log file."""

    name: str
    command: list[str]
    env: dict[str, str]
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0

    def start(self) -> None:
        progress(f"starting {self.name}: {' '.join(self.command)}")
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started = time.perf_counter()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_ready(self, path: str, timeout: float) -> float:
        """Seconds from the start until `GET path` answers 200; fails if the process exits or `timeout`
        passes."""
        assert self.process is not None
        while time.perf_counter() - self.started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with code {self.process.returncode}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if fetch(self.port, "GET", path)[0] == 200:
                    return time.perf_counter() - self.started
            time.sleep(0.25)
        raise TimeoutError(f"{self.name} not ready on {path} after {timeout:.0f} s")

    def wait_quiet(self, timeout: float) -> float:
        """Seconds from the start until the server's CPU use settles (under QUIET_SHARE of a core over
        QUIET_WINDOW); after `timeout`, measuring goes ahead and the figure says how long it waited."""
        while time.perf_counter() - self.started < timeout:
            cpu = self.cpu_seconds()
            time.sleep(QUIET_WINDOW)
            if self.cpu_seconds() - cpu < QUIET_SHARE * QUIET_WINDOW:
                break
        return time.perf_counter() - self.started

    def problems(self, keep: int = 5) -> dict[str, Any]:
        """Warnings, errors and tracebacks in the server's output: how many, and the first few."""
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return {"count": 0, "first": []}
        bad = [
            line for line in lines if any(w in line for w in ("WARNING", "ERROR", "Traceback", "Warning:"))
        ]
        return {"count": len(bad), "first": bad[:keep]}

    def cpu_seconds(self) -> float:
        return group_cpu_seconds(self.process.pid) if self.process is not None else 0.0

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM to the whole group (mlflow runs uvicorn as a child), SIGKILL what is left after `grace`."""
        if self.process is None:
            return
        pgid = self.process.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=grace)
        while group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if group_alive(pgid):
            progress(f"{self.name} did not stop within {grace:.0f} s: killing its process group")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait()


def retain_server(store: Path, port: int, log: Path, as_of: date, workers: int = 1, **env: str) -> Server:
    """`retain serve` on the store with `workers` processes, its clock at `as_of` (so the latest features
    are fresh)."""
    return Server(
        f"retain serve ({workers} worker{'s' if workers > 1 else ''})",
        [
            *(str(BIN / "retain"), "serve", "--store", str(store), "--host", HOST, "--port", str(port)),
            *("--workers", str(workers)),
        ],
        _env(RETAIN_SERVE__AS_OF=as_of.isoformat(), **env),
        port,
        log,
    )


@dataclass
class Target:
    """A set of pre-encoded requests to one server."""

    name: str
    what: str
    server: Server
    requests: list[bytes]
    measured: dict[str, Any] = field(default_factory=dict)


# --- the store, the accounts and the requests -----------------------------------------------------------


def prepare_store(args: argparse.Namespace, scratch: Path) -> Path:
    """An existing store (--store), or one built into --work (kept, reused) or into `scratch`; either way
    with an uplift champion, so next-best actions are ranked by value as in a deployment."""
    if args.store is not None:
        store = args.store.resolve()
        if Store(store).version("features") is None or not (store / "mlflow").exists():
            raise SystemExit(f"{store} is not a built store (no feature table or MLflow registry)")
        return store
    work = (args.work or scratch).resolve()
    built = work / BUILT
    if built.exists():
        was = json.loads(built.read_text())
        progress(f"reusing the store in {work} ({was['accounts']:,} accounts x {was['days']} days)")
    else:
        progress(
            f"building a store in {work}: {args.accounts:,} accounts x {args.days} days, {args.trials} trials"
        )
        work.mkdir(parents=True, exist_ok=True)
        with contextlib.redirect_stdout(sys.stderr):  # Feast prints its progress; stdout is for the summary
            _, _, report = pipeline(work, args.accounts, args.days, args.trials)
        was = {"accounts": args.accounts, "days": args.days, "trials": args.trials, **report}
        built.write_text(json.dumps(was, default=str))
    if "uplift" not in was:
        progress("training the uplift champion (12 actions)")
        started = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):
            settings = Settings(home=work / "store")
            trained = api.train(
                "uplift", store=work / "store", settings=settings, config=UPLIFT_CONFIG, truth=work / "sim"
            )
        was["uplift"] = {"model": trained.model, "seconds": round(time.perf_counter() - started, 1)}
        built.write_text(json.dumps(was, default=str))
    return work / "store"


def store_arguments(parser: argparse.ArgumentParser, accounts: int) -> None:
    """--store or --work, and what to build when no built store is named: what `prepare_store` reads."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--store", type=Path, help="reuse this built store (e.g. make demo's .retain)")
    where.add_argument("--work", type=Path, help="build into DIR/store once, reuse it on later runs")
    parser.add_argument("--accounts", type=int, default=accounts, help=f"when building [{accounts}]")
    parser.add_argument("--days", type=int, default=400, help="when building [400]")
    parser.add_argument("--trials", type=int, default=3, help="tuning trials when building [3]")


def latest_rows(store: Store) -> tuple[pd.DataFrame, date]:
    """The feature rows of the accounts active at the latest cutoff, and that cutoff's date."""
    table = read_features(store).to_pandas()
    latest = table["cutoff"].max()
    rows = table[table["cutoff"] == latest].reset_index(drop=True)
    return rows, pd.Timestamp(latest).date()


def risk_path(account_id: str, actions: int) -> str:
    return f"/v1/accounts/{quote(account_id, safe='')}/risk?actions={actions}"


def risk_requests(port: int, account_ids: Sequence[str], key: str, actions: int) -> list[bytes]:
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
    return [load.encode("GET", HOST, port, risk_path(a, actions), headers) for a in account_ids]


def invocation_bodies(rows: pd.DataFrame, features: list[str]) -> list[bytes]:
    """One `dataframe_split` body per account: the model's columns, NaN as null."""
    data = rows[features].astype(object).to_numpy().tolist()
    return [
        json.dumps(
            {"dataframe_split": {"columns": features, "data": [[None if pd.isna(v) else v for v in row]]}},
            allow_nan=False,
        ).encode()
        for row in data
    ]


def invocation_requests(port: int, bodies: Sequence[bytes]) -> list[bytes]:
    headers = {"Content-Type": "application/json"}
    return [load.encode("POST", HOST, port, "/invocations", headers, body) for body in bodies]


def create_key(store: Path) -> str:
    """A fresh API key with the scopes the risk endpoint needs: `retain keys create` prints it last."""
    command = [
        str(BIN / "retain"),
        "keys",
        "create",
        "--scopes",
        "scores:read,actions:read",
        "--name",
        "bench-serve",
    ]
    done = subprocess.run(
        [*command, "--store", str(store)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"retain keys create failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return lines[-1].strip()


# --- checks before measuring ----------------------------------------------------------------------------


def _count(value: Any) -> int | None:
    return len(value) if isinstance(value, list) else None


def check_risk(port: int, account_ids: Sequence[str], key: str, actions: int) -> dict[str, Any]:
    """Read the risk answer of the first accounts: all 200, and what they hold (source, fresh features,
    reasons, actions). Answers from the rules fallback (stale features, no model) would make the
    comparison unfair, so they are counted and warned about."""
    sources: Counter[str] = Counter()
    fresh: Counter[str] = Counter()
    reasons: Counter[int | None] = Counter()
    ranked: Counter[int | None] = Counter()
    sample: Any = None
    for account in account_ids[:CHECKED]:
        path = risk_path(account, actions)
        status, body = fetch(port, "GET", path, {"Authorization": f"Bearer {key}"})
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}: {body[:500]!r}")
        doc = json.loads(body)
        sample = sample or doc
        sources[str(doc.get("source"))] += 1
        fresh[str((doc.get("features") or {}).get("fresh"))] += 1
        reasons[_count(doc.get("reasons"))] += 1
        ranked[_count(doc.get("next_best_actions"))] += 1
    if set(sources) - {"model"} or set(fresh) - {"True"}:
        progress(f"warning: not every risk answer is the model's on fresh features: {dict(sources)}")
    return {
        "accounts": min(CHECKED, len(account_ids)),
        "sources": dict(sources),
        "fresh_features": dict(fresh),
        "reasons_per_answer": {str(k): v for k, v in reasons.items()},
        "actions_per_answer": {str(k): v for k, v in ranked.items()},
        "sample": sample,
    }


def check_invocations(port: int, body: bytes) -> dict[str, Any]:
    status, answer = fetch(port, "POST", "/invocations", {"Content-Type": "application/json"}, body)
    if status != 200:
        raise RuntimeError(f"POST /invocations answered {status}: {answer[:500]!r}")
    return {"sample": json.loads(answer)}


# --- measuring -----------------------------------------------------------------------------------------

HEADER = (
    f"{'target':<40} {'conc':>4} {'requests':>9} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'errors':>6} "
    f"{'client ms/req':>13} {'server ms/req':>13} {'others':>6}"
)


def busy_cpu_seconds() -> float:
    """CPU time spent by the whole machine (all processes, all cores), from /proc/stat (0 elsewhere)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def phase(target: Target, concurrency: int, total: int, seconds: float) -> dict[str, Any]:
    """One measured run, with the CPU the server, the client and everything else on the machine spent
    (`other_cores`: cores busy with other processes on average; above ~0.1 the figures are disturbed)."""
    server = target.server
    machine, cpu = busy_cpu_seconds(), server.cpu_seconds()
    result = load.run(
        HOST, server.port, target.requests, concurrency=concurrency, total=total, seconds=seconds
    )
    server_cpu = server.cpu_seconds() - cpu
    others = busy_cpu_seconds() - machine - server_cpu - result.client_cpu_seconds
    summary = result.summary()
    summary["server_cpu_ms_per_request"] = round(1e3 * server_cpu / max(result.requests, 1), 4)
    summary["other_cores"] = round(max(others, 0.0) / result.seconds, 2) if result.seconds else None
    progress(
        f"{target.name:<40} {concurrency:>4} {result.requests:>9,} {summary['p50_ms']:>8.2f} "
        f"{summary['p99_ms']:>8.2f} {result.requests_per_s:>8,.0f} {result.errors:>6} "
        f"{summary['client_cpu_ms_per_request']:>13.3f} {summary['server_cpu_ms_per_request']:>13.3f} "
        f"{summary['other_cores']:>6.2f}"
    )
    if result.errors:
        progress(f"  errors: {summary['statuses']} e.g. {result.error_sample}")
    return summary


def measure(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    """Warm up, then latency at concurrency 1 and throughput at --concurrency."""
    port, requests = target.server.port, target.requests
    load.run(HOST, port, requests, concurrency=1, total=args.warmup)
    latency = phase(target, 1, args.requests, LATENCY_SECONDS_CAP)
    target.measured = {"what": target.what, "latency": latency, **throughput(target, args)}
    return target.measured


def throughput(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    """Warm up at --concurrency, then measure requests/s there."""
    load.run(HOST, target.server.port, target.requests, concurrency=args.concurrency, total=args.warmup)
    measured = phase(target, args.concurrency, args.max_requests, args.seconds)
    return {"what": target.what, "throughput": measured}


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def verdict(ours: dict[str, Any], peer: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    p50, p99 = ours["latency"]["p50_ms"], ours["latency"]["p99_ms"]
    rps, peer_rps = ours["throughput"]["requests_per_s"], peer["throughput"]["requests_per_s"]
    ratios = {
        "p50_latency": _ratio(p50, peer["latency"]["p50_ms"]),
        "p99_latency": _ratio(p99, peer["latency"]["p99_ms"]),
        "throughput": _ratio(rps, peer_rps),
    }
    throughput_ratio = ratios["throughput"] or 0.0
    aims = {
        "p50_ms": {"value": p50, "aim": f"<= {AIM_P50_MS:g}", "met": p50 <= AIM_P50_MS},
        "p99_ms": {"value": p99, "aim": f"<= {AIM_P99_MS:g}", "met": p99 <= AIM_P99_MS},
        "throughput_ratio": {
            "value": throughput_ratio,
            "aim": f">= {AIM_THROUGHPUT_RATIO:g}",
            "met": throughput_ratio >= AIM_THROUGHPUT_RATIO,
        },
    }
    return ratios, aims


# --- the run -------------------------------------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


@dataclass(frozen=True)
class Bench:
    """What every pair of servers is measured on: the store, its accounts at the latest cutoff, the key."""

    args: argparse.Namespace
    scratch: Path
    store: Path
    as_of: date
    accounts: list[str]
    bodies: list[bytes]
    key: str
    mlflow_env: dict[str, str]


def servers(bench: Bench, workers: int) -> tuple[Server, Server]:
    """`retain serve` and `mlflow models serve`, each with `workers` processes, on fresh ports."""
    ours = retain_server(
        bench.store,
        free_port(),
        bench.scratch / f"retain-serve-{workers}.log",
        bench.as_of,
        workers,
        RETAIN_SERVE__RELOAD_SECONDS="0",
        **(SHARED if workers > 1 else {}),
    )
    port = free_port()
    peer = Server(
        f"mlflow models serve ({workers} worker{'s' if workers > 1 else ''})",
        [
            *(str(BIN / "mlflow"), "models", "serve", "-m", f"models:/{MODEL}", "--env-manager", "local"),
            *("--host", HOST, "-p", str(port), "--workers", str(workers)),
        ],
        bench.mlflow_env,
        port,
        bench.scratch / f"mlflow-serve-{workers}.log",
    )
    return ours, peer


def targets(bench: Bench, ours: Server, peer: Server) -> dict[str, Target]:
    actions = bench.args.actions
    return {
        "ceiling": Target(
            "client ceiling: GET /healthz",
            "GET /healthz on retain serve: the load client's own ceiling",
            ours,
            [load.encode("GET", HOST, ours.port, "/healthz")],
        ),
        "retain": Target(
            f"(a) {ours.name} GET /v1/accounts/{{id}}/risk",
            f"{ours.name}, GET /v1/accounts/{{id}}/risk?actions={actions}: online features from the store, "
            f"calibrated probabilities, reasons and the top {actions} next-best actions ranked by the "
            "uplift champion's expected value",
            ours,
            risk_requests(ours.port, bench.accounts, bench.key, actions),
        ),
        "mlflow": Target(
            f"(b) {peer.name} POST /invocations",
            f"{peer.name}: the pyfunc on the feature row sent",
            peer,
            invocation_requests(peer.port, bench.bodies),
        ),
    }


def measure_pair(bench: Bench, workers: int) -> dict[str, Any]:
    """Start both servers with `workers` processes, check them, measure each target, stop them. One
    process each: the client ceiling, latency and throughput; more: throughput only (what workers buy)."""
    args = bench.args
    ours, peer = servers(bench, workers)
    pair = [ours, peer]
    try:
        for server in pair:
            server.start()
        ready = {
            ours.name: round(ours.wait_ready("/readyz", args.start_timeout), 1),
            peer.name: round(peer.wait_ready("/ping", args.start_timeout), 1),
        }
        quiet = {server.name: round(server.wait_quiet(args.start_timeout), 1) for server in pair}
        progress(f"ready after {ready} s, settled after {quiet} s")
        checks = {
            "retain": check_risk(ours.port, bench.accounts, bench.key, args.actions),
            "mlflow": check_invocations(peer.port, bench.bodies[0]),
        }
        chosen = targets(bench, ours, peer)
        progress(HEADER)
        if workers == 1:
            measured = {name: measure(target, args) for name, target in chosen.items()}
        else:
            measured = {name: throughput(chosen[name], args) for name in ("retain", "mlflow")}
    except BaseException:
        for server in pair:
            if server.process is not None:
                progress(f"--- {server.name} log (tail) ---\n{server.tail()}")
        raise
    finally:
        for server in pair:
            server.stop()
    problems = {server.name: server.problems() for server in pair}
    for name, found in problems.items():
        if found["count"]:
            progress(f"{name} logged {found['count']} warning/error line(s), e.g. {found['first'][0]}")
    return {
        "ready_seconds": ready,
        "settled_seconds": quiet,
        "targets": measured,
        "checks": checks,
        "server_log_problems": problems,
    }


def scaling(one: dict[str, Any], two: dict[str, Any]) -> dict[str, Any]:
    """Throughput with two processes over one, ours and the peer's, and ours over the peer's at two."""

    def rps(pair: dict[str, Any], name: str) -> float:
        return float(pair["targets"][name]["throughput"]["requests_per_s"])

    ours = _ratio(rps(two, "retain"), rps(one, "retain")) or 0.0
    return {
        "retain_two_over_one": ours,
        "mlflow_two_over_one": _ratio(rps(two, "mlflow"), rps(one, "mlflow")),
        "retain_over_mlflow_at_two": _ratio(rps(two, "retain"), rps(two, "mlflow")),
        "aim": {"value": ours, "aim": f">= {AIM_SCALING:g}", "met": ours >= AIM_SCALING},
    }


def run(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    store_path = prepare_store(args, scratch)
    store = Store(store_path)
    settings = Settings(home=store_path)
    rows, as_of = latest_rows(store)
    model, version = load_scoring_model(store, settings, MODEL)
    described = (
        f"{MODEL} v{version.version}: {model.booster.num_trees()} trees, {len(model.features)} features"
    )
    mlflow_env = _env(MLFLOW_TRACKING_URI=tracking_uri(store, settings))
    mlflow_env.pop("MLFLOW_REGISTRY_URI", None)
    bench = Bench(
        args,
        scratch,
        store_path,
        as_of,
        rows["account_id"].astype(str).tolist(),
        invocation_bodies(rows, list(model.features)),
        create_key(store_path),
        mlflow_env,
    )
    progress(f"store {store_path}: {len(bench.accounts):,} accounts active at {as_of}; {described}")
    load_before = [round(x, 2) for x in os.getloadavg()]
    one = measure_pair(bench, 1)
    two = measure_pair(bench, 2) if args.two_workers else None
    measured = one["targets"]
    phases = [m for pair in (one, two) if pair for m in pair["targets"].values()]
    busiest = max(m[k]["other_cores"] or 0.0 for m in phases for k in ("latency", "throughput") if k in m)
    if busiest > 0.2:
        progress(f"warning: other processes kept up to {busiest:.2f} cores busy while measuring")
    ratios, aims = verdict(measured["retain"], measured["mlflow"])
    ceiling = measured["ceiling"]["throughput"]["requests_per_s"]
    return {
        "store": str(store_path),
        "as_of": as_of.isoformat(),
        "accounts": len(bench.accounts),
        "model": described,
        "cpus": os.cpu_count(),
        "loadavg_before_measuring": load_before,
        "max_other_cores": busiest,
        "settings": {
            "requests": args.requests,
            "concurrency": args.concurrency,
            "seconds": args.seconds,
            "max_requests": args.max_requests,
            "warmup": args.warmup,
            "actions": args.actions,
        },
        "ready_seconds": one["ready_seconds"],
        "settled_seconds": one["settled_seconds"],
        "servers": {
            "retain": f"retain serve: {settings.serve.threads} request threads a process (uvicorn, "
            "httptools, uvloop), access log off",
            "mlflow": "mlflow models serve: its defaults otherwise",
        },
        "targets": measured,
        "ratios_a_over_b": ratios,
        "aims": aims,
        "two_workers": None if two is None else {"targets": two["targets"], "scaling": scaling(one, two)},
        "client_ceiling_over_a": _ratio(ceiling, measured["retain"]["throughput"]["requests_per_s"]),
        "errors": sum(m[k]["errors"] for m in phases for k in ("latency", "throughput") if k in m),
        "checks": one["checks"],
        "server_log_problems": one["server_log_problems"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    store_arguments(parser, accounts=2_000)
    parser.add_argument("--requests", type=int, default=2_000, help="latency run, concurrency 1 [2000]")
    parser.add_argument("--concurrency", type=int, default=16, help="throughput run [16]")
    parser.add_argument("--seconds", type=float, default=10.0, help="throughput run length [10]")
    parser.add_argument("--max-requests", type=int, default=100_000, help="throughput run cap [100000]")
    parser.add_argument("--warmup", type=int, default=200, help="requests before each run [200]")
    parser.add_argument("--actions", type=int, default=3, help="next-best actions per risk answer [3]")
    parser.add_argument(
        "--two-workers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure both servers' throughput with two worker processes each [on]",
    )
    parser.add_argument("--start-timeout", type=float, default=180.0, help="seconds for a server to start")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    # SIGTERM acts as Ctrl-C: the load client's event loop cancels its run cleanly (an exception raised
    # by a handler inside an event-loop callback would be swallowed), then `finally` stops both servers;
    # SIGINT is set explicitly since a background job of a non-interactive shell starts with it ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
    with tempfile.TemporaryDirectory(prefix="retain-bench-serve-") as tmp:
        try:
            report = run(args, Path(tmp))
        except (RuntimeError, TimeoutError) as e:
            progress(f"error: {e}")
            return 2
        except KeyboardInterrupt:
            progress("interrupted; both servers stopped")
            return 130
    a, b = report["targets"]["retain"], report["targets"]["mlflow"]
    progress(
        f"(a) retain risk p50 {a['latency']['p50_ms']:.2f} ms, p99 {a['latency']['p99_ms']:.2f} ms, "
        f"{a['throughput']['requests_per_s']:,.0f} req/s | (b) mlflow p50 {b['latency']['p50_ms']:.2f} ms, "
        f"p99 {b['latency']['p99_ms']:.2f} ms, {b['throughput']['requests_per_s']:,.0f} req/s | "
        f"throughput ratio {report['ratios_a_over_b']['throughput']}x | client ceiling "
        f"{report['targets']['ceiling']['throughput']['requests_per_s']:,.0f} req/s"
    )
    aims = (
        f"{k} {v['value']} {v['aim']}: {'met' if v['met'] else 'NOT met'}" for k, v in report["aims"].items()
    )
    progress("aims: " + ", ".join(aims))
    if report["two_workers"]:
        scaled = report["two_workers"]["scaling"]
        progress(
            f"two workers over one: retain {scaled['retain_two_over_one']}x, mlflow "
            f"{scaled['mlflow_two_over_one']}x (aim {scaled['aim']['aim']}: "
            f"{'met' if scaled['aim']['met'] else 'NOT met'})"
        )
    print(json.dumps(report, indent=2, default=str))
    record("serving", "experiments.benchmarks.serving", argv, report)
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
