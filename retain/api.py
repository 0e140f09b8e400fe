"""The Python API: every step of the pipeline as one call, typed in and typed out.

The CLI is a thin shell over these verbs, and a notebook calls them the same way::

    from retain import api

    api.simulate(Path("sim"), accounts=500, days=365)
    api.ingest(Path("sim"), store=Path("store"))
    api.build_features(store=Path("store"))
    trained = api.train("churn", store=Path("store"), truth=Path("sim"))
    trained.mlflow.version

Each verb takes the store (a `Store`, or its folder; default: the settings' `home`) and the settings
(default: `RETAIN_*` environment variables), and returns a frozen dataclass: the figures a person reads,
which the CLI prints as a summary or, with `--json`, as JSON (`as_json`). Bad input raises `RetainError`
with a one-line message.

Each verb imports its layer when called: `retain --help` and the light verbs then start in a second,
not in the many seconds MLflow, LightGBM and Feast take to import.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic_core import to_jsonable_python

from retain.core.errors import RetainError
from retain.core.settings import Settings, get_settings
from retain.core.store import DEFAULT_RETENTION_HOURS, OLD_MANIFEST, Commit, Store

if TYPE_CHECKING:
    from features.alerts import Alert, Alerted
    from features.build import FeatureBuild
    from features.playbook_file import PlaybookSummary
    from registry.models import VersionInfo
    from registry.promotion import PolicyEvaluation, Promotion, Rollback
    from registry.tracking import Registration
    from retain.autopilot.run import AutopilotRun
    from retain.digest.run import DigestFiles
    from retain.ingest import IngestSummary
    from retain.ingest.migrate import Migration
    from retain.maintenance import Compaction
    from retain.maintenance.check import StoreCheck
    from retain.monitor.run import MonitorFiles
    from retain.plan import PlanSummary
    from retain.report.html import ReportFiles
    from retain.simulate import Simulation
    from serving.autopilot_log import Switch
    from serving.batch import ModelAnswered, StoreScores, TableScores
    from serving.decision_log import DecisionLog
    from serving.webhooks.delivery import DeliveryRound
    from serving.webhooks.outbox import (
        FailedDelivery,
        NewWebhook,
        Outbox,
        RecordedAlerts,
        Retried,
        RotatedSecret,
        Webhook,
    )
    from training.artifact import ScoringModel
    from training.config import TrainConfig, UpliftConfig
    from training.result import TrainResult

#: a JSON document: what a training run's evaluation and MLflow's record are made of
Json = dict[str, "Json"] | list["Json"] | str | int | float | bool | None
#: what `train` fits from the store's feature table
ModelKind = Literal["churn", "expansion", "uplift"]
#: a store: the object, its folder, or None for the settings' `home`
StoreLike = Store | Path | str | None
Config = TypeVar("Config", "TrainConfig", "UpliftConfig")

__all__ = [
    "ModelKind",
    "Trained",
    "add_webhook",
    "alerts",
    "as_json",
    "autopilot_pause",
    "autopilot_resume",
    "autopilot_run",
    "autopilot_switches",
    "build_features",
    "check_store",
    "compact_store",
    "deliver_webhooks",
    "digest",
    "example_account",
    "failed_deliveries",
    "ingest",
    "load_model",
    "migrate_store",
    "monitor",
    "open_store",
    "plan",
    "promote",
    "record_alerts",
    "remove_webhook",
    "report_causal",
    "report_causal_table",
    "retrain",
    "retry_deliveries",
    "rollback",
    "rotate_webhook_secret",
    "run_webhook_worker",
    "score",
    "score_table",
    "settings_or_default",
    "simulate",
    "store_history",
    "train",
    "train_table",
    "webhooks",
]


def as_json(result: object) -> Json:
    """Any result of this module as plain JSON values (paths and dates as strings)."""
    return to_jsonable_python(result)


def settings_or_default(settings: Settings | None = None) -> Settings:
    """`settings`, else the environment's (`RETAIN_*`); a malformed variable is a RetainError."""
    if settings is not None:
        return settings
    try:
        return get_settings()
    except ValueError as e:
        raise RetainError(f"bad configuration: {e}") from e


