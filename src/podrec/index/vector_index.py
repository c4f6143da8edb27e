"""Vector indexes: ``VectorIndex`` is the interface, ``ExactIndex`` the numpy implementation.

Exact search is a single matrix-vector product and beats approximate indexes below ~100k items;
an ANN index (faiss, hnswlib) can replace it behind the same methods.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

METRICS = ("cosine", "euclidean")


class VectorIndex(Protocol):
    metric: str

    def __len__(self) -> int: ...

    def similarities(self, query: np.ndarray) -> np.ndarray:
        """Similarity of ``query`` to every stored vector (higher is closer)."""
        ...

    def search(self, query: np.ndarray, k: int, exclude: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Row numbers and similarities of the ``k`` nearest rows, ``exclude`` rows left out."""
        ...


def top_k(scores: np.ndarray, k: int, exclude: np.ndarray | None = None
          ) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best rows of a score vector, best first (argpartition, then a small sort)."""
    scores = np.asarray(scores, dtype=np.float32)
    if exclude is not None and len(exclude):
        scores = scores.copy()
        scores[exclude] = -np.inf
    k = min(k, int(np.isfinite(scores).sum()))
    if k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    part = np.argpartition(-scores, k - 1)[:k]
    order = part[np.argsort(-scores[part], kind="stable")]
    return order.astype(np.int64), scores[order]


class ExactIndex:
    """Brute-force search. Cosine similarity, or negative Euclidean distance as similarity."""

    def __init__(self, vectors: np.ndarray, metric: str = "cosine") -> None:
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
        self.metric = metric
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if metric == "cosine":
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            norms[norms == 0] = 1.0
            vectors = vectors / norms
        self.vectors = vectors
        self._sq_norms = np.einsum("ij,ij->i", vectors, vectors)

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    def similarities(self, query: np.ndarray) -> np.ndarray:
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        if self.metric == "cosine":
            n = float(np.linalg.norm(q)) or 1.0
            return self.vectors @ (q / n)
        d2 = self._sq_norms - 2.0 * (self.vectors @ q) + float(q @ q)
        return -np.sqrt(np.maximum(d2, 0.0))

    def search(self, query: np.ndarray, k: int, exclude: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        return top_k(self.similarities(query), k, exclude)
