"""Which catalog rows a request may get: language, explicitness, blocked items and shows,
platform availability; and the per-show cap on a ranked list."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from podrec.model.base import CatalogData


def filter_mask(catalog: CatalogData, languages: Sequence[str] = (), allow_explicit: bool = True,
                blocked: Sequence[str] = (), platform: str | None = None,
                rows: np.ndarray | None = None) -> np.ndarray | None:
    """Which rows (every row, or ``rows``) pass every filter (None: all of them pass)."""
    if not languages and allow_explicit and not blocked and not platform:
        return None
    which = range(len(catalog)) if rows is None else np.asarray(rows, np.int64).tolist()
    mask = np.ones(len(which), bool)
    if platform:  # items that list where they are available, and not here, go
        where = platform.strip().lower()
        mask &= np.array([catalog.platforms[r] is None or where in catalog.platforms[r]
                          for r in which], bool)
    if languages:
        wanted = {lang.lower() for lang in languages}
        mask &= np.array([catalog.languages[r] is None or catalog.languages[r] in wanted
                          for r in which], bool)
    if not allow_explicit:
        mask &= np.array([catalog.explicit[r] is not True for r in which], bool)
    if blocked:
        block = set(blocked)
        mask &= np.array([catalog.ids[r] not in block and catalog.show_ids[r] not in block
                          for r in which], bool)
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


def excluded_mask(catalog: CatalogData, exclusions: Sequence[str],
                  rows: np.ndarray | None = None) -> np.ndarray:
    """Which items (of ``rows``, else of the catalog) have a title or genre naming something
    a request excluded ("no politics")."""
    words = [w.casefold() for w in exclusions if w.strip()]
    which = range(len(catalog)) if rows is None else rows.tolist()
    return np.array([any(w in catalog.titles[r].casefold()
                         or any(w in g.casefold() for g in catalog.categories[r]) for w in words)
                     for r in which], bool)
