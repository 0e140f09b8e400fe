"""The store: one folder that holds a whole deployment, and the atomic commit of its tables.

Tables are folders of immutable Parquet files. Which files are live is said by one `manifest.json`,
replaced atomically (`os.replace`) at the end of a transaction, so a crash at any point leaves the
store as it was: files written before the crash are orphans that no reader sees and the next
transaction removes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

TABLES = ("accounts", "events", "interventions", "quarantine")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class Transaction:
    """Files added or replaced per table; committed all together or not at all."""

    store: Store
    tables: dict[str, list[str]]
    written: list[Path] = field(default_factory=list)

    def new_file(self, table: str) -> Path:
        """A fresh, unique path in the table's folder; it becomes live only if the transaction commits."""
        path = self.store.table_dir(table) / f"part-{uuid.uuid4().hex}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.written.append(path)
        return path

    def add(self, table: str, path: Path) -> None:
        self.tables.setdefault(table, []).append(path.relative_to(self.store.root).as_posix())

    def replace(self, table: str, paths: list[Path]) -> None:
        self.tables[table] = [p.relative_to(self.store.root).as_posix() for p in paths]


@dataclass(frozen=True)
class Store:
    root: Path

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def table_dir(self, table: str) -> Path:
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}; tables are {', '.join(TABLES)}")
        return self.root / "tables" / table

    @property
    def features_dir(self) -> Path:
        return self.root / "features"

    @property
    def feature_table(self) -> Path:
        return self.features_dir / "account_features.parquet"

    @property
    def feast_dir(self) -> Path:
        return self.root / "feast"

    @property
    def serving_dir(self) -> Path:
        """The API's own state: hashed API keys and the default SQLite decision log."""
        return self.root / "serving"

    def _manifest(self) -> dict[str, list[str]]:
        if not self.manifest_path.exists():
            return {}
        tables: dict[str, list[str]] = json.loads(self.manifest_path.read_text())["tables"]
        return tables

    def files(self, table: str) -> list[Path]:
        """The live files of a table, in commit order."""
        self.table_dir(table)
        return [self.root / p for p in self._manifest().get(table, [])]

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One writer at a time; on success the new manifest is published by a single atomic rename."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._remove_orphans()
            txn = Transaction(self, {t: list(ps) for t, ps in self._manifest().items()})
            try:
                yield txn
            except BaseException:
                for path in txn.written:
                    path.unlink(missing_ok=True)
                raise
            self._publish(txn.tables)
            self._remove_orphans()

    def _publish(self, tables: dict[str, list[str]]) -> None:
        for table in tables.values():
            for rel in table:
                with open(self.root / rel, "rb") as f:
                    os.fsync(f.fileno())
        tmp = self.manifest_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"tables": tables}, indent=1))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, self.manifest_path)
        _fsync_dir(self.root)

    def _remove_orphans(self) -> None:
        live = {self.root / p for ps in self._manifest().values() for p in ps}
        for table in TABLES:
            folder = self.table_dir(table)
            if folder.exists():
                for path in folder.glob("*.parquet"):
                    if path not in live:
                        path.unlink()
