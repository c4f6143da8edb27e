"""Seeded randomness drawn from ids rather than from positions.

A split, a sample of listeners or a model's starting point that is drawn per id comes out the
same whatever order the data arrives in: the evaluation harness reads files, the trainer reads
the store, and both must make the same choices from the same pairs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from podrec.model.interactions import Interactions

GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def id_hashes(ids: Sequence[str], seed: int, salt: str = "") -> np.ndarray:
    """A seeded 64-bit hash per id (blake2b of seed, salt and id)."""
    prefix = f"{seed}\x1f{salt}\x1f".encode()
    return np.fromiter((int.from_bytes(hashlib.blake2b(prefix + str(x).encode(),
                                                       digest_size=8).digest(), "little")
                        for x in ids), dtype=np.uint64, count=len(ids))


def _unit(h: np.ndarray) -> np.ndarray:
    return (h >> np.uint64(11)).astype(np.float64) / float(2**53)


def id_keys(ids: Sequence[str], seed: int, salt: str = "") -> np.ndarray:
    """A seeded pseudo-random number in [0, 1) per id, from the id itself: a split drawn with
    these picks the same listeners and pairs whatever order the data comes in (the harness's
    file order, the store's, a subset's), so `podrec train` carves exactly the validation
    split `podrec evaluate` carves from the same pairs."""
    return _unit(id_hashes(ids, seed, salt))


def pair_keys(data: Interactions, seed: int) -> np.ndarray:
    """A seeded pseudo-random number in [0, 1) per (listener, item) pair, from their ids
    (the two ids' hashes mixed with splitmix64's finaliser)."""
    with np.errstate(over="ignore"):
        x = id_hashes(data.user_ids, seed, "u")[data.users] * GOLDEN \
            ^ id_hashes(data.item_ids, seed, "i")[data.items]
    return _unit(mix(x))


def mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: well-spread 64-bit values from nearby ones."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def uniform_rows(ids: Sequence[str], seed: int, width: int, salt: str = "") -> np.ndarray:
    """(len(ids), width) uniform [0, 1) numbers, each row drawn from its id alone."""
    h = id_hashes(ids, seed, salt)[:, None]
    with np.errstate(over="ignore"):
        x = h + GOLDEN * np.arange(1, width + 1, dtype=np.uint64)[None, :]
    return _unit(mix(x)).astype(np.float32)


