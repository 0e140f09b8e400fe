"""The data scientist's loop, timed: simulate -> features -> train both models -> register, then batch
scoring with reasons against `shap.TreeExplainer` on the same rows.

    .venv/bin/python -m experiments.benchmarks.train [--accounts 5000] [--days 540] [--trials 20]
        [--rows 1e6] [--shap-rows 1e6]

Scoring reuses the feature rows (tiled to --rows). Ours is `ScoringModel.explain` (one exact TreeSHAP
pass, `training.treeshap`, calibrated probabilities and the top three reasons in words); the peer is
`shap.TreeExplainer(booster).shap_values` on the same rows, which computes the same values through
LightGBM's `pred_contrib` and nothing else. Both run on the same model in the same process, taking turns
chunk by chunk; `max_abs_difference` is the largest gap between their values.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shap

from core.settings import Settings
from experiments.results import record
from features.run import build_and_publish
from features.stored import read_features
from ingest.run import ingest_path
from registry.models import load_scoring_model
from registry.tracking import log_and_register
from simulate import SimConfig, simulate_to
from store.delta import Store
from training.artifact import ScoringModel
from training.config import load_config
from training.run import train_model

EXPERIMENTS = Path(__file__).resolve().parents[1]
#: rows per call, as batch scoring reads them
CHUNK = 100_000


def _timed(label: str, timings: dict[str, float], fn: Any, *args: Any, **kwargs: Any) -> Any:
    started = time.perf_counter()
    out = fn(*args, **kwargs)
    timings[label] = round(time.perf_counter() - started, 2)
    print(f"{label:<28} {timings[label]:8.1f} s", file=sys.stderr)
    return out


def pipeline(work: Path, accounts: int, days: int, trials: int) -> tuple[Store, Settings, dict[str, Any]]:
    timings: dict[str, float] = {}
    sim = work / "sim"
    store = Store(work / "store")
    settings = Settings(home=store.root)
    _timed("simulate", timings, simulate_to, SimConfig(accounts, days, 7, date(2024, 7, 1)), sim)
    _timed("ingest", timings, ingest_path, store, sim)
    _timed("features + feast", timings, build_and_publish, store, settings, None, None, online=True)
    metrics: dict[str, Any] = {}
    for kind in ("churn", "expansion"):
        config = load_config(EXPERIMENTS / f"{kind}.yaml", truth_dir=sim, n_trials=trials)
        result = _timed(f"train {kind}", timings, train_model, store, settings, kind, config)
        _timed(f"register {kind}", timings, log_and_register, store, settings, result, kind)
        metrics[kind] = {k: result.metrics[k] for k in ("model", "health", "logistic", "oracle")}
    timings["total"] = round(sum(timings.values()), 2)
    return store, settings, {"timings_s": timings, "metrics": metrics}


def scoring(store: Store, settings: Settings, rows: int, shap_rows: int) -> dict[str, Any]:
    """Ours and the peer on the same model and rows, chunk by chunk in turn, so that both meet the same
    load from whatever else runs on the machine. The peer's explainer is built once, inside its time."""
    model, version = load_scoring_model(store, settings, "churn@champion")
    table = read_features(store).to_pandas()
    tiled = table.iloc[np.resize(np.arange(len(table)), max(rows, shap_rows))].reset_index(drop=True)

    started = time.perf_counter()
    explainer = shap.TreeExplainer(model.booster)
    peer = time.perf_counter() - started
    ours, exact = 0.0, 0.0
    for start in range(0, max(rows, shap_rows), CHUNK):
        chunk = tiled.iloc[start : start + CHUNK]
        if start < rows:
            started = time.perf_counter()
            model.explain(chunk.iloc[: rows - start])
            ours += time.perf_counter() - started
        if start < shap_rows:
            sample = chunk.iloc[: shap_rows - start]
            started = time.perf_counter()
            values = np.asarray(explainer.shap_values(model.matrix(sample)))
            peer += time.perf_counter() - started
            exact = max(exact, float(np.abs(values - model.contributions(sample)[:, :-1]).max()))

    trees = model.booster.num_trees()
    return {
        "model": f"churn v{version.version}: {trees} trees, {len(model.features)} features",
        "rows": rows,
        "ours_rows_per_s": round(rows / ours),
        "shap_rows": shap_rows,
        "shap_rows_per_s": round(shap_rows / peer),
        "ratio": round((rows / ours) / (shap_rows / peer), 2),
        "max_abs_difference": exact,
        "single_row_explain_ms": single_row_ms(model, table),
    }


def single_row_ms(model: ScoringModel, table: pd.DataFrame, requests: int = 200) -> float:
    """The median time to explain one row on one thread, as the API does per request."""
    served = dataclasses.replace(model, threads=1)
    times = []
    for i in range(requests):
        row = table.iloc[[i % len(table)]]
        started = time.perf_counter()
        served.explain(row)
        times.append(time.perf_counter() - started)
    return round(float(np.median(times)) * 1000, 3)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=5_000)
    parser.add_argument("--days", type=int, default=540)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--rows", type=float, default=1e6)
    parser.add_argument("--shap-rows", type=float, default=1e6)
    argv = sys.argv[1:]
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="retain-bench-train-") as tmp:
        store, settings, report = pipeline(Path(tmp), args.accounts, args.days, args.trials)
        report["scoring"] = scoring(store, settings, int(args.rows), int(args.shap_rows))
    s = report["scoring"]
    print(
        f"full training run {report['timings_s']['total']:.0f} s | scoring with reasons "
        f"{s['ours_rows_per_s']:,} rows/s vs shap.TreeExplainer {s['shap_rows_per_s']:,} rows/s "
        f"(ratio {s['ratio']}x, max |diff| {s['max_abs_difference']:.1e})"
    )
    print(json.dumps(report, indent=2, default=str))
    record("train", "experiments.benchmarks.train", argv, report)


if __name__ == "__main__":
    main()
