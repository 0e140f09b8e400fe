"""A training run end to end: training set, tuning, calibration, evaluation against the baselines, figures.

`train_model` trains the churn or expansion model from a store; `train_table` trains on a bring-your-own
snapshot table: a large one through the same split pipeline, a small one by cross-validation and a refit on
every row (`training.crossval`). Both return a TrainResult for tracking and the registry; neither touches
MLflow.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import RetainError
from core.settings import Settings, get_settings
from features.definitions import monotone_constraints
from store.delta import Store
from training.artifact import Kind, ScoringModel
from training.calibration import expected_calibration_error, fit_calibrator
from training.config import TrainConfig
from training.crossval import CrossValidated, Folds, calibrate_out_of_fold, cv_folds, refit, tune_cv
from training.dataset import (
    TrainingSet,
    WindowName,
    read_table,
    store_training_set,
    table_training_set,
)
from training.evaluate import (
    compare,
    health_probability,
    logistic_baseline,
    logistic_predict,
    slice_metrics,
)
from training.hazard import hazard_rows
from training.labels import TARGETS, Target
from training.logodds import expit
from training.plots import write_plots
from training.result import TrainResult
from training.tuning import Tuned, tune

CANDIDATES = ("model", "health", "logistic", "oracle")
#: a small table's tuning stops at this share of its time budget: calibration, the refit on every row, the
#: baseline and the figures take the rest
TUNING_SHARE = 0.7


def load_truth(folder: Path, target: Target) -> pd.DataFrame:
    """The simulator's true probabilities (account_id, cutoff, oracle) from its output folder (or the
    `truth` folder inside it)."""
    path = next(
        (
            p
            for p in (folder / "truth" / "probabilities.parquet", folder / "probabilities.parquet")
            if p.exists()
        ),
        None,
    )
    if path is None:
        raise RetainError(f"--truth: no truth/probabilities.parquet under {folder}")
    column = {"churn": "p_churn", "expansion": "p_expand"}[target]
    truth = pd.read_parquet(path, columns=["account_id", "cutoff", column]).rename(columns={column: "oracle"})
    truth["cutoff"] = pd.to_datetime(truth["cutoff"], utc=True).astype("datetime64[us, UTC]")
    return truth


def train_model(
    store: Store, settings: Settings, kind: str, config: TrainConfig, *, name: str | None = None
) -> TrainResult[ScoringModel]:
    """Train, calibrate and evaluate the `kind` model (churn or expansion) on the store's feature table;
    the model is named `name` (default: the kind)."""
    if kind not in TARGETS:
        raise RetainError(f"--model: expected one of {', '.join(TARGETS)}, got {kind!r}")
    target: Target = "churn" if kind == "churn" else "expansion"
    config = config.resolved(settings)
    started = time.perf_counter()
    data = store_training_set(store, settings, target, config)
    truth = load_truth(config.truth_dir, target) if config.truth_dir is not None else None
    return fit_and_evaluate(data, name or kind, target, config, truth, started=started)


def train_table(
    path: Path,
    label: str,
    id_col: str,
    time_col: str | None,
    name: str,
    config: TrainConfig,
    *,
    settings: Settings | None = None,
) -> TrainResult[ScoringModel]:
    """Train the same pipeline on a prepared snapshot table (CSV or Parquet) whose label column is 0/1,
    true/false or yes/no; the model is registered as `name`."""
    config = config.resolved(settings or get_settings())
    if config.learner == "hazard":
        raise RetainError("learner hazard models churn from a store; a table has no event times")
    started = time.perf_counter()
    data = table_training_set(read_table(path), label, id_col, time_col, config)
    data.lineage["table"] = str(path.resolve())
    if data.part("test").empty:
        return fit_cross_validated(data, name, config, started)
    if config.timeout_seconds is not None:  # the budget is the whole run's, as for a small table
        config = config.model_copy(update={"timeout_seconds": TUNING_SHARE * config.timeout_seconds})
    return fit_and_evaluate(data, name, "table", config, None, started=started)


def fit_cross_validated(
    data: TrainingSet, name: str, config: TrainConfig, started: float
) -> TrainResult[ScoringModel]:
    """A small table's model: tuned by cross-validation within `TUNING_SHARE` of `timeout_seconds`,
    calibrated out of fold, refitted on every row; the figures are out of fold, beside a logistic
    regression fitted on the same folds."""
    rows, x, y = data.part("train"), data.matrix("train"), data.labels("train")
    folds = cv_folds(y, rows[data.id_col], config.cv_folds, config.random_seed)
    # the baseline first: its fits then count against the tuning's share of the budget
    logistic = _logistic_out_of_fold(rows, y, data, folds, config.random_seed)
    deadline = None if config.timeout_seconds is None else started + TUNING_SHARE * config.timeout_seconds
    tuned = tune_cv(x, y, folds, config, name, deadline)
    calibration = calibrate_out_of_fold(tuned.oof, y, folds)
    model = ScoringModel(
        name=name,
        kind="table",
        booster=refit(tuned.params, x, y),
        features=list(data.features),
        categories=data.categories,
        calibrator=calibration.calibrator,
        horizon_days=config.horizon,
        texts=ScoringModel.texts_for(list(data.features)),
        ranges=_ranges(rows, data),
    )
    candidates = {"model": calibration.cross_fitted, "health": None, "logistic": logistic}
    metrics: dict[str, Any] = {
        **compare(y, candidates),
        "oracle": None,
        "evaluation": "cross_validation",
        "folds": len(folds),
        "rows_refitted": len(y),
        "ece_raw": expected_calibration_error(y, tuned.oof),
        "slices": slice_metrics(rows, y, candidates, config.slices),
        "calibration": calibration.method,
        "calibration_log_loss": calibration.log_loss,
        "windows": data.lineage["windows"],
        "tuning": _tuning(tuned, model.booster.num_trees()),
    }
    metrics["ece"] = metrics["model"]["ece"]
    plots = _plots(rows, y, model, candidates, tuned.oof, config, name) if config.plots else {}
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    return TrainResult(
        model=model,
        params=_params(tuned.params, config),
        metrics=metrics,
        flat_metrics=_flat(metrics, "cv"),
        plots=plots,
        lineage=_lineage(data, name, "table", config, None),
        input_example=rows[data.features].head(5).reset_index(drop=True),
    )


def _logistic_out_of_fold(
    rows: pd.DataFrame, y: np.ndarray, data: TrainingSet, folds: Folds, seed: int
) -> np.ndarray:
    """The logistic baseline's out-of-fold probabilities on the model's folds."""
    categorical = list(data.categories)
    out = np.empty(len(y))
    for fitted, held in folds:
        model = logistic_baseline(rows.iloc[fitted], y[fitted], data.features, categorical, seed)
        out[held] = logistic_predict(model, rows.iloc[held], data.features, categorical)
    return out


def _tuning(tuned: Tuned | CrossValidated, trees: int) -> dict[str, Any]:
    return {
        "metric": tuned.metric,
        "best_value": tuned.best_value,
        "trials": tuned.trials,
        "pruned": tuned.pruned,
        "trees": trees,
        "seconds": tuned.seconds,
    }


def _ranges(train: pd.DataFrame, data: TrainingSet) -> dict[str, tuple[float, float]]:
    """Min and max of each numeric feature in the train window (all-missing columns have no range)."""
    ranges: dict[str, tuple[float, float]] = {}
    for name in data.features:
        if name in data.categories:
            continue
        values = pd.to_numeric(train[name], errors="coerce")
        if values.notna().any():
            ranges[name] = (float(values.min()), float(values.max()))
    return ranges


def fit_and_evaluate(
    data: TrainingSet,
    name: str,
    kind: Kind,
    config: TrainConfig,
    truth: pd.DataFrame | None = None,
    *,
    started: float | None = None,
) -> TrainResult[ScoringModel]:
    """Tune on train (judged on calibration), calibrate on calibration, evaluate on test. `config` must be
    resolved; `truth` (account_id, cutoff, oracle) adds the oracle; `started` is when the run began (for
    the reported seconds, default now). Monotone constraints apply to churn only: the catalogue's
    directions are churn directions."""
    started = time.perf_counter() if started is None else started
    test, y_test = data.part("test"), data.labels("test")
    constraints = monotone_constraints(data.features) if kind == "churn" and config.monotone else None
    model, tuned = _fit_model(data, name, kind, config, constraints)
    raw_test = expit(model.margin(test))
    served = model.predict(test)
    candidates = _candidates(data, served, kind, config)
    metrics: dict[str, Any] = {
        **compare(y_test, candidates),
        "oracle": _oracle_metrics(test, y_test, served, truth),
        "ece_raw": expected_calibration_error(y_test, raw_test),
        "slices": slice_metrics(test, y_test, candidates, config.slices),
        "calibration": config.calibration,
        "windows": data.lineage["windows"],
        "learner": config.learner,
        "tuning": _tuning(tuned, model.booster.num_trees()),
    }
    metrics["ece"] = metrics["model"]["ece"]
    plots = _store_plots(data, model, candidates, raw_test, config, truth, name) if config.plots else {}
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    return TrainResult(
        model=model,
        params=_params(tuned.params, config),
        metrics=metrics,
        flat_metrics=_flat(metrics, "test"),
        plots=plots,
        lineage=_lineage(data, name, kind, config, constraints),
        input_example=test[data.features].head(5).reset_index(drop=True),
    )


def _fit_model(
    data: TrainingSet, name: str, kind: Kind, config: TrainConfig, constraints: list[int] | None
) -> tuple[ScoringModel, Tuned]:
    """The tuned booster with its encoders and reason texts, calibrated on the calibration window."""
    if config.learner == "hazard" and kind != "churn":
        raise RetainError(f"learner hazard models churn from a store; a {kind} model has no event times")
    y_cal = data.labels("calibration")
    x, y, init_score = _learner_rows(data, ["train"], config)
    tuned = tune((x, y), (data.matrix("calibration"), y_cal), config, constraints, name, init_score)
    model = ScoringModel(
        name=name,
        kind=kind,
        booster=tuned.booster,
        features=list(data.features),
        categories=data.categories,
        calibrator=None,
        horizon_days=config.horizon,
        texts=ScoringModel.texts_for(list(data.features)),
        ranges=_ranges(data.part("train"), data),
    )
    model.calibrator = fit_calibrator(config.calibration, model.predict(data.part("calibration")), y_cal)
    if config.refit_on_calibration:
        # calibrated above, out of sample: the refitted booster has seen the calibration window's labels
        refit_x, refit_y, refit_init = _learner_rows(data, ["train", "calibration"], config)
        trees = round(tuned.booster.num_trees() * len(refit_y) / len(y))
        params = {**tuned.params, "num_boost_round": min(config.max_trees, trees)}
        model.booster = refit(params, refit_x, refit_y, refit_init)
    return model, tuned


def _learner_rows(
    data: TrainingSet, windows: list[WindowName], config: TrainConfig
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray | None]:
    """The windows' rows as the learner fits them: the model matrix and 0/1 labels for the classifier;
    person-period rows, their events and interval baselines for the hazard learner."""
    x = pd.concat([data.matrix(w) for w in windows])
    if config.learner == "classifier":
        return x, np.concatenate([data.labels(w) for w in windows]), None
    days = np.concatenate([data.days_to_event(w) for w in windows])
    return hazard_rows(x, days, config.horizon, config.hazard_intervals)


def _fitted_rows(data: TrainingSet, config: TrainConfig) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows the final model (and the logistic baseline beside it) is fitted on: the train window, and
    the calibration window too under `refit_on_calibration`."""
    windows: list[WindowName] = ["train", "calibration"] if config.refit_on_calibration else ["train"]
    return pd.concat([data.part(w) for w in windows]), np.concatenate([data.labels(w) for w in windows])


