"""A server's background schedules (training, retention): one daemon thread per worker that
runs a round now and then every ``every`` seconds until stopped; a failed round is logged and
the next one tries again."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("podrec.server")


class Schedule(threading.Thread):
    """Runs ``run_round()`` at start and every ``every`` seconds until ``stop()``."""

    what = "scheduled work"  # named in the log when a round fails

    def __init__(self, name: str, every: float) -> None:
        super().__init__(name=name, daemon=True)
        self.every = every
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()

    @property
    def stopping(self) -> bool:
        return self._halt.is_set()

    def run_round(self) -> object:
        raise NotImplementedError

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self.run_round()
            except Exception:  # noqa: BLE001 - a failed round is logged; the next one retries
                log.exception("%s failed", self.what)
            self._halt.wait(self.every)
