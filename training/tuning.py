"""LightGBM tuned by Optuna: seeded, pruned, on a budget, and judged only on the calibration window (a small
bring-your-own table is judged by cross-validation instead: `training.crossval`).

The test window never reaches this module. Each trial trains on the train window and early-stops on the
calibration window; the trial's value is its best score there. The search space is kept small on purpose:
at most `max_trees` trees of depth `max_depth`, so exact TreeSHAP stays around a millisecond a row when
serving explains a score (docs/methods/risk-models.md).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import optuna
import pandas as pd
from tqdm import tqdm

from core.errors import RetainError
from training.config import TrainConfig

#: LightGBM's name for each objective metric, and whether larger is better
METRICS: dict[str, tuple[str, bool]] = {"auc": ("auc", True), "log_loss": ("binary_logloss", False)}

#: the first trial: a small, strongly regularised model, the kind that did best on simulated telemetry (noisy
#: labels, a few thousand positives), so even a budget of a few trials starts from a good point
DEFAULT_TRIAL: dict[str, Any] = {
    "learning_rate": 0.03,
    "num_leaves": 8,
    "max_depth": 3,
    "min_child_samples": 200,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "lambda_l2": 10.0,
}


@dataclass(frozen=True)
class Tuned:
    """The best trial's booster and what it took to find it."""

    booster: lgb.Booster
    #: LightGBM parameters of the best trial, with the number of trees early stopping kept
    params: dict[str, Any]
    metric: str
    best_value: float
    trials: int
    pruned: int
    seconds: float


def base_params(config: TrainConfig, monotone: list[int] | None, scale_pos_weight: float) -> dict[str, Any]:
    """Fixed parameters: binary objective, deterministic on a fixed thread count, quiet."""
    params: dict[str, Any] = {
        "objective": "binary",
        "metric": METRICS[config.objective_metric][0],
        "first_metric_only": True,
        "verbosity": -1,
        "seed": config.random_seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": config.threads,
        "feature_pre_filter": False,
        "bagging_freq": 1,
    }
    if monotone is not None and any(monotone):
        params["monotone_constraints"] = monotone
        params["monotone_constraints_method"] = "advanced"
    if scale_pos_weight != 1.0:
        params["scale_pos_weight"] = scale_pos_weight
    return params


@dataclass(frozen=True)
class SearchSpace:
    """The bounds Optuna searches within (tree depth is capped by `max_depth`)."""

    learning_rate: tuple[float, float] = (0.02, 0.1)
    num_leaves: tuple[int, int] = (4, 24)
    min_child_samples: tuple[int, int] = (40, 500)
    lambda_l2: tuple[float, float] = (0.1, 50.0)


#: the store's models: deliberately narrow and regularised. On simulated telemetry a wider space (leaves of
#: 10 rows, learning rates to 0.2) found trials that won on the calibration window and lost on the test
#: (rolling over four test months, 20 wide trials ended 0.006 AUC further from the oracle than 8 narrow ones)
STORE_SPACE = SearchSpace()
#: a bring-your-own table: judged by cross-validation rather than one window, and often small and clean, so
#: the space reaches LightGBM's defaults (31 leaves of 20 rows, rate 0.1) and beyond
TABLE_SPACE = SearchSpace(
    learning_rate=(0.02, 0.2), num_leaves=(4, 64), min_child_samples=(5, 300), lambda_l2=(1e-3, 50.0)
)


def suggest(trial: optuna.Trial, config: TrainConfig, space: SearchSpace = STORE_SPACE) -> dict[str, Any]:
    """The search space: learning rate, tree shape (capped), leaf size, subsampling and L2."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", *space.learning_rate, log=True),
        "num_leaves": trial.suggest_int("num_leaves", *space.num_leaves),
        "max_depth": trial.suggest_int("max_depth", 2, config.max_depth),
        "min_child_samples": trial.suggest_int("min_child_samples", *space.min_child_samples, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.5, 1.0),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
        "lambda_l2": trial.suggest_float("lambda_l2", *space.lambda_l2, log=True),
    }


def fit(
    params: dict[str, Any],
    train: tuple[pd.DataFrame, np.ndarray],
    valid: tuple[pd.DataFrame, np.ndarray],
    config: TrainConfig,
    callbacks: list[Callable[[Any], None]] | None = None,
    init_score: np.ndarray | None = None,
) -> tuple[lgb.Booster, float]:
    """One booster of up to `max_trees` trees, early-stopped on `valid`, and its best score there;
    `init_score` is each train row's fixed offset (the hazard learner's interval baselines)."""
    train_set = lgb.Dataset(
        train[0], train[1], init_score=init_score, params={"feature_pre_filter": False, "verbosity": -1}
    )
    valid_set = lgb.Dataset(valid[0], valid[1], reference=train_set)
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=config.max_trees,
        valid_sets=[valid_set],
        valid_names=["valid"],
        callbacks=[lgb.early_stopping(config.early_stopping_rounds, verbose=False), *(callbacks or [])],
    )
    # Keep only the trees early stopping chose: every reader (pickle, shap, save_model) then sees the same
    # model, whatever it does with `best_iteration`.
    metric = params["metric"]
    trimmed = lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
    return trimmed, float(booster.best_score["valid"][metric])


def pruning(trial: optuna.Trial, metric: str, deadline: float | None = None) -> Callable[[Any], None]:
    """Report the validation score each round (a mean over folds under `lgb.cv`); stop a trial the median
    rule says cannot win, or any but the first once `deadline` (a `perf_counter` time) has passed, so a
    time budget holds within a trial rather than only between trials."""

    def callback(env: Any) -> None:
        if deadline is not None and trial.number > 0 and time.perf_counter() > deadline:
            raise optuna.TrialPruned(f"round {env.iteration}: out of time")
        for data_name, name, value, *_ in env.evaluation_result_list:
            if data_name == "valid" and name == metric:
                trial.report(value, env.iteration)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"round {env.iteration}: {name} {value:.4f}")

    return callback


@contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna logs every trial at INFO on stderr; the progress bar says enough."""
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


