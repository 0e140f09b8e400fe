"""The store's upkeep: the API's recorded actions merged in, compaction, a table's history, a check of what
it needs to serve, and the migration of a store of the earlier layout."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from core.settings import Settings
from retain.api.common import StoreLike, located, open_store, settings_or_default
from store.delta import DEFAULT_RETENTION_HOURS, Commit, Store

if TYPE_CHECKING:
    from ingest.migrate import Migration
    from products.upkeep.check import StoreCheck
    from products.upkeep.run import Compaction


def compact_store(
    *, store: StoreLike = None, settings: Settings | None = None, retention_hours: int | None = None
) -> Compaction:
    """Merge the actions the API recorded into the store, then compact and vacuum every table."""
    from products.upkeep.run import compact  # deferred: SQLAlchemy, for the decision log

    settings = settings_or_default(settings)
    hours = DEFAULT_RETENTION_HOURS if retention_hours is None else retention_hours
    return compact(open_store(store, settings), settings, hours)


def compacted(store: StoreLike, settings: Settings) -> Store:
    """The store, once the API's recorded actions are merged in and its tables compacted: what a feature
    build or a training run reads."""
    from products.upkeep.run import compact  # deferred: SQLAlchemy, for the decision log

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
    from products.upkeep.check import check  # deferred: Feast, MLflow and SQLAlchemy

    settings = settings_or_default(settings)
    return check(open_store(store, settings), settings)


def migrate_store(old: Path, *, store: StoreLike = None, settings: Settings | None = None) -> Migration:
    """Convert a store of the earlier layout (`manifest.json`) into this store's Delta tables."""
    from ingest.migrate import migrate  # deferred: Arrow and DuckDB

    # not open_store: it refuses the earlier layout that a migration in place converts
    return migrate(Path(old), located(store, settings))
