"""Answers kept per worker: finished recommendation and search responses, and checked keys.

A recommendation list costs 6-20 ms of CPU (profile, scoring, filters, explanations); the
same list sent again costs well under a millisecond. A listener asks for the same list many
times between two of their events (opening the app, paging back, the web page's refresh), so
each worker keeps finished responses, as gorse keeps its users' lists in its cache.

Nothing stale is served: a list is kept under a key made of the request itself, the
listener's version (``Store.listener_version``: their and their linked accounts' event count
and newest event, and their person) and the worker's model generation (bumped whenever the
catalog or embeddings change, in any process). A new event, link or deletion changes the
version, so the next request computes afresh, in whichever worker it lands. Entries also
expire after ``server.cache_seconds``, since recency decay moves scores slowly with the clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass

from cachetools import TTLCache


def _body_size(value: CachedResponse) -> int:
    return len(value.body) + 200  # the entry's own bookkeeping, roughly


@dataclass(frozen=True)
class CachedResponse:
    """A response body as sent, and how many items it holds (for the metrics)."""

    body: bytes
    n_items: int


class ResponseCache:
    """A thread-safe LRU of finished responses, ``size`` bytes of bodies in all, whose
    entries live ``seconds`` at most. ``size`` 0 turns it off (every ``get`` misses, ``put``
    keeps nothing).

    Entries may name the listener (and person) they were computed for, so that a change
    announced by the database (``forget``) drops them. ``stamp`` is read before computing
    and handed to ``put``: a change announced while the list was being computed makes
    ``put`` keep nothing, so a list computed from old events is never kept."""

    BUCKETS = 4096

    def __init__(self, size: int, seconds: float) -> None:
        self.enabled = size > 0 and seconds > 0
        self._size = max(size, 1)
        self._entries: TTLCache = TTLCache(self._size, max(seconds, 1e-9),
                                           getsizeof=_body_size)
        self._lock = threading.Lock()
        self._by_listener: dict[str, set[Hashable]] = {}
        self._by_person: dict[str, set[str]] = {}
        self._epochs = [0] * self.BUCKETS  # bumped by forget(), per hash bucket
        self.resets = 0  # bumped by clear()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> CachedResponse | None:
        if not self.enabled:
            return None
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
            else:
                self.hits += 1
            return found

    def stamp(self, listener: str | None = None, person: str | None = None) -> tuple[int, ...]:
        """What ``put`` compares: the change counters of this listener and person."""
        with self._lock:
            return (self.resets, *(self._epochs[hash(n) % self.BUCKETS]
                                   for n in (listener, person) if n))

    def put(self, key: Hashable, value: CachedResponse, stamp: tuple[int, ...] | None = None,
            listener: str | None = None, person: str | None = None) -> bool:
        """Keep ``value``, unless ``stamp`` shows a change since it was taken; True if kept."""
        if not self.enabled or _body_size(value) > self._size:
            return False
        with self._lock:
            now = (self.resets, *(self._epochs[hash(n) % self.BUCKETS]
                                  for n in (listener, person) if n))
            if stamp is not None and now != stamp:
                return False
            self._entries[key] = value
            if listener:
                if len(self._by_listener) > 2 * len(self._entries) + 1000:
                    self._prune()
                self._by_listener.setdefault(listener, set()).add(key)
                if person:
                    self._by_person.setdefault(person, set()).add(listener)
            return True

    def forget(self, listener: str, person: str | None = None) -> int:
        """Drop every list kept for ``listener`` and, with ``person``, for every account of
        that person; returns how many were dropped."""
        with self._lock:
            names = {listener} | (self._by_person.pop(person, set()) if person else set())
            for name in (listener, person):
                if name:
                    self._epochs[hash(name) % self.BUCKETS] += 1
            dropped = 0
            for name in names:
                for key in self._by_listener.pop(name, ()):
                    dropped += self._entries.pop(key, None) is not None
            return dropped

    def _prune(self) -> None:
        """Forget index entries whose lists expired or were pushed out (under the lock)."""
        live = set(self._entries.keys())
        self._by_listener = {n: ks & live for n, ks in self._by_listener.items() if ks & live}
        self._by_person = {p: ns & self._by_listener.keys()
                           for p, ns in self._by_person.items() if ns & self._by_listener.keys()}

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._by_listener.clear()
            self._by_person.clear()
            self.resets += 1

    def __len__(self) -> int:
        return len(self._entries)


class KeyCache:
    """API keys a worker has checked, trusted for ``seconds`` (0: check every request).
    A key revoked from the CLI or another worker stops working within that time."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._checked: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[bool, str | None]:
        """(known, scope): known is False when the key must be checked in the database."""
        if self.seconds <= 0:
            return False, None
        with self._lock:
            found = self._checked.get(key)
        if found is None or time.monotonic() - found[0] > self.seconds:
            return False, None
        return True, found[1]

    def put(self, key: str, scope: str | None) -> None:
        if self.seconds > 0:
            with self._lock:
                if len(self._checked) > 10_000:  # many bad keys: forget, do not grow
                    self._checked.clear()
                self._checked[key] = (time.monotonic(), scope)

    def clear(self) -> None:
        with self._lock:
            self._checked.clear()
