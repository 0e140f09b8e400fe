"""The store's tables the service reads, and whether each can be read now.

A Delta table whose log names a data file that is gone (deleted by hand, a restore that missed a folder, a
vacuum with too short a retention) still opens: the scan fails when it reaches the file, with Arrow's or
the operating system's error. Every read the service makes of a table goes through `reading`, which says
that failure as `TableUnreadable`: a page answers 503 naming the table, the book keeps its last good copy,
a reload keeps what it loaded; and `/readyz` asks `table_problem` of each table, each time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa
from deltalake.exceptions import DeltaError

from core.errors import RetainError
from store.delta import Store
from store.plan_table import PLANS

#: the tables the API and cockpit read: the reload (accounts, interventions), the cockpit's book and
#: timelines (events, features for trends) and the account page's plan
SERVED_TABLES = ("accounts", "interventions", "events", "features", PLANS)


class TableUnreadable(RetainError):
    """A table of the store cannot be read: its log or one of its active data files is missing or broken."""

    def __init__(self, table: str, error: Exception) -> None:
        super().__init__(f"the {table} table cannot be read: {type(error).__name__}: {error}")
        self.table = table


@contextmanager
def reading(table: str) -> Iterator[None]:
    """Reads of `table` inside fail as `TableUnreadable` (Arrow's, the file system's and Delta's errors)."""
    try:
        yield
    except (OSError, pa.ArrowException, DeltaError) as e:
        raise TableUnreadable(table, e) from e


def table_problem(store: Store, table: str) -> str | None:
    """Why `table` cannot be read now, or None: its log opens, every active file exists (Arrow checks each
    one as it builds the dataset) and its first rows read. A table never written is no problem."""
    try:
        with reading(table):
            found = store.dataset(table)
            if found is not None:
                found.head(1)
    except TableUnreadable as e:
        return str(e)
    return None
