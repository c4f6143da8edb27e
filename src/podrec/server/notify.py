"""Listening to PostgreSQL for changed listeners (``server.cache_sync = "notify"``).

The database announces every changed listener on the channel ``podrec_listeners`` (triggers
of migration 0003, so every writer is covered). A worker that listens can serve its kept
lists without asking the database on each request: it drops a listener's lists when the
announcement arrives, usually within a millisecond of the commit. Until the first LISTEN is
in place, and whenever the connection is lost, ``ready`` is False and the server checks each
listener's version in the database instead; every (re)connection first empties the cache,
since announcements may have been missed in between.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("podrec.server")

CHANNEL = "podrec_listeners"
RETRY_SECONDS = 1.0


def libpq_url(sqlalchemy_url: str) -> str:
    """``postgresql+psycopg://u:p@h/db`` -> ``postgresql://u:p@h/db`` for psycopg itself."""
    from sqlalchemy.engine import make_url

    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(
        hide_password=False)


class ListenerChanges(threading.Thread):
    """A daemon thread with its own connection, LISTENing on ``podrec_listeners``; each
    announcement ``<person>/<user>`` calls ``on_change(user, person or None)``, and each
    (re)connection ``on_reset()`` once LISTEN is in place."""

    def __init__(self, database_url: str, on_change: Callable[[str, str | None], None],
                 on_reset: Callable[[], None]) -> None:
        super().__init__(name="podrec-listener-changes", daemon=True)
        self.url = libpq_url(database_url)
        self.on_change = on_change
        self.on_reset = on_reset
        self._ready = threading.Event()
        self._halt = threading.Event()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        import psycopg

        while not self._halt.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.on_reset()  # whatever was kept before now may have missed a change
                    self._ready.set()
                    log.info("listening to %s for changed listeners", CHANNEL)
                    while not self._halt.is_set():
                        for note in conn.notifies(timeout=1.0):
                            person, _, user = note.payload.partition("/")
                            self.on_change(user, person or None)
            except Exception as exc:  # noqa: BLE001 - any failure: fall back, then retry
                if self._ready.is_set():
                    log.warning("lost the %s connection (%s); checking listeners in the "
                                "database until it is back", CHANNEL, exc)
                self._ready.clear()
                self.on_reset()
                self._halt.wait(RETRY_SECONDS)
        self._ready.clear()
