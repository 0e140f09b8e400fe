"""The decision log as the first release created it: decisions, recommendations, feedback, actions taken.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "decisions",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("request_id", sa.String, nullable=False),
        sa.Column("served_at", _TIME, nullable=False),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("account_id", sa.String, nullable=False),
        sa.Column("source", sa.String, nullable=False),
        sa.Column("models", sa.JSON, nullable=False),
        sa.Column("cutoff", _TIME),
        sa.Column("inputs_hash", sa.String, nullable=False),
        sa.Column("output", sa.JSON, nullable=False),
    )
    op.create_index("ix_decisions_account_served", "decisions", ["account_id", "served_at"])
    op.create_table(
        "recommendations",
        sa.Column("recommendation_id", sa.String, primary_key=True),
        sa.Column("request_id", sa.String, nullable=False),
        sa.Column("served_at", _TIME, nullable=False),
        sa.Column("account_id", sa.String, nullable=False),
        sa.Column("action", sa.String, nullable=False),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("expected_value", sa.Float),
        sa.Column("source", sa.String, nullable=False),
    )
    op.create_table(
        "feedback",
        sa.Column("feedback_id", sa.String, primary_key=True),
        sa.Column("recommendation_id", sa.String, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("reason", sa.String),
        sa.Column("actor", sa.String),
        sa.Column("at", _TIME, nullable=False),
        sa.Column("intervention_id", sa.String),
    )
    op.create_index("ix_feedback_recommendation_id", "feedback", ["recommendation_id"])
    op.create_table(
        "interventions_taken",
        sa.Column("intervention_id", sa.String, primary_key=True),
        sa.Column("account_id", sa.String, nullable=False),
        sa.Column("ts", _TIME, nullable=False),
        sa.Column("action", sa.String, nullable=False),
        sa.Column("owner", sa.String),
        sa.Column("channel", sa.String),
        sa.Column("assignment", sa.String, nullable=False),
        sa.Column("propensity", sa.Float),
        sa.Column("request_id", sa.String, nullable=False),
        sa.Column("folded_version", sa.Integer),
    )
    op.create_index("ix_interventions_taken_folded_version", "interventions_taken", ["folded_version"])


def downgrade() -> None:
    for table in ("interventions_taken", "feedback", "recommendations", "decisions"):
        op.drop_table(table)
