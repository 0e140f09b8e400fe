"""Which API key acted, on every decision, feedback and action taken (an audit trail a caller cannot
write for itself); and the row readiness checks rewrite to prove the log takes writes.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"

_AUDITED = ("decisions", "feedback", "interventions_taken")


def upgrade() -> None:
    for table in _AUDITED:
        op.add_column(table, sa.Column("key_id", sa.String))
    op.create_table(
        "write_probe",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("write_probe")
    for table in _AUDITED:
        op.drop_column(table, "key_id")
