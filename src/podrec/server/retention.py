"""Retention inside the server: events older than ``privacy.retain_days`` are purged at
start-up and every ``privacy.purge_interval`` seconds (one day by default).

Like the training schedule (training.py) it is a daemon thread per worker. A purge is one
``DELETE ... WHERE timestamp < cut-off``, idempotent, so workers that purge at the same time
need no lock: the second finds nothing left to delete (the store runs a write that met
another writer again). Every worker serves the change at once: a listener's version counts
their events.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from podrec.service import Podrec

log = logging.getLogger("podrec.server")


class Purger(threading.Thread):
    """The retention schedule: ``podrec.purge()`` now and every ``interval`` seconds."""

    def __init__(self, podrec: Podrec, interval: float) -> None:
        super().__init__(name="podrec-purge", daemon=True)
        self.podrec = podrec
        self.interval = interval
        self.rounds = 0
        self.last: dict[str, Any] | None = None
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self.purge_once()
            except Exception:  # noqa: BLE001 - a failed round is logged; the next one retries
                log.exception("scheduled purge failed")
            self._halt.wait(self.interval)

    def purge_once(self) -> dict[str, Any]:
        out = self.podrec.purge()
        self.rounds += 1
        self.last = out
        if out["events"]:
            log.info("purged %d events of %d listeners older than %g days", out["events"],
                     out["listeners"], out["retain_days"])
        return out
