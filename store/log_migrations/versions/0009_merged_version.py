"""The column marking which `interventions` table version holds an action recorded through the API is
named for the merge that writes it (`merged_version`, earlier `folded_version`).

Revision ID: 0009
"""

from alembic import op

revision = "0009"
down_revision = "0008"


def _rename(old: str, new: str) -> None:
    op.drop_index(f"ix_interventions_taken_{old}", "interventions_taken")
    with op.batch_alter_table("interventions_taken") as batch:
        batch.alter_column(old, new_column_name=new)
    op.create_index(f"ix_interventions_taken_{new}", "interventions_taken", [new])


def upgrade() -> None:
    _rename("folded_version", "merged_version")


def downgrade() -> None:
    _rename("merged_version", "folded_version")
