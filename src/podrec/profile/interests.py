"""A listener's interests: several weighted clusters of what they engaged with.

One average vector blurs a listener who likes true crime *and* chess into neither. So the
items of their history are clustered (agglomerative, average linkage, on catalog-centred
embeddings, so the direction every text shares does not glue clusters together); the
number of interests follows from a distance threshold, per listener, capped at
``max_interests``. Each item counts with its event weight halved every ``half_life_days``
before the request, so an interest fades when the listener moves on. Each interest also
remembers when (hour of day, weekday) and on which device it was listened to: the habits
that context-aware ranking matches against.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SECONDS_PER_DAY = 86400.0


@dataclass
class Interest:
    """One cluster of a listener's history."""

    rows: np.ndarray  # catalog rows of its items
    weights: np.ndarray  # their decayed weights
    share: float  # of the listener's total weight, 0..1
    hours: np.ndarray = field(default_factory=lambda: np.zeros(24))  # weight per hour of day
    weekdays: np.ndarray = field(default_factory=lambda: np.zeros(7))  # weight per weekday
    devices: dict[str, float] = field(default_factory=dict)  # weight per device

    def top_rows(self, n: int = 5) -> np.ndarray:
        return self.rows[np.argsort(-self.weights, kind="stable")[:n]]


@dataclass
class UserProfile:
    """A listener's interests, heaviest first."""

    interests: list[Interest]


@dataclass
class HistoryItem:
    """One item of a history as the profiler needs it."""

    row: int
    weight: float
    time: float | None = None  # Unix seconds of the latest event on it
    hour: int | None = None  # local hour of that event (UTC hour when not given)
    weekday: int | None = None
    device: str | None = None


def cosine_distances(vectors: np.ndarray) -> np.ndarray:
    """Condensed pairwise cosine distances (scipy's ``pdist(v, "cosine")`` order), a zero
    vector 1.0 from everything, never below 0: one product, where pdist's per-call checks
    cost more than the distances of a listener's few dozen items."""
    v = np.asarray(vectors, np.float64)
    norms = np.linalg.norm(v, axis=1)
    unit = np.divide(v, norms[:, None], out=np.zeros_like(v), where=norms[:, None] > 0)
    upper = np.triu_indices(len(v), k=1)
    return np.maximum(1.0 - (unit @ unit.T)[upper], 0.0)


def cut_merges(tree: np.ndarray, n: int, clusters: int) -> np.ndarray:
    """Cluster labels after the first ``n - clusters`` merges of a scipy linkage ``tree``:
    what scipy's ``cut_tree`` gives (it follows the merge order, so ties in height still
    leave exactly that many), in linear time rather than its quadratic walk."""
    parent = np.arange(2 * n - 1)
    for step in range(n - clusters):
        a, b = int(tree[step, 0]), int(tree[step, 1])
        parent[a] = parent[b] = n + step
    roots = np.arange(n)
    while True:  # follow every leaf up to the cluster it ends in
        up = parent[roots]
        if np.array_equal(up, roots):
            break
        roots = up
    _, labels = np.unique(roots, return_inverse=True)
    return labels


class ClusterLabels:
    """The cluster labels of the ``size`` histories (by their items) clustered last, over one
    set of centred vectors (another set, a refitted catalog, starts afresh)."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._vectors: object = None  # the centred vectors the kept labels were made on
        self._kept: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def labels(self, centred: Any, rows: np.ndarray,
               cluster: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        key = rows.tobytes()
        with self._lock:
            if self._vectors is not centred:
                self._vectors, self._kept = centred, OrderedDict()
            found = self._kept.get(key)
            if found is not None:
                self._kept.move_to_end(key)
                return found
        labels = cluster(centred[rows])
        labels.setflags(write=False)  # shared by every request with these items
        with self._lock:
            if self._vectors is centred:
                self._kept[key] = labels
                while len(self._kept) > self.size:
                    self._kept.popitem(last=False)
        return labels


class InterestProfiler:
    """Builds a ``UserProfile`` from a history; parameters in the constructor."""

    def __init__(self, half_life_days: float = 180.0, max_interests: int = 5,
                 distance_threshold: float = 0.9, min_items: int = 4) -> None:
        self.half_life_days = half_life_days
        self.max_interests = max_interests
        self.distance_threshold = distance_threshold
        self.min_items = min_items  # fewer items than this: one interest
        self._labels = ClusterLabels()

    def __getstate__(self) -> dict[str, object]:
        """What is saved: not the labels kept for recent histories."""
        return {k: v for k, v in self.__dict__.items() if k != "_labels"}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._labels = ClusterLabels()

    def decay(self, times: np.ndarray, now: float | None) -> np.ndarray:
        """0.5 ** (age / half-life); 1 where time or ``now`` is unknown, or no half-life."""
        if now is None or not self.half_life_days or self.half_life_days <= 0:
            return np.ones(len(times))
        age = np.maximum(now - np.nan_to_num(times, nan=now), 0.0) / SECONDS_PER_DAY
        return 0.5 ** (age / self.half_life_days)

    def cluster(self, vectors: np.ndarray) -> np.ndarray:
        """A cluster label per row of (centred, unit) ``vectors``."""
        n = len(vectors)
        if n < self.min_items or self.max_interests <= 1:
            return np.zeros(n, dtype=np.int64)
        from scipy.cluster.hierarchy import linkage

        # Average linkage on cosine distances, cut once: after every merge at or below the
        # distance threshold (average linkage merges in rising height, so that is a prefix
        # of the merges: what fcluster's "distance" criterion gives, without its checks of
        # the tree, which cost more than the clustering here), or after the merges that
        # leave max_interests clusters if the threshold leaves more (ties in height still
        # give exactly that many).
        tree = linkage(cosine_distances(vectors), method="average")
        merges = int(np.count_nonzero(tree[:, 2] <= self.distance_threshold))
        return cut_merges(tree, n, min(n - merges, self.max_interests)).astype(np.int64)

    def build(self, history: list[HistoryItem], centred: np.ndarray,
              now: float | None = None, habit: np.ndarray | None = None) -> UserProfile:
        """``centred``: the catalog's centred unit vectors (rows index into it); ``habit``:
        an optional factor per history item (how well its moment matches the request's)."""
        keep = [i for i, h in enumerate(history) if h.weight > 0]
        positive = [history[i] for i in keep]
        if not positive:
            return UserProfile([])
        rows = np.array([h.row for h in positive], dtype=np.int64)
        times = np.array([np.nan if h.time is None else h.time for h in positive])
        weights = np.array([h.weight for h in positive]) * self.decay(times, now)
        if habit is not None:
            weights = weights * np.asarray(habit)[keep]
        # The clusters follow from the items alone (not their weights, which fade with the
        # request's time): a listener asking again with the same items reuses them.
        labels = self._labels.labels(centred, rows, self.cluster)
        total = float(weights.sum()) or 1.0
        interests = []
        for label in np.unique(labels):
            idx = np.flatnonzero(labels == label)
            hours, weekdays = np.zeros(24), np.zeros(7)
            devices: dict[str, float] = {}
            for i in idx:
                h, w = positive[i], weights[i]
                if h.hour is not None:
                    hours[h.hour] += w
                if h.weekday is not None:
                    weekdays[h.weekday] += w
                if h.device:
                    devices[h.device] = devices.get(h.device, 0.0) + w
            interests.append(Interest(rows[idx], weights[idx], float(weights[idx].sum()) / total,
                                      hours, weekdays, devices))
        interests.sort(key=lambda i: -i.share)
        return UserProfile(interests)
