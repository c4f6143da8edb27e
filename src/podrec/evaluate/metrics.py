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


def average_precision_at_k(ranked: Sequence[int], relevant: Set[int], k: int) -> float:
    """Mean of precision at each hit in the first k, over min(|relevant|, k)."""
    if not relevant:
        return 0.0
    hits, total = 0, 0.0
    for i, r in enumerate(ranked[:k]):
        if r in relevant:
            hits += 1
            total += hits / (i + 1)
    return total / min(len(relevant), k)


def intra_list_diversity(rows: Sequence[int], vectors: np.ndarray) -> float:
    """Mean pairwise cosine distance between the listed items' (unit) vectors."""
    rows = list(rows)
    if len(rows) < 2:
        return 0.0
    v = vectors[rows]
    sims = v @ v.T
    n = len(rows)
    return float((n * n - sims.sum()) / (n * (n - 1)))  # diagonal of unit vectors sums to n


def self_information(rows: Sequence[int], popularity: np.ndarray, n_users: int) -> float:
    """Mean -log2 of the share of listeners who engaged with each listed item (novelty)."""
    rows = list(rows)
    if not rows:
        return 0.0
    share = (popularity[rows] + 1.0) / (n_users + 1.0)
    return float(np.mean(-np.log2(share)))
