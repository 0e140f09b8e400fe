"""The models: train from the store or a table, load, promote through the gate, judge the uplift policies,
roll back; and the retraining loop a scheduler runs over them."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from core.errors import RetainError
from core.settings import Settings
from retain.api.common import Json, StoreLike, open_store, settings_or_default
from retain.api.data import build_features
from retain.api.reports import monitor
from retain.api.store import compacted
from store.delta import Store

if TYPE_CHECKING:
    from products.monitor.run import MonitorFiles
    from registry.models import VersionInfo
    from registry.promotion import PolicyEvaluation, Promotion, Rollback
    from registry.tracking import Registration
    from training.artifact import ScoringModel
    from training.config import TrainConfig, UpliftConfig
    from training.result import TrainResult


#: what `train` fits from the store's feature table
ModelKind = Literal["churn", "expansion", "uplift"]
Config = TypeVar("Config", "TrainConfig", "UpliftConfig")


@dataclass(frozen=True)
class Trained:
    """A trained model as registered: the name, its evaluation (the run's `metrics.json` in MLflow) and the
    registered version, which is the new challenger (and champion if it is the first)."""

    model: str
    metrics: dict[str, Json]
    mlflow: Registration


def train(
    kind: ModelKind,
    *,
    store: StoreLike = None,
    settings: Settings | None = None,
    config: Path | TrainConfig | UpliftConfig | None = None,
    truth: Path | None = None,
    name: str | None = None,
) -> Trained:
    """Train the `kind` model on the store's features (tuned, calibrated and evaluated against the
    baselines; for uplift, one DR-learner per action), log it to MLflow and register it as `name`
    (default: the kind). `config` is a YAML file or a config object; `truth`, a simulator output folder,
    adds the oracle to the evaluation."""
    # deferred: LightGBM, Optuna and MLflow
    from training.config import TrainConfig, UpliftConfig
    from training.run import train_model

    settings = settings_or_default(settings)
    where, registered_as = compacted(store, settings), name or kind
    if kind == "uplift":
        from training.causal.run import train_uplift  # deferred: the causal estimators

        uplift = _config(config, UpliftConfig, truth)
        return _register(where, settings, train_uplift(where, settings, uplift, name=registered_as))
    run_config = _config(config, TrainConfig, truth)
    with _plots_folder(run_config) as run_config:
        return _register(where, settings, train_model(where, settings, kind, run_config, name=name))


def train_table(
    table: Path,
    *,
    label: str,
    id_column: str,
    name: str,
    time_column: str | None = None,
    store: StoreLike = None,
    settings: Settings | None = None,
    config: Path | TrainConfig | None = None,
    time_budget: float | None = None,
) -> Trained:
    """Train a model on a prepared snapshot table (CSV or Parquet) whose `label` is 0/1, true/false or
    yes/no: by cross-validation and a refit on every row when small, else split in time by `time_column`
    if given; registered as `name`. `time_budget` (seconds) replaces the config's tuning budget, and a
    small table's whole training keeps within it."""
    # deferred: LightGBM, Optuna and MLflow
    from training.config import TrainConfig
    from training.run import train_table as fit_table

    settings = settings_or_default(settings)
    run_config = _config(config, TrainConfig, None)
    if time_budget is not None:
        run_config = run_config.model_copy(update={"timeout_seconds": time_budget, "n_trials": None})
    with _plots_folder(run_config) as run_config:
        result = fit_table(Path(table), label, id_column, time_column, name, run_config, settings=settings)
        return _register(open_store(store, settings), settings, result)


def _config(
    config: Path | TrainConfig | UpliftConfig | None, schema: type[Config], truth: Path | None
) -> Config:
    from training.config import load_config  # deferred: with the training layer

    overrides = {"truth_dir": truth} if truth is not None else {}
    if config is None or isinstance(config, Path):
        return load_config(config, schema, **overrides)
    if not isinstance(config, schema):
        raise RetainError(f"config: expected a {schema.__name__}, got {type(config).__name__}")
    return config.model_copy(update=overrides)


