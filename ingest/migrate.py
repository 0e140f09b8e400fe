"""Convert a store of the earlier layout (Parquet files made live by `manifest.json`) into Delta tables.

The old tables' live rows take the ingest's own path from staging on (MERGE on the natural ids), so a
migration run twice, or into a store that already holds some of the rows, adds each row once. The old
feature table becomes the first version of the Delta feature table. The old store is only read.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import RetainError
from ingest.commit import KEYED, Staging, publish
from store.delta import OLD_MANIFEST, Store

OLD_FEATURE_TABLE = Path("features") / "account_features.parquet"


@dataclass(frozen=True)
class MigratedTable:
    table: str
    #: live rows in the old store
    rows_read: int
    #: rows the new store did not hold yet
    rows_written: int
    #: the table's version after the migration (None: nothing to write)
    version: int | None


@dataclass(frozen=True)
class Migration:
    source: Path
    store: str
    tables: list[MigratedTable]


def migrate(old: Path, store: Store) -> Migration:
    """Every live row of the old store's tables, and its feature table, into `store`."""
    manifest = old / OLD_MANIFEST
    if not manifest.is_file():
        raise RetainError(f"{old} is not a store of the earlier layout: it has no {OLD_MANIFEST}")
    live: dict[str, list[str]] = json.loads(manifest.read_text())["tables"]
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="retain-migrate-") as folder:
        staging = Staging(Path(folder), f"migrate-{now:%Y%m%dT%H%M%SZ}", now)
        for table, keyed in KEYED.items():
            for name in live.get(table, []):
                staging.stage(table, _read(old / name, keyed.schema))
        published = publish(store, staging, f"migrate from {old}")
    tables = [
        MigratedTable(
            table,
            staging.rows[table],
            published.quarantined_new if table == "quarantine" else published.accepted[table],
            published.versions.get(table),
        )
        for table in KEYED
    ]
    features = old / OLD_FEATURE_TABLE
    if features.is_file():
        data = pq.read_table(features)
        note = json.dumps({"step": "migrate", "from": str(features)})
        version = store.write("features", data, "overwrite", note)
        tables.append(MigratedTable("features", data.num_rows, data.num_rows, version))
    return Migration(old, store.location, tables)


def _read(path: Path, schema: pa.Schema) -> pa.Table:
    try:
        return pq.read_table(path, columns=schema.names).cast(schema)
    except (OSError, pa.ArrowException) as e:
        raise RetainError(f"cannot read {path} of the old store: {e}") from e
