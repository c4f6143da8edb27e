"""Splits of (user, item) pairs into train and test, by protocol.

- ``temporal``: one global cut in time; the latest ``test_fraction`` of pairs are the test.
- ``leave-last``: each listener's latest ``leave_n`` pairs (listeners with more than that).
- ``user-holdout``: ``test_fraction`` of listeners are held out; of each, ``given_fraction``
  of their pairs are given at fold-in (train) and the rest scored. A held-out listener with a
  single pair keeps it for scoring; what they wrote about it (a review) may then be their
  only signal.
- ``random``: ``test_fraction`` of pairs at random.
- ``cold-items``: ``test_fraction`` of the items (seeded) are new to the catalog: every pair
  of theirs is test, so no model saw anyone touch them. The test is whether a model puts
  them in front of the listeners who went on to engage with them.
All are seeded; the same seed gives the same split, and the choices are drawn from the ids
(``id_keys``), so the same pairs give the same split in any order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from podrec.model.interactions import Interactions
from podrec.model.seeding import id_keys, pair_keys

PROTOCOLS = ("temporal", "leave-last", "user-holdout", "random", "cold-items")


@dataclass(frozen=True)
class SplitConfig:
    protocol: str = "temporal"
    test_fraction: float = 0.2
    given_fraction: float = 0.8
    leave_n: int = 1
    seed: int = 0


def split_pairs(data: Interactions, cfg: SplitConfig) -> np.ndarray:
    """Boolean mask over pairs: True = test. Every random choice is drawn from the ids of
    listeners, items and pairs (``id_keys``), not from their order."""
    n = len(data.users)
    keys = pair_keys(data, cfg.seed)
    test = np.zeros(n, dtype=bool)
    if cfg.protocol == "temporal":
        if np.ptp(data.times) == 0:
            raise ValueError("the temporal protocol needs timestamps, and every event here has "
                             "the same time; use user-holdout or random")
        order = np.lexsort((keys, data.times))  # ties broken at random
        test[order[int(round(n * (1 - cfg.test_fraction))):]] = True
    elif cfg.protocol == "random":
        test[np.argsort(keys, kind="stable")[: int(round(n * cfg.test_fraction))]] = True
    elif cfg.protocol == "leave-last":
        order = np.lexsort((keys, data.times, data.users))
        users_sorted = data.users[order]
        counts = np.bincount(data.users, minlength=data.n_users)
        ends = np.cumsum(counts)
        position_from_end = ends[users_sorted] - 1 - np.arange(n)
        eligible = counts[users_sorted] > cfg.leave_n
        test[order[(position_from_end < cfg.leave_n) & eligible]] = True
    elif cfg.protocol == "user-holdout":
        users = np.unique(data.users)
        user_keys = id_keys(data.user_ids, cfg.seed, "listener")[users]
        held = users[np.argsort(user_keys, kind="stable")][
            : max(1, int(round(len(users) * cfg.test_fraction)))]
        held_mask = np.zeros(data.n_users, dtype=bool)
        held_mask[held] = True
        # shuffle each held-out listener's pairs, give the first ⌊given·n⌋, score the rest
        idx = np.flatnonzero(held_mask[data.users])
        idx = idx[np.lexsort((keys[idx], data.users[idx]))]
        users_sorted = data.users[idx]
        starts = np.searchsorted(users_sorted, users_sorted, side="left")
        counts = np.bincount(users_sorted, minlength=data.n_users)[users_sorted]
        rank = np.arange(len(idx)) - starts
        given = np.floor(counts * cfg.given_fraction).astype(int)
        given = np.minimum(given, counts - 1)  # at least one pair is scored
        test[idx[rank >= given]] = True
    elif cfg.protocol == "cold-items":
        items = np.unique(data.items)
        item_keys = id_keys(data.item_ids, cfg.seed, "cold")[items]
        held = items[np.argsort(item_keys, kind="stable")][
            : max(1, int(round(len(items) * cfg.test_fraction)))]
        cold = np.zeros(data.n_items, dtype=bool)
        cold[held] = True
        test = cold[data.items]
    else:
        raise ValueError(f"unknown protocol {cfg.protocol!r}; expected one of "
                         f"{', '.join(PROTOCOLS)}")
    return test

