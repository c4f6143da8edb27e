"""Approximate nearest-neighbour search: an HNSW graph (hnswlib) behind ``VectorIndex``.

hnswlib was chosen over faiss by measurement (benchmarks/README.md, "Vector index"): the same
recall and query time at the same graph parameters, and it removes elements natively
(``mark_deleted``; a later ``add`` reuses their slots) where faiss's HNSW cannot remove at
all. The graph answers ``search``; the unit vectors are also kept in numpy so that
``similarities`` (and the scores of any re-ranking) stay exact.

Rows are hnswlib labels: numbered in insertion order, never reused. Removed rows are marked
deleted in the graph and never returned again.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from podrec.index.vector_index import (
    FORMAT,
    RowReads,
    RowStore,
    check_metric,
    pack,
    prepare,
    score_matrix,
    similarities_of,
    top_k,
    top_k_batch,
    unpack,
)

# Defaults measured in benchmarks/bench_index.py: recall@10 >= 0.95 against exact search at
# 100k and 1M 384-d vectors (see benchmarks/README.md). Kept equal to config.IndexConfig.
M = 16
EF_CONSTRUCTION = 200
EF_SEARCH = 128
# Vectors read back from a loaded graph at a time: hnswlib's get_items holds ~10x the
# vectors' bytes while it builds its answer (65,536 rows at 384-d: a 1.1 GB peak for 100 MB;
# 1,024 rows: no visible peak, and faster).
GET_ITEMS_ROWS = 1024
# Above this share of the live rows an excluded / requested set is cheaper to answer exactly.
EXACT_FALLBACK_SHARE = 0.25


def _hnswlib() -> Any:
    try:
        import hnswlib
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ImportError("ANNIndex needs hnswlib (pip install hnswlib==0.8.0)") from exc
    return hnswlib


class ANNIndex(RowReads):
    """HNSW search (hnswlib): inner product on unit vectors for cosine, L2 for euclidean.

    ``m`` (graph degree), ``ef_construction`` (build beam) and ``ef_search`` (query beam,
    raised to ``k`` when a search asks for more) trade memory and build time for recall.

    hnswlib's beam is one setting of the whole graph, and a search's beam is the larger of
    it and the ``k`` asked for. So the graph's own is kept at 1 and each search asks for its
    beam's worth of rows (``max(k, beam)``) and keeps the best ``k``: the same walk as with
    the beam set, one beam per search, and no shared setting to change under a lock.
    """

    kind = "ann"

    def __init__(self, vectors: np.ndarray, metric: str = "cosine", m: int = M,
                 ef_construction: int = EF_CONSTRUCTION, ef_search: int = EF_SEARCH,
                 num_threads: int = -1, seed: int = 100) -> None:
        self.metric = check_metric(metric)
        self.m, self.ef_construction, self.ef_search = int(m), int(ef_construction), int(ef_search)
        if self.m < 2 or self.ef_construction < 1 or self.ef_search < 1:
            raise ValueError("m must be at least 2, ef_construction and ef_search at least 1")
        self.num_threads = num_threads
        v = np.asarray(vectors, dtype=np.float32)
        v = prepare(v, metric, v.shape[1] if v.ndim == 2 else None)
        self._rows = RowStore(v)
        self._lock = threading.Lock()
        self._seed = seed
        self._graph: Any = None  # made on the first vectors (their dimension)
        if v.shape[0]:
            self._graph = self._new_graph(max(16, v.shape[0]), seed)
            self._graph.add_items(v, np.arange(v.shape[0]), num_threads=num_threads)

    def _new_graph(self, capacity: int, seed: int = 100) -> Any:
        g = _hnswlib().Index(space="ip" if self.metric == "cosine" else "l2", dim=self.dim)
        g.init_index(max_elements=capacity, M=self.m, ef_construction=self.ef_construction,
                     random_seed=seed, allow_replace_deleted=True)
        g.set_ef(1)  # the beam is each search's own: _knn
        return g

    # -- reading (the rest: RowReads) -------------------------------------------------------
    def set_ef(self, ef_search: int) -> None:
        """Query beam width: higher is slower and closer to exact."""
        self.ef_search = int(ef_search)

    def _sims(self, dist: np.ndarray) -> np.ndarray:
        if self.metric == "cosine":
            return (1.0 - dist).astype(np.float32)
        return (-np.sqrt(np.maximum(dist, 0.0))).astype(np.float32)

    def similarities(self, query: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        return similarities_of(self._rows, self.metric, query, rows)

    def _knn(self, q: np.ndarray, k: int, num_threads: int, beam: int | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
        """hnswlib's k nearest live rows (k <= live count), found with a beam of
        ``max(k, beam)`` (None: ``ef_search``)."""
        wide = min(max(k, self.ef_search if beam is None else int(beam)), self.live_count)
        labels, dist = self._graph.knn_query(q, k=wide, num_threads=num_threads)
        return labels[:, :k].astype(np.int64), self._sims(dist[:, :k])

    def search(self, query: np.ndarray, k: int, exclude: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        return self.search_each(np.asarray(query)[None, :], k, exclude)[0]

    def search_each(self, queries: np.ndarray, k: int, exclude: np.ndarray | None = None,
                    beam: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        q = np.atleast_2d(queries)
        live = self.live_count
        ex = None
        if exclude is not None and len(exclude):
            ex = np.unique(np.asarray(exclude, dtype=np.int64))
            ex = ex[(ex >= 0) & (ex < len(self))]
            ex = ex[~self.removed[ex]]
        n_ex = 0 if ex is None else int(ex.size)
        want = min(k + n_ex, live)
        if k <= 0 or want - n_ex <= 0:
            return [(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))] * len(q)
        if want > live * EXACT_FALLBACK_SHARE:  # most live rows asked for: exact is cheaper
            return [top_k(self.similarities(v), k, ex) for v in q]
        try:
            rows, sims = self._knn(prepare(q, self.metric, self.dim), want, 1, beam)
        except RuntimeError:  # hnswlib found fewer than asked (a graph cut by deletions)
            return [top_k(self.similarities(v), k, ex) for v in q]
        out = []
        for r, s in zip(rows, sims, strict=True):
            if n_ex:
                keep = ~np.isin(r, ex)
                r, s = r[keep], s[keep]
            out.append((r[:k], s[:k]))
        return out

    def search_batch(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = prepare(queries, self.metric, self.dim)
        live = self.live_count
        kk = min(k, live)
        out_rows = np.full((q.shape[0], k), -1, dtype=np.int64)
        out_sims = np.full((q.shape[0], k), -np.inf, dtype=np.float32)
        if kk <= 0 or q.shape[0] == 0:
            return out_rows, out_sims
        if kk > live * EXACT_FALLBACK_SHARE:
            return top_k_batch(self._exact_scores(q), k)
        try:
            rows, sims = self._knn(q, kk, self.num_threads)
        except RuntimeError:
            return top_k_batch(self._exact_scores(q), k)
        out_rows[:, :kk], out_sims[:, :kk] = rows, sims
        return out_rows, out_sims

    def _exact_scores(self, q: np.ndarray) -> np.ndarray:
        return score_matrix(self._rows, self.metric, q)

    # -- changing ---------------------------------------------------------------------------
    def add(self, vectors: np.ndarray) -> np.ndarray:
        v = prepare(vectors, self.metric, self.dim if len(self) else None)
        if v.shape[0] == 0:
            return np.zeros(0, dtype=np.int64)
        with self._lock:
            if self._graph is None:
                self._rows = RowStore(np.zeros((0, v.shape[1]), dtype=np.float32))
                self._graph = self._new_graph(max(16, v.shape[0]), self._seed)
            # Slots of deleted elements are reused (replace_deleted); grow for the rest.
            g = self._graph
            deleted_slots = g.get_current_count() - self.live_count
            need = g.get_current_count() - deleted_slots + v.shape[0]
            if need > g.get_max_elements():
                g.resize_index(max(need, g.get_max_elements() * 3 // 2))
            rows = self._rows.append(v)
            g.add_items(v, rows, num_threads=self.num_threads, replace_deleted=True)
        return rows

    def remove(self, rows: Any) -> None:
        with self._lock:
            for r in self._rows.mark_removed(rows):
                self._graph.mark_deleted(int(r))

    # -- persistence ------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        graph = np.zeros(0, dtype=np.uint8)
        if self._graph is not None:
            fd, tmp = tempfile.mkstemp(suffix=".hnsw")
            os.close(fd)
            try:
                with self._lock:
                    self._graph.save_index(tmp)
                graph = np.fromfile(tmp, dtype=np.uint8)
            finally:
                os.unlink(tmp)
        meta = {"format": FORMAT, "kind": self.kind, "metric": self.metric, "rows": len(self),
                "dim": self.dim, "m": self.m, "ef_construction": self.ef_construction,
                "ef_search": self.ef_search, "hnswlib": _hnswlib_version()}
        # The graph holds the vectors too: they are read back from it (get_items) on load.
        return pack(meta, {"graph": graph, "removed": self.removed})

    @classmethod
    def from_bytes(cls, data: bytes, num_threads: int = -1,
                   vectors: np.ndarray | None = None) -> ANNIndex:
        """The saved index. Its exact scores need the vectors as rows of their own beside
        hnswlib's graph: read back from the graph (1.5 KB an episode of private memory with
        e5), or, given ``vectors`` with the same rows and none removed, those themselves (a
        catalog's memory-mapped vectors: shared by a machine's workers, nothing copied). Rows
        given for a cosine index must already be unit length, as embedders make them;
        otherwise they are not used."""
        meta, npz = unpack(data)
        if meta["kind"] != cls.kind:
            raise ValueError(f"not an ANN index: {meta['kind']!r}")
        idx = cls.__new__(cls)
        idx.metric = meta["metric"]
        idx.m, idx.ef_construction = int(meta["m"]), int(meta["ef_construction"])
        idx.ef_search, idx.num_threads = int(meta["ef_search"]), num_threads
        idx._lock = threading.Lock()
        n, dim = int(meta["rows"]), int(meta["dim"])
        removed = npz["removed"].astype(bool)
        idx._seed = 100
        idx._rows = RowStore(np.zeros((0, dim), dtype=np.float32))
        idx._graph = None
        if graph_bytes(npz) == 0:
            return idx
        fd, tmp = tempfile.mkstemp(suffix=".hnsw")
        try:
            with os.fdopen(fd, "wb") as out:
                copy_member(npz, "graph", out)
            g = _hnswlib().Index(space="ip" if idx.metric == "cosine" else "l2", dim=dim)
            g.load_index(tmp, allow_replace_deleted=True)
        finally:
            os.unlink(tmp)
        g.set_ef(1)  # the beam is each search's own: _knn
        idx._graph = g
        shared = _shared_rows(vectors, n, dim, idx.metric) if not removed.any() else None
        if shared is not None:
            idx._rows = shared
            return idx
        own = np.zeros((n, dim), dtype=np.float32)
        live = np.flatnonzero(~removed)
        for s in range(0, live.size, GET_ITEMS_ROWS):
            part = live[s: s + GET_ITEMS_ROWS]
            own[part] = np.asarray(g.get_items(part), dtype=np.float32)
        idx._rows = RowStore(own)
        idx._rows.set_removed(removed)
        return idx

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: str | Path) -> ANNIndex:
        return cls.from_bytes(Path(path).read_bytes())


UNIT_TOLERANCE = 1e-4  # how far from 1 a shared row's squared length may be, for cosine


def _shared_rows(vectors: np.ndarray | None, n: int, dim: int, metric: str
                 ) -> RowStore | None:
    """``vectors`` as an index's rows without copying them, if they can be: float32, C order,
    ``n`` x ``dim``, and for cosine unit length."""
    if vectors is None or vectors.shape != (n, dim) or vectors.dtype != np.float32 \
            or not vectors.flags.c_contiguous:
        return None
    rows = RowStore(vectors)
    if metric == "cosine" and n and float(np.abs(rows.sq_norms - 1.0).max()) > UNIT_TOLERANCE:
        return None
    return rows


def _npy_shape(f: Any) -> tuple[int, ...]:
    """Read past a .npy header; the array's shape."""
    version = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) \
        else np.lib.format.read_array_header_2_0
    return read(f)[0]


def graph_bytes(npz: Any) -> int:
    """Bytes of the saved graph, read from its header alone."""
    with npz.zip.open("graph.npy") as f:
        return int(np.prod(_npy_shape(f)))


def copy_member(npz: Any, name: str, out: Any) -> None:
    """Stream a saved uint8 array's bytes to ``out`` without reading it into memory: hnswlib
    loads its graph from a file, and a 100k graph is ~170 MB."""
    with npz.zip.open(f"{name}.npy") as f:
        _npy_shape(f)
        shutil.copyfileobj(f, out, 1 << 20)


def _hnswlib_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hnswlib")
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"
