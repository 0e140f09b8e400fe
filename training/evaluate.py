"""Evaluation on the test window, side by side: the model against the health formula, a logistic regression
and, on simulated data, the oracle (the simulator's true probability).

Every metric is a pure function of outcomes and probabilities. Top-decile figures split ties evenly (the
health score has many), so they do not depend on row order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from training.artifact import Kind
from training.calibration import expected_calibration_error, fit_calibrator
from training.dataset import HEALTH

#: metrics kept per slice (the full set is reported for the whole test window)
SLICE_METRICS = ("rows", "positives", "auc", "pr_auc", "brier", "lift_top_decile")
_CLIP = 1e-15


def top_share(y: np.ndarray, p: np.ndarray, share: float = 0.1) -> tuple[float, float]:
    """Lift and recall among the `share` highest-scored rows, with rows tied at the threshold counted
    fractionally (the expected value under a random tie-break)."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    k = max(1, round(share * len(p)))
    threshold = np.sort(p)[::-1][k - 1]
    above, tied = p > threshold, p == threshold
    caught = y[above].sum() + y[tied].sum() * (k - above.sum()) / tied.sum()
    positives = y.sum()
    if positives == 0:
        return float("nan"), float("nan")
    return float((caught / k) / (positives / len(y))), float(caught / positives)


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """ROC-AUC, PR-AUC, Brier, log loss, top-decile lift and recall, ECE (10 bins); AUCs are None when the
    rows hold one class only."""
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=float)
    both = 0 < y.sum() < len(y)
    lift, recall = top_share(y, p)
    return {
        "rows": len(y),
        "positives": int(y.sum()),
        "base_rate": float(y.mean()) if len(y) else None,
        "auc": float(roc_auc_score(y, p)) if both else None,
        "pr_auc": float(average_precision_score(y, p)) if both else None,
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, np.clip(p, _CLIP, 1 - _CLIP), labels=[0, 1])),
        "lift_top_decile": None if np.isnan(lift) else lift,
        "recall_top_decile": None if np.isnan(recall) else recall,
        "ece": expected_calibration_error(y, p),
    }


def compare(y: np.ndarray, candidates: Mapping[str, np.ndarray | None]) -> dict[str, dict[str, Any] | None]:
    """The metrics of each candidate on the same rows; a missing candidate (None) stays None."""
    return {name: None if p is None else binary_metrics(y, p) for name, p in candidates.items()}


def slice_metrics(
    rows: pd.DataFrame, y: np.ndarray, candidates: Mapping[str, np.ndarray | None], columns: Sequence[str]
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per slice column and value (e.g. tier = enterprise): each candidate's main metrics."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for column in columns:
        if column not in rows.columns:
            continue
        values = rows[column].astype(object).where(rows[column].notna(), "(missing)").to_numpy()
        out[column] = {}
        for value in sorted(set(values), key=str):
            mask = values == value
            out[column][str(value)] = {
                name: None
                if p is None
                else {k: v for k, v in binary_metrics(y[mask], p[mask]).items() if k in SLICE_METRICS}
                for name, p in candidates.items()
            }
    return out


def health_risk(health_score: pd.Series) -> np.ndarray:
    """The health formula read as a churn risk: (100 - health) / 100, so higher means riskier."""
    out: np.ndarray = ((100.0 - health_score.to_numpy(dtype=float)) / 100.0).clip(0.0, 1.0)
    return out


def health_probability(
    calibration: pd.DataFrame, rows: pd.DataFrame, y_cal: np.ndarray, kind: Kind
) -> np.ndarray | None:
    """The health formula as a probability for `rows` (docs/domain.md): low health is churn risk, high
    health an expansion opportunity. It ranks but is no probability, so it is Platt-scaled on the
    calibration window's rows and labels before Brier, log loss and ECE are read (monotone: its rank
    metrics are the raw score's). None for a table model, or rows without a health score."""
    if kind == "table" or HEALTH not in rows.columns:
        return None
    risk = health_risk if kind == "churn" else (lambda h: 1.0 - health_risk(h))
    scaled = fit_calibrator("platt", risk(calibration[HEALTH]), y_cal)
    return scaled.predict(risk(rows[HEALTH]))


def logistic_baseline(
    train: pd.DataFrame, y: np.ndarray, features: Sequence[str], categorical: Sequence[str], seed: int
) -> Pipeline:
    """The classic baseline, fitted on the train window: median-impute (with missing flags) and scale the
    numbers, one-hot the categories, L2 logistic regression."""
    numeric = [f for f in features if f not in categorical]
    prepare = ColumnTransformer(
        [
            (
                "numeric",
                make_pipeline(
                    SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                    StandardScaler(),
                ),
                numeric,
            ),
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="(missing)", keep_empty_features=True),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                list(categorical),
            ),
        ]
    )
    model = Pipeline(
        [("prepare", prepare), ("classify", LogisticRegression(C=0.1, max_iter=2_000, random_state=seed))]
    )
    return model.fit(_logistic_input(train, features, categorical), y)


def logistic_predict(
    model: Pipeline, rows: pd.DataFrame, features: Sequence[str], categorical: Sequence[str]
) -> np.ndarray:
    out: np.ndarray = model.predict_proba(_logistic_input(rows, features, categorical))[:, 1]
    return out


def _logistic_input(rows: pd.DataFrame, features: Sequence[str], categorical: Sequence[str]) -> pd.DataFrame:
    """Numbers as float (NaN for missing); categories as strings with NaN for missing (what the imputer
    expects)."""
    frame = rows[list(features)].copy()
    for name in features:
        if name in categorical:
            frame[name] = frame[name].map(lambda v: np.nan if v is None or v != v else str(v)).astype(object)
        else:
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    return frame