def _candidates(
    data: TrainingSet, served: np.ndarray, kind: Kind, config: TrainConfig
) -> dict[str, np.ndarray | None]:
    """Test-window probabilities of the model (`served`) and of the baselines it must beat: the health
    formula (None for a table) and a logistic regression on the same features."""
    calibration, test = data.part("calibration"), data.part("test")
    categorical = list(data.categories)
    logistic = logistic_baseline(*_fitted_rows(data, config), data.features, categorical, config.random_seed)
    return {
        "model": served,
        "health": health_probability(calibration, test, data.labels("calibration"), kind),
        "logistic": logistic_predict(logistic, test, data.features, categorical),
    }


def _store_plots(
    data: TrainingSet,
    model: ScoringModel,
    candidates: dict[str, np.ndarray | None],
    raw_test: np.ndarray,
    config: TrainConfig,
    truth: pd.DataFrame | None,
    name: str,
) -> dict[str, Path]:
    """The test window's figures, with the oracle's curves on the rows the truth covers."""
    test, y_test = data.part("test"), data.labels("test")
    curves = {k: (y_test, v) for k, v in candidates.items() if v is not None}
    if truth is not None:
        covered, oracle = truth_covered(test, truth)
        curves["oracle"] = (y_test[covered], oracle[covered])
    return _figures(test, curves, raw_test, model, config, name)


