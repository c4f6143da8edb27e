"""A deleted listener taken out of the trained models kept in the store.

A trained model's artefact (``model/{kind}/{version}``, train/artifacts.py) holds each
listener's training row (``users``: id → row) and, in its collaborative parts, per-listener
state on that row: the interaction matrix factor models keep, the iALS/BPR user factors.
Deleting a listener removes their entry from ``users`` and zeroes their row in every
per-listener array of every fitted part, then stores the artefact again, so neither their id
nor their history stays in a model (item-side state learned from them, like item factors
or co-occurrence counts, is only gone after the next training).
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import scipy.sparse as sp

from podrec.storage import Store

MODEL_PREFIX = "model/"


def _is_per_listener(name: str) -> bool:
    """Attributes that hold one row per training listener: the factor models' interaction
    matrix (``_train``) and user factors (``user_factors`` of ``implicit``'s models)."""
    return name == "_train" or "user" in name


def _drop_row(owner: Any, name: str, value: Any, row: int, n_users: int) -> bool:
    """Empty ``row`` of a per-listener array: a CSR matrix loses the row's entries (which
    items and how much), a dense array's row becomes zeros."""
    if sp.issparse(value) and value.format == "csr" and value.shape[0] == n_users:
        start, end = int(value.indptr[row]), int(value.indptr[row + 1])
        if end == start:
            return False
        value.data = np.delete(value.data, np.s_[start:end])
        value.indices = np.delete(value.indices, np.s_[start:end])
        indptr = value.indptr.copy()
        indptr[row + 1:] -= end - start
        value.indptr = indptr
        return True
    if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == n_users \
            and value.dtype.kind in "fiu":
        value = np.array(value)  # writable (a loaded array may be read-only)
        value[row] = 0
        setattr(owner, name, value)
        return True
    return False


def _scrub_object(obj: Any, row: int, n_users: int, depth: int = 0) -> int:
    """Empty ``row`` in every per-listener array an object keeps, and in the objects it
    holds a few levels down (a fitted part wraps an ``implicit`` model)."""
    if depth > 3 or not hasattr(obj, "__dict__"):
        return 0
    n = 0
    for name, value in list(vars(obj).items()):
        if _is_per_listener(name) and _drop_row(obj, name, value, row, n_users):
            n += 1
        elif hasattr(value, "__dict__") and not isinstance(value, type):
            n += _scrub_object(value, row, n_users, depth + 1)
    return n


def scrub_models(store: Store, stored_id: str) -> int:
    """Take one listener (by stored id) out of every trained model in the store; returns
    how many artefacts were rewritten."""
    rewritten = 0
    for name, _created, meta in store.artifact_versions(MODEL_PREFIX):
        found = store.get_artifact(name)
        if found is None or found[1] is None:
            continue
        payload = pickle.loads(found[1])  # noqa: S301 - our own artefact (train/artifacts)
        users = payload.get("users") or {}
        if stored_id not in users:
            continue
        n_users = len(users)
        row = int(users.pop(stored_id)[0])
        for part in (payload.get("fitted") or {}).values():
            _scrub_object(part, row, n_users)
        store.put_artifact(name, meta, pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
        rewritten += 1
    return rewritten
