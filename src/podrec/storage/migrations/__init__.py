"""Alembic migrations, run programmatically: ``upgrade(engine)`` brings a database to head.

Several processes may open a new database at the same moment (a server's workers, two
ingests started together). Each would find no tables and create them, and all but one would
fail ("table items already exists"). So an upgrade runs under a lock held across processes:
PostgreSQL's session advisory lock on that database, or a lock file next to a SQLite file.
The second process waits, then finds the schema at head and has nothing to do.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

HERE = Path(__file__).parent
# The advisory lock's key: any fixed 64-bit number other code on the database does not use.
PG_LOCK_KEY = 0x706F64726563  # "podrec"
LOCK_WAIT_S = 600.0  # a migration of a large database may take minutes; longer is a stuck one


class MigrationLockTimeout(RuntimeError):  # noqa: N818 - the message says what happened
    """Another process held the migration lock for longer than ``LOCK_WAIT_S``."""


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["engine"] = engine
    return cfg


def lock_path(engine: Engine) -> Path | None:
    """The lock file of a SQLite file database (None for memory and other databases)."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser().with_name(Path(database).name + ".migrate.lock")


@contextmanager
def serialised(engine: Engine, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold the database's migration lock (waiting at most ``wait_s`` seconds for it)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            deadline = time.monotonic() + wait_s
            while not conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                   {"k": PG_LOCK_KEY}).scalar():
                conn.commit()
                if time.monotonic() > deadline:
                    raise MigrationLockTimeout(
                        f"another process has been migrating this database for over "
                        f"{wait_s:.0f} s")
                time.sleep(0.05)
            conn.commit()
            try:
                yield
            finally:  # the lock is the session's: it also goes if this process dies
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": PG_LOCK_KEY})
                conn.commit()
        return
    path = lock_path(engine)
    if path is None:
        yield
        return
    from filelock import FileLock, Timeout

    try:
        with FileLock(path, timeout=wait_s):  # an flock: released if this process dies
            yield
    except Timeout:
        raise MigrationLockTimeout(f"another process has held {path} for over {wait_s:.0f} s"
                                   ) from None


def upgrade(engine: Engine, revision: str = "head") -> None:
    with serialised(engine):
        command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    with serialised(engine):
        command.downgrade(alembic_config(engine), revision)