def _plots(
    rows: pd.DataFrame,
    y: np.ndarray,
    model: ScoringModel,
    candidates: dict[str, np.ndarray | None],
    raw: np.ndarray,
    config: TrainConfig,
    name: str,
) -> dict[str, Path]:
    """The figures of the rows the candidates were judged on (a small table's: every row, out of fold)."""
    curves = {k: (y, v) for k, v in candidates.items() if v is not None}
    return _figures(rows, curves, raw, model, config, name)


def _figures(
    rows: pd.DataFrame,
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    raw: np.ndarray,
    model: ScoringModel,
    config: TrainConfig,
    name: str,
) -> dict[str, Path]:
    """The curves and the SHAP figures on a seeded sample of `rows`, written to `config.plots_dir` or a
    temporary folder."""
    folder = config.plots_dir or Path(tempfile.mkdtemp(prefix=f"retain-{name}-"))
    sample = rows.sample(min(config.shap_sample, len(rows)), random_state=config.random_seed)
    return write_plots(folder, curves, raw, model, sample)


def _lineage(
    data: TrainingSet, name: str, kind: Kind, config: TrainConfig, constraints: list[int] | None
) -> dict[str, Any]:
    """The training set's lineage, plus the model's inputs and which of them are constrained monotone."""
    return {
        **data.lineage,
        "model": name,
        "kind": kind,
        "features": list(data.features),
        "categorical": list(data.categories),
        "monotone": {
            "increasing": [f for f, c in zip(data.features, constraints or [], strict=False) if c > 0],
            "decreasing": [f for f, c in zip(data.features, constraints or [], strict=False) if c < 0],
        },
        "truth": None if config.truth_dir is None else str(config.truth_dir.resolve()),
    }


