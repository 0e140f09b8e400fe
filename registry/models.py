"""Finding a registered model by `NAME[@alias]` or `NAME/version`, and loading its ScoringModel.

Serving and batch scoring unpickle the one artifact straight from the version's logged model instead
of going through `mlflow.pyfunc.load_model`: the same object, without pyfunc's environment checks and
wrapper, and a typed `ScoringModel` rather than a `PyFuncModel`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from core.errors import RetainError
from core.settings import Settings
from registry import unpickling
from registry.aliases import CHAMPION
from registry.pyfunc import MODEL_ARTIFACT
from registry.tracking import StoreClient, client, unavailable
from store.delta import Store
from training.artifact import ScoringModel
from training.causal.uplift import UpliftModel

#: the source of a version registered from an MLflow 3 logged model (the SQL registry keeps no model_id)
LOGGED_MODEL_PREFIX = "models:/m-"


@dataclass(frozen=True)
class VersionInfo:
    """Which registered version a reference resolved to, with its aliases and tags."""

    name: str
    version: str
    run_id: str | None
    #: where the model's files are: `models:/m-<id>`, the logged model this version registered
    source: str
    aliases: list[str]
    tags: dict[str, str]

    @classmethod
    def of(cls, version: ModelVersion) -> VersionInfo:
        return cls(
            name=version.name,
            version=str(version.version),
            run_id=version.run_id,
            source=str(version.source),
            aliases=sorted(version.aliases),
            tags=dict(version.tags),
        )

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "aliases": self.aliases, "run_id": self.run_id}


def parse_ref(ref: str) -> tuple[str, str | None, str | None]:
    """`churn` -> (churn, champion, None); `churn@challenger` -> alias; `churn/3` -> version 3."""
    if "@" in ref:
        name, alias = ref.split("@", 1)
        version = None
    elif "/" in ref:
        name, version = ref.split("/", 1)
        alias = None
        if not version.isdigit():
            raise RetainError(f"model {ref!r}: a version must be a number, as in churn/3")
    else:
        name, alias, version = ref, CHAMPION, None
    if not name or alias == "":
        raise RetainError(f"model {ref!r}: expected NAME, NAME@alias or NAME/version")
    return name, alias, version


class UnknownModel(RetainError):
    """The registry answered: no such model, alias or version."""


def resolve(mlflow_client: MlflowClient, ref: str) -> VersionInfo:
    """The version a reference points at; `UnknownModel` saying which part is unknown, or
    `RegistryUnavailable` when the registry cannot be read."""
    name, alias, version = parse_ref(ref)
    try:
        registered = mlflow_client.get_registered_model(name)
    except Exception as e:  # sorted by _registry_error
        raise _registry_error(e, f"no registered model {name!r}; train one first") from e
    if alias is not None and alias not in registered.aliases:
        known = ", ".join(sorted(registered.aliases)) or "none"
        raise UnknownModel(f"model {name!r} has no version aliased {alias!r} (aliases: {known})")
    try:
        if alias is not None:
            return VersionInfo.of(mlflow_client.get_model_version_by_alias(name, alias))
        return VersionInfo.of(mlflow_client.get_model_version(name, str(version)))
    except Exception as e:  # as above
        raise _registry_error(e, f"model {ref!r} is not registered") from e


def _registry_error(error: Exception, unknown: str) -> RetainError:
    """MLflow reports "no such model" and "cannot read the registry" alike, as exceptions (its own, or
    its tracking store's: SQLAlchemy's, the driver's); only the first means there is no champion."""
    if isinstance(error, MlflowException) and error.error_code == "RESOURCE_DOES_NOT_EXIST":
        return UnknownModel(unknown)
    return unavailable(error)


class StaleModel(RetainError):
    """A registered model pickled by an earlier Retain, which this one cannot use."""


def _unpickle(mlflow_client: StoreClient, info: VersionInfo) -> object:
    if not info.source.startswith(LOGGED_MODEL_PREFIX):
        raise RetainError(f"{info.uri} comes from {info.source}, not from a model logged by Retain")
    # read where the store is now, wherever it was when the model was logged
    location = mlflow_client.logged_model_location(info.source.removeprefix("models:/"))
    # Artifacts live under the store, so this is the file in place (a remote store would download it).
    path = get_artifact_repository(location).download_artifacts(f"artifacts/{MODEL_ARTIFACT}")
    return unpickling.loads(Path(path).read_bytes())


def scoring_model(mlflow_client: StoreClient, info: VersionInfo) -> ScoringModel:
    """Unpickle the version's ScoringModel from its logged model's artifacts."""
    model = _unpickle(mlflow_client, info)
    if not isinstance(model, ScoringModel):
        raise RetainError(f"{info.uri} is a {type(model).__name__}, not a churn or expansion scoring model")
    return model


def uplift_model(mlflow_client: StoreClient, info: VersionInfo) -> UpliftModel:
    """Unpickle the version's UpliftModel from its logged model's artifacts."""
    model = _unpickle(mlflow_client, info)
    if not isinstance(model, UpliftModel):
        raise RetainError(f"{info.uri} is a {type(model).__name__}, not an uplift model")
    if not model.readable():
        raise StaleModel(
            f"{info.uri} was trained by an earlier Retain whose effects this one cannot read: "
            "run `retain train --model uplift` and `retain promote --model uplift`"
        )
    return model


def load_scoring_model(store: Store, settings: Settings, ref: str) -> tuple[ScoringModel, VersionInfo]:
    """The ScoringModel behind `NAME[@alias]` or `NAME/version` (alias `champion` by default)."""
    mlflow_client = client(store, settings)
    info = resolve(mlflow_client, ref)
    return scoring_model(mlflow_client, info), info


def load_uplift_model(
    store: Store, settings: Settings, ref: str = "uplift"
) -> tuple[UpliftModel, VersionInfo]:
    """The UpliftModel behind `NAME[@alias]` or `NAME/version` (alias `champion` by default)."""
    mlflow_client = client(store, settings)
    info = resolve(mlflow_client, ref)
    return uplift_model(mlflow_client, info), info
