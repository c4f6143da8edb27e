"""Which catalog rows a request may get: language, explicitness, blocked items and shows,
platform availability; and the per-show cap on a ranked list."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from podrec.model.base import CatalogData


def filter_mask(catalog: CatalogData, languages: Sequence[str] = (), allow_explicit: bool = True,
                blocked: Sequence[str] = (), platform: str | None = None) -> np.ndarray | None:
    """Rows that pass every filter (None: every row passes)."""
    if not languages and allow_explicit and not blocked and not platform:
        return None
    mask = np.ones(len(catalog), bool)
    if platform:  # items that list where they are available, and not here, go
        where = platform.strip().lower()
        mask &= np.array([p is None or where in p for p in catalog.platforms])
    if languages:
        wanted = {lang.lower() for lang in languages}
        mask &= np.array([lang is None or lang in wanted for lang in catalog.languages])
    if not allow_explicit:
        mask &= np.array([e is not True for e in catalog.explicit])
    if blocked:
        block = set(blocked)
        mask &= np.array([i not in block and s not in block
                          for i, s in zip(catalog.ids, catalog.show_ids, strict=True)])
    return mask


def cap_per_show(rows: np.ndarray, catalog: CatalogData, per_show: int) -> np.ndarray:
    """Positions (into ``rows``, in order) kept when at most ``per_show`` items of one show
    may appear (a show counts as its own show)."""
    counts: dict[str | None, int] = {}
    keep = []
    for i, r in enumerate(rows.tolist()):
        show = catalog.show_ids[r] or catalog.ids[r]
        counts[show] = counts.get(show, 0) + 1
        if counts[show] <= per_show:
            keep.append(i)
    return np.array(keep, dtype=np.int64)
