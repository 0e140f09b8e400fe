"""What a store needs to serve, checked from the folder it is in now (`retain store check`).

A store is one folder that may be copied, restored or moved: the check reads each part as the API and
training would from this folder, and names any path the store holds that points outside it. A problem
keeps the store from serving as it should (a table that cannot be read, a champion that does not load, a
model read from outside the store); a note is worth knowing and needs nothing done (a part not made yet,
a path recorded at the folder the store was in, which Retain reads under this one instead).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from core.contract import ACCOUNT_SCHEMA
from core.settings import Settings
from features.feast_repo import (
    CONFIG_FILE,
    REGISTRY_FILE,
    VIEW,
    feature_store,
    offline_copy,
    online_rows,
    published_config,
)
from registry.models import UnknownModel, resolve, scoring_model, uplift_model
from registry.tracking import StoreClient, client
from serving.tables import table_problem
from store.decision_log import DecisionLog
from store.delta import TABLES, Store

Part = Literal["tables", "feast", "models", "decision_log"]
#: tables a store cannot serve without; the others are written by steps a store may not have run yet
NEEDED = ("accounts", "events", "features")
#: the champions the API loads: churn and expansion score, uplift ranks the actions
CHAMPIONS = ("churn", "expansion", "uplift")
#: accounts whose online rows are read to show the online store answers
PROBED = 5


@dataclass(frozen=True)
class Finding:
    part: Part
    #: the table, model or file it is about
    subject: str
    problem: bool
    said: str


@dataclass(frozen=True)
class StoreCheck:
    store: str
    findings: tuple[Finding, ...]

    @property
    def problems(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.problem)


def check(store: Store, settings: Settings) -> StoreCheck:
    """Every part of the store, read from where it is now."""
    findings = [*_tables(store), *_feast(store, settings), *_models(store, settings)]
    findings.append(_decision_log(store, settings))
    return StoreCheck(store.location, tuple(findings))


def _local(uri: str) -> Path | None:
    """The path of a `file:` URI or a bare path; None for any other scheme."""
    parts = urlsplit(uri)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    return Path(uri) if not parts.scheme else None


def _outside(store: Store, uri: str) -> bool:
    path = _local(uri)
    return path is not None and path.is_absolute() and not path.is_relative_to(store.root.resolve())


def _tables(store: Store) -> list[Finding]:
    found: list[Finding] = []
    for table in TABLES:
        problem = table_problem(store, table)
        if problem is not None:
            found.append(Finding("tables", table, True, problem))
        elif table == "events" and store.events_source is not None:
            found.append(Finding("tables", table, False, f"adopted in place: {store.events_source.location}"))
        elif store.delta(table) is None:
            needed = table in NEEDED
            found.append(
                Finding("tables", table, needed, "never written" + (": ingest first" if needed else ""))
            )
        else:
            found.append(Finding("tables", table, False, "reads"))
    return found


def _feast(store: Store, settings: Settings) -> list[Finding]:
    """The repo opens with these settings, its online store answers for real accounts, and its offline
    copy is in this repo; the absolute paths an earlier publish recorded are notes."""
    try:
        fs = feature_store(store, settings)
        view = fs.get_feature_view(VIEW)
        ids = _some_accounts(store)
        rows = online_rows(fs, ids, [view.features[0].name])
    except Exception as e:  # Feast raises its own types for a missing or broken repo
        return [Finding("feast", str(store.feast_dir), True, f"{type(e).__name__}: {e}")]
    found = [
        Finding("feast", str(store.feast_dir), False, f"opens; online rows for {len(ids)} accounts read")
    ]
    if ids and not any(rows.cutoffs):
        found = [Finding("feast", "online store", True, f"no online row for any of {len(ids)} accounts")]
    recorded, here = offline_copy(fs)
    if not here.exists():
        found.append(Finding("feast", str(here), True, "the offline copy is missing: publish features again"))
    elif recorded != here:
        found.append(Finding("feast", str(recorded), False, f"recorded offline copy; read at {here}"))
    config = published_config(store) or {}
    for path in (config.get("registry", REGISTRY_FILE), config.get("online_store", {}).get("path")):
        if isinstance(path, str) and _outside(store, path):
            found.append(
                Finding(
                    "feast",
                    str(store.feast_dir / CONFIG_FILE),
                    False,
                    f"names {path}, which Retain "
                    "does not read (it reads this repo's); `retain features build` writes it relative",
                )
            )
    return found


def _some_accounts(store: Store) -> list[str]:
    accounts = store.read("accounts", ACCOUNT_SCHEMA, columns=["account_id"])
    return accounts.column("account_id").to_pylist()[:PROBED]


def _models(store: Store, settings: Settings) -> list[Finding]:
    try:
        mlflow_client = client(store, settings)
    except Exception as e:  # an unreadable registry is said as RegistryUnavailable
        return [Finding("models", "registry", True, str(e))]
    return [_champion(mlflow_client, store, name) for name in CHAMPIONS]


def _champion(mlflow_client: StoreClient, store: Store, name: str) -> Finding:
    """The champion loads from this store's files; none registered is a note (the rules answer)."""
    try:
        info = resolve(mlflow_client, f"{name}@champion")
    except UnknownModel as e:
        return Finding("models", name, False, f"{e}: the rules answer")
    except Exception as e:  # RegistryUnavailable, said in one line
        return Finding("models", name, True, str(e))
    subject = f"{name}@champion (version {info.version})"
    try:
        location = mlflow_client.logged_model_location(info.source.removeprefix("models:/"))
        if _outside(store, location):
            return Finding("models", subject, True, f"loads from {location}, outside the store")
        (uplift_model if name == "uplift" else scoring_model)(mlflow_client, info)
    except Exception as e:  # a missing or unreadable artifact, said with its type
        return Finding("models", subject, True, f"does not load: {type(e).__name__}: {e}")
    return Finding("models", subject, False, f"loads from {location}")


def _decision_log(store: Store, settings: Settings) -> Finding:
    """The log takes a write (the probe row `/readyz` writes); a SQLite log never made is a note."""
    log = DecisionLog.for_store(store, settings)
    try:
        if not log.exists():
            return Finding(
                "decision_log", log.url, False, "not made yet: the API makes it when it first serves"
            )
        log.check_writable()
        return Finding("decision_log", log.url, False, "takes writes")
    except Exception as e:  # DecisionLogUnavailable and the database's own errors
        return Finding("decision_log", log.url, True, f"{type(e).__name__}: {e}")
    finally:
        log.close()
