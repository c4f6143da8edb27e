"""An index on items.feed_url: OPML ingest and subscription matching look shows up by their
feed URL, once per outline.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_items_feed_url", "items", ["feed_url"])


def downgrade() -> None:
    op.drop_index("ix_items_feed_url", table_name="items")