def open_store(store: StoreLike = None, settings: Settings | None = None) -> Store:
    """The store; refuses a folder of the earlier layout (Parquet files and `manifest.json`), whose tables
    this version would not see, and says how to convert it."""
    opened = _located(store, settings)
    if opened.lake_uri is None and (opened.root / OLD_MANIFEST).exists() and not Path(opened.lake).exists():
        raise RetainError(
            f"{opened.root} is a store of the earlier layout; convert it once with "
            f"`retain store migrate --from {opened.root} --store {opened.root}`"
        )
    return opened


def _located(store: StoreLike, settings: Settings | None) -> Store:
    """The store named (a `Store`, a folder or a URI), else the settings' home."""
    if isinstance(store, Store):
        return store
    home = settings_or_default(settings).home
    return Store.at(store if store is not None else home, home)


# -- simulate and ingest ------------------------------------------------------------------------------


def simulate(
    out: Path,
    *,
    accounts: int = 2_000,
    days: int = 365,
    seed: int = 7,
    start: date = date(2025, 1, 1),
    workers: int | None = None,
    holdout_share: float | None = None,
    drift: str | None = None,
) -> Simulation:
    """Generate a customer base with known truth: same seed, same bytes. `holdout_share` defaults to the
    simulator's (`SimConfig.holdout_share`); `drift` (`release@DATE`, `tier_mix@DATE`) changes the world
    from that date, for the monitor to find."""
    from retain.simulate import Drift, SimConfig, simulate_to  # deferred: the simulator's modules

    changed = None if drift is None else Drift.parse(drift)
    config = SimConfig(accounts=accounts, days=days, seed=seed, start=start, drift=changed)
    if holdout_share is not None:
        config = dataclasses.replace(config, holdout_share=holdout_share)
    return simulate_to(config, Path(out), workers)


def ingest(
    source: Path, *, store: StoreLike = None, settings: Settings | None = None, adapter: str | None = None
) -> IngestSummary:
    """Validate `source` (a simulator folder, event files, or an adapter's source) into the store: valid
    rows published, the rest quarantined with a reason."""
    from features.playbook_file import store_playbook
    from retain.ingest import ingest_path  # deferred: Arrow and the contract's validators

    settings = settings_or_default(settings)
    opened = open_store(store, settings)
    actions = store_playbook(opened, settings).names  # interventions name the store's own actions
    return ingest_path(opened, Path(source), adapter=adapter, actions=actions)


# -- the store's upkeep -----------------------------------------------------------------------------------


def compact_store(
    *, store: StoreLike = None, settings: Settings | None = None, retention_hours: int | None = None
) -> Compaction:
    """Fold the actions the API recorded into the store, then compact and vacuum every table."""
    from retain.maintenance import compact  # deferred: SQLAlchemy, for the decision log

    settings = settings_or_default(settings)
    hours = DEFAULT_RETENTION_HOURS if retention_hours is None else retention_hours
    return compact(open_store(store, settings), settings, hours)


def _compacted(store: StoreLike, settings: Settings) -> Store:
    """The store, once the API's recorded actions are folded in and its tables compacted: what a feature
    build or a training run reads."""
    from retain.maintenance import compact  # deferred: SQLAlchemy, for the decision log

    opened = open_store(store, settings)
    compact(opened, settings)
    return opened


def store_history(
    table: str, *, store: StoreLike = None, settings: Settings | None = None, limit: int = 20
) -> list[Commit]:
    """A table's versions, newest first: what wrote each and what it read."""
    return open_store(store, settings).history(table, limit)


def check_store(*, store: StoreLike = None, settings: Settings | None = None) -> StoreCheck:
    """What the store needs to serve from where it is now: tables, Feast repo, champions, decision log."""
    from retain.maintenance.check import check  # deferred: Feast, MLflow and SQLAlchemy

    settings = settings_or_default(settings)
    return check(open_store(store, settings), settings)


