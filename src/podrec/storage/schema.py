"""The one schema (SQLAlchemy Core). Migrations in storage/migrations must match it.

Items are shows and episodes in one table: they share almost every field, and recommenders
treat both as items. The external id a record came with is unique per kind, so a show and an
episode may share an id (Listen Notes numbers both from 1).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

items = Table(
    "items",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("id", String(512), nullable=False),
    Column("show_id", String(512)),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("author", Text),
    Column("language", String(16)),
    Column("image", Text),
    Column("audio_url", Text),
    Column("feed_url", Text),
    Column("guid", Text),
    Column("duration_s", Integer),
    Column("published", DateTime(timezone=True)),
    Column("explicit", Boolean),
    Column("popularity", Float),
    Column("categories", JSON, nullable=False, default=list),
    Column("extra", JSON, nullable=False, default=dict),
    Column("norm_key", String(512)),
    Column("source", String(64)),
    Column("content_hash", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("kind", "id", name="uq_items_kind_id"),
)
Index("ix_items_show_id", items.c.show_id)
Index("ix_items_norm_key", items.c.norm_key)
Index("ix_items_feed_url", items.c.feed_url)  # URLs are kept to MAX_URL_CHARS at ingest

tags = Table(
    "tags",
    metadata,
    Column("item_pk", Integer, ForeignKey("items.pk", ondelete="CASCADE"), primary_key=True),
    Column("source", String(16), primary_key=True),  # category | taxonomy | keyphrase
    Column("tag", String(200), primary_key=True),
    Column("score", Float, nullable=False),
)
Index("ix_tags_tag", tags.c.tag)

embeddings = Table(
    "embeddings",
    metadata,
    Column("item_pk", Integer, ForeignKey("items.pk", ondelete="CASCADE"), primary_key=True),
    Column("model_id", String(128), primary_key=True),
    Column("content_hash", String(64), nullable=False),
    Column("dim", Integer, nullable=False),
    Column("vector", LargeBinary, nullable=False),
)
Index("ix_embeddings_model_hash", embeddings.c.model_id, embeddings.c.content_hash)

users = Table(
    "users",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("id", String(256), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("attrs", JSON, nullable=False, default=dict),
    # Accounts of one person on several platforms share a person id (None: not linked).
    Column("person_id", String(256)),
)
Index("ix_users_person_id", users.c.person_id)

events = Table(
    "events",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("user_id", String(256), nullable=False),
    Column("item_kind", String(16)),
    Column("item_id", String(512)),
    Column("event", String(32), nullable=False),
    Column("value", Float),
    Column("text", Text),
    Column("timestamp", DateTime(timezone=True), nullable=False),
    Column("platform", String(64)),
    Column("device", String(64)),
    Column("context", JSON, nullable=False, default=dict),
    Column("dedupe_key", String(64), nullable=False, unique=True),
)
Index("ix_events_user_time", events.c.user_id, events.c.timestamp)

artifacts = Table(
    "artifacts",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("meta", JSON, nullable=False, default=dict),
    Column("payload", LargeBinary),  # the first part of the payload (all of a small one)
)

# The rest of a large artefact's payload, in order: SQLite and PostgreSQL both refuse a value
# over 1 GB; at 1M episodes the trained model was 2.1 GB and the HNSW index 1.7 GB
# (storage/store.py, put_artifact).
artifact_parts = Table(
    "artifact_parts",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("part", Integer, primary_key=True),  # 1, 2, ...
    Column("payload", LargeBinary, nullable=False),
)

# Generated text by input hash (model id, prompt, schema): a generation is computed once.
generations = Table(
    "generations",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("model_id", String(200), nullable=False),
    Column("task", String(32), nullable=False),  # tags | intent | ...
    Column("output", Text, nullable=False),
    Column("seconds", Float, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# the listener a generation was written for (deleted with the listener)
generation_owners = Table(
    "generation_owners",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("user_id", String(256), primary_key=True),
)
Index("ix_generation_owners_user_id", generation_owners.c.user_id)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),  # the public part of the key
    Column("name", String(200), nullable=False),
    Column("scope", String(16), nullable=False),  # admin | client
    Column("key_hash", String(64), nullable=False),  # sha256 of the whole key
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)
