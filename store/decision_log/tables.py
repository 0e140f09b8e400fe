"""The decision log's own tables (answers, recommendations, feedback, actions taken, the readiness probe,
the spills replayed) on one `METADATA`, which `other_tables.py` adds to; aware UTC times on both back ends,
an upsert in either dialect, and the canonical JSON the log writes.

A change to them is a migration in `store/log_migrations/versions/` too; a test checks the two agree.
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC in and out: SQLite stores no zone, and PostgreSQL answers in the session's zone."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value}: the decision log stores aware times")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


METADATA = sa.MetaData()
DECISIONS = sa.Table(
    "decisions",
    METADATA,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String, nullable=False),
    sa.Column("served_at", UTCDateTime, nullable=False),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("account_id", sa.String, nullable=False),
    sa.Column("source", sa.String, nullable=False),
    sa.Column("models", sa.JSON, nullable=False),
    sa.Column("cutoff", UTCDateTime),
    sa.Column("inputs_hash", sa.String, nullable=False),
    sa.Column("output", sa.JSON, nullable=False),
    sa.Column("key_id", sa.String),
    sa.Index("ix_decisions_account_served", "account_id", "served_at"),
)
RECOMMENDATIONS = sa.Table(
    "recommendations",
    METADATA,
    sa.Column("recommendation_id", sa.String, primary_key=True),
    sa.Column("request_id", sa.String, nullable=False),
    sa.Column("served_at", UTCDateTime, nullable=False),
    sa.Column("account_id", sa.String, nullable=False),
    sa.Column("action", sa.String, nullable=False),
    sa.Column("rank", sa.Integer, nullable=False),
    sa.Column("expected_value", sa.Float),
    sa.Column("source", sa.String, nullable=False),
    #: the probability that this account was offered this action at this rank: 1 for the deterministic
    #: ranking (an off-policy estimate weights by it); and how sure the model was that the action helps
    sa.Column("propensity", sa.Float),
    sa.Column("p_helps", sa.Float),
)
FEEDBACK = sa.Table(
    "feedback",
    METADATA,
    sa.Column("feedback_id", sa.String, primary_key=True),
    sa.Column("recommendation_id", sa.String, nullable=False, index=True),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("reason", sa.String),
    sa.Column("actor", sa.String),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("intervention_id", sa.String),
    sa.Column("key_id", sa.String),
)

#: one row rewritten by every readiness check: the only proof that the log can be written is a write
WRITE_PROBE = sa.Table(
    "write_probe",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("checked_at", UTCDateTime, nullable=False),
)

#: the spill files replayed, each by its unique stem, recorded in the transaction that writes its entries:
#: a start that finds the file again (its removal cut short, a second worker) writes nothing twice
SPILLS_REPLAYED = sa.Table(
    "spills_replayed",
    METADATA,
    sa.Column("spill_id", sa.String, primary_key=True),
    sa.Column("entries", sa.Integer, nullable=False),
    sa.Column("replayed_at", UTCDateTime, nullable=False),
)

#: actions taken, reported through the API: durable here at once, merged into the store's Delta table
#: `interventions` by `retain store compact` (merged_version says which table version holds the row)
TAKEN = sa.Table(
    "interventions_taken",
    METADATA,
    sa.Column("intervention_id", sa.String, primary_key=True),
    sa.Column("account_id", sa.String, nullable=False),
    sa.Column("ts", UTCDateTime, nullable=False),
    sa.Column("action", sa.String, nullable=False),
    sa.Column("owner", sa.String),
    sa.Column("channel", sa.String),
    sa.Column("assignment", sa.String, nullable=False),
    sa.Column("propensity", sa.Float),
    sa.Column("request_id", sa.String, nullable=False),
    sa.Column("merged_version", sa.Integer, index=True),
    sa.Column("key_id", sa.String),
)


def upsert_into(conn: sa.Connection, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that can say what to do on a key already present (`on_conflict_do_nothing`, `..._update`),
    in the dialect of `conn`: both back ends have it, under their own classes."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


#: canonical JSON (sorted keys), so equal `models` dicts are equal text and compare in SQL on both
#: backends; no NaN, which PostgreSQL's json rejects and the API's responses cannot carry either
dumps = functools.partial(json.dumps, sort_keys=True, separators=(",", ":"), allow_nan=False)
