"""Ranking metrics over one ranked list and a set of relevant items."""

from __future__ import annotations

from collections.abc import Sequence, Set

import numpy as np


def recall_at_k(ranked: Sequence[int], relevant: Set[int], k: int) -> float:
    """Share of the relevant items found in the first k."""
    if not relevant:
        return 0.0
    return len(set(ranked[:k]) & relevant) / len(relevant)


def ndcg_at_k(ranked: Sequence[int], relevant: Set[int], k: int) -> float:
    """Discounted gain of the hits in the first k over the best possible (binary relevance)."""
    if not relevant:
        return 0.0
    gains = [1.0 / np.log2(i + 2) for i, r in enumerate(ranked[:k]) if r in relevant]
    ideal = sum(1.0 / np.log2(i + 2) for i in range(min(len(relevant), k)))
    return float(sum(gains) / ideal)


def hit_rate_at_k(ranked: Sequence[int], relevant: Set[int], k: int) -> float:
    return 1.0 if set(ranked[:k]) & relevant else 0.0


def mrr_at_k(ranked: Sequence[int], relevant: Set[int], k: int) -> float:
    for i, r in enumerate(ranked[:k]):
        if r in relevant:
            return 1.0 / (i + 1)
    return 0.0
