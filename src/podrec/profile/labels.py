"""A name for an interest: what a listener would call that part of their taste."""

from __future__ import annotations

from podrec.model.base import CatalogData
from podrec.profile.interests import Interest

GENERIC = ("podcasts", "(no genres listed)")


def interest_label(catalog: CatalogData, interest: Interest) -> str:
    """Its items' most common genre (weighted), else its top item's title."""
    counts: dict[str, float] = {}
    for r, w in zip(interest.rows, interest.weights, strict=True):
        for c in catalog.categories[int(r)][:2]:
            if c.lower() not in GENERIC:
                counts[c] = counts.get(c, 0.0) + float(w)
    if counts:
        return max(counts, key=lambda c: counts[c])
    return catalog.titles[int(interest.top_rows(1)[0])]
