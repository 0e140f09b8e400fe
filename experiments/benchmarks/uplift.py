"""Uplift at scale, timed: train the DR-learners for 12 actions on a 10,000-account simulation, then rank
every account's actions by expected value, against the rules ranking as the baseline, in one run.

    .venv/bin/python -m experiments.benchmarks.uplift [--accounts 10000] [--days 400] [--requests 500]

Ranking is what next-best-actions and the weekly plan do per account: eligibility and cool-downs from the
catalogue's rules (takes from the interventions table, up to the cutoff), the uplift models' effects on
churn and expansion, expected value, order. Batch ranks every active account at the latest month end in
one pass; single is one account per call, as the API does. The rules ranking (eligibility and the band's
play, no models) runs on the same rows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from joblib.externals.loky import get_reusable_executor

from core.settings import Settings
from core.value import expected_values
from experiments.benchmarks.train import _timed
from experiments.results import record
from features.playbook import Verdict, rules_ranking
from features.run import build_and_publish
from features.stored import read_features
from ingest.run import ingest_path
from simulate import SimConfig, simulate_to
from store.delta import Store
from training.causal import policy, recency
from training.causal.design import read_interventions
from training.causal.run import train_uplift
from training.causal.uplift import UpliftModel
from training.config import UpliftConfig


@dataclass(frozen=True)
class Ranked:
    """Accounts at one cutoff as the API ranks them: feature rows with days since each action, and the
    latest takes the cool-downs count from."""

    rows: pd.DataFrame
    taken: list[dict[str, datetime]]
    as_of: list[datetime]

    @staticmethod
    def at(rows: pd.DataFrame, interventions: pd.DataFrame) -> Ranked:
        last = recency.last_taken(rows, interventions)
        return Ranked(
            recency.with_recency(rows, last),
            recency.latest_takes_per_row(last),
            recency.cutoff_instants(rows["cutoff"]),
        )

    def one(self, i: int) -> Ranked:
        return Ranked(self.rows.iloc[[i]].reset_index(drop=True), [self.taken[i]], [self.as_of[i]])

    def verdicts(self) -> list[list[Verdict]]:
        records = cast(list[dict[str, Any]], self.rows.to_dict("records"))
        return policy.verdicts(records, self.taken, self.as_of)


def rank_by_value(model: UpliftModel, accounts: Ranked, settings: Settings) -> list[list[str]]:
    """Each row's eligible, usable actions with positive expected value, best first."""
    uplift = model.uplift(accounts.rows)
    values = expected_values(
        uplift["churn"],
        uplift["expansion"],
        accounts.rows["arr"].to_numpy(float),
        model.actions,
        settings.value,
    )
    usable = set(model.usable())
    out = []
    for i, verdicts in enumerate(accounts.verdicts()):
        eligible = [v.action for v in verdicts if v.eligible and v.action in usable]
        ranked = sorted(eligible, key=lambda a: -values[i, model.actions.index(a)])
        out.append([a for a in ranked if values[i, model.actions.index(a)] > 0])
    return out


def rank_by_rules(accounts: Ranked) -> list[list[str]]:
    out = []
    bands = accounts.rows["health_band"].tolist()
    for band, verdicts in zip(bands, accounts.verdicts(), strict=True):
        out.append([r.action for r in rules_ranking(band if isinstance(band, str) else None, verdicts)])
    return out


def _latencies(fn: Any, accounts: Ranked, requests: int) -> dict[str, float]:
    times = []
    for i in range(requests):
        one = accounts.one(i % len(accounts.rows))
        started = time.perf_counter()
        fn(one)
        times.append(time.perf_counter() - started)
    ms = np.array(times) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
    }


def cpu_seconds() -> float:
    """User and system seconds of this process and its ended child processes, joblib's workers shut down
    first so that theirs count: on a shared machine the wall time of training says little, its CPU time
    more."""
    get_reusable_executor().shutdown(wait=True)
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=400)
    parser.add_argument("--requests", type=int, default=500)
    argv = sys.argv[1:]
    args = parser.parse_args(argv)
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="retain-bench-uplift-") as tmp:
        sim, store = Path(tmp) / "sim", Store(Path(tmp) / "store")
        settings = Settings(home=store.root)
        _timed(
            "simulate", timings, simulate_to, SimConfig(args.accounts, args.days, 7, date(2024, 7, 1)), sim
        )
        _timed("ingest", timings, ingest_path, store, sim)
        _timed("features (month ends)", timings, build_and_publish, store, settings, None, None, online=False)
        cpu_before = cpu_seconds()
        result = _timed(
            "train uplift (12 actions)", timings, train_uplift, store, settings, UpliftConfig(truth_dir=sim)
        )
        timings["train uplift (12 actions), cpu"] = round(cpu_seconds() - cpu_before, 2)
        model = cast(UpliftModel, result.model)
        table = read_features(store).to_pandas()
        latest = table[table["cutoff"] == table["cutoff"].max()].reset_index(drop=True)
        accounts = Ranked.at(latest, read_interventions(store))
        rows = accounts.rows
        batch_uplift = _timed("rank all by value", timings, rank_by_value, model, accounts, settings)
        _timed("rank all by rules", timings, rank_by_rules, accounts)
        model.threads = 1
        single = {
            "uplift": _latencies(lambda r: rank_by_value(model, r, settings), accounts, args.requests),
            "rules": _latencies(rank_by_rules, accounts, args.requests),
        }
    report = {
        "accounts": args.accounts,
        "design_rows": result.metrics["rows"],
        "ranked_accounts": len(rows),
        "with_an_action": sum(bool(r) for r in batch_uplift),
        "timings_s": timings,
        "batch_accounts_per_s": {
            "uplift": round(len(rows) / timings["rank all by value"]),
            "rules": round(len(rows) / timings["rank all by rules"]),
        },
        "single_account": single,
        "single_p50_ratio_uplift_to_rules": round(single["uplift"]["p50_ms"] / single["rules"]["p50_ms"], 2),
        "policy_vs_truth": result.metrics["truth"]["policy"],
    }
    print(
        f"uplift training {timings['train uplift (12 actions)']:.0f} s "
        f"({timings['train uplift (12 actions), cpu']:.0f} s of CPU) on {report['design_rows']:,} rows | "
        f"ranking {len(rows):,} accounts x 12 actions: {report['batch_accounts_per_s']['uplift']:,}/s "
        f"(rules {report['batch_accounts_per_s']['rules']:,}/s); "
        f"one account p50 {single['uplift']['p50_ms']} ms vs rules {single['rules']['p50_ms']} ms "
        f"({report['single_p50_ratio_uplift_to_rules']}x)",
        file=sys.stderr,
    )
    print(json.dumps(report, indent=2, default=str))
    record("uplift", "experiments.benchmarks.uplift", argv, report)


if __name__ == "__main__":
    main()