def truth_covered(rows: pd.DataFrame, truth: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Which rows the truth covers, and the oracle probability (NaN elsewhere): the simulator records
    no truth for an account that lapsed at its renewal date just before the cutoff."""
    joined = rows[["account_id", "cutoff"]].merge(truth, on=["account_id", "cutoff"], how="left")
    oracle = joined["oracle"].to_numpy(dtype=float)
    return ~np.isnan(oracle), oracle


def _oracle_metrics(
    test: pd.DataFrame, y: np.ndarray, model: np.ndarray, truth: pd.DataFrame | None
) -> dict[str, Any] | None:
    """The oracle's metrics on the test rows it covers, with the model's AUC on those same rows."""
    if truth is None:
        return None
    covered, oracle = truth_covered(test, truth)
    like_for_like = compare(y[covered], {"oracle": oracle[covered], "model": model[covered]})
    ours = like_for_like["model"] or {}
    return {
        **(like_for_like["oracle"] or {}),
        "rows_without_truth": int((~covered).sum()),
        **{f"model_{key}_same_rows": ours.get(key) for key in ("auc", "pr_auc", "lift_top_decile")},
    }


def _params(lightgbm: dict[str, Any], config: TrainConfig) -> dict[str, Any]:
    """LightGBM's parameters as tuned, then the run's config under `config.`; lists as text (MLflow
    params are flat)."""
    settings = {
        f"config.{k}": ",".join(map(str, v)) if isinstance(v, list) else v
        for k, v in config.model_dump(mode="json").items()
    }
    tuned = {k: ",".join(map(str, v)) if isinstance(v, list) else v for k, v in lightgbm.items()}
    return {**tuned, **settings}


def _flat(metrics: dict[str, Any], judged: str) -> dict[str, float]:
    """name -> number for MLflow, `judged` naming the rows: `test_auc` for the model on the test window
    (`cv_auc` out of fold), `logistic_test_auc` for a baseline, slices as `test_auc_tier_enterprise` (and
    `test_pr_auc_...`, `test_lift_top_decile_...`), plus ECE and tuning figures."""
    flat: dict[str, float] = {}
    for candidate in CANDIDATES:
        prefix = judged if candidate == "model" else f"{candidate}_{judged}"
        for key, value in (metrics.get(candidate) or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value):
                flat[f"{prefix}_{key}"] = float(value)
    for column, values in metrics["slices"].items():
        for value, by_candidate in values.items():
            for key in ("auc", "pr_auc", "lift_top_decile"):
                figure = (by_candidate.get("model") or {}).get(key)
                if figure is not None:
                    flat[f"{judged}_{key}_{column}_{value}"] = float(figure)
    flat[f"{judged}_ece_raw"] = float(metrics["ece_raw"])
    flat["tuning_best_value"] = float(metrics["tuning"]["best_value"])
    flat["tuning_trials"] = float(metrics["tuning"]["trials"])
    flat["train_seconds"] = float(metrics["seconds"])
    return flat
