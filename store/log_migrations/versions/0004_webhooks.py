"""Webhooks: subscriptions, the alerts recorded for them, and the outbox of deliveries.

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("webhook_id", sa.String, primary_key=True),
        sa.Column("url", sa.String, nullable=False),
        sa.Column("events", sa.String, nullable=False),
        sa.Column("secret", sa.String, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("removed_at", _TIME),
    )
    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.String, primary_key=True),
        sa.Column("type", sa.String, nullable=False),
        sa.Column("account_id", sa.String),
        sa.Column("at", _TIME, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("recorded_at", _TIME, nullable=False),
    )
    op.create_table(
        "deliveries",
        sa.Column("alert_id", sa.String, primary_key=True),
        sa.Column("webhook_id", sa.String, primary_key=True),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", _TIME, nullable=False),
        sa.Column("claimed_until", _TIME),
        sa.Column("last_error", sa.String),
        sa.Column("delivered_at", _TIME),
    )
    op.create_index("ix_deliveries_due", "deliveries", ["status", "next_attempt_at"])


def downgrade() -> None:
    for table in ("deliveries", "alerts", "webhooks"):
        op.drop_table(table)
