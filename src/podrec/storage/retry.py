"""One way to write: a transaction that is run again when another writer got in the way.

Several podrec processes may write one database at once (two ingests, an ingest and an
enrich, a server taking events). What they meet is transient: SQLite's "database is locked"
(the busy timeout ran out, or a read snapshot went stale before the write), PostgreSQL's
serialization failures, deadlocks and lock time-outs. And a write planned from what was
stored a moment ago may find that another writer has since stored the same key. Every write
of the store goes through ``run_write``: a transient error rolls back and runs the write
again after a growing, jittered pause; a unique-key conflict does so too when the caller can
plan again (``on_conflict``). The number of attempts is bounded: a database that stays busy
is reported in one line (``StoreError``), never as a traceback.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

T = TypeVar("T")

ATTEMPTS = 10  # the first try and nine more
BASE_PAUSE_S = 0.05  # doubled each time, jittered by ±50%
MAX_PAUSE_S = 2.0

# PostgreSQL: serialization_failure, deadlock_detected, lock_not_available.
_TRANSIENT_SQLSTATES = {"40001", "40P01", "55P03"}
_UNIQUE_SQLSTATE = "23505"
_TRANSIENT_SQLITE = ("database is locked", "database table is locked", "database is busy")


class WriteGaveUp(RuntimeError):  # noqa: N818 - the message says what happened
    """The database stayed busy through every attempt."""


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)


def is_transient(exc: BaseException) -> bool:
    """Whether running the same transaction again may succeed (lock, busy, deadlock)."""
    if not isinstance(exc, DBAPIError):
        return False
    if _sqlstate(exc) in _TRANSIENT_SQLSTATES:
        return True
    message = str(exc.orig).lower()
    return any(text in message for text in _TRANSIENT_SQLITE)


def is_unique_conflict(exc: BaseException) -> bool:
    """Whether a unique key (or primary key) was already taken, e.g. by another writer."""
    if not isinstance(exc, IntegrityError):
        return False
    return (_sqlstate(exc) == _UNIQUE_SQLSTATE
            or "unique constraint failed" in str(exc.orig).lower())


def pause(attempt: int) -> float:
    """Seconds to wait before attempt ``attempt + 1`` (exponential, capped, jittered so two
    writers that collided do not collide again at the same moment)."""
    return min(MAX_PAUSE_S, BASE_PAUSE_S * 2 ** attempt) * random.uniform(0.5, 1.5)  # noqa: S311


def run_write(engine: Engine, write: Callable[[Connection], T],
              on_conflict: Callable[[], None] | None = None,
              attempts: int = ATTEMPTS, what: str = "write") -> T:
    """``write(conn)`` in one transaction, committed; run again on a transient error, and on
    a unique-key conflict when ``on_conflict`` is given (it is called first, to plan the
    write again from what is stored now). Raises ``WriteGaveUp`` when the database stays busy,
    the last conflict when conflicts keep coming, and any other error at once."""
    for attempt in range(attempts):
        try:
            with engine.begin() as conn:
                return write(conn)
        except DBAPIError as exc:
            last = attempt == attempts - 1
            if is_transient(exc):
                if last:
                    reason = str(exc.orig).strip().splitlines()[0][:200]
                    raise WriteGaveUp(f"the database stayed busy: {what} not written after "
                                      f"{attempts} attempts ({reason})") from None
            elif on_conflict is not None and is_unique_conflict(exc):
                if last:
                    raise
                on_conflict()
            else:
                raise
        time.sleep(pause(attempt))
    raise AssertionError("unreachable")  # pragma: no cover
