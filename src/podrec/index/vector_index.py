"""Vector indexes: ``VectorIndex`` is the interface, ``ExactIndex`` the numpy implementation.

Every index keeps its (unit, for cosine) vectors in a numpy array, so ``similarities`` is
exact whatever the search structure. Rows are numbered in insertion order and never reused:
``add`` appends, ``remove`` leaves a tombstone (the row is never returned by ``search`` again,
and its similarity reads ``-inf``). ``ann.ANNIndex`` (HNSW) implements the same methods;
``podrec.index.make_index`` picks one by catalog size.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

METRICS = ("cosine", "euclidean")
FORMAT = 1  # version of the saved file layout


@runtime_checkable
class VectorIndex(Protocol):
    """Nearest rows of a set of vectors; similarities are higher for closer rows."""

    metric: str
    kind: str  # "exact" | "ann"

    def __len__(self) -> int:
        """Rows ever added, removed ones included (row numbers run from 0 to len - 1)."""
        ...

    @property
    def vectors(self) -> np.ndarray:
        """All rows' stored vectors (unit length for cosine); removed rows included."""
        ...

    def vector(self, rows: Any) -> np.ndarray:
        """Stored vector(s) of a row or rows."""
        ...

    @property
    def dim(self) -> int: ...

    @property
    def removed(self) -> np.ndarray:
        """Boolean mask over rows: True where the row was removed."""
        ...

    def similarities(self, query: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Exact similarity of ``query`` to every row (or to ``rows``); removed rows: -inf."""
        ...

    def search(self, query: np.ndarray, k: int, exclude: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Row numbers (int64) and similarities (float32) of the ``k`` nearest live rows, best
        first, ``exclude`` rows left out; fewer when fewer rows are left."""
        ...

    def search_each(self, queries: np.ndarray, k: int, exclude: np.ndarray | None = None,
                    beam: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """``search`` of each row of ``queries`` (the few searches of one request, one
        thread: an HNSW graph walks them in one call). ``beam``: how wide an approximate
        search looks (None: the index's setting; candidates that are scored again pass
        their ``k``); an exact index ignores it."""
        ...

    def search_batch(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(n_queries, k) rows and similarities; -1 and -inf pad rows beyond the live count."""
        ...

    def add(self, vectors: np.ndarray) -> np.ndarray:
        """Append vectors; returns their new row numbers."""
        ...

    def remove(self, rows: np.ndarray) -> None:
        """Remove rows (no rebuild); removing a removed row again does nothing."""
        ...

    def save(self, path: str | Path) -> None: ...

    def to_bytes(self) -> bytes: ...


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


def top_k_batch(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise ``top_k`` of a (n_queries, n_rows) score matrix, padded with -1 / -inf."""
    scores = np.asarray(scores, dtype=np.float32)
    nq, n = scores.shape
    rows = np.full((nq, k), -1, dtype=np.int64)
    sims = np.full((nq, k), -np.inf, dtype=np.float32)
    kk = min(k, n)
    if kk <= 0:
        return rows, sims
    part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
    psc = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-psc, axis=1, kind="stable")
    best = np.take_along_axis(part, order, axis=1)
    best_sims = np.take_along_axis(psc, order, axis=1)
    finite = np.isfinite(best_sims)
    rows[:, :kk] = np.where(finite, best, -1)
    sims[:, :kk] = best_sims
    return rows, sims


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
    return metric


def prepare(vectors: np.ndarray, metric: str, dim: int | None = None) -> np.ndarray:
    """float32, C-contiguous, 2-d; unit length for cosine (zero vectors stay zero)."""
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim == 1:
        v = v.reshape(1, -1) if v.size else v.reshape(0, dim or 0)
    if v.ndim != 2:
        raise ValueError(f"expected a 2-d array of vectors, got shape {v.shape}")
    if dim is not None and v.shape[0] and v.shape[1] != dim:
        raise ValueError(f"vectors have {v.shape[1]} dimensions; the index has {dim}")
    if metric == "cosine":
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        v = v / norms
    return np.ascontiguousarray(v, dtype=np.float32)


class RowStore:
    """A growable (rows, dim) float32 buffer with a removed-row mask, shared by both indexes."""

    def __init__(self, vectors: np.ndarray) -> None:
        self._buf = np.ascontiguousarray(vectors, dtype=np.float32)
        self._n = int(self._buf.shape[0])
        self._sq = np.einsum("ij,ij->i", self._buf, self._buf)
        self._removed = np.zeros(self._n, dtype=bool)
        self.n_removed = 0

    @property
    def dim(self) -> int:
        return int(self._buf.shape[1])

    @property
    def n(self) -> int:
        return self._n

    @property
    def vectors(self) -> np.ndarray:
        return self._buf[: self._n]

    @property
    def removed(self) -> np.ndarray:
        return self._removed[: self._n]

    @property
    def sq_norms(self) -> np.ndarray:
        return self._sq[: self._n]

    def append(self, v: np.ndarray) -> np.ndarray:
        m = int(v.shape[0])
        if self._n + m > self._buf.shape[0]:
            cap = max(self._n + m, int(self._buf.shape[0] * 1.5) + 16)
            buf = np.zeros((cap, v.shape[1] if self._n == 0 else self.dim), dtype=np.float32)
            buf[: self._n] = self._buf[: self._n]
            removed = np.zeros(cap, dtype=bool)
            removed[: self._n] = self._removed[: self._n]
            sq = np.zeros(cap, dtype=np.float32)
            sq[: self._n] = self._sq[: self._n]
            self._buf, self._removed, self._sq = buf, removed, sq
        rows = np.arange(self._n, self._n + m, dtype=np.int64)
        self._buf[self._n: self._n + m] = v
        self._removed[self._n: self._n + m] = False
        self._sq[self._n: self._n + m] = np.einsum("ij,ij->i", v, v)
        self._n += m
        return rows

    def mark_removed(self, rows: Any) -> np.ndarray:
        """Marks ``rows`` removed; returns those that were live."""
        rows = np.unique(np.asarray(rows, dtype=np.int64).reshape(-1))
        if rows.size and (rows[0] < 0 or rows[-1] >= self._n):
            raise IndexError(f"row out of range 0..{self._n - 1}")
        live = rows[~self._removed[rows]]
        self._removed[live] = True
        self.n_removed += int(live.size)
        return live

    def set_removed(self, removed: np.ndarray) -> None:
        self._removed[: self._n] = removed
        self.n_removed = int(removed.sum())


def similarities_of(rows_store: RowStore, metric: str, query: np.ndarray,
                    rows: np.ndarray | None = None) -> np.ndarray:
    """Exact similarity of one query to every stored row (or to ``rows``); removed: -inf."""
    q = np.asarray(query, dtype=np.float32).reshape(-1)
    if rows_store.n == 0:
        return np.zeros(0, dtype=np.float32)
    v = rows_store.vectors if rows is None else rows_store.vectors[rows]
    if metric == "cosine":
        out = v @ (q / (float(np.linalg.norm(q)) or 1.0))
    else:
        sq = rows_store.sq_norms if rows is None else rows_store.sq_norms[rows]
        out = -np.sqrt(np.maximum(sq - 2.0 * (v @ q) + float(q @ q), 0.0))
    if rows_store.n_removed:
        out[rows_store.removed if rows is None else rows_store.removed[rows]] = -np.inf
    return out


def score_matrix(rows_store: RowStore, metric: str, q: np.ndarray) -> np.ndarray:
    """(n_queries, rows) exact similarities of prepared queries; removed rows -inf."""
    v = rows_store.vectors
    if metric == "cosine":
        scores = q @ v.T
    else:
        d2 = (rows_store.sq_norms[None, :] - 2.0 * (q @ v.T)
              + np.einsum("ij,ij->i", q, q)[:, None])
        scores = -np.sqrt(np.maximum(d2, 0.0))
    if rows_store.n_removed:
        scores[:, rows_store.removed] = -np.inf
    return scores


def pack(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    """One index as bytes: an uncompressed .npz holding a JSON header and arrays."""
    buf = io.BytesIO()
    header = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    np.savez(buf, meta=header, **arrays)
    return buf.getvalue()


def unpack(data: bytes) -> tuple[dict[str, Any], Any]:
    npz = np.load(io.BytesIO(data), allow_pickle=False)
    meta = json.loads(npz["meta"].tobytes().decode("utf-8"))
    if meta.get("format") != FORMAT:
        raise ValueError(f"unsupported index format {meta.get('format')!r}")
    return meta, npz


def index_from_bytes(data: bytes, vectors: np.ndarray | None = None) -> VectorIndex:
    """An index saved by either implementation's ``to_bytes`` / ``save``. ``vectors``: the
    same rows, held elsewhere (a catalog's memory-mapped vectors), for an HNSW index to read
    instead of a copy of its own (see ``ANNIndex.from_bytes``)."""
    meta, _ = unpack(data)
    if meta["kind"] == "exact":
        return ExactIndex.from_bytes(data)
    from podrec.index.ann import ANNIndex

    return ANNIndex.from_bytes(data, vectors=vectors)


def load_index(path: str | Path) -> VectorIndex:
    return index_from_bytes(Path(path).read_bytes())


class RowReads:
    """What both indexes read straight from their ``RowStore`` (``self._rows``)."""

    _rows: RowStore

    def __len__(self) -> int:
        return self._rows.n

    @property
    def vectors(self) -> np.ndarray:
        """Every row's vector, removed rows included (read-only use; a view)."""
        return self._rows.vectors

    @property
    def dim(self) -> int:
        return self._rows.dim

    @property
    def removed(self) -> np.ndarray:
        """Boolean mask over rows: True where the row was removed."""
        return self._rows.removed

    @property
    def live_count(self) -> int:
        return self._rows.n - self._rows.n_removed

    def vector(self, rows: Any) -> np.ndarray:
        return self.vectors[rows]


class ExactIndex(RowReads):
    """Brute-force search. Cosine similarity, or negative Euclidean distance as similarity."""

    kind = "exact"

    def __init__(self, vectors: np.ndarray, metric: str = "cosine") -> None:
        self.metric = check_metric(metric)
        v = np.asarray(vectors, dtype=np.float32)
        dim = v.shape[1] if v.ndim == 2 else None
        self._rows = RowStore(prepare(v, metric, dim))

    # -- reading ----------------------------------------------------------------------------
    def similarities(self, query: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        return similarities_of(self._rows, self.metric, query, rows)

    def search(self, query: np.ndarray, k: int, exclude: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        return top_k(self.similarities(query), k, exclude)

    def search_each(self, queries: np.ndarray, k: int, exclude: np.ndarray | None = None,
                    beam: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        return [self.search(q, k, exclude) for q in np.atleast_2d(queries)]

    def search_batch(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = prepare(queries, self.metric, self.dim if len(self) else None)
        scores = score_matrix(self._rows, self.metric, q)
        return top_k_batch(scores, k)

    # -- changing ---------------------------------------------------------------------------
    def add(self, vectors: np.ndarray) -> np.ndarray:
        v = prepare(vectors, self.metric, self.dim if len(self) else None)
        return self._rows.append(v)

    def remove(self, rows: Any) -> None:
        self._rows.mark_removed(rows)

    # -- persistence ------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        meta = {"format": FORMAT, "kind": self.kind, "metric": self.metric, "rows": len(self),
                "dim": self.dim}
        return pack(meta, {"vectors": self.vectors, "removed": self.removed})

    @classmethod
    def from_bytes(cls, data: bytes) -> ExactIndex:
        meta, npz = unpack(data)
        if meta["kind"] != cls.kind:
            raise ValueError(f"not an exact index: {meta['kind']!r}")
        idx = cls.__new__(cls)
        idx.metric = meta["metric"]
        idx._rows = RowStore(npz["vectors"])  # stored already normalised
        idx._rows.set_removed(npz["removed"].astype(bool))
        return idx

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: str | Path) -> ExactIndex:
        return cls.from_bytes(Path(path).read_bytes())
