"""A small bring-your-own table trained as an AutoML tool would: tuned by cross-validation, calibrated out
of fold, then refitted on every row.

Holding out a calibration and a test window costs a table of a few thousand rows 40% of its rows, and a
tuning judged on one window of a few hundred rows chases its noise. Here every row trains the final model;
each trial is judged by the mean over stratified folds (grouped by id, so one id's rows never sit on both
sides), with early stopping in lockstep across the folds choosing the number of trees; the calibrator is
fitted on the out-of-fold predictions, and the figures reported are out of fold too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, cast

import lightgbm as lgb
import numpy as np
import optuna
import pandas as pd
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from training.artifact import Calibrator
from training.calibration import Method, fit_calibrator
from training.config import TrainConfig
from training.tuning import DEFAULT_TRIAL, METRICS, TABLE_SPACE, base_params, pruning, ran, run_study, suggest

#: indices of each fold's (training rows, validation rows)
Folds = list[tuple[np.ndarray, np.ndarray]]

#: the first trial on a table: LightGBM's own defaults (31 leaves of 20 rows, rate 0.1, no subsampling),
#: a strong start on small clean tables, and never stopped by the time budget
LIGHTGBM_DEFAULTS: dict[str, Any] = {
    "learning_rate": 0.1,
    "num_leaves": 31,
    "max_depth": 6,
    "min_child_samples": 20,
    "feature_fraction": 1.0,
    "bagging_fraction": 1.0,
    "lambda_l2": 1e-3,
}
_CLIP = 1e-15


@dataclass(frozen=True)
class CrossValidated:
    """The best trial: its parameters with the tree count the folds chose, and its out-of-fold predictions."""

    #: LightGBM parameters, with `num_boost_round` the number of trees to refit
    params: dict[str, Any]
    #: the best trial's raw probability for each row, from the fold model that did not see it
    oof: np.ndarray
    metric: str
    #: the mean validation score over the folds at the chosen tree count
    best_value: float
    trials: int
    pruned: int
    seconds: float


@dataclass(frozen=True)
class OutOfFoldCalibration:
    """The calibrator chosen by cross-fitted log loss, fitted on every out-of-fold prediction."""

    method: Method
    calibrator: Calibrator
    #: each row's calibrated probability from a calibrator fitted on the other folds: honest figures
    cross_fitted: np.ndarray
    #: each method's cross-fitted log loss, the choice's evidence
    log_loss: dict[Method, float]


def cv_folds(y: np.ndarray, ids: pd.Series, k: int, seed: int) -> Folds:
    """`k` stratified folds, seeded; grouped by id when an id has several rows (snapshots over time)."""
    x = np.zeros(len(y))
    if ids.is_unique:
        return list(StratifiedKFold(k, shuffle=True, random_state=seed).split(x, y))
    grouped = StratifiedGroupKFold(k, shuffle=True, random_state=seed)
    return list(grouped.split(x, y, groups=ids.astype(str).to_numpy()))


def cross_validate(
    params: dict[str, Any],
    x: pd.DataFrame,
    y: np.ndarray,
    folds: Folds,
    config: TrainConfig,
    callbacks: list[Any],
) -> tuple[int, float, np.ndarray]:
    """LightGBM over the folds in lockstep, early-stopped on the mean validation score: the tree count it
    chose, the mean score there and each row's out-of-fold raw probability at that count."""
    data = lgb.Dataset(x, y, params={"feature_pre_filter": False, "verbosity": -1}, free_raw_data=False)
    result = lgb.cv(
        params,
        data,
        num_boost_round=config.max_trees,
        folds=folds,
        callbacks=[lgb.early_stopping(config.early_stopping_rounds, verbose=False), *callbacks],
        return_cvbooster=True,
    )
    booster = cast(lgb.CVBooster, result["cvbooster"])
    scores = cast(list[float], result[f"valid {params['metric']}-mean"])
    trees = booster.best_iteration if booster.best_iteration > 0 else len(scores)
    oof = np.empty(len(y))
    for model, (_, held) in zip(booster.boosters, folds, strict=True):
        oof[held] = model.predict(x.iloc[held], num_iteration=trees)
    return trees, float(scores[trees - 1]), oof


def tune_cv(
    x: pd.DataFrame, y: np.ndarray, folds: Folds, config: TrainConfig, label: str, deadline: float | None
) -> CrossValidated:
    """Optuna over `TABLE_SPACE`, each trial judged by `cross_validate`; no trial but the first runs past
    `deadline` (a `perf_counter` time)."""
    metric = METRICS[config.objective_metric][0]
    positives = float(y.sum())
    weight = (len(y) - positives) / positives if config.imbalance == "scale_pos_weight" else 1.0
    fixed = base_params(config, None, weight)
    found: dict[int, tuple[int, np.ndarray]] = {}

    def objective(trial: optuna.Trial) -> float:
        params = {**fixed, **suggest(trial, config, TABLE_SPACE)}
        trees, score, oof = cross_validate(params, x, y, folds, config, [pruning(trial, metric, deadline)])
        found[trial.number] = (trees, oof)
        return score

    started = time.perf_counter()
    timeout = None if deadline is None else max(deadline - started, 0.0)
    first = {**LIGHTGBM_DEFAULTS, "max_depth": config.max_depth}
    study = run_study(objective, config, label, [first, DEFAULT_TRIAL], timeout)
    best = study.best_trial
    trees, oof = found[best.number]
    return CrossValidated(
        params={**fixed, **best.params, "num_boost_round": trees},
        oof=oof,
        metric=config.objective_metric,
        best_value=float(best.value if best.value is not None else np.nan),
        trials=ran(study),
        pruned=sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials),
        seconds=round(time.perf_counter() - started, 2),
    )


def calibrate_out_of_fold(oof: np.ndarray, y: np.ndarray, folds: Folds) -> OutOfFoldCalibration:
    """Platt or isotonic, whichever has the lower log loss when each fold is calibrated by a fit on the
    others' out-of-fold predictions (isotonic's steps can overfit a few hundred positives; Platt can
    underfit a bent curve); the winner is then fitted on all of them."""
    crossed: dict[Method, np.ndarray] = {}
    for candidate in ("platt", "isotonic"):
        p = np.empty(len(y))
        for fitted, held in folds:
            p[held] = fit_calibrator(candidate, oof[fitted], y[fitted]).predict(oof[held])
        crossed[candidate] = p
    losses = {m: float(log_loss(y, np.clip(p, _CLIP, 1 - _CLIP), labels=[0, 1])) for m, p in crossed.items()}
    method = min(crossed, key=lambda m: losses[m])
    return OutOfFoldCalibration(method, fit_calibrator(method, oof, y), crossed[method], dict(losses))


def refit(
    params: dict[str, Any], x: pd.DataFrame, y: np.ndarray, init_score: np.ndarray | None = None
) -> lgb.Booster:
    """The final booster: the chosen parameters and tree count, trained on every row (`init_score`: each
    row's fixed offset, as in tuning)."""
    rounds = int(params["num_boost_round"])
    fixed = {k: v for k, v in params.items() if k != "num_boost_round"}
    data = lgb.Dataset(x, y, init_score=init_score, params={"feature_pre_filter": False, "verbosity": -1})
    return lgb.train(fixed, data, num_boost_round=rounds)
