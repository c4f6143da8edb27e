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
from typing import Any

from podrec.server.schedule import Schedule
from podrec.service import Podrec

log = logging.getLogger("podrec.server")


class Purger(Schedule):
    """The retention schedule: ``podrec.purge()`` now and every ``interval`` seconds."""

    what = "scheduled purge"

    def __init__(self, podrec: Podrec, interval: float) -> None:
        super().__init__("podrec-purge", interval)
        self.podrec = podrec
        self.interval = interval
        self.rounds = 0
        self.last: dict[str, Any] | None = None

    def run_round(self) -> dict[str, Any]:
        return self.purge_once()

    def purge_once(self) -> dict[str, Any]:
        out = self.podrec.purge()
        self.rounds += 1
        self.last = out
        if out["events"]:
            log.info("purged %d events of %d listeners older than %g days", out["events"],
                     out["listeners"], out["retain_days"])
        return out
