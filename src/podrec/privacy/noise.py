"""Laplace noise on counts published from listeners' events (``privacy.dp_epsilon``).

The mechanism is OpenDP's Laplace (``then_laplace``, scale = sensitivity / ε): it samples
from a cryptographically secure generator and is built to resist the floating-point attacks
on naive Laplace samplers; integer counts get its discrete Laplace. One listener changes
each count by at most ``sensitivity`` (1 for "how many listeners"), so each published count
is ε-differentially private on its own; a listener who touched m items is covered at m·ε
over the whole vector of item counts (sequential composition). Counts are clamped at zero
afterwards (post-processing: no cost in privacy). OpenDP files its Laplace under "contrib"
(implemented, proof not yet vetted by its committee), which is enabled here.

A release is drawn once and kept (``Releases``, in the store): the same release (a count's
name and true value; a model's counts on one snapshot of the events) always reads the
same, so asking again, or training again on the same events, does not give a fresh draw to
average the noise away.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import numpy as np

MECHANISM = "opendp-laplace"


def noisy_counts(counts: np.ndarray, epsilon: float, sensitivity: float = 1.0,
                 integer: bool = False) -> np.ndarray:
    """``counts`` with fresh Laplace(sensitivity/ε) noise, clamped at zero (integers: the
    discrete Laplace). ``epsilon`` <= 0 or infinite: the counts unchanged."""
    counts = np.asarray(counts, dtype=np.float64)
    if not epsilon or epsilon <= 0 or not np.isfinite(epsilon) or counts.size == 0:
        return counts.copy()
    import opendp.prelude as dp

    dp.enable_features("contrib")
    scale = float(sensitivity) / float(epsilon)
    flat = counts.ravel()
    if integer:
        space = dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int)
        drawn = (space >> dp.m.then_laplace(scale=scale))(np.rint(flat).astype(int).tolist())
    else:
        space = dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l1_distance(T=float)
        drawn = (space >> dp.m.then_laplace(scale=scale))(flat.tolist())
    return np.maximum(np.asarray(drawn, dtype=np.float64), 0.0).reshape(counts.shape)


class Releases:
    """Published noisy values, drawn once per release and kept in the store (its
    ``generations`` table, task ``dp``: an output by the hash of its input, like every
    other kept output), so every worker and every later read answers the same."""

    def __init__(self, store: Any, epsilon: float) -> None:
        self.store = store
        self.epsilon = float(epsilon)

    def key(self, release: str) -> str:
        return hashlib.sha256(f"{MECHANISM}|eps={self.epsilon!r}|{release}".encode()
                              ).hexdigest()

    def counts(self, release: str, counts: np.ndarray, integer: bool = False) -> np.ndarray:
        """The noisy ``counts`` of ``release``: kept, else drawn now and kept."""
        key = self.key(release)
        kept = self.store.get_generations([key]).get(key)
        if kept is not None:
            values = np.asarray(json.loads(kept), dtype=np.float64)
            if values.shape == np.shape(counts):
                return values
        t0 = time.perf_counter()
        values = noisy_counts(counts, self.epsilon, integer=integer)
        self.store.put_generation(key, MECHANISM, "dp", json.dumps(values.tolist()),
                                  time.perf_counter() - t0)
        return values

    def count(self, name: str, value: int) -> int:
        """One count (e.g. of listeners): its release is its name and true value, so the
        same count always reads the same and a changed count is a new draw."""
        return int(self.counts(f"{name}={int(value)}", np.array([value]), integer=True)[0])
