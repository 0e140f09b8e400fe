"""The decision log's schema, as Alembic migrations: one file per change in `versions/`, applied in order
by `upgrade` when a log first reaches its database (under the schema lock, so several workers starting
at once apply them once).

A log the first release made with `create_all` has its tables but no version stamp: it is stamped at
`BASELINE` and upgraded from there. A change to the schema is a new file in `versions/` (copy the newest,
set `revision` and `down_revision`) and the same change to the tables in `store/decision_log/`; a
test checks that the two agree.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

#: the revision of the schema the first release created without migrations
BASELINE = "0001"


def _config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.attributes["connection"] = connection
    return config


def revision(connection: sa.Connection) -> str | None:
    """The schema revision the database is at (None: no stamp)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(connection: sa.Connection) -> None:
    """Bring the database on `connection` to the newest revision, inside the caller's transaction."""
    if revision(connection) is None and sa.inspect(connection).has_table("decisions"):
        command.stamp(_config(connection), BASELINE)
    upgrade_to(connection, "head")


def upgrade_to(connection: sa.Connection, target: str) -> None:
    """Bring the database on `connection` to revision `target`, inside the caller's transaction."""
    command.upgrade(_config(connection), target)
