"""Initial schema: items, tags, embeddings, users, events, artifacts.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    tz = sa.DateTime(timezone=True)
    op.create_table(
        "items",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("id", sa.String(512), nullable=False),
        sa.Column("show_id", sa.String(512)),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("author", sa.Text),
        sa.Column("language", sa.String(16)),
        sa.Column("image", sa.Text),
        sa.Column("audio_url", sa.Text),
        sa.Column("feed_url", sa.Text),
        sa.Column("guid", sa.Text),
        sa.Column("duration_s", sa.Integer),
        sa.Column("published", tz),
        sa.Column("explicit", sa.Boolean),
        sa.Column("popularity", sa.Float),
        sa.Column("categories", sa.JSON, nullable=False),
        sa.Column("extra", sa.JSON, nullable=False),
        sa.Column("norm_key", sa.String(512)),
        sa.Column("source", sa.String(64)),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("updated_at", tz, nullable=False),
        sa.UniqueConstraint("kind", "id", name="uq_items_kind_id"),
    )
    op.create_index("ix_items_show_id", "items", ["show_id"])
    op.create_index("ix_items_norm_key", "items", ["norm_key"])
    op.create_table(
        "tags",
        sa.Column("item_pk", sa.Integer, sa.ForeignKey("items.pk", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("source", sa.String(16), primary_key=True),
        sa.Column("tag", sa.String(200), primary_key=True),
        sa.Column("score", sa.Float, nullable=False),
    )
    op.create_index("ix_tags_tag", "tags", ["tag"])
    op.create_table(
        "embeddings",
        sa.Column("item_pk", sa.Integer, sa.ForeignKey("items.pk", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("model_id", sa.String(128), primary_key=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_embeddings_model_hash", "embeddings", ["model_id", "content_hash"])
    op.create_table(
        "users",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(256), nullable=False, unique=True),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("attrs", sa.JSON, nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(256), nullable=False),
        sa.Column("item_kind", sa.String(16)),
        sa.Column("item_id", sa.String(512)),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("text", sa.Text),
        sa.Column("timestamp", tz, nullable=False),
        sa.Column("platform", sa.String(64)),
        sa.Column("device", sa.String(64)),
        sa.Column("context", sa.JSON, nullable=False),
        sa.Column("dedupe_key", sa.String(64), nullable=False, unique=True),
    )
    op.create_index("ix_events_user_time", "events", ["user_id", "timestamp"])
    op.create_table(
        "artifacts",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.Column("payload", sa.LargeBinary),
    )


def downgrade() -> None:
    for table in ("artifacts", "events", "users", "embeddings", "tags", "items"):
        op.drop_table(table)
