"""The autopilot: its executions, the held-out accounts it compares them with, the kill switch and the
accounts CSMs stopped it for.

Revision ID: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "autopilot_executions",
        sa.Column("execution_id", sa.String, primary_key=True),
        sa.Column("week", _TIME, nullable=False),
        sa.Column("account_id", sa.String, nullable=False),
        sa.Column("action", sa.String, nullable=False),
        sa.Column("channel", sa.String, nullable=False),
        sa.Column("arm", sa.String, nullable=False),
        sa.Column("at", _TIME, nullable=False),
        sa.Column("actor", sa.String, nullable=False),
        sa.Column("key_id", sa.String),
        sa.Column("policy_version", sa.String, nullable=False),
        sa.Column("propensity", sa.Float),
        sa.Column("run_id", sa.String, nullable=False),
    )
    op.create_index("ix_autopilot_executions_account", "autopilot_executions", ["account_id", "at"])
    op.create_index("ix_autopilot_executions_at", "autopilot_executions", ["at"])
    op.create_table(
        "autopilot_comparisons",
        sa.Column("week", _TIME, primary_key=True),
        sa.Column("account_id", sa.String, primary_key=True),
        sa.Column("action", sa.String, primary_key=True),
        sa.Column("recorded_at", _TIME, nullable=False),
    )
    op.create_table(
        "autopilot_switches",
        sa.Column("scope", sa.String, primary_key=True),
        sa.Column("paused", sa.Boolean, nullable=False),
        sa.Column("reason", sa.String),
        sa.Column("actor", sa.String, nullable=False),
        sa.Column("at", _TIME, nullable=False),
        sa.Column("evidence", sa.JSON),
    )
    op.create_table(
        "autopilot_stops",
        sa.Column("account_id", sa.String, primary_key=True),
        sa.Column("stopped", sa.Boolean, nullable=False),
        sa.Column("actor", sa.String, nullable=False),
        sa.Column("key_id", sa.String),
        sa.Column("at", _TIME, nullable=False),
    )


def downgrade() -> None:
    for table in ("autopilot_stops", "autopilot_switches", "autopilot_comparisons", "autopilot_executions"):
        op.drop_table(table)
