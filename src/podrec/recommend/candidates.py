"""Candidate sources: the few thousand items worth scoring for one listener in a large catalog.

Scoring every item costs time in proportion to the catalog; at a million episodes that is
tens of milliseconds per part. So above ``recommend.candidates_above`` items the served model
scores only the union of what each source finds cheaply:

- every part that can name its own best items without scoring the catalog
  (``Recommender.candidates``): the vector index around the listener's items and words
  (content, profile), the neighbour lists of their items (item kNN), the modelled items of
  EASE, the nearest item factors (iALS, BPR), the most popular and the trending;
- new episodes of the shows the listener follows, newest first.

The union is then scored by the very same model (``score_rows``), so a candidate's score is
the score it would get in a full pass; only items no source finds are missed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from podrec.model.base import CatalogData, Recommender, UserBatch
from podrec.model.content import ContentModel
from podrec.records import EventRecord

NEW_EPISODES_PER_SHOW = 5
POOL_PER_SLOT = 10  # a balanced list's pool, per slot; each source finds as many
CONTENT_PARTS = ("content", "profile")


class CandidateSources:
    """The union of every source's candidates for one listener."""

    def __init__(self, parts: dict[str, Recommender], content: ContentModel,
                 per_source: int = 400) -> None:
        self.parts = parts
        self.content = content
        self.catalog: CatalogData = content.catalog
        self.per_source = per_source
        self._episodes: dict[str, np.ndarray] | None = None
        for model in parts.values():
            model.prepare_candidates()

    def rows(self, batch: UserBatch, events: Sequence[EventRecord] = (),
             active: set[str] | None = None, k: int = 0) -> np.ndarray:
        """Sorted, distinct candidate rows for the one listener of ``batch``. ``active``: the
        parts that weigh in this listener's score (None: all); a part the blend gives no
        weight for them finds no candidates, since its scores would not count. ``k``: the
        list's length; a long list has each source find ``POOL_PER_SLOT`` items a slot, at
        least (a list picks from the best ten items a slot: recommend/pipeline.py)."""
        n = max(self.per_source, POOL_PER_SLOT * k)
        found = []
        if active is None or any(p.split("@")[0] in CONTENT_PARTS for p in active):
            found.append(self.content.candidates(batch, n))
        for name, model in self.parts.items():
            if name in CONTENT_PARTS:  # the vector-index search above is theirs
                continue
            if active is not None and name not in active:
                continue
            rows = model.candidates(batch, n)
            if rows is not None:
                found.append(np.asarray(rows, np.int64))
        found.append(self.new_episodes(batch, events))
        rows = np.unique(np.concatenate(found)) if found else np.zeros(0, np.int64)
        return rows[(rows >= 0) & (rows < len(self.catalog))]

    def new_episodes(self, batch: UserBatch, events: Sequence[EventRecord]) -> np.ndarray:
        """The newest episodes of every show the listener's history or events point to."""
        c = self.catalog
        shows = {c.show_ids[r] for r in batch.histories[:1].indices.tolist()} - {None}
        shows |= {e.item_id for e in events if e.item_id and (e.item_kind or "show") == "show"}
        by_show = self._by_show()
        picked = [by_show[s][:NEW_EPISODES_PER_SHOW] for s in shows if s in by_show]
        return np.concatenate(picked) if picked else np.zeros(0, np.int64)

    def _by_show(self) -> dict[str, np.ndarray]:
        """Each show's episode rows, newest first (built once)."""
        if self._episodes is None:
            c = self.catalog
            published = (np.zeros(len(c)) if c.published is None
                         else np.nan_to_num(np.asarray(c.published, np.float64), nan=-np.inf))
            groups: dict[str, list[int]] = {}
            for r, show in enumerate(c.show_ids):
                if show is not None:
                    groups.setdefault(show, []).append(r)
            self._episodes = {
                s: np.array(sorted(rows, key=lambda r: -published[r]), np.int64)
                for s, rows in groups.items()}
        return self._episodes
