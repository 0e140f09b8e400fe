"""The run's figures as PNG files for MLflow: ROC, precision-recall, reliability, lift, SHAP beeswarm and bar.

Curves compare every candidate on the test window. The SHAP figures explain the model on a seeded sample of
test rows with `shap.TreeExplainer`, whose values are LightGBM's exact `pred_contrib` (the numbers serving
turns into reasons).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import shap
from matplotlib.figure import Figure
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from training.artifact import ScoringModel
from training.calibration import expected_calibration_error, reliability

#: candidate -> (outcomes, probabilities): the oracle may cover fewer rows than the others
Curves = Mapping[str, tuple[np.ndarray, np.ndarray]]


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def roc(candidates: Curves, path: Path) -> Path:
    figure, ax = plt.subplots(figsize=(5.5, 5))
    for name, (y, p) in candidates.items():
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y, p):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, test window")
    ax.legend(loc="lower right")
    return _save(figure, path)


def precision_recall(candidates: Curves, path: Path) -> Path:
    figure, ax = plt.subplots(figsize=(5.5, 5))
    for name, (y, p) in candidates.items():
        precision, recall, _ = precision_recall_curve(y, p)
        ax.plot(recall, precision, label=f"{name} (AP {average_precision_score(y, p):.3f})")
    ax.axhline(
        float(np.mean(candidates["model"][0])), color="grey", linestyle=":", linewidth=1, label="base rate"
    )
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall, test window")
    ax.legend(loc="upper right")
    return _save(figure, path)


def calibration(y: np.ndarray, calibrated: np.ndarray, raw: np.ndarray, path: Path) -> Path:
    """Reliability diagram of the served (calibrated) probability and the booster's raw one, with the share
    of rows per bin below."""
    figure, (ax, counts) = plt.subplots(
        2, 1, figsize=(5.5, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfect")
    for name, p in (("calibrated", calibrated), ("raw booster", raw)):
        predicted, observed, n = reliability(y, p)
        filled = n > 0
        ece = expected_calibration_error(y, p)
        ax.plot(predicted[filled], observed[filled], marker="o", label=f"{name} (ECE {ece:.4f})")
        counts.bar(
            np.arange(10)[filled] / 10 + (0.03 if name == "raw booster" else 0.0),
            n[filled] / len(p),
            width=0.03,
            align="edge",
            label=name,
        )
    ax.set(ylabel="observed frequency", title="Reliability, test window (10 bins)")
    ax.legend(loc="upper left")
    counts.set(xlabel="predicted probability", ylabel="share of rows", yscale="log")
    return _save(figure, path)


def lift(candidates: Curves, path: Path) -> Path:
    """Lift over the base rate when contacting the top x% of accounts by each score."""
    figure, ax = plt.subplots(figsize=(5.5, 5))
    shares = np.linspace(0.01, 1.0, 100)
    for name, (y, p) in candidates.items():
        base = float(np.mean(y))
        order = np.argsort(-p, kind="stable")
        caught = np.cumsum(np.asarray(y)[order])
        k = np.maximum(1, np.round(shares * len(p)).astype(int))
        ax.plot(shares, caught[k - 1] / k / base, label=name)
    ax.axhline(1.0, color="grey", linestyle=":", linewidth=1)
    ax.axvline(0.1, color="grey", linestyle="--", linewidth=0.8)
    ax.set(
        xlabel="share of accounts contacted (highest score first)", ylabel="lift", title="Lift, test window"
    )
    ax.legend(loc="upper right")
    return _save(figure, path)


def shap_figures(model: ScoringModel, sample: pd.DataFrame, folder: Path) -> dict[str, Path]:
    """Beeswarm and mean-|SHAP| bar charts (margin space); categories are coloured by their level's code."""
    matrix = model.matrix(sample)
    explainer = shap.TreeExplainer(model.booster)
    with warnings.catch_warnings():
        # misleading for LightGBM: the values are one (rows, features) array
        warnings.filterwarnings("ignore", message=".*output has changed to a list", category=UserWarning)
        values = np.asarray(explainer.shap_values(matrix))
    shown = pd.DataFrame(
        {c: matrix[c].cat.codes.replace(-1, np.nan) if c in model.categories else matrix[c] for c in matrix},
        index=matrix.index,
    ).astype(float)
    explanation = shap.Explanation(
        values=values,
        base_values=np.full(len(matrix), float(np.ravel(explainer.expected_value)[0])),
        data=shown.to_numpy(),
        feature_names=list(matrix.columns),
    )
    out: dict[str, Path] = {}
    for name, draw in (("shap_beeswarm", shap.plots.beeswarm), ("shap_bar", shap.plots.bar)):
        draw(explanation, max_display=15, show=False)
        figure = plt.gcf()
        figure.set_size_inches(8, 6.5)
        out[name] = _save(figure, folder / f"{name}.png")
    return out


def write_plots(
    folder: Path, candidates: Curves, raw: np.ndarray, model: ScoringModel, sample: pd.DataFrame
) -> dict[str, Path]:
    """All figures of a run into `folder`; `raw` is the booster's uncalibrated probability on the model's
    rows. Returns name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    y, calibrated = candidates["model"]
    return {
        "roc": roc(candidates, folder / "roc.png"),
        "pr": precision_recall(candidates, folder / "pr.png"),
        "calibration": calibration(y, calibrated, raw, folder / "calibration.png"),
        "lift": lift(candidates, folder / "lift.png"),
        **shap_figures(model, sample, folder),
    }
