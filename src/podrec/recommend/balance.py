"""Balanced interests: a list that gives each of a listener's interests its share of slots.

A tight cluster of true-crime shows out-scores a looser comedy cluster item for item, so a
listener with both tastes gets a list of one. Calibrated recommendation (Steck, RecSys 2018)
asks the list's mix to follow the history's; here the mix is kept with quotas: each interest
(each topic of a request, each interest of a profile) is owed ``strength · share · k`` slots,
and the list is filled in score order except where an item would leave too few slots for the
interests still owed some. ``strength`` 0 is the plain score order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MIN_SHARE = 0.1  # an interest smaller than this is owed nothing


def quotas(shares: Sequence[float], k: int, strength: float) -> np.ndarray:
    """Slots owed to each interest: ``strength · share · k`` rounded, at least one for an
    interest of ``MIN_SHARE`` or more, never more than ``k`` in all."""
    s = np.asarray(shares, np.float64)
    if not len(s) or strength <= 0 or s.sum() <= 0:
        return np.zeros(len(s), np.int64)
    s = s / s.sum()
    owed = np.where(s >= MIN_SHARE, np.maximum(np.round(strength * s * k), 1), 0).astype(np.int64)
    while owed.sum() > k:  # trim the largest first
        owed[int(np.argmax(owed))] -= 1
    return owed


def balance(order: np.ndarray, interest: np.ndarray, shares: Sequence[float], k: int,
            strength: float = 1.0) -> np.ndarray:
    """Positions (into ``order``, a ranked pool) of the balanced top ``k``.

    ``interest[i]``: the interest of ``order[i]`` (-1: none). An item is taken in score order
    unless taking it would leave fewer open slots than the slots still owed to other
    interests; then it waits, and is taken later if slots remain."""
    owed = quotas(shares, k, strength)
    if not owed.any():
        return np.arange(min(k, len(order)))
    owed_list = owed.tolist()  # plain ints: this loop runs per pooled item of every list
    taken = [0] * len(owed_list)
    unmet = sum(owed_list)  # slots still owed, over all interests
    chosen: list[int] = []
    waiting: list[int] = []
    for i, j in enumerate(np.asarray(interest, np.int64).tolist()):
        if len(chosen) == k:
            break
        known = 0 <= j < len(owed_list)
        mine = known and taken[j] < owed_list[j]
        if mine or k - len(chosen) - 1 >= unmet - (1 if mine else 0):
            chosen.append(i)
            if known:
                unmet -= 1 if mine else 0
                taken[j] += 1
        else:
            waiting.append(i)
    for i in waiting:  # owed interests ran out of items: fill with the best that waited
        if len(chosen) == k:
            break
        chosen.append(i)
    return np.array(sorted(chosen, key=lambda i: i), np.int64)[:k]


def genre_distribution(categories: Sequence[Sequence[str]], weights: Sequence[float] | None = None
                       ) -> dict[str, float]:
    """The genre mix of items (each item's weight split over its genres), summing to 1."""
    out: dict[str, float] = {}
    ws = [1.0] * len(categories) if weights is None else list(weights)
    for cats, w in zip(categories, ws, strict=True):
        cats = [c for c in cats if c]
        for c in cats:
            out[c] = out.get(c, 0.0) + w / len(cats)
    total = sum(out.values())
    return {c: v / total for c, v in out.items()} if total > 0 else {}


def calibration_gap(history: dict[str, float], listed: dict[str, float],
                    alpha: float = 0.01) -> float:
    """KL(history ‖ list) over genres, the list smoothed by ``alpha`` toward the history
    (Steck's calibration measure): 0 when the list mixes genres as the history does."""
    if not history:
        return 0.0
    gap = 0.0
    for genre, p in history.items():
        q = (1 - alpha) * listed.get(genre, 0.0) + alpha * p
        gap += p * np.log(p / q)
    return float(gap)