@contextlib.contextmanager
def _plots_folder(config: TrainConfig) -> Iterator[TrainConfig]:
    """The run's figures go to a scratch folder unless the config names one: they only need to live
    until MLflow has copied them."""
    if config.plots_dir is not None:
        yield config
        return
    with tempfile.TemporaryDirectory(prefix="retain-plots-") as scratch:
        yield config.model_copy(update={"plots_dir": Path(scratch)})


def _register(store: Store, settings: Settings, result: TrainResult[Any]) -> Trained:
    from registry.tracking import log_and_register  # deferred: MLflow

    name = result.model.name
    return Trained(model=name, metrics=result.metrics, mlflow=log_and_register(store, settings, result, name))


def load_model(
    ref: str = "churn@champion", *, store: StoreLike = None, settings: Settings | None = None
) -> tuple[ScoringModel, VersionInfo]:
    """A registered scoring model (`NAME`, `NAME@alias` or `NAME/version`) and the version it resolved to."""
    from registry.models import load_scoring_model  # deferred: MLflow

    settings = settings_or_default(settings)
    return load_scoring_model(open_store(store, settings), settings, ref)


def promote(
    name: str = "churn",
    *,
    store: StoreLike = None,
    settings: Settings | None = None,
    force: bool = False,
    reason: str | None = None,
) -> Promotion:
    """Move `name@champion` to the challenger if it holds up on the latest out-of-time window (or with
    `force` and a recorded `reason`); the decision says which."""
    from products import alerting
    from registry.promotion import promote as promote_model  # deferred: MLflow

    settings = settings_or_default(settings)
    where = open_store(store, settings)
    promotion = promote_model(where, settings, name, force=force, reason=reason)
    return promotion.model_copy(update={"alerts": alerting.record_champion(where, settings, promotion)})


def evaluate_policies(
    name: str = "uplift", *, weeks: int = 12, store: StoreLike = None, settings: Settings | None = None
) -> PolicyEvaluation:
    """The uplift champion's policy (and the challenger's, if another version), the rules' and the riskiest
    first's, each judged on the store's latest `weeks` from the log alone (DR and self-normalised IPW)."""
    from registry.promotion import evaluate_policies as evaluate  # deferred: MLflow

    settings = settings_or_default(settings)
    return evaluate(open_store(store, settings), settings, name, weeks)


def rollback(name: str = "churn", *, store: StoreLike = None, settings: Settings | None = None) -> Rollback:
    """Restore the previous `name@champion`."""
    from products import alerting
    from registry.promotion import rollback as rollback_model  # deferred: MLflow

    settings = settings_or_default(settings)
    where = open_store(store, settings)
    rolled = rollback_model(where, settings, name)
    return rolled.model_copy(update={"alerts": alerting.record_champion(where, settings, rolled)})


@dataclass(frozen=True)
class Retrained:
    """One turn of the loop: the feature version, each model's training and promotion decision, and the
    monitor's files. `refused` names the models whose gate kept the champion."""

    features_version: int | None
    trained: list[Trained]
    promotions: list[Promotion]
    monitor: MonitorFiles
    refused: list[str]


def retrain(
    out: Path,
    *,
    store: StoreLike = None,
    settings: Settings | None = None,
    config: Path | None = None,
    uplift_config: Path | None = None,
) -> Retrained:
    """Features, then churn, expansion and uplift trained and put through the promotion gate, then the
    monitor: the one command a scheduler runs. A model the gate refuses keeps its champion; `refused` says
    which (the CLI then exits 1)."""
    settings = settings_or_default(settings)
    where = open_store(store, settings)
    built = build_features(store=where, settings=settings)
    trained = [
        train("churn", store=where, settings=settings, config=config),
        train("expansion", store=where, settings=settings, config=config),
        train("uplift", store=where, settings=settings, config=uplift_config),
    ]
    promotions = [promote(t.model, store=where, settings=settings) for t in trained]
    watched = monitor(out, store=where, settings=settings)
    refused = [p.name for p in promotions if p.decision == "refused"]
    return Retrained(built.version, trained, promotions, watched, refused)
