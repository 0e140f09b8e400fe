"""Faults a failing disk leaves behind, made on purpose by the soak and the serving tests."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def pages_overwritten(path: Path) -> Iterator[None]:
    """The SQLite online store's data pages (its feature table's leaves) overwritten and its indexes left
    whole, as a failing disk may leave it: a key no row holds is still answered, from an index alone.
    The file is put back after."""
    backup = path.with_name(f"{path.name}.backup")
    shutil.copyfile(path, backup)
    with contextlib.closing(sqlite3.connect(path)) as database:
        (table,) = database.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchone()
        size = database.execute("PRAGMA page_size").fetchone()[0]
        leaves = "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf'"
        pages = [page for (page,) in database.execute(leaves, (table,))]
    with path.open("r+b") as file:
        for page in pages:
            file.seek((page - 1) * size)
            file.write(b"\xa5" * size)
    try:
        yield
    finally:
        shutil.copyfile(backup, path)
        backup.unlink()
