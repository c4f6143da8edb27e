"""Maximal marginal relevance (Carbonell & Goldstein 1998): trade relevance for variety.

Each next item maximises (1 - diversity) · relevance - diversity · (its highest similarity to
an item already chosen); relevance and similarity are both rescaled to 0..1 over the
candidates first, so the trade-off means the same whatever the scales of score and embedder.
"""

from __future__ import annotations

import numpy as np


def mmr(rows: np.ndarray, scores: np.ndarray, vectors: np.ndarray, k: int,
        diversity: float) -> np.ndarray:
    """Positions (into ``rows``) of the ``k`` items chosen, in order."""
    if not 0.0 <= diversity <= 1.0:
        raise ValueError(f"diversity must be between 0 and 1, got {diversity}")
    n = len(rows)
    k = min(k, n)
    if diversity == 0.0 or n <= 1:
        return np.arange(k)
    s = np.asarray(scores, dtype=np.float64)
    span = s.max() - s.min()
    relevance = (s - s.min()) / span if span > 0 else np.ones(n)
    v = np.asarray(vectors[rows], dtype=np.float64)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    v = v / np.where(norms > 0, norms, 1.0)
    sims = v @ v.T
    # rescale similarities over the candidates too: embedding similarities crowd together
    # (e5 puts most podcast pairs between 0.75 and 0.9), and relevance is already on 0..1
    off = sims[~np.eye(n, dtype=bool)]
    low, high = off.min(), off.max()
    sims = (sims - low) / (high - low) if high > low else np.zeros_like(sims)
    chosen = [int(np.argmax(relevance))]
    closest = sims[chosen[0]].copy()
    available = np.ones(n, bool)
    available[chosen[0]] = False
    while len(chosen) < k:
        value = (1 - diversity) * relevance - diversity * closest
        value[~available] = -np.inf
        nxt = int(np.argmax(value))
        chosen.append(nxt)
        available[nxt] = False
        closest = np.maximum(closest, sims[nxt])
    return np.array(chosen)
