"""Each recommendation's propensity (the probability it was offered, for off-policy evaluation) and the
posterior probability that its action helps.

Revision ID: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.add_column("recommendations", sa.Column("propensity", sa.Float))
    op.add_column("recommendations", sa.Column("p_helps", sa.Float))


def downgrade() -> None:
    op.drop_column("recommendations", "p_helps")
    op.drop_column("recommendations", "propensity")
