"""What every verb of the API starts from: the settings, the store it opens, the decision log it writes,
and its results as JSON."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic_core import to_jsonable_python

from core.errors import RetainError
from core.settings import Settings, get_settings
from store.delta import OLD_MANIFEST, Store

if TYPE_CHECKING:
    from store.decision_log import DecisionLog


#: a JSON document: what a training run's evaluation and MLflow's record are made of
Json = dict[str, "Json"] | list["Json"] | str | int | float | bool | None
#: a store: the object, its folder, or None for the settings' `home`
StoreLike = Store | Path | str | None


def as_json(result: object) -> Json:
    """Any result of the API as plain JSON values (paths and dates as strings)."""
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
    opened = located(store, settings)
    if opened.lake_uri is None and (opened.root / OLD_MANIFEST).exists() and not Path(opened.lake).exists():
        raise RetainError(
            f"{opened.root} is a store of the earlier layout; convert it once with "
            f"`retain store migrate --from {opened.root} --store {opened.root}`"
        )
    return opened


def located(store: StoreLike, settings: Settings | None) -> Store:
    """The store named (a `Store`, a folder or a URI), else the settings' home."""
    if isinstance(store, Store):
        return store
    from ingest.column_mapping import settings_adoption  # deferred: YAML, read only when adopting

    chosen = settings_or_default(settings)
    return Store.at(store if store is not None else chosen.home, chosen.home, settings_adoption(chosen))


@contextlib.contextmanager
def decision_log(store: StoreLike, settings: Settings) -> Iterator[DecisionLog]:
    """The decision log's database the settings name, closed after use."""
    from store.decision_log import DecisionLog  # deferred: SQLAlchemy and the serving layer

    log = DecisionLog.for_store(open_store(store, settings), settings)
    try:
        yield log
    finally:
        log.close()
