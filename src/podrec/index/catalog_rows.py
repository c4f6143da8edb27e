"""A stored index seen in a catalog's row order.

``StoredIndex`` numbers its rows by when vectors arrived (rows are never reused, so it can be
updated in place); models number items by their row in ``CatalogData``. ``CatalogRowIndex``
answers the ``VectorIndex`` questions a model asks in catalog rows, translating through the
item pks both sides share.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from podrec.index.persist import StoredIndex


class CatalogRowIndex:
    """``stored``'s index over the items ``catalog_pks`` (catalog row → item pk)."""

    def __init__(self, stored: StoredIndex, catalog_pks: np.ndarray) -> None:
        self.stored = stored
        self.inner = stored.index()
        self.metric = self.inner.metric
        self.kind = getattr(self.inner, "kind", "exact")
        self.catalog_pks = np.asarray(catalog_pks, dtype=np.int64)
        self.to_index = stored.rows_of(self.catalog_pks)  # catalog row → index row
        if (self.to_index < 0).any():
            raise ValueError("the stored index lacks items of the catalog: refresh it first")
        pk_rows = stored.pks
        self.to_catalog = np.full(len(pk_rows), -1, dtype=np.int64)
        self.to_catalog[self.to_index] = np.arange(len(self.catalog_pks))
        self._vectors: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.catalog_pks)

    @property
    def vectors(self) -> np.ndarray:
        """The catalog's vectors, in catalog order, as the index stores them."""
        if self._vectors is None:
            self._vectors = self.inner.vector(self.to_index)
        return self._vectors

    def vector(self, rows: Any) -> np.ndarray:
        return self.inner.vector(self.to_index[np.asarray(rows, dtype=np.int64)])

    def similarities(self, query: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        idx = self.to_index if rows is None else self.to_index[np.asarray(rows, np.int64)]
        return self.inner.similarities(query, idx)

    def search(self, query: np.ndarray, k: int, exclude: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Catalog rows and similarities of the ``k`` nearest items (rows of the index that
        are not in this catalog, such as another kind's items, are skipped)."""
        return self.search_each(np.asarray(query)[None, :], k, exclude)[0]

    def search_each(self, queries: np.ndarray, k: int, exclude: np.ndarray | None = None,
                    beam: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """``search`` of each row of ``queries``, in one call to the stored index."""
        ex = None if exclude is None or not len(exclude) else \
            self.to_index[np.asarray(exclude, np.int64)]
        extra = int((self.to_catalog < 0).sum()) if self.kind == "exact" else 0
        out = []
        for rows, sims in self.inner.search_each(queries, k + min(extra, 4 * k) + 8, ex,
                                                     beam):
            mapped = self.to_catalog[rows]
            keep = mapped >= 0
            out.append((mapped[keep][:k], sims[keep][:k]))
        return out
