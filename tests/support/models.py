"""Tiny LightGBM scoring models on synthetic rows whose churn risk follows a known logit."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression

from training.artifact import Kind, ScoringModel
from training.result import TrainResult

FEATURES = ["days_since_last_session", "seat_utilisation", "open_p1p2_tickets", "tier"]
TIERS = ["free", "pro", "ent"]
PLOTS = ("roc", "pr", "calibration", "lift", "shap_beeswarm", "shap_bar")


def feature_rows(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Feature rows in the feature table's dtypes (ints, floats with NaN, a category with None), and
    labels drawn from a known logit."""
    rng = np.random.default_rng(seed)
    tier = rng.choice(TIERS, n).astype(object)
    tier[rng.random(n) < 0.05] = None
    rows = pd.DataFrame(
        {
            "account_id": [f"acct-{seed}-{i:05d}" for i in range(n)],
            "days_since_last_session": np.where(rng.random(n) < 0.05, np.nan, rng.exponential(12, n)),
            "seat_utilisation": rng.uniform(0, 1, n),
            "open_p1p2_tickets": rng.integers(0, 4, n),
            "tier": tier,
        }
    )
    days = rows["days_since_last_session"].fillna(30)
    logit = 0.12 * days - 3.0 * rows["seat_utilisation"] + 0.6 * rows["open_p1p2_tickets"] - 1.2
    labels = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return rows, labels


def fit_model(
    seed: int = 0, n: int = 600, trees: int = 30, noise: float = 0.0, kind: Kind = "churn"
) -> ScoringModel:
    """A calibrated LightGBM model; `noise` is the share of training labels replaced by coin flips."""
    rows, labels = feature_rows(n, seed)
    rng = np.random.default_rng(seed + 1_000)
    flip = rng.random(n) < noise
    labels = np.where(flip, rng.integers(0, 2, n), labels)
    model = ScoringModel(
        name=kind,
        kind=kind,
        booster=None,  # type: ignore[arg-type]  # fitted just below, on the model's own matrix
        features=FEATURES,
        categories={"tier": TIERS},
        calibrator=None,
        horizon_days=90,
        texts=ScoringModel.texts_for(FEATURES),
        threads=1,
    )
    matrix = model.matrix(rows)
    params = {"objective": "binary", "num_leaves": 7, "seed": seed, "verbose": -1, "num_threads": 1}
    model.booster = lgb.train(params, lgb.Dataset(matrix, labels), trees)
    raw = 1 / (1 + np.exp(-np.asarray(model.booster.predict(matrix, raw_score=True))))
    model.calibrator = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(raw, labels)
    return model


def write_plots(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [0, 1])
    paths = {name: folder / f"{name}.png" for name in PLOTS}
    for path in paths.values():
        fig.savefig(path)
    plt.close(fig)
    return paths


def train_result(model: ScoringModel, plots: dict[str, Path], test_auc: float = 0.8) -> TrainResult:
    rows, _ = feature_rows(8, 42)
    return TrainResult(
        model=model,
        params={"num_leaves": 7, "objective": "binary", "tuning": {"trials": 3, "metric": "auc"}},
        metrics={"model": {"test": {"auc": test_auc, "brier": 0.15}}, "oracle": None},
        flat_metrics={"test_auc": test_auc, "test_brier": 0.15, "health_test_auc": 0.6},
        plots=plots,
        lineage={
            "feature_service": f"{model.kind}_v1",
            "cutoffs": {"train": ["2025-01-31", "2025-02-28"], "test": ["2025-04-30"]},
            "rows": {"train": 600, "calibration": 100, "test": 100},
            "data_hash": "sha256:0123abcd",
        },
        input_example=rows,
    )
