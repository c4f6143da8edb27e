"""The recommender protocol every model honours, and the plain catalog data they are fit on.

Models work on row numbers of a ``CatalogData`` (numpy in, numpy out); the service layer maps
row numbers to the ids items came with.
"""

from __future__ import annotations

import re
import unicodedata
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def norm_name(text: str | None) -> str:
    text = unicodedata.normalize("NFKC", text or "").casefold()
    return re.sub(r"[^\w]+", " ", text).strip()


@dataclass
class CatalogData:
    """Items as arrays: the vectors of one embedder plus the metadata models use."""

    ids: list[str]
    kinds: list[str]
    vectors: np.ndarray  # (n, d) float32, unit rows
    titles: list[str] = field(default_factory=list)
    categories: list[list[str]] = field(default_factory=list)
    authors: list[str | None] = field(default_factory=list)
    popularity: np.ndarray | None = None  # (n,) raw popularity (ratings, plays, ...), nan = unknown
    languages: list[str | None] = field(default_factory=list)
    pks: np.ndarray | None = None  # store row keys, when loaded from a store
    texts: list[str] = field(default_factory=list)  # the text each vector was embedded from

    def __post_init__(self) -> None:
        n = len(self.ids)
        self.titles = self.titles or [""] * n
        self.categories = self.categories or [[] for _ in range(n)]
        self.authors = self.authors or [None] * n
        self.languages = self.languages or [None] * n
        self.texts = self.texts or list(self.titles)
        if self.popularity is None:
            self.popularity = np.full(n, np.nan, dtype=np.float32)
        self._row = {(k, i): r for r, (k, i) in enumerate(zip(self.kinds, self.ids, strict=True))}

    def __len__(self) -> int:
        return len(self.ids)

    def row_of(self, item_id: str, kind: str | None = None) -> int | None:
        """Row of an item id; a show wins over an episode that shares its id."""
        if kind:
            return self._row.get((kind, item_id))
        row = self._row.get(("show", item_id))
        return row if row is not None else self._row.get(("episode", item_id))


@dataclass
class Scored:
    """Ranked rows with their scores and, per row, the parts the score is made of."""

    rows: np.ndarray
    scores: np.ndarray
    components: list[dict[str, float]] = field(default_factory=list)


class Recommender(ABC):
    """fit / recommend / similar_items / explain / partial_fit_users, on row numbers."""

    @abstractmethod
    def fit(self, catalog: CatalogData, interactions: Any = None) -> Recommender: ...

    @abstractmethod
    def recommend(self, seed_rows: np.ndarray, k: int = 10,
                  query_vectors: np.ndarray | None = None,
                  exclude_rows: np.ndarray | None = None,
                  candidate_mask: np.ndarray | None = None) -> Scored: ...

    @abstractmethod
    def similar_items(self, row: int, k: int = 10,
                      candidate_mask: np.ndarray | None = None) -> Scored: ...

    @abstractmethod
    def explain(self, row: int, seed_rows: np.ndarray) -> dict[str, float]: ...

    def partial_fit_users(self, user_ids: Any, interactions: Any) -> None:
        """Update users without a full refit; models without per-user state need nothing."""
        return None