def migrate_store(old: Path, *, store: StoreLike = None, settings: Settings | None = None) -> Migration:
    """Convert a store of the earlier layout (`manifest.json`) into this store's Delta tables."""
    from retain.ingest.migrate import migrate  # deferred: Arrow and DuckDB

    # not open_store: it refuses the earlier layout that a migration in place converts
    return migrate(Path(old), _located(store, settings))


# -- features and training ------------------------------------------------------------------------------


def build_features(
    *,
    store: StoreLike = None,
    settings: Settings | None = None,
    cutoffs: Sequence[date] | None = None,
    out: Path | None = None,
    online: bool = True,
    as_of_version: int | None = None,
) -> FeatureBuild:
    """The point-in-time feature table at `cutoffs` (default: month ends), written to the store as a new
    version and recorded as an MLflow run, or, with `out`, exported to that file alone (no version, no
    run); with `online`, the Feast repo applied and materialised for serving. The API's recorded actions
    are folded into the store first. `as_of_version` rebuilds from exactly the table versions (and
    cutoffs) that built that version of the feature table."""
    from features.build import build_and_publish  # deferred: DuckDB, and Feast when online
    from features.playbook_file import store_playbook
    from registry.tracking import log_feature_build  # deferred: MLflow
    from retain import alerting  # deferred: the serving layer's outbox

    settings = settings_or_default(settings)
    where = _compacted(store, settings)
    playbook = store_playbook(where, settings)  # its alert rules, checked before the build
    built = build_and_publish(where, settings, cutoffs, out, online=online, as_of_version=as_of_version)
    if built.version is None:
        return built
    run = log_feature_build(where, settings, built)
    alerts = alerting.record(where, settings, alerting.feature_alerts(where, playbook))
    return dataclasses.replace(built, mlflow_run=run, alerts=alerts)


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
    from training.pipeline import train_model

    settings = settings_or_default(settings)
    where, registered_as = _compacted(store, settings), name or kind
    if kind == "uplift":
        from training.causal.train import train_uplift  # deferred: the causal estimators

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
    from training.pipeline import train_table as fit_table

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
    from registry.promotion import promote as promote_model  # deferred: MLflow
    from retain import alerting

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
    from registry.promotion import rollback as rollback_model  # deferred: MLflow
    from retain import alerting

    settings = settings_or_default(settings)
    where = open_store(store, settings)
    rolled = rollback_model(where, settings, name)
    return rolled.model_copy(update={"alerts": alerting.record_champion(where, settings, rolled)})


# -- scores, reports and the plan ---------------------------------------------------------------------


def score(
    cutoff: date, out: Path | str, *, store: StoreLike = None, settings: Settings | None = None
) -> StoreScores:
    """Every account active at `cutoff`, scored by the churn and expansion champions with the top reasons,
    into a Parquet file, or a database table (`postgresql://...#TABLE`, `sqlite:///PATH#TABLE`) whose rows
    at `cutoff` they replace."""
    from features.playbook_file import store_playbook
    from retain import alerting
    from retain.core.sql_out import destination  # deferred: SQLAlchemy
    from serving.batch import score_store  # deferred: MLflow and the models

    target = destination(out)
    settings = settings_or_default(settings)
    where = open_store(store, settings)
    playbook = store_playbook(where, settings)  # what the alerts recommend, checked before scoring
    scored = score_store(where, settings, cutoff, target)
    alerts = alerting.record(where, settings, alerting.score_alerts(where, settings, cutoff, playbook))
    return dataclasses.replace(scored, alerts=alerts)


def score_table(
    table: Path,
    model: str,
    out: Path | str,
    *,
    id_column: str | None = None,
    store: StoreLike = None,
    settings: Settings | None = None,
) -> TableScores:
    """A CSV or Parquet table scored by one registered model (`NAME`, `NAME@alias`, `NAME/version`) into a
    CSV of its id, probability and reasons."""
    from retain.core.sql_out import destination  # deferred: SQLAlchemy
    from serving.batch import score_table as score_file  # deferred: MLflow and the models

    target = destination(out)
    if not isinstance(target, Path):
        raise RetainError(f"--out {target}: --table writes a CSV file; a database table takes --cutoff's")
    settings = settings_or_default(settings)
    return score_file(open_store(store, settings), settings, Path(table), model, target, id_column=id_column)


