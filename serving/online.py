"""Online feature rows for a request, read from Feast's online store without its response machinery.

`FeatureStore.get_online_features` resolves the features in the registry, builds a protobuf response,
types every value and converts it back to Python on each call: about 2 ms of a single-account request,
for a read the online store itself does in a fraction of that. Here the feature view, the provider and
the feature names are resolved once per load, and each call is the online store's own `online_read`
(SQLite or Redis alike) with its values unpacked straight into `FeatureRows`. The values, cutoffs and
unknown-account rows equal `features.feast_repo.online_rows`'s (a test compares them).

A store that cannot be read raises `OnlineStoreUnavailable`, for the service to answer 503 with; a SQLite
file that is gone is reported without asking Feast, whose SQLite store would create an empty one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from feast import FeatureView
from feast.infra.provider import Provider
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.repo_config import RepoConfig
from feast.type_map import feast_value_type_to_python_type

from core.errors import RetainError
from features.feast_repo import JOIN_KEY, FeatureSet
from features.rows import FeatureRows

#: the stamp of an account without a row, from a store that answers one anyway (Redis)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: the value kinds the feature view's types (numbers, booleans, text) are stored as: read as they are
_SCALARS = frozenset({"double_val", "float_val", "int64_val", "int32_val", "bool_val", "string_val"})


def _python(value: Value | None) -> Any:
    """A stored value as Feast's own conversion gives it; the scalar kinds without its general path."""
    if value is None:
        return None
    kind = value.WhichOneof("val")
    if kind is None:
        return None
    if kind in _SCALARS:
        return getattr(value, kind)
    return feast_value_type_to_python_type(value)


class OnlineStoreUnavailable(RetainError):
    """The online store could not be read: its file is gone, or its server or file answered an error."""


@dataclass(frozen=True)
class OnlineReader:
    """The online store's reader for one published feature view and one set of its features."""

    provider: Provider
    config: RepoConfig
    view: FeatureView
    features: FeatureSet

    @cached_property
    def _numeric(self) -> list[str]:
        return [name for name in self.features.names if name not in self.features.text]

    @cached_property
    def _text(self) -> list[str]:
        return [name for name in self.features.names if name in self.features.text]

    @cached_property
    def _sqlite_file(self) -> Path | None:
        online = self.config.online_store
        if getattr(online, "type", None) != "sqlite":
            return None
        # as Feast opens it: a relative path is the repo's file (the repo moves with its store)
        path, repo = Path(online.path), self.config.repo_path
        return path if path.is_absolute() or repo is None else Path(repo) / path

    def rows(self, account_ids: Sequence[str]) -> FeatureRows:
        """The latest published row per account (no cutoff and all nulls for an account without one), laid
        out as `FeatureRows.build` lays out columns (one float64 block, text as str or None), row by row:
        a row's 80-odd columns as 80-odd arrays cost more than reading it."""
        unique = list(dict.fromkeys(account_ids))
        keys = [EntityKey(join_keys=[JOIN_KEY], entity_values=[Value(string_val=a)]) for a in unique]
        if self._sqlite_file is not None and not self._sqlite_file.is_file():
            raise OnlineStoreUnavailable(f"the online store {self._sqlite_file} is missing; publish features")
        try:
            read = self.provider.online_read(self.config, self.view, keys, list(self.features.names))
        except Exception as e:  # Feast passes on its backend's errors: sqlite3's, Redis's
            raise OnlineStoreUnavailable(f"the online store cannot be read: {type(e).__name__}: {e}") from e
        found = dict(zip(unique, read, strict=True))
        cutoffs: list[datetime | None] = []
        numbers: list[list[Any]] = []
        texts: list[list[str | None]] = [[] for _ in self._text]
        for account in account_ids:
            stamp, values = found[account]
            cutoffs.append(_cutoff(stamp) if values else None)
            stored = values or {}
            numbers.append([_python(stored.get(name)) for name in self._numeric])
            for column, name in zip(texts, self._text, strict=True):
                value = _python(stored.get(name))
                column.append(value if isinstance(value, str) else None)
        block = np.array(numbers, dtype="float64").reshape(len(account_ids), len(self._numeric))
        return FeatureRows(
            list(account_ids),
            cutoffs,
            self.features.names,
            block,
            {name: j for j, name in enumerate(self._numeric)},
            {name: np.array(column, dtype=object) for name, column in zip(self._text, texts, strict=True)},
        )


def _cutoff(stamp: datetime | None) -> datetime | None:
    """The row's cutoff in UTC; None for no row (Feast's own retrieval reads the epoch as none too)."""
    if stamp is None:
        return None
    utc = stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)
    return None if utc == _EPOCH else utc
