"""`make demo` as a new user meets it: a fresh clone with empty package caches runs `make demo` itself, and
every line it prints is timed, so the install (until the first step starts), each step (from its `>` line
to the next) and the wait until the API answers the printed curl are measured as the newcomer waits for
them. The causal report, which the demo starts in the background once everything the API needs is ready,
is timed until its page is written.

    .venv/bin/python -m experiments.benchmarks.demo [--accounts 2000] [--days 540] [--no-clone]

With --no-clone the demo runs in this checkout, whose venv is already installed (no install is timed).
There is no peer: the figures are absolute, on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from experiments.results import ROOT, record

PORT = 8765
#: the first word of each step's `>` line, as the step is named in the figures
STEPS = {
    "simulating": "simulate",
    "ingesting": "ingest",
    "building": "features",
    "planning": "plan",
    "scoring": "score",
    "serving": "serve until answered",
}
#: what `make demo` prints once the store is ready and before `retain serve` starts
READY = "Retain is ready"
#: how long the API and the background report may take before the run is called failed
API_TIMEOUT_S, REPORT_TIMEOUT_S = 900.0, 900.0


@dataclass
class Output:
    """`make demo`'s output lines as they come, each with the seconds since the demo started."""

    started: float = field(default_factory=time.perf_counter)
    lines: list[tuple[float, str]] = field(default_factory=list)

    def follow(self, stream: object) -> None:
        for line in iter(stream.readline, ""):  # type: ignore[attr-defined]
            self.lines.append((round(time.perf_counter() - self.started, 1), line.rstrip()))
            print(line.rstrip(), file=sys.stderr)

    def seen(self, text: str) -> bool:
        return any(text in line for _, line in list(self.lines))


def step_name(line: str) -> str | None:
    """The step a `>` line starts (`training churn on ...` is `train churn`); None for any other line."""
    if not line.startswith("> "):
        return None
    words = line[2:].split()
    if words and words[0] == "training" and len(words) > 1:
        return f"train {words[1].rstrip(':')}"
    return STEPS.get(words[0], words[0]) if words else None


def timings(output: Output, answered: float) -> dict[str, float]:
    """Seconds per step: the install until the first step's line, each step until the next one's (the
    demo's API key and example account go to the step before serving), serving until the API answered."""
    marks = [(t, name) for t, line in output.lines if (name := step_name(line))]
    marks += [(t, "keys and example account") for t, line in output.lines if READY in line][:1]
    marks.sort()
    found: dict[str, float] = {"install": marks[0][0]} if marks and marks[0][0] > 0 else {}
    for (start, name), (end, _) in zip(marks, [*marks[1:], (answered, "")], strict=True):
        found[name] = round(end - start, 1)
    return found


def answered(store: Path, output: Output) -> float:
    """Seconds from the demo's start until the printed curl gets its answer."""
    deadline = time.perf_counter() + API_TIMEOUT_S
    while not output.seen(READY):
        if time.perf_counter() > deadline:
            raise RuntimeError("make demo did not get the store ready in time")
        time.sleep(0.2)
    key, account = ((store / name).read_text().strip() for name in ("demo.key", "demo.account"))
    url = f"http://127.0.0.1:{PORT}/v1/accounts/{account}/risk?actions=3"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    while time.perf_counter() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                json.load(answer)
                return round(time.perf_counter() - output.started, 1)
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the API did not answer in time")


def report_written(store: Path, output: Output) -> float:
    """Seconds from the demo's start until the background causal report has written its page and JSON."""
    page = store / "reports" / "causal" / "report.json"
    deadline = time.perf_counter() + REPORT_TIMEOUT_S
    while not page.exists():
        if time.perf_counter() > deadline:
            raise RuntimeError(f"the causal report was not written in time; see {store}/reports/causal.log")
        time.sleep(0.5)
    return round(time.perf_counter() - output.started, 1)


def newcomer_environment(tmp: Path) -> dict[str, str]:
    """This environment with empty package caches and no active venv, as on a fresh machine."""
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    for name, folder in (("UV_CACHE_DIR", "uv"), ("PIP_CACHE_DIR", "pip"), ("XDG_CACHE_HOME", "xdg")):
        env[name] = str(tmp / "caches" / folder)
    return env


def run_demo(checkout: Path, store: Path, args: argparse.Namespace, env: dict[str, str]) -> dict[str, object]:
    """`make demo` in `checkout` into `store`: the seconds until the API answered, per step, and until the
    background report was written; the demo (and its report) stopped at the end."""
    make = ["make", "-C", str(checkout), "demo", f"STORE={store}", f"PORT={PORT}"]
    make += [f"ACCOUNTS={args.accounts}", f"DAYS={args.days}"]
    output = Output()
    demo = subprocess.Popen(
        make, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True
    )
    threading.Thread(target=output.follow, args=(demo.stdout,), daemon=True).start()
    try:
        until_answered = answered(store, output)
        report = report_written(store, output)
    finally:
        os.killpg(demo.pid, signal.SIGTERM)
        demo.wait()
    return {
        "until_the_api_answers_s": until_answered,
        "timings_s": timings(output, until_answered),
        "report_causal_in_background_s": round(report - until_answered, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=2_000)
    parser.add_argument("--days", type=int, default=540)
    parser.add_argument("--no-clone", action="store_true", help="run in this checkout; no install is timed")
    argv = sys.argv[1:]
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="retain-bench-demo-") as folder:
        tmp = Path(folder)
        checkout = ROOT if args.no_clone else tmp / "clone"
        if not args.no_clone:
            subprocess.run(["git", "clone", "--quiet", str(ROOT), str(checkout)], check=True)
        figures = run_demo(checkout, tmp / "store", args, newcomer_environment(tmp))
    figures = {"accounts": args.accounts, "days": args.days, "fresh_clone": not args.no_clone, **figures}
    print(f"make demo until the API answers: {figures['until_the_api_answers_s']} s", file=sys.stderr)
    print(json.dumps(figures, indent=2))
    record("demo", "experiments.benchmarks.demo", argv, figures)


if __name__ == "__main__":
    main()
