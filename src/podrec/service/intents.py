"""Requests read into intents on the request path, without waiting on a slow local model.

The rules (podrec.llm.intents.parse_rules) answer at once. A generator behind an endpoint is
asked live, within ``llm.request_timeout_s``. A local model writes a few tokens a second on a
small CPU, so on the request path only its cached reading of the same words is used; a reading
not cached yet is written in the background (one at a time), and the next request with those
words gets it. Either way the request never fails: the rules stand in and the intent says why.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import OrderedDict
from typing import Any

from podrec.llm.base import input_key
from podrec.llm.intents import (
    INTENT_SCHEMA,
    Intent,
    intent_messages,
    merge,
    model_intent,
    parse_intent,
    parse_rules,
)

log = logging.getLogger("podrec.intents")

INTENT_TOKENS = 120  # as parse_intent asks: the longest answer the schema allows
MAX_PENDING = 16  # requests waiting to be read; more are left to the rules


class IntentReader:
    """``read(text)`` → the text's intent, as fast as the configured generator allows."""

    def __init__(self, generator: Any, request_timeout_s: float = 5.0) -> None:
        self.generator = generator
        self.request_timeout_s = request_timeout_s
        self.live = type(generator).__name__ == "EndpointGenerator"
        self._thread: threading.Thread | None = None
        self._queue: queue.Queue[str] = queue.Queue()
        self._pending: OrderedDict[str, None] = OrderedDict()
        self._outcome: OrderedDict[str, str | None] = OrderedDict()  # why a reading failed
        self._lock = threading.Lock()

    def read(self, text: str) -> Intent:
        if self.generator is None or not getattr(self.generator, "available", False):
            return parse_intent(text, None)
        if self.live:
            return parse_intent(text, self.generator, self.request_timeout_s)
        cached = self.cached(text)
        if cached is not None:
            return cached
        rules = parse_rules(text)
        rules.fell_back = "pending"
        self._schedule(text)
        return rules

    def cached(self, text: str) -> Intent | None:
        """The model's reading of ``text`` if it was written before."""
        key = input_key(self.generator.model_id, intent_messages(text), INTENT_SCHEMA,
                        INTENT_TOKENS)
        raw = self.generator.cache.get(key)
        if raw is None:
            return None
        from podrec.llm.base import parse_json

        data = parse_json(raw, INTENT_SCHEMA)
        if not isinstance(data, dict):
            return None
        return merge(model_intent(text, data), parse_rules(text))

    def _schedule(self, text: str) -> None:
        """Queue ``text`` for the background reader (a daemon thread: a process that exits
        does not wait for it; the reading is just not cached then)."""
        with self._lock:
            if text in self._pending or len(self._pending) >= MAX_PENDING:
                return
            self._pending[text] = None
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="podrec-intents",
                                                daemon=True)
                self._thread.start()
        self._queue.put(text)

    def _work(self) -> None:
        while True:
            text = self._queue.get()
            try:
                read = parse_intent(text, self.generator)  # cached for next time
                self._outcome[text] = read.fell_back
                while len(self._outcome) > 256:
                    self._outcome.popitem(last=False)
            except Exception as exc:  # noqa: BLE001 - background work never breaks serving
                log.warning("reading %r in the background failed: %s", text[:80], exc)
            finally:
                with self._lock:
                    self._pending.pop(text, None)
                self._queue.task_done()

    def outcome(self, text: str) -> str | None:
        """Why the background reading of ``text`` fell back (None: it did not, or it has not
        run)."""
        return self._outcome.get(text)

    def wait(self) -> None:
        """Let the queued readings finish (tests, benchmarks)."""
        self._queue.join()