def example_account(
    cutoff: date, scores: Path, *, store: StoreLike = None, settings: Settings | None = None
) -> ModelAnswered:
    """From a batch's scores at the newest cutoff, the riskiest account the API answers with the model (not
    the rules): a first request that shows what the model says."""
    from serving.batch import riskiest_model_answered  # deferred: MLflow and the models

    settings = settings_or_default(settings)
    return riskiest_model_answered(open_store(store, settings), settings, Path(scores), cutoff)


def report_causal(
    out: Path, *, store: StoreLike = None, settings: Settings | None = None, jobs: int = 2
) -> ReportFiles:
    """What each action did to churn and expansion over the store's weekly design, doubly robust, as
    `out/report.html` and `out/report.json`; `jobs` processes estimate actions side by side."""
    # deferred: the causal estimators
    from retain.report.causal import from_store
    from retain.report.html import write_report

    settings = settings_or_default(settings)
    return write_report(from_store(open_store(store, settings), settings, jobs), Path(out))


def report_causal_table(
    table: Path,
    out: Path,
    *,
    treatment: str,
    outcome: str,
    control: str | None = None,
    covariates: list[str] | None = None,
    exclude: list[str] | None = None,
    settings: Settings | None = None,
    jobs: int = 2,
    cross_check: bool = False,
) -> ReportFiles:
    """The same report over an experiment or intervention export: each `treatment` value against
    `control` (default: 0/false of a 0/1 column) on `outcome`, adjusting for exactly `covariates`, or else
    for every usable column but `exclude` and those that look changed by the treatment or the outcome
    (listed in `ReportFiles.covariates_dropped`, with why); with `cross_check`, each effect also by
    DoubleML's IRM on the same rows, side by side (`ReportFiles.cross_check`)."""
    # deferred: the causal estimators
    from retain.report.causal import from_table
    from retain.report.html import write_report

    settings = settings_or_default(settings)
    analysis = from_table(
        Path(table),
        treatment,
        outcome,
        control,
        settings,
        jobs,
        covariates=covariates,
        exclude=exclude,
        cross_check=cross_check,
    )
    return write_report(analysis, Path(out))


def plan(
    week: date,
    capacity_hours: float,
    out: Path | str,
    *,
    store: StoreLike = None,
    settings: Settings | None = None,
) -> PlanSummary:
    """The week's plan as a CSV, or a database table (`postgresql://...#TABLE`, `sqlite:///PATH#TABLE`)
    whose rows of the week it replaces: the actions where the uplift champion expects most value within
    each CSM's `capacity_hours`, and a random holdout that gets none."""
    from retain import alerting
    from retain.core.plan_table import recorded_plans
    from retain.core.sql_out import destination  # deferred: SQLAlchemy
    from retain.plan import plan_store  # deferred: MLflow and the uplift model

    target = destination(out)
    settings = settings_or_default(settings)
    where = open_store(store, settings)
    planned = plan_store(where, settings, week, capacity_hours, target)
    return dataclasses.replace(
        planned,
        alerts=alerting.record(where, settings, alerting.plan_alerts(recorded_plans(where), week)),
    )


# -- monitoring and the retraining loop ---------------------------------------------------------------


def monitor(out: Path, *, store: StoreLike = None, settings: Settings | None = None) -> MonitorFiles:
    """Drift, realised and estimated performance, what the plans kept, answers and feedback: written to
    `out/monitor.html` and `out/monitor.json`, logged to MLflow, and kept in the store as gauges."""
    from retain.monitor.run import monitor_store  # deferred: MLflow, the models and matplotlib

    settings = settings_or_default(settings)
    return monitor_store(open_store(store, settings), settings, Path(out))


def digest(
    week: date, out: Path, *, store: StoreLike = None, settings: Settings | None = None
) -> DigestFiles:
    """The week starting on Monday `week` for leadership and CSM leads: accounts entering and leaving high
    risk, ARR at risk by tier and CSM, the week's plan and what the plans kept, the alerts by type; as an
    email-ready `out/digest-WEEK.html` and `out/digest-WEEK.json`."""
    from retain.digest.run import digest_store  # deferred: the monitor's plan impact, DuckDB, Jinja2

    settings = settings_or_default(settings)
    return digest_store(open_store(store, settings), settings, week, Path(out))


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


