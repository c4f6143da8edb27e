"""Storage: one SQLAlchemy Core schema on SQLite (default) or PostgreSQL."""

from podrec.storage.store import Store, StoreError

__all__ = ["Store", "StoreError"]
