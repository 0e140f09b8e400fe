"""The spill files replayed into the log, each recorded with its entries, so none is replayed twice.

Revision ID: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.create_table(
        "spills_replayed",
        sa.Column("spill_id", sa.String, primary_key=True),
        sa.Column("entries", sa.Integer, nullable=False),
        sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("spills_replayed")