# -- webhooks: alerts pushed to playbook engines and CRMs -------------------------------------------------


def alerts(*, store: StoreLike = None, settings: Settings | None = None) -> Alerted:
    """Derive again the alerts of the latest feature build, scoring run and plan, and record those not
    recorded yet: for a step whose recording failed while the decision log was away."""
    from retain import alerting  # deferred: the serving layer's outbox

    settings = settings_or_default(settings)
    return alerting.record_latest(open_store(store, settings), settings)


@contextlib.contextmanager
def _decision_log(store: StoreLike, settings: Settings) -> Iterator[DecisionLog]:
    """The decision log's database the settings name, closed after use."""
    from serving.decision_log import DecisionLog  # deferred: SQLAlchemy and the serving layer

    log = DecisionLog.for_store(open_store(store, settings), settings)
    try:
        yield log
    finally:
        log.close()


@contextlib.contextmanager
def _outbox(store: StoreLike, settings: Settings) -> Iterator[Outbox]:
    """The outbox in the decision log's database the settings name, closed after use."""
    from serving.webhooks.outbox import Outbox  # deferred: the serving layer

    with _decision_log(store, settings) as log:
        yield Outbox(log)


def check_playbook(
    path: Path | None = None, *, store: StoreLike = None, settings: Settings | None = None
) -> PlaybookSummary:
    """Read and check the playbook at `path`, else the one the store runs (`RETAIN_PLAYBOOK`, the store's
    playbook.yaml, the built-in); a RetainError names every line to fix."""
    from features.playbook_file import PlaybookSummary, load_playbook, store_playbook

    if path is not None:
        return PlaybookSummary.of(load_playbook(Path(path)))
    settings = settings_or_default(settings)
    return PlaybookSummary.of(store_playbook(open_store(store, settings), settings))


def add_webhook(
    url: str, events: Sequence[str], *, store: StoreLike = None, settings: Settings | None = None
) -> NewWebhook:
    """Subscribe `url` to alerts of `events` (alert types, or `*` for all) recorded from now on; the
    result holds the signing secret, this once. A refused URL or unknown type is a `RetainError`."""
    from features.playbook_file import store_playbook

    settings = settings_or_default(settings)
    opened = open_store(store, settings)
    types = store_playbook(opened, settings).alert_types
    with _outbox(opened, settings) as outbox:
        return outbox.add(url, events, types)


def webhooks(*, store: StoreLike = None, settings: Settings | None = None) -> list[Webhook]:
    """The live subscriptions with their pending and dead deliveries; never a secret."""
    with _outbox(store, settings_or_default(settings)) as outbox:
        return outbox.webhooks()


def remove_webhook(webhook_id: str, *, store: StoreLike = None, settings: Settings | None = None) -> Webhook:
    """End a subscription: nothing more is sent to it."""
    with _outbox(store, settings_or_default(settings)) as outbox:
        return outbox.remove(webhook_id)


def rotate_webhook_secret(
    webhook_id: str,
    overlap_seconds: float | None = None,
    *,
    store: StoreLike = None,
    settings: Settings | None = None,
) -> RotatedSecret:
    """Give a subscription a new signing secret, returned this once; the one it replaces keeps signing
    beside it for `overlap_seconds` (default: `webhooks.rotation_overlap_seconds`), then is dropped."""
    settings = settings_or_default(settings)
    overlap = settings.webhooks.rotation_overlap_seconds if overlap_seconds is None else overlap_seconds
    with _outbox(store, settings) as outbox:
        return outbox.rotate(webhook_id, overlap)


def record_alerts(
    alerts: Iterable[Alert], *, store: StoreLike = None, settings: Settings | None = None
) -> RecordedAlerts:
    """Record alerts for delivery, each with its deliveries in one transaction; an alert recorded
    before (by id) is left as it was, so a rerun records nothing twice."""
    with _outbox(store, settings_or_default(settings)) as outbox:
        return outbox.record(alerts)


