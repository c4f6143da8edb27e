"""Training inside the server: one training at a time over a database, and the schedule.

``POST /models/train`` and the schedule (``train.interval`` seconds, 0 = off) both run
``podrec.train(kind)`` under ``TrainLock``: in this process a lock, across processes (every
worker of every server on the same database) a PostgreSQL session advisory lock, or on SQLite
an ``flock`` on the file ``<database>.train.lock`` next to it. Whoever does not get the lock
does not wait: the request is a 409, the scheduled round is skipped.

The schedule runs in every worker but trains only what is due: each kind with items whose
newest stored model is older than the interval (or that has none). Every worker checks every
tenth of the interval (at least 1 s, at most a minute); the first to take the lock trains,
and the others then find a fresh model and leave it. Every worker, including the one that
trained, serves the new version within a second (``podrec.refresh``: the catalog version
includes the stored artefacts).

With ``ray.address`` set, both fit their grid points and models as Ray tasks on that cluster
(``train_kind``), as ``podrec train`` does; a cluster that cannot be reached is logged and the
training runs in the worker instead, so a schedule never stops because Ray is down.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

from podrec.batch.runner import BatchError, make_runner
from podrec.server.notify import libpq_url
from podrec.server.schedule import Schedule
from podrec.service import NotFoundError, Podrec
from podrec.storage import StoreError
from podrec.train.trainer import TrainReport

log = logging.getLogger("podrec.server")

LOCK_KEY = zlib.crc32(b"podrec train")  # the advisory lock's key (any fixed bigint)


def train_kind(podrec: Podrec, kind: str) -> TrainReport:
    """``podrec.train(kind)`` on the ``ray.address`` cluster when one is configured, else (or
    when it cannot be reached) in this process."""
    try:
        runner = make_runner(None, podrec.config)
    except BatchError as exc:
        log.warning("training %s in this worker: %s", kind, exc)
        return podrec.train(kind)
    try:
        return podrec.train(kind, runner=runner)
    finally:
        runner.close()


class TrainLock:
    """At most one training at a time over one database, from any process."""

    def __init__(self, database_url: str, dialect: str) -> None:
        self.url = database_url
        self.dialect = dialect
        self._local = threading.Lock()

    @contextmanager
    def hold(self) -> Iterator[bool]:
        """True while held; False (at once, without waiting) when a training is running."""
        if not self._local.acquire(blocking=False):
            yield False
            return
        try:
            with self._across_processes() as held:
                yield held
        finally:
            self._local.release()

    @contextmanager
    def _across_processes(self) -> Iterator[bool]:
        if self.dialect == "postgresql":
            with self._advisory() as held:
                yield held
        elif self.dialect == "sqlite" and self._lock_file() is not None:
            with self._flock(self._lock_file()) as held:
                yield held
        else:  # an in-memory database: no other process can see it
            yield True

    @contextmanager
    def _advisory(self) -> Iterator[bool]:
        """A session advisory lock: the database drops it if this process dies."""
        import psycopg

        try:
            conn = psycopg.connect(libpq_url(self.url), autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            raise StoreError(f"cannot reach the database for the training lock: {exc}"
                             ) from None
        with conn:
            held = bool(conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)
                                     ).fetchone()[0])
            try:
                yield held
            finally:
                if held:
                    with suppress(Exception):  # a lost connection released it already
                        conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))

    def _lock_file(self) -> Path | None:
        path = self.url.removeprefix("sqlite:///")
        if not self.url.startswith("sqlite:///") or path in ("", ":memory:"):
            return None
        return Path(path).expanduser().with_name(Path(path).name + ".train.lock")

    @staticmethod
    @contextmanager
    def _flock(path: Path) -> Iterator[bool]:
        """An exclusive ``flock``: the system drops it if this process dies."""
        import fcntl

        with path.open("a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
            except BlockingIOError:
                held = False
            try:
                yield held
            finally:
                if held:
                    fcntl.flock(f, fcntl.LOCK_UN)


class Retrainer(Schedule):
    """The schedule: every ``interval`` seconds, a new model of each kind with items (what
    is due is checked every tenth of it, at least 1 s, at most a minute)."""

    what = "scheduled training"

    def __init__(self, podrec: Podrec, lock: TrainLock, interval: float) -> None:
        super().__init__("podrec-retrain", max(1.0, min(interval / 10, 60.0)))
        self.podrec = podrec
        self.lock = lock
        self.interval = interval

    def run_round(self) -> list[str]:
        return self.run_due()

    def due(self, kind: str) -> bool:
        """No stored model of ``kind``, or the newest is older than the interval."""
        versions = self.podrec.model_versions(kind)
        if not versions:
            return True
        age = (datetime.now(UTC) - versions[0]["created"]).total_seconds()
        return age >= self.interval

    def run_due(self) -> list[str]:
        """Train each kind that is due, if no one else is training; the versions saved."""
        kinds = [k for k in self.podrec.kinds_with_items() if self.due(k)]
        if not kinds:
            return []
        saved = []
        with self.lock.hold() as held:
            if not held:
                return []
            for kind in kinds:
                if self.stopping or not self.due(kind):  # trained meanwhile elsewhere
                    continue
                try:
                    report = train_kind(self.podrec, kind)
                except NotFoundError as exc:  # items, but none embedded yet
                    log.info("scheduled training of %s skipped: %s", kind, exc)
                    continue
                log.info("scheduled training saved model/%s/%s%s", kind, report.version,
                         f" (fallback: {report.fallback})" if report.fallback else "")
                saved.append(report.version)
        return saved
