"""One history builder: a listener's events → the input every model takes.

Evaluation and serving both turn events into a history here, with one event-weight table
(``[event_weights]``, model/interactions.py) and one treatment of negatives:

- per item, the weights of all its events are summed (a like then a dislike cancel out);
- items with a positive sum are the history, the models' input, with their confidence and the
  time, hour, weekday and device of their latest event;
- items with a negative sum are turned down: left out of the list and, for the profile
  model, pushed away with the size of that sum (decaying with age);
- every item with any event is left out of the list (it has been heard or judged);
- the listener's own words are their searches and favourable reviews (rated 3 and up, or not
  rated), latest first, at most ``MAX_TEXTS`` of them joined into one text.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from scipy import sparse

from podrec.model.base import CatalogData, UserBatch
from podrec.model.interactions import DEFAULT_EVENT_WEIGHTS, event_weight
from podrec.profile.interests import HistoryItem
from podrec.records import EventRecord

MAX_TEXTS = 5
MAX_TEXT_CHARS = 1000


@dataclass(frozen=True)
class TextEvent:
    """Something a listener wrote: a search or a review, with its rating if any."""

    time: float
    text: str
    item_id: str
    event: str
    value: float | None = None

    @classmethod
    def of(cls, ev: EventRecord) -> TextEvent | None:
        """What ``ev`` says in words: a search's or a review's text (None for other events)."""
        if not ev.text or ev.event not in ("search", "review"):
            return None
        return cls(ev.timestamp.timestamp(), ev.text, ev.item_id or "", ev.event, ev.value)

    @property
    def favourable(self) -> bool:
        return self.event == "search" or (self.event == "review" and (
            self.value is None or self.value >= 3))


def own_words(texts: Iterable[TextEvent], allowed_items: set[str] | None = None) -> str:
    """A listener's own words as one text: favourable ones, latest first, at most
    ``MAX_TEXTS``. ``allowed_items``: only text about these items (and searches) counts,
    as when evaluation hides what was written about the items to find."""
    picked = [t for t in sorted(texts, key=lambda t: -t.time)
              if t.favourable and t.text.strip()
              and (allowed_items is None or not t.item_id or t.item_id in allowed_items)]
    return " ".join(t.text.strip() for t in picked[:MAX_TEXTS])[:MAX_TEXT_CHARS]


@dataclass
class ListenerHistory:
    """One listener's history on one catalog's rows."""

    rows: np.ndarray  # positive items (int64 catalog rows)
    confidence: np.ndarray  # their summed event weights (> 0)
    times: np.ndarray  # Unix seconds of each positive item's latest event
    events: list[str] = field(default_factory=list)  # strongest event per positive item
    hours: list[int | None] = field(default_factory=list)
    weekdays: list[int | None] = field(default_factory=list)
    devices: list[str | None] = field(default_factory=list)
    negative_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    negative_weights: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    seen_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    text: str = ""  # own words (see ``own_words``)

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, n_items: int, now: float | None = None,
              text_vector: np.ndarray | None = None,
              intent_vector: np.ndarray | None = None, user_row: int = -1) -> UserBatch:
        """This history as a one-listener ``UserBatch`` over ``n_items`` items."""
        order = np.argsort(self.rows, kind="stable")
        hist = _one_row(self.rows[order], self.confidence[order], n_items, np.float32)
        times = _one_row(self.rows[order], self.times[order], n_items, np.float64)
        neg_order = np.argsort(self.negative_rows, kind="stable")
        neg = _one_row(self.negative_rows[neg_order], self.negative_weights[neg_order], n_items,
                       np.float32)
        seen = np.sort(self.seen_rows)

        def one(v: np.ndarray | None) -> np.ndarray | None:
            return None if v is None else np.asarray(v, np.float32).reshape(1, -1)

        return UserBatch(hist, np.array([user_row]), one(text_vector), times,
                         None if now is None else np.array([now], np.float64),
                         one(intent_vector), negatives=neg,
                         seen=_one_row(seen, np.ones(len(seen)), n_items, np.float32),
                         history_items=[self.items()])

    def items(self) -> list[HistoryItem]:
        """The positive items as the interest profiler takes them."""
        # plain Python numbers first: converting numpy scalars one by one costs more
        return [HistoryItem(r, w, t if math.isfinite(t) else None, hr, wd, d)
                for r, w, t, hr, wd, d in zip(self.rows.tolist(), self.confidence.tolist(),
                                              self.times.tolist(), self.hours,
                                              self.weekdays, self.devices, strict=True)]


def _one_row(cols: np.ndarray, values: np.ndarray, n: int, dtype: type) -> sparse.csr_matrix:
    """A 1 x n CSR row from sorted, distinct columns (built from its arrays directly)."""
    return sparse.csr_matrix((np.asarray(values, dtype), np.asarray(cols, np.int32),
                              np.array([0, len(cols)], np.int32)), shape=(1, n))


class HistoryBuilder:
    """Events → ``ListenerHistory``, with one event-weight table for every caller."""

    def __init__(self, weights: dict[str, float] | None = None,
                 half_life_days: float = 180.0) -> None:
        self.weights = dict(weights or DEFAULT_EVENT_WEIGHTS)
        self.half_life_days = half_life_days

    def build(self, events: Sequence[EventRecord], catalog: CatalogData,
              now: datetime | float | None = None,
              seeds: Sequence[str] = (), seed_weight: float | None = None
              ) -> ListenerHistory:
        """The history of ``events`` (one listener, every linked account) on ``catalog``'s
        rows. Events about items the catalog lacks (another kind, not embedded yet) are
        left out. ``seeds``: items the request names, each counted as a subscription."""
        per_item: dict[int, list] = {}  # row -> [sum, latest time, best event, best w, ev]
        texts: list[TextEvent] = []
        for ev in events:
            t = ev.timestamp.timestamp()
            if (words := TextEvent.of(ev)) is not None:
                texts.append(words)
            if not ev.item_id:
                continue
            row = catalog.row_of(ev.item_id, ev.item_kind) if ev.item_kind else None
            if row is None:
                row = catalog.row_of(ev.item_id)
            if row is None:
                continue
            w = event_weight(ev.event, ev.value, self.weights)
            slot = per_item.get(row)
            if slot is None:
                per_item[row] = [w, t, ev.event, w, ev]
                continue
            slot[0] += w
            if t >= slot[1]:
                slot[1] = t
            if w >= slot[3]:
                slot[2], slot[3], slot[4] = ev.event, w, ev
        seed_w = seed_weight if seed_weight is not None else self.weights.get("subscribe", 1.0)
        for sid in seeds:
            row = catalog.row_of(sid)
            if row is not None and row not in per_item:
                per_item[row] = [seed_w or 1.0, np.nan, "seed", seed_w, None]
        now_s = now.timestamp() if isinstance(now, datetime) else now
        return self._assemble(per_item, texts, now_s)

    def _assemble(self, per_item: dict[int, list], texts: list[TextEvent],
                  now: float | None) -> ListenerHistory:
        pos = [(r, s) for r, s in per_item.items() if s[0] > 0]
        neg = [(r, s) for r, s in per_item.items() if s[0] < 0]
        hours, weekdays, devices = [], [], []
        for _, s in pos:
            ev = s[4]
            if ev is None:
                hours.append(None)
                weekdays.append(None)
                devices.append(None)
                continue
            hour = ev.context.get("hour") if isinstance(ev.context, dict) else None
            hours.append(int(hour) if isinstance(hour, int | float) and 0 <= hour < 24
                         else ev.timestamp.hour)
            weekdays.append(ev.timestamp.weekday())
            devices.append(ev.device)
        neg_w = np.array([-s[0] * self.decay(s[1], now) for _, s in neg], dtype=np.float32)
        return ListenerHistory(
            rows=np.array([r for r, _ in pos], dtype=np.int64),
            confidence=np.array([s[0] for _, s in pos], dtype=np.float32),
            times=np.array([s[1] for _, s in pos], dtype=np.float64),
            events=[s[2] for _, s in pos], hours=hours, weekdays=weekdays, devices=devices,
            negative_rows=np.array([r for r, _ in neg], dtype=np.int64), negative_weights=neg_w,
            seen_rows=np.array(sorted(per_item), dtype=np.int64), text=own_words(texts))

    def decay(self, t: float, now: float | None) -> float:
        """The weight left of something that happened at ``t`` (halves every half-life)."""
        if now is None or not np.isfinite(t) or self.half_life_days <= 0:
            return 1.0
        age_days = max((now - t) / 86400.0, 0.0)
        return float(0.5 ** (age_days / self.half_life_days))
