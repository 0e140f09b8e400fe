"""Case-control sampling of the untreated rows in the propensity fits (`core.settings.NuisanceSampling`)
against fits on every row, on simulations whose true effects are known. Per seed, one design is fitted
both ways (`fit_uplift`), and per action and outcome it reports how far the sampled fit's average effect
and share moved from the whole fit's, in the whole fit's standard errors; how often each fit's 95%
interval holds the true average effect; and the true churn each fit's ranking averts as a share of the
oracle's (`against_truth`), with the fits' wall and CPU seconds.

    .venv/bin/python -m experiments.uplift_subsampling [--seeds 201,202,203,204,205] [--accounts 2000]
        [--days 540]

The default sampling (10 untreated rows per treated one, at least 20,000) was chosen on the demo store
(seed 7) and the 10,000-account benchmark (seed 7); seeds 201-205 serve only this evaluation.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from core.parallel import Workers
from core.settings import NuisanceSampling, Settings
from experiments.benchmarks.uplift import cpu_seconds
from experiments.results import record
from features.run import build_and_publish
from ingest.run import ingest_path
from simulate import SimConfig, simulate_to
from store.delta import Store
from training.causal import against_truth
from training.causal.design import store_design
from training.causal.run import Truth, fit_uplift, read_truth
from training.causal.uplift import OUTCOMES, UpliftModel
from training.config import UpliftConfig

FITS = {"whole": None, "sampled": NuisanceSampling()}


def _judged(model: UpliftModel, truth: Truth, budget_share: float) -> dict[str, Any]:
    """Each action's coverage of its true average effect per outcome, and the ranking's share of the
    oracle's averted churn."""
    coverage = {
        outcome: against_truth.effect_coverage(model, getattr(truth, outcome), outcome)
        for outcome in OUTCOMES
    }
    values = against_truth.policy_values(model, truth.rows, truth.churn, truth.interventions, budget_share)
    return {
        "covered": {o: {a: c["covered"] for a, c in per.items()} for o, per in coverage.items()},
        "policy": values["share_of_oracle"]["uplift"],
    }


def _moves(whole: UpliftModel, sampled: UpliftModel) -> dict[str, dict[str, float]]:
    """Per action and outcome, the sampled fit's average effect and share less the whole fit's, in the
    whole fit's standard errors."""
    out = {}
    for key, effect in whole.average.items():
        share = whole.relative[key]
        out["_".join(key)] = {
            "ate": (sampled.average[key].ate - effect.ate) / effect.se,
            "share": (sampled.relative[key].value - share.value) / share.se,
        }
    return out


def one_seed(work: Path, seed: int, accounts: int, days: int) -> dict[str, Any]:
    sim, store = work / "sim", Store(work / "store")
    settings = Settings(home=store.root)
    simulate_to(SimConfig(accounts, days, seed, date(2024, 7, 1)), sim)
    ingest_path(store, sim)
    build_and_publish(store, settings, None, None, online=False)
    config = UpliftConfig(seed=seed).resolved(settings)
    design = store_design(store, settings, int(config.horizon_days or 0), config.threads)
    truth = read_truth(store, sim)
    models, seconds = {}, {}
    for name, sampling in FITS.items():
        wall, cpu = time.perf_counter(), cpu_seconds()
        models[name] = fit_uplift(design, config, "uplift", workers=Workers(2), sampling=sampling)
        seconds[name] = {"wall": round(time.perf_counter() - wall, 1), "cpu": round(cpu_seconds() - cpu, 1)}
    judged = {name: _judged(model, truth, config.budget_share) for name, model in models.items()}
    return {"seconds": seconds, "judged": judged, "moves": _moves(models["whole"], models["sampled"])}


def _summary(runs: dict[int, dict[str, Any]]) -> dict[str, Any]:
    moves = [m for run in runs.values() for m in run["moves"].values()]
    out: dict[str, Any] = {
        f"{kind}_within_one_se": float(np.mean([abs(m[kind]) <= 1.0 for m in moves]))
        for kind in ("ate", "share")
    }
    out |= {f"{kind}_largest_move_se": float(max(abs(m[kind]) for m in moves)) for kind in ("ate", "share")}
    for name in FITS:
        judged = [run["judged"][name] for run in runs.values()]
        out[f"coverage_{name}"] = {
            o: float(np.mean([c for j in judged for c in j["covered"][o].values()])) for o in OUTCOMES
        }
        out[f"policy_{name}_mean"] = float(np.mean([j["policy"] for j in judged]))
        out[f"fit_seconds_{name}"] = {
            k: float(np.mean([run["seconds"][name][k] for run in runs.values()])) for k in ("wall", "cpu")
        }
    gains = [run["judged"]["sampled"]["policy"] - run["judged"]["whole"]["policy"] for run in runs.values()]
    out["policy_sampled_less_whole"] = {
        "mean": float(np.mean(gains)),
        "se": float(np.std(gains, ddof=1) / np.sqrt(len(gains))) if len(gains) > 1 else None,
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", default="201,202,203,204,205")
    parser.add_argument("--accounts", type=int, default=2_000)
    parser.add_argument("--days", type=int, default=540)
    argv = sys.argv[1:]
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = {}
    for seed in seeds:
        with tempfile.TemporaryDirectory(prefix="retain-uplift-sampling-") as tmp:
            runs[seed] = one_seed(Path(tmp), seed, args.accounts, args.days)
        judged = runs[seed]["judged"]
        print(
            f"seed {seed}: policy whole {judged['whole']['policy']:.3f}, "
            f"sampled {judged['sampled']['policy']:.3f}; seconds {runs[seed]['seconds']}",
            file=sys.stderr,
        )
    report = {
        "seeds": seeds,
        "accounts": args.accounts,
        "days": args.days,
        "sampling": FITS["sampled"].model_dump() if FITS["sampled"] else None,
        "summary": _summary(runs),
        "by_seed": runs,
    }
    print(json.dumps(report["summary"], indent=2))
    record("uplift_subsampling", "experiments.uplift_subsampling", argv, report)


if __name__ == "__main__":
    main()
