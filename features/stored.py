"""The stored feature table: a Delta table the build overwrites, each version noting what it was built from.

A build's commit note is a `BuildNote` (JSON): the versions of `events`, `accounts` and `interventions`
it read and the cutoffs it was asked for, so `features build --as-of-version N` can read those same
versions (Delta time travel) and rebuild exactly what version N holds. That holds because every version
is one whole build, never a patch of an older one; so a build that would leave out cutoffs the table holds
is refused (`refuse_dropping_cutoffs`) rather than silently losing the history trends, training and the
causal report read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from core.contract import ACCOUNT_SCHEMA, EVENT_SCHEMA, INTERVENTION_SCHEMA
from core.errors import RetainError
from store.delta import Store

if TYPE_CHECKING:
    from deltalake import DeltaTable

TABLE = "features"
BUILD_STEP = "features build"
#: the version of each input table a build read or is pinned to (None: the table was never written)
Versions = Mapping[str, int | None]
#: the store's tables the feature SQL reads, by the name it reads them under, in their contract columns
INPUTS: dict[str, pa.Schema] = {
    "events": EVENT_SCHEMA,
    "accounts": ACCOUNT_SCHEMA,
    "interventions": INTERVENTION_SCHEMA,
}


def input_tables(
    store: Store, versions: Versions | None = None
) -> Iterator[tuple[str, pa.Schema, DeltaTable | None]]:
    """Each input table at `versions` (default the latest): None where never written, and where a pinned
    build found it unwritten (read as empty, not as today's table)."""
    for name, schema in INPUTS.items():
        version = None if versions is None else versions.get(name)
        found = None if versions is not None and version is None else store.delta(name, version)
        yield name, schema, found


@dataclass(frozen=True)
class BuildNote:
    """What one feature build read: each input table's version, and the cutoffs it was asked for (None:
    the month ends of the data)."""

    read: dict[str, int | None]
    cutoffs: list[str] | None
    #: a digest of the definitions, settings and engine that made its rows (`features.run.build_recipe`):
    #: a later build keeps rows only of a build of the same recipe (None: noted before recipes were)
    recipe: str | None = None

    def text(self) -> str:
        return json.dumps({"step": BUILD_STEP, **asdict(self)}, sort_keys=True)

    @classmethod
    def of(cls, text: str | None) -> BuildNote | None:
        """The note a build wrote, or None for a version written otherwise (a compaction, say)."""
        try:
            found = json.loads(text or "")
        except json.JSONDecodeError:
            return None
        if not isinstance(found, dict) or found.get("step") != BUILD_STEP:
            return None
        return cls(read=found["read"], cutoffs=found["cutoffs"], recipe=found.get("recipe"))

    def chosen_cutoffs(self) -> list[date] | None:
        return None if self.cutoffs is None else [date.fromisoformat(c) for c in self.cutoffs]


def build_note(store: Store, version: int) -> BuildNote:
    """The note of the build that wrote feature table version `version`."""
    for commit in store.history(TABLE):
        if commit.version == version:
            note = BuildNote.of(commit.retain)
            if note is None:
                raise RetainError(f"feature table version {version} was not written by a feature build")
            return note
    raise RetainError(f"the feature table in {store.location} has no version {version}")


def feature_dataset(store: Store, version: int | None = None) -> ds.Dataset:
    found = store.dataset(TABLE, version)
    if found is None:
        raise RetainError(f"no feature table in {store.location}; run `retain features build` first")
    return found


def read_features(
    store: Store, columns: list[str] | None = None, where: ds.Expression | None = None
) -> pa.Table:
    """The latest feature table, or some of its columns and rows."""
    return feature_dataset(store).to_table(columns=columns, filter=where)


def feature_columns(store: Store) -> list[str]:
    return feature_dataset(store).schema.names


def stored_cutoffs(store: Store) -> list[date]:
    """The cutoffs the store's latest feature table holds, sorted; none before the first build."""
    found = store.dataset(TABLE)
    if found is None:
        return []
    instants = pc.unique(found.to_table(columns=["cutoff"])["cutoff"]).to_pylist()
    return sorted({instant.date() for instant in instants})


def refuse_dropping_cutoffs(store: Store, cutoffs: Sequence[date]) -> None:
    """Refuse a build into the store whose `cutoffs` leave out some the feature table holds: the build
    replaces the whole table, and those rows are the history trends, training and the causal report read.
    Patching only the asked cutoffs in would make a version no longer one build that `--as-of-version`
    can rebuild from its note."""
    dropped = sorted(set(stored_cutoffs(store)) - set(cutoffs))
    if dropped:
        span = ", ".join(map(str, dropped[:3])) + (f", ... {dropped[-1]}" if len(dropped) > 3 else "")
        raise RetainError(
            f"these cutoffs would replace the store's feature table and drop {len(dropped)} of its cutoffs "
            f"({span}); write only them to a file with --out FILE, or rebuild every cutoff: "
            "`retain features build` (month ends), or --cutoffs listing every cutoff to keep"
        )
