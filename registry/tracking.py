"""MLflow tracking: where runs and models live for a store, and the one run that records a training.

Defaults keep everything inside the store: a SQLite backend at `<store>/mlflow/mlflow.db` and artifacts in
`<store>/mlflow/artifacts`. `settings.mlflow_tracking_uri` (e.g. PostgreSQL) replaces the backend for both
tracking and the registry; artifacts stay under the store. Each experiment is created with its artifact
location set explicitly, since MLflow's default with a database backend is `./mlruns` under whatever the
working directory happens to be.

The fluent run API (`start_run`, `log_model`) reads MLflow's process-wide tracking URI; `active_uri` sets
it for the block and restores it, so several stores can be used in one process. Everything else, the
registry included, goes through a client built with explicit URIs.

A store can be copied or moved: MLflow records each run's and logged model's artifacts as an absolute URI
(it makes a relative one absolute against the working directory), so a `StoreClient` reads them where the
store is now, from the part of the recorded URI MLflow derives from the ids (`<run_id>/artifacts`,
`models/<model_id>/artifacts`), rather than from the folder the store was in.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature
from mlflow.models.model import ModelInfo
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.store.tracking.dbmodels.models import SqlExperiment
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow.types import ColSpec, Schema, TensorSpec
from pydantic import BaseModel, ConfigDict
from tqdm import tqdm

from core.errors import RetainError
from core.settings import Settings
from core.urls import redact, sqlalchemy_url
from features.run import FeatureBuild
from registry.aliases import CHALLENGER, CHAMPION, champion_history, set_champion
from registry.card import MODEL_CARD, model_card, version_description
from registry.environment import copy_code, model_code, pip_requirements
from registry.pyfunc import MODEL_ARTIFACT, MODEL_DIR, RetainModel, output_frame
from store.delta import Store
from training.artifact import ScoringModel
from training.causal.uplift import UpliftModel
from training.result import TrainResult

#: the model's own test-window metrics, copied to version tags to be shown when promoting
VERSION_METRICS = ("test_auc", "test_brier", "test_pr_auc", "test_ece")
#: version tag: the id column of a table model's training data, the default id when scoring a table
ID_TAG = "id_column"


def mlflow_dir(store: Store) -> Path:
    return store.root.resolve() / "mlflow"


#: where a store keeps MLflow's artifacts, under its root
ARTIFACTS = Path("mlflow") / "artifacts"


def artifact_location(store: Store) -> str:
    return (store.root.resolve() / ARTIFACTS).as_uri()


def tracking_uri(store: Store, settings: Settings) -> str:
    """The backend URI: the configured one (a driverless PostgreSQL URL gets psycopg 3), else SQLite
    under the store."""
    if settings.mlflow_tracking_uri:
        return sqlalchemy_url(settings.mlflow_tracking_uri)
    mlflow_dir(store).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{mlflow_dir(store) / 'mlflow.db'}"


class RegistryUnavailable(RetainError):
    """The registry could not be asked: its database is down, locked, corrupt or unreadable."""


def unavailable(error: Exception) -> RegistryUnavailable:
    """The registry's failure in one line: MLflow's message, or its tracking store's (SQLAlchemy's, the
    driver's) first line without the SQL."""
    said = error.message if isinstance(error, MlflowException) else f"{type(error).__name__}: {error}"
    return RegistryUnavailable(f"the model registry cannot be read: {said.splitlines()[0] if said else ''}")


class StoreClient(MlflowClient):
    """An MLflow client of one store, which reads artifacts under the store's folder as it is now."""

    def __init__(self, store: Store, uri: str) -> None:
        super().__init__(tracking_uri=uri, registry_uri=uri)
        self.artifact_root = artifact_location(store)

    def located(self, recorded: str, tail: str) -> str:
        """Where a recorded artifact URI is now: a local URI of a store's artifacts (ending in
        `mlflow/artifacts/<tail>`, wherever that store was) is read under this store; any other as is."""
        if urlsplit(recorded).scheme != "file" or not recorded.endswith(f"/{ARTIFACTS.as_posix()}/{tail}"):
            return recorded
        return f"{self.artifact_root}/{tail}"

    def logged_model_location(self, model_id: str) -> str:
        """Where a logged model's artifacts are now."""
        logged = self.get_logged_model(model_id)
        return self.located(logged.artifact_location, f"models/{model_id}/artifacts")

    def download_artifacts(self, run_id: str, path: str, dst_path: str | None = None) -> str:
        """A run's artifact, read under this store (MLflow's own reads the URI it recorded)."""
        recorded = self.get_run(run_id).info.artifact_uri
        location = self.located(recorded, f"{run_id}/artifacts")
        return str(get_artifact_repository(location).download_artifacts(path, dst_path))


