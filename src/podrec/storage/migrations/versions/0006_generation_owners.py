"""Which listener a generated text was written for (their words in a reading of a search,
their history in a reason or a summary), so deleting the listener deletes those texts too.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "generation_owners",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(256), primary_key=True),
    )
    op.create_index("ix_generation_owners_user_id", "generation_owners", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_generation_owners_user_id", "generation_owners")
    op.drop_table("generation_owners")
