"""Result cards (cover art, duration, tags) kept per worker within a size in bytes.

A card is read from the store the first time one of a fitted model's items is listed and kept
for the next lists. Kept without a bound, a worker on a large catalog would in time hold a
card for every item it ever listed (the catalog's size again, as Python objects); the cache
keeps the most recently used cards up to ``max_bytes`` and forgets the rest, which are read
again when listed. Cards belong to the fitted model they were read for: a refit (new catalog
version, new tags) starts with none, since its cards may have changed.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable

from podrec.recommend.results import Card

# per entry beyond the card's own objects: the key tuple and its ints, the ordered dict's
# slot and links (measured with tracemalloc on CPython 3.11: ~150 bytes)
ENTRY_OVERHEAD = 160


def card_bytes(card: Card) -> int:
    """The memory one kept card takes: its objects and its entry in the cache."""
    size = sys.getsizeof(card) + sys.getsizeof(card.__dict__) + sys.getsizeof(card.tags)
    size += sum(sys.getsizeof(t) for t in card.tags)
    if card.image is not None:
        size += sys.getsizeof(card.image)
    if card.duration_s is not None:
        size += sys.getsizeof(card.duration_s)
    return size + ENTRY_OVERHEAD


class CardCache:
    """The least recently used cards beyond ``max_bytes`` are dropped (0: none kept)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(int(max_bytes), 0)
        self.bytes = 0  # what the kept cards take (``card_bytes``)
        self.reads = 0  # cards read from the store (tests and logs)
        self._cards: OrderedDict[tuple[int, int], tuple[Card, int]] = OrderedDict()
        self._owners: weakref.WeakKeyDictionary[object, int] = weakref.WeakKeyDictionary()
        self._next_owner = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._cards)

    def _owner(self, model: object) -> int:
        """A number of its own for every fitted model (never reused while this cache
        lives, so a dropped model's cards are never served for a new one)."""
        owner = self._owners.get(model)
        if owner is None:
            owner = self._owners[model] = self._next_owner
            self._next_owner += 1
        return owner

    def get(self, model: object, pks: Iterable[int],
            read: Callable[[list[int]], dict[int, Card]]) -> dict[int, Card]:
        """The cards of ``pks``: kept ones, and the rest from ``read(missing pks)``."""
        pks = list(pks)
        out: dict[int, Card] = {}
        with self._lock:
            owner = self._owner(model)
            for pk in pks:
                kept = self._cards.get((owner, pk))
                if kept is not None:
                    self._cards.move_to_end((owner, pk))
                    out[pk] = kept[0]
        missing = [pk for pk in dict.fromkeys(pks) if pk not in out]
        if missing:
            fresh = read(missing)
            self.reads += len(missing)
            out.update(fresh)
            with self._lock:
                for pk in missing:
                    self._put((owner, pk), fresh[pk])
        return {pk: out[pk] for pk in pks}

    def _put(self, key: tuple[int, int], card: Card) -> None:
        size = card_bytes(card)
        if size > self.max_bytes:
            return
        old = self._cards.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        self._cards[key] = (card, size)
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, (_, dropped) = self._cards.popitem(last=False)
            self.bytes -= dropped

    def clear(self) -> None:
        with self._lock:
            self._cards.clear()
            self.bytes = 0
