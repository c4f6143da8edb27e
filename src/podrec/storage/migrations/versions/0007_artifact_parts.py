"""The parts of a large artefact's payload beyond the first: SQLite and PostgreSQL both refuse a
value over 1 GB, and a 1M-episode HNSW index or trained model is larger.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "artifact_parts",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("part", sa.Integer, primary_key=True),
        sa.Column("payload", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("artifact_parts")