def failed_deliveries(*, store: StoreLike = None, settings: Settings | None = None) -> list[FailedDelivery]:
    """The dead letters: deliveries that failed every attempt, with the last error."""
    with _outbox(store, settings_or_default(settings)) as outbox:
        return outbox.failed()


def retry_deliveries(
    alert_id: str | None = None,
    webhook_id: str | None = None,
    *,
    every: bool = False,
    store: StoreLike = None,
    settings: Settings | None = None,
) -> Retried:
    """Send dead deliveries again (of one alert, one webhook, both, or `every` one), attempts from zero."""
    with _outbox(store, settings_or_default(settings)) as outbox:
        return outbox.retry(alert_id, webhook_id, every=every)


def deliver_webhooks(*, store: StoreLike = None, settings: Settings | None = None) -> DeliveryRound:
    """One round of the delivery worker: every delivery due now, sent and settled (what a cron runs)."""
    from serving.webhooks.delivery import deliver_once  # deferred: requests, with the serving layer

    settings = settings_or_default(settings)
    with _outbox(store, settings) as outbox:
        return deliver_once(outbox, settings.webhooks)


def run_webhook_worker(*, store: StoreLike = None, settings: Settings | None = None) -> None:
    """The delivery worker in this thread, a round every `webhooks.poll_seconds`, until interrupted."""
    from serving.webhooks.delivery import DeliveryWorker  # deferred: requests, with the serving layer

    settings = settings_or_default(settings)
    with _outbox(store, settings) as outbox:
        DeliveryWorker(outbox, settings.webhooks).run()


# -- the autopilot: autonomous actions executed with no CSM ---------------------------------------------


def autopilot_run(
    *,
    store: StoreLike = None,
    settings: Settings | None = None,
    at: datetime | None = None,
    dry_run: bool = False,
) -> AutopilotRun:
    """Execute the current plan's autonomous actions the guardrails let through, as `action.execute`
    events to the subscribed playbook engines, after pausing any action its holdout comparison shows
    harmful; `at` replays a past moment (default now), `dry_run` only says what it would do."""
    from retain.autopilot.run import run_autopilot  # deferred: DuckDB, the plan and the serving layer

    settings = settings_or_default(settings)
    return run_autopilot(open_store(store, settings), settings, at=at, dry_run=dry_run)


def autopilot_pause(
    action: str | None = None,
    reason: str | None = None,
    *,
    actor: str = "cli",
    store: StoreLike = None,
    settings: Settings | None = None,
) -> Switch:
    """The kill switch: stop the autopilot executing anything (no `action`) or one of its actions, until
    resumed."""
    return _autopilot_switch(True, action, reason, actor, store, settings)


def autopilot_resume(
    action: str | None = None,
    *,
    actor: str = "cli",
    store: StoreLike = None,
    settings: Settings | None = None,
) -> Switch:
    """Let the autopilot execute again (everything, or `action`, paused by a person or for harm)."""
    return _autopilot_switch(False, action, None, actor, store, settings)


def autopilot_switches(*, store: StoreLike = None, settings: Settings | None = None) -> list[Switch]:
    """Every switch as last set: the whole autopilot's (`*`) and each action's, with who, when and why."""
    from serving.autopilot_log import AutopilotLog  # deferred: the serving layer

    with _decision_log(store, settings_or_default(settings)) as log:
        return sorted(AutopilotLog(log).switches().values(), key=lambda s: s.scope)


def _autopilot_switch(
    paused: bool,
    action: str | None,
    reason: str | None,
    actor: str,
    store: StoreLike,
    settings: Settings | None,
) -> Switch:
    from features.playbook_file import store_playbook
    from serving.autopilot_log import AutopilotLog, switch_scope  # deferred: the serving layer

    settings = settings_or_default(settings)
    opened = open_store(store, settings)
    scope = switch_scope(action, store_playbook(opened, settings))
    with _decision_log(opened, settings) as log:
        return AutopilotLog(log).set_switch(scope, paused, actor, reason)
