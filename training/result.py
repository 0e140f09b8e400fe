"""What a training run hands to tracking and the registry: the model, and the evidence about it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import pandas as pd

#: the fitted model: `training.artifact.ScoringModel` or `training.causal.uplift.UpliftModel`
Model = TypeVar("Model")


@dataclass
class TrainResult(Generic[Model]):
    model: Model
    #: tuned hyper-parameters and the run's configuration, as logged to MLflow
    params: dict[str, Any]
    #: the JSON summary: metrics per candidate ("model", "health", "logistic", "oracle"), per slice, ECE
    metrics: dict[str, Any]
    #: the same, flattened to name -> number for MLflow (e.g. "test_auc", "health_test_auc")
    flat_metrics: dict[str, float]
    #: PNG files written by the run (roc, pr, calibration, lift, shap_beeswarm, shap_bar)
    plots: dict[str, Path]
    #: where the data came from: feature service, cutoffs, row counts per split, a hash of the training set
    lineage: dict[str, Any]
    #: a few feature rows, for the MLflow signature and input example
    input_example: pd.DataFrame
