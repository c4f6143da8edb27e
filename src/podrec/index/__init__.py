"""Nearest-neighbour search over item vectors, behind one interface.

``make_index`` builds the index a catalog needs: exact numpy search below ``ann_threshold``
rows, an HNSW graph (``ANNIndex``) at and above it. Both answer the ``VectorIndex`` methods;
``StoredIndex`` (persist.py) keeps one per embedding model in the store, updated in place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from podrec.index.vector_index import (
    ExactIndex,
    VectorIndex,
    index_from_bytes,
    load_index,
    top_k,
)

if TYPE_CHECKING:
    from podrec.config import IndexConfig

KINDS = ("auto", "exact", "ann")


def choose_kind(rows: int, kind: str = "auto", ann_threshold: int | None = None) -> str:
    """"exact" or "ann": ``kind`` itself unless it is "auto", then by ``rows``."""
    if kind not in KINDS:
        raise ValueError(f"unknown index kind {kind!r}; expected one of {', '.join(KINDS)}")
    if kind != "auto":
        return kind
    if ann_threshold is None:
        from podrec.config import IndexConfig

        ann_threshold = IndexConfig().ann_threshold
    return "ann" if rows >= ann_threshold else "exact"


def make_index(vectors: np.ndarray, metric: str = "cosine", kind: str | None = None, *,
               config: IndexConfig | None = None, ann_threshold: int | None = None,
               m: int | None = None, ef_construction: int | None = None,
               ef_search: int | None = None) -> VectorIndex:
    """An index over ``vectors``: exact below ``ann_threshold`` rows, HNSW at and above.

    Unset arguments come from ``config`` (an ``IndexConfig``; its defaults without one).
    """
    if config is None:
        from podrec.config import IndexConfig

        config = IndexConfig()
    kind = choose_kind(len(vectors), kind or config.kind,
                       config.ann_threshold if ann_threshold is None else ann_threshold)
    if kind == "exact":
        return ExactIndex(vectors, metric)
    from podrec.index.ann import ANNIndex

    return ANNIndex(vectors, metric, m=config.m if m is None else m,
                    ef_construction=(config.ef_construction if ef_construction is None
                                     else ef_construction),
                    ef_search=config.ef_search if ef_search is None else ef_search)


def __getattr__(name: str):  # lazy: importing podrec.index does not load hnswlib
    if name == "ANNIndex":
        from podrec.index.ann import ANNIndex

        return ANNIndex
    if name == "StoredIndex":
        from podrec.index.persist import StoredIndex

        return StoredIndex
    raise AttributeError(name)


__all__ = ["ANNIndex", "ExactIndex", "KINDS", "StoredIndex", "VectorIndex", "choose_kind",
           "index_from_bytes", "load_index", "make_index", "top_k"]