def tune(
    train: tuple[pd.DataFrame, np.ndarray],
    valid: tuple[pd.DataFrame, np.ndarray],
    config: TrainConfig,
    monotone: list[int] | None,
    label: str,
    init_score: np.ndarray | None = None,
) -> Tuned:
    """Search with a seeded TPE sampler and a median pruner within `n_trials` and/or `timeout_seconds`;
    `init_score` as in `fit`."""
    metric = METRICS[config.objective_metric][0]
    positives = float(train[1].sum())
    weight = (len(train[1]) - positives) / positives if config.imbalance == "scale_pos_weight" else 1.0
    fixed = base_params(config, monotone, weight)
    boosters: dict[int, lgb.Booster] = {}

    def objective(trial: optuna.Trial) -> float:
        booster, score = fit(
            {**fixed, **suggest(trial, config)}, train, valid, config, [pruning(trial, metric)], init_score
        )
        boosters[trial.number] = booster
        return float(score)

    started = time.perf_counter()
    study = run_study(objective, config, label, [DEFAULT_TRIAL], config.timeout_seconds)
    best = study.best_trial
    booster = boosters[best.number]
    return Tuned(
        booster=booster,
        params={**fixed, **best.params, "num_boost_round": booster.current_iteration()},
        metric=config.objective_metric,
        best_value=float(best.value if best.value is not None else np.nan),
        trials=ran(study),
        pruned=sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials),
        seconds=round(time.perf_counter() - started, 2),
    )


def ran(study: optuna.Study) -> int:
    """The trials that ran; an enqueued trial the budget never reached is only waiting."""
    return sum(t.state != optuna.trial.TrialState.WAITING for t in study.trials)


def run_study(
    objective: Callable[[optuna.Trial], float],
    config: TrainConfig,
    label: str,
    first: list[dict[str, Any]],
    timeout: float | None,
) -> optuna.Study:
    """Optuna's study of `objective`: seeded TPE, median pruning, the `first` trials enqueued, within
    `n_trials` and/or `timeout` seconds, with a progress bar; refuses a study that finished no trial. The
    first trial runs whatever the time left: Optuna starts none once `timeout` has passed, and on a busy
    machine what ran before tuning can spend a small table's whole share."""
    maximise = METRICS[config.objective_metric][1]
    budget = config.n_trials
    sampler = optuna.samplers.TPESampler(
        seed=config.random_seed, n_startup_trials=max(3, min(10, (budget or 20) // 2))
    )
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=20)
    with (
        _quiet_optuna(),
        tqdm(total=budget, desc=f"tune {label}", unit="trial", file=sys.stderr, disable=None) as bar,
    ):
        study = optuna.create_study(
            direction="maximize" if maximise else "minimize", sampler=sampler, pruner=pruner
        )
        for params in first:
            study.enqueue_trial(params)

        def progress(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            bar.update()
            if any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
                bar.set_postfix({f"best {config.objective_metric}": f"{study.best_value:.4f}"})

        started = time.perf_counter()
        study.optimize(objective, n_trials=1, callbacks=[progress])
        left = None if timeout is None else timeout - (time.perf_counter() - started)
        if budget != 1 and (left is None or left > 0):
            rest = None if budget is None else budget - 1
            study.optimize(objective, n_trials=rest, timeout=left, callbacks=[progress])
    if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
        raise RetainError("tuning finished no trial within its budget; raise n_trials or timeout_seconds")
    return study
