"""Events → a user × item confidence matrix, through documented, configurable event weights.

Implicit-feedback models need one number per (listener, item): how sure are we the listener
wants this item. Each event adds its type's weight (completions and subscriptions most, skips
and dislikes against); ratings and play counts are scaled by their value. The pair keeps the
time of its latest event, which temporal protocols and recency need.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from podrec.config import EventWeightsConfig
from podrec.records import EventRecord

# Confidence each event type adds to its (user, item) pair, configurable under
# [event_weights]. ``rate`` and ``review`` are scaled by the rating (see event_weight),
# ``play`` by listening progress or play count.
DEFAULT_EVENT_WEIGHTS: dict[str, float] = EventWeightsConfig().as_dict()
RATING_MIDPOINT = 3.0  # on a 1..5 scale: 4 and 5 are positive, 1 and 2 negative


def event_weight(event: str, value: float | None, weights: dict[str, float]) -> float:
    """The confidence one event adds. Ratings above the midpoint count for, below against."""
    base = weights.get(event, 0.0)
    if event in ("rate", "review") and value is not None:
        return base * float(value - RATING_MIDPOINT + (0.5 if value >= RATING_MIDPOINT else 0))
    if event == "play" and value is not None:
        if 0.0 <= value <= 1.0:  # listening progress: an early stop says little
            return base * float(value)
        return base * float(np.log1p(value))  # a play count
    return base


@dataclass
class Interactions:
    """(user, item) pairs with confidence and last-event time, on fixed user and item indexes."""

    user_ids: list[str]
    item_ids: list[str]
    users: np.ndarray  # int32 row of each pair
    items: np.ndarray  # int32 column of each pair
    confidence: np.ndarray  # float32, may be negative
    times: np.ndarray  # float64 Unix seconds of the pair's latest event
    _user_index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._user_index = {u: i for i, u in enumerate(self.user_ids)}

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def subset(self, mask: np.ndarray) -> Interactions:
        """The same indexes, only the pairs where ``mask`` holds."""
        return Interactions(self.user_ids, self.item_ids, self.users[mask], self.items[mask],
                            self.confidence[mask], self.times[mask])

    def matrix(self, positive_only: bool = True) -> sparse.csr_matrix:
        """users × items CSR of confidence (negative pairs dropped unless asked for)."""
        keep = self.confidence > 0 if positive_only else np.ones(len(self.users), bool)
        return sparse.csr_matrix(
            (self.confidence[keep].astype(np.float32), (self.users[keep], self.items[keep])),
            shape=(self.n_users, self.n_items))

    def item_popularity(self) -> np.ndarray:
        """Number of listeners with a positive pair, per item."""
        pos = self.confidence > 0
        return np.bincount(self.items[pos], minlength=self.n_items).astype(np.float32)


def build_interactions(events: Iterable[EventRecord], item_ids: Sequence[str],
                       weights: dict[str, float] | None = None) -> Interactions:
    """Aggregate events per (user, item) onto the given item index; unknown items are added."""
    weights = weights or DEFAULT_EVENT_WEIGHTS
    item_index = {i: n for n, i in enumerate(item_ids)}
    item_ids = list(item_ids)
    user_index: dict[str, int] = {}
    pairs: dict[tuple[int, int], list[float]] = {}
    for ev in events:
        if not ev.item_id:
            continue
        col = item_index.get(ev.item_id)
        if col is None:
            col = item_index[ev.item_id] = len(item_ids)
            item_ids.append(ev.item_id)
        row = user_index.setdefault(ev.user_id, len(user_index))
        w = event_weight(ev.event, ev.value, weights)
        t = ev.timestamp.timestamp()
        slot = pairs.get((row, col))
        if slot is None:
            pairs[(row, col)] = [w, t]
        else:
            slot[0] += w
            slot[1] = max(slot[1], t)
    keys = np.array(list(pairs), dtype=np.int32).reshape(-1, 2)
    vals = np.array(list(pairs.values()), dtype=np.float64).reshape(-1, 2)
    return Interactions(list(user_index), item_ids, keys[:, 0], keys[:, 1],
                        vals[:, 0].astype(np.float32), vals[:, 1])