def client(store: Store, settings: Settings) -> StoreClient:
    uri = tracking_uri(store, settings)
    try:
        return StoreClient(store, uri)
    except Exception as e:  # MLflow opens (and migrates) its database here
        raise unavailable(e) from e


@contextlib.contextmanager
def active_uri(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API at `uri` for the block, then restore what was there."""
    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)  # type: ignore[arg-type]  # None restores the default


def experiment_id(mlflow_client: MlflowClient, store: Store, name: str) -> str:
    """The model's experiment, created with its artifact location under the store."""
    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is None:
        return str(mlflow_client.create_experiment(name, artifact_location=artifact_location(store)))
    if experiment.artifact_location != artifact_location(store):
        _adopt(mlflow_client, experiment.experiment_id, experiment.artifact_location, store)
    return str(experiment.experiment_id)


def _adopt(mlflow_client: MlflowClient, experiment: str, recorded: str, store: Store) -> None:
    """Give an experiment recorded in the folder a store was copied or moved from this store's artifact
    location, so new runs write their files here. MLflow has no call to change it, so its own table model
    is updated; runs logged before keep their URIs, which `StoreClient` reads under this store."""
    if urlsplit(recorded).scheme != "file" or not recorded.endswith(f"/{ARTIFACTS.as_posix()}"):
        return  # not a store's artifacts: an experiment another tool made, left as it is
    tracking = mlflow_client._tracking_client.store
    if not isinstance(tracking, SqlAlchemyStore):
        return
    with tracking.ManagedSessionMaker() as session:
        rows = session.query(SqlExperiment).filter(SqlExperiment.experiment_id == int(experiment))
        rows.update({SqlExperiment.artifact_location: artifact_location(store)})


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys (`tuning.trials`), values MLflow cannot hold as JSON text."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value if isinstance(value, str | int | float | bool) else _to_json(value)
    return out


def _metric_name(name: str) -> str:
    """MLflow refuses metric names outside letters, digits and `_-. /:`; slice values can hold any."""
    return re.sub(r"[^\w\-. /:]", "_", name)


def _to_json(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def signature(result: TrainResult[ScoringModel | UpliftModel]) -> ModelSignature:
    """Inputs from the input example (every model column required), outputs from scoring it."""
    example = result.input_example[result.model.features]
    with warnings.catch_warnings():
        # The hint that integer columns cannot hold missing values: the feature table's integer columns
        # are never null by definition (features/definitions.py), so the schema keeps them integers.
        warnings.filterwarnings(
            "ignore", message="Hint: Inferred schema contains integer", category=UserWarning
        )
        inferred = infer_signature(example, output_frame(result.model, example))
    assert inferred.inputs is not None  # a DataFrame example always gives a column schema
    columns: list[ColSpec | TensorSpec] = [
        ColSpec(spec.type, spec.name, required=True) for spec in inferred.inputs.inputs
    ]
    return ModelSignature(inputs=Schema(columns), outputs=inferred.outputs)


def _version_tags(result: TrainResult[ScoringModel | UpliftModel]) -> dict[str, str]:
    metrics = result.flat_metrics
    tags = {name: repr(float(metrics[name])) for name in VERSION_METRICS if name in metrics}
    tags |= {"kind": result.model.kind, "horizon_days": str(result.model.horizon_days)}
    if isinstance(result.lineage.get("id"), str):
        tags[ID_TAG] = result.lineage["id"]
    return tags


class Registration(BaseModel):
    """One training as recorded and registered: its run, its logged model and the new version."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    aliases: list[str]
    run_id: str
    #: the logged model, `models:/m-<id>`
    model_uri: str
    #: the registered version, `models:/<name>/<version>`
    registered_uri: str
    #: the tracking backend, its password redacted
    tracking_uri: str
    seconds: float


def log_and_register(store: Store, settings: Settings, result: TrainResult, name: str) -> Registration:
    """Record one training as one run (params, metrics, plots, lineage, the pyfunc model) and register
    the model under `name` as the new `challenger`; the first version of a name is also `champion`. The
    version's model card (`registry.card`) is its description and the run's `model_card.md`."""
    started = time.perf_counter()
    uri = tracking_uri(store, settings)
    mlflow_client = client(store, settings)
    steps = tqdm(total=5, desc=f"mlflow {name}", unit="step", disable=None)
    with steps, active_uri(uri), tempfile.TemporaryDirectory() as scratch:
        experiment = experiment_id(mlflow_client, store, name)
        with mlflow.start_run(experiment_id=experiment, run_name=f"{name}-train") as run:
            mlflow.log_params(_flatten(result.params))
            mlflow.log_metrics({_metric_name(k): v for k, v in result.flat_metrics.items()})
            mlflow.set_tags({f"lineage.{k}": v for k, v in _flatten(result.lineage).items()})
            mlflow.log_text(_to_json(result.lineage), "lineage.json")
            mlflow.log_text(json.dumps(result.metrics, indent=2, default=str), "metrics.json")
            steps.update()
            for path in result.plots.values():
                mlflow.log_artifact(str(path), "plots")
            steps.update()
            info = _log_model(result, Path(scratch))
            steps.update()
        version = _create_version(mlflow_client, name, info.model_uri, run.info.run_id, info.model_id, result)
        card = model_card(result, name, version)
        mlflow_client.log_text(run.info.run_id, card, MODEL_CARD)
        mlflow_client.update_model_version(
            name, version, description=version_description(card, run.info.run_id)
        )
        steps.update()
        aliases = [CHALLENGER]
        mlflow_client.set_registered_model_alias(name, CHALLENGER, version)
        if not champion_history(mlflow_client, name):
            set_champion(mlflow_client, name, version, "first version of the model")
            aliases.append(CHAMPION)
        steps.update()
    return Registration(
        name=name,
        version=version,
        aliases=aliases,
        run_id=run.info.run_id,
        model_uri=info.model_uri,
        registered_uri=f"models:/{name}/{version}",
        tracking_uri=redact(uri),
        seconds=round(time.perf_counter() - started, 3),
    )


#: the experiment that holds one run per feature build
FEATURE_BUILDS = "feature-builds"


def log_feature_build(store: Store, settings: Settings, build: FeatureBuild) -> str:
    """Record a feature build as a run: the table versions it read and the feature version it wrote (tags
    `lineage.table_versions.*`, like a training run's), its size and time; the run id."""
    mlflow_client = client(store, settings)
    with active_uri(tracking_uri(store, settings)):
        experiment = experiment_id(mlflow_client, store, FEATURE_BUILDS)
        with mlflow.start_run(experiment_id=experiment, run_name=f"features-v{build.version}") as run:
            mlflow.log_params({"cutoffs": len(build.cutoffs), "first_cutoff": str(build.cutoffs[0])})
            mlflow.log_metrics({"rows": build.rows, "accounts": build.accounts, "seconds": build.seconds})
            lineage = {"table_versions": {**build.read, "features": build.version}}
            mlflow.set_tags({f"lineage.{k}": v for k, v in _flatten(lineage).items()})
    return str(run.info.run_id)


def _log_model(result: TrainResult[ScoringModel | UpliftModel], scratch: Path) -> ModelInfo:
    """Log the pyfunc model: the pickled model, the Retain modules unpickling it needs and the pinned
    distributions they import, so it loads in any environment holding its requirements."""
    pickled = scratch / MODEL_ARTIFACT
    pickled.write_bytes(pickle.dumps(result.model, protocol=pickle.HIGHEST_PROTOCOL))
    code = model_code()
    search_path = list(sys.path)
    try:
        return mlflow.pyfunc.log_model(
            name=MODEL_DIR,
            python_model=RetainModel(),
            artifacts={MODEL_ARTIFACT: str(pickled)},
            code_paths=copy_code(code, scratch / "code"),
            signature=signature(result),
            input_example=result.input_example[result.model.features],
            pip_requirements=pip_requirements(code),
        )
    finally:
        # MLflow checks the input example by loading the model, which puts its code folder on sys.path
        sys.path[:] = search_path


def _create_version(
    mlflow_client: MlflowClient,
    name: str,
    source: str,
    run_id: str,
    model_id: str,
    result: TrainResult[ScoringModel | UpliftModel],
) -> str:
    """A new version of `name` (creating the registered model the first time), through the explicit
    client so an `MLFLOW_REGISTRY_URI` in the environment cannot send it elsewhere."""
    try:
        mlflow_client.create_registered_model(name)
    except MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    created = mlflow_client.create_model_version(
        name, source, run_id=run_id, tags=_version_tags(result), model_id=model_id
    )
    return str(created.version)
