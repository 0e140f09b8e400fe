"""`make demo` as a new user meets it, timed step by step: a fresh clone, the install, every CLI step of
the demo, then `retain serve` until the API answers the printed curl; and the causal report timed again
without the fits it shares with uplift training (its cold cost).

    .venv/bin/python -m experiments.benchmarks.demo [--accounts 2000] [--days 540] [--no-clone]

Each step runs the `retain` CLI in a subprocess, as the Makefile does. With --no-clone the install is
skipped and the steps use this checkout's venv. There is no peer: the figures are absolute, on this
machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from experiments.results import ROOT, record

SCORE_CUTOFF = "2025-11-30"
PLAN_WEEK = "2025-12-01"
PORT = 8765
#: the Makefile's defaults
SEED_AND_START = ["--seed", "7", "--start", "2024-07-01"]


@dataclass(frozen=True)
class Demo:
    """Where the demo runs: the checkout whose venv runs it, and the store."""

    checkout: Path
    store: Path

    @property
    def retain(self) -> str:
        return str(self.checkout / ".venv" / "bin" / "retain")

    def steps(self, accounts: int, days: int) -> list[tuple[str, list[str]]]:
        """The Makefile's demo steps, in order, as (name, argv)."""
        s, sim = str(self.store), str(self.store / "simulation")
        truth = ["--truth", sim]
        config = str(self.checkout / "experiments")
        return [
            (
                "simulate",
                ["simulate", "--store", s, "--accounts", str(accounts), "--days", str(days), *SEED_AND_START],
            ),
            ("ingest", ["ingest", sim, "--store", s]),
            ("features", ["features", "build", "--store", s]),
            (
                "train churn",
                ["train", "--model", "churn", "--store", s, "--config", f"{config}/churn.yaml", *truth],
            ),
            (
                "train expansion",
                [
                    "train",
                    "--model",
                    "expansion",
                    "--store",
                    s,
                    "--config",
                    f"{config}/expansion.yaml",
                    *truth,
                ],
            ),
            (
                "train uplift",
                ["train", "--model", "uplift", "--store", s, "--config", f"{config}/uplift.yaml", *truth],
            ),
            ("report causal", ["report", "causal", "--store", s, "--out", f"{s}/reports/causal"]),
            (
                "plan",
                [
                    "plan",
                    "--store",
                    s,
                    "--week",
                    PLAN_WEEK,
                    "--capacity-hours",
                    "8",
                    "--out",
                    f"{s}/plan.csv",
                ],
            ),
            ("score", ["score", "--store", s, "--cutoff", SCORE_CUTOFF, "--out", f"{s}/scores.parquet"]),
        ]

    def run(self, argv: list[str]) -> None:
        subprocess.run([self.retain, *argv], check=True, stdout=subprocess.DEVNULL, cwd=self.checkout)


def _timed(label: str, timings: dict[str, float], fn: Callable[..., object], *args: object) -> None:
    started = time.perf_counter()
    fn(*args)
    timings[label] = round(time.perf_counter() - started, 1)
    print(f"{label:<24} {timings[label]:8.1f} s", file=sys.stderr)


def _install(checkout: Path) -> None:
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(checkout)], check=True)
    subprocess.run(["make", "-C", str(checkout), "install"], check=True, stdout=subprocess.DEVNULL)


def _serve_until_answered(demo: Demo) -> None:
    """`retain serve` on the store until the risk endpoint answers the demo's account with the demo key."""
    s = str(demo.store)
    key = (
        subprocess.run(
            [demo.retain, "keys", "create", "--store", s, "--scopes", "admin", "--name", "demo"],
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    account = subprocess.run(
        [
            demo.retain,
            "example-account",
            "--store",
            s,
            "--cutoff",
            SCORE_CUTOFF,
            "--scores",
            f"{s}/scores.parquet",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    server = subprocess.Popen(
        [demo.retain, "serve", "--store", s, "--port", str(PORT), "--as-of", SCORE_CUTOFF],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{PORT}/v1/accounts/{account}/risk?actions=3"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    try:
        for _ in range(600):
            try:
                with urllib.request.urlopen(request, timeout=5) as answer:
                    json.load(answer)
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the API did not answer within a minute")
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=2_000)
    parser.add_argument("--days", type=int, default=540)
    parser.add_argument("--no-clone", action="store_true", help="use this checkout's venv; skip the install")
    argv = sys.argv[1:]
    args = parser.parse_args(argv)
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="retain-bench-demo-") as tmp:
        checkout = ROOT if args.no_clone else Path(tmp) / "clone"
        demo = Demo(checkout, Path(tmp) / "store")
        if not args.no_clone:
            _timed("install (fresh clone)", timings, _install, checkout)
        for name, step in demo.steps(args.accounts, args.days):
            _timed(name, timings, demo.run, step)
        _timed("serve until answered", timings, _serve_until_answered, demo)
        until_answered = round(sum(timings.values()), 1)
        shutil.rmtree(demo.store / "cache")
        report = dict(demo.steps(args.accounts, args.days))["report causal"]
        _timed("report causal (cold)", timings, demo.run, report)
    figures = {
        "accounts": args.accounts,
        "days": args.days,
        "fresh_clone": not args.no_clone,
        "until_the_api_answers_s": until_answered,
        "timings_s": timings,
    }
    print(f"make demo until the API answers: {until_answered:.0f} s", file=sys.stderr)
    print(json.dumps(figures, indent=2))
    record("demo", "experiments.benchmarks.demo", argv, figures)


if __name__ == "__main__":
    main()
