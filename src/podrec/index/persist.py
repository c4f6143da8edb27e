"""One vector index per (embedding model, item kind), kept in the store and updated in place.

``StoredIndex(store, model_id, kind, config).index()`` returns an index over the model's
stored vectors. The first call loads the saved index (artifacts table) and brings it up to date
by item pk: vectors of new pks are added, vanished pks removed (marked deleted), changed
vectors replaced (remove + add); the result is saved back when anything changed. It is built
from scratch only when nothing is saved, or the saved one no longer fits: another exact/ann
kind, metric, dimension or HNSW graph parameters, or more removed rows than live ones.
``pks`` maps rows to item pks (-1: a removed row); ``rows_of`` maps pks to rows.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from podrec.index import choose_kind, make_index
from podrec.index.vector_index import VectorIndex, index_from_bytes, prepare

if TYPE_CHECKING:
    from podrec.config import IndexConfig
    from podrec.storage import Store

log = logging.getLogger(__name__)

# A vector whose stored copy differs by more than this (any coordinate) counts as changed.
CHANGE_TOLERANCE = 1e-5
COMPARE_ROWS = 16384  # vectors compared at a time when bringing a saved index up to date


@dataclass
class UpdateReport:
    rebuilt: bool = False
    reason: str = ""
    added: int = 0
    removed: int = 0
    changed: int = 0
    saved: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class StoredIndex:
    """The index of one embedding model's vectors (optionally one item kind) in ``store``."""

    def __init__(self, store: Store, model_id: str, kind: str | None = None,
                 config: IndexConfig | None = None, metric: str = "cosine") -> None:
        if config is None:
            from podrec.config import IndexConfig

            config = IndexConfig()
        self.store, self.model_id, self.item_kind = store, model_id, kind
        self.config, self.metric = config, metric
        self.name = f"index:{model_id}:{kind or '*'}"
        self.builds = 0  # full builds by this object (tests and logs)
        self.last_update = UpdateReport()
        self._index: VectorIndex | None = None
        self._pks = np.zeros(0, dtype=np.int64)  # row -> item pk, -1 for removed rows
        self._row_of: dict[int, int] = {}

    # -- the API ----------------------------------------------------------------------------
    def index(self) -> VectorIndex:
        """The index, loaded and brought up to date on the first call (``refresh`` later)."""
        if self._index is None:
            self.refresh()
        assert self._index is not None
        return self._index

    @property
    def pks(self) -> np.ndarray:
        """Item pk of every row; -1 where the row was removed."""
        self.index()
        return self._pks

    def rows_of(self, pks: Any) -> np.ndarray:
        """Rows of item pks (-1 for a pk not in the index)."""
        self.index()
        return np.fromiter((self._row_of.get(int(p), -1) for p in np.atleast_1d(pks)),
                           dtype=np.int64)

    def search(self, query: np.ndarray, k: int, exclude_pks: Any = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """(item pks, similarities) of the ``k`` nearest items, ``exclude_pks`` left out."""
        exclude = None
        if exclude_pks is not None and len(exclude_pks):
            exclude = self.rows_of(exclude_pks)
            exclude = exclude[exclude >= 0]
        rows, sims = self.index().search(query, k, exclude)
        return self._pks[rows], sims

    def refresh(self, pks: np.ndarray | None = None, matrix: np.ndarray | None = None
                ) -> UpdateReport:
        """Bring the index in line with the store's vectors (or the ``pks``/``matrix`` given,
        as ``Store.load_vectors`` returns them) and save it when anything changed."""
        if pks is None or matrix is None:
            pks, matrix = self.store.load_vectors(self.model_id, self.item_kind)
        pks = np.asarray(pks, dtype=np.int64)
        matrix = np.asarray(matrix, dtype=np.float32)
        if self._index is None:
            self._load(pks, matrix)
        want = choose_kind(len(pks), self.config.kind, self.config.ann_threshold)
        reason = self._misfit(want, matrix)
        if reason:
            report = self._build(pks, matrix, want, reason)
        else:
            report = self._update(pks, matrix)
        if report.rebuilt or report.added or report.removed or report.changed:
            self._save()
            report.saved = True
        self.last_update = report
        log.info("index %s: %s", self.name, report)
        return report

    # -- internals --------------------------------------------------------------------------
    def _load(self, pks_now: np.ndarray | None = None, matrix: np.ndarray | None = None
              ) -> None:
        """The saved index, if any. When the vectors it is refreshed with are its own rows
        (the same pks in the same order, as a catalog's vectors are until items come or go),
        an HNSW index reads those instead of keeping a copy of its own."""
        try:
            # One copy of the saved index at a time: its inner index is read out of the
            # artefact's stream (SQLite: in place), and that array let go once it is bytes.
            with self.store.artifact_stream(self.name) as found:
                if not found or found[1] is None:
                    return
                with np.load(found[1], allow_pickle=False) as npz:
                    pks = npz["pks"].astype(np.int64)
                    inner = npz["index"]
            data = inner.tobytes()
            del inner
            same = pks_now is not None and matrix is not None and len(pks_now) == len(pks) \
                and bool(np.array_equal(pks_now, pks))
            index = index_from_bytes(data, matrix if same else None)
            del data
        except Exception as exc:  # a damaged or foreign artifact: rebuild
            log.warning("index %s: saved index unreadable (%s); rebuilding", self.name, exc)
            return
        if len(pks) != len(index):
            log.warning("index %s: saved index has %d rows for %d pks; rebuilding",
                        self.name, len(index), len(pks))
            return
        if index.kind == "ann":
            index.set_ef(self.config.ef_search)  # a query setting: no rebuild needed
        self._set(index, pks)

    def _misfit(self, want: str, matrix: np.ndarray) -> str:
        idx = self._index
        if idx is None:
            return "nothing saved"
        if idx.kind != want:
            return f"kind {idx.kind} -> {want}"
        if idx.metric != self.metric:
            return f"metric {idx.metric} -> {self.metric}"
        if len(matrix) and len(idx) and matrix.shape[1] != idx.dim:
            return f"dimension {idx.dim} -> {matrix.shape[1]}"
        if idx.kind == "ann" and (idx.m, idx.ef_construction) != (
                self.config.m, self.config.ef_construction):
            return "HNSW graph parameters changed"
        removed = int(idx.removed.sum())
        if removed > 1000 and removed > len(idx) - removed:
            return f"{removed} removed rows outnumber live ones"
        return ""

    def _build(self, pks: np.ndarray, matrix: np.ndarray, kind: str, reason: str
               ) -> UpdateReport:
        if not len(pks):
            matrix = np.zeros((0, matrix.shape[1] if matrix.ndim == 2 else 0), np.float32)
        index = make_index(matrix, self.metric, kind, config=self.config)
        self.builds += 1
        self._set(index, pks.copy())
        return UpdateReport(rebuilt=True, reason=reason, added=len(pks))

    def _update(self, pks: np.ndarray, matrix: np.ndarray) -> UpdateReport:
        idx = self._index
        assert idx is not None
        report = UpdateReport()
        live_rows = np.flatnonzero(self._pks >= 0)
        old_pks = self._pks[live_rows]
        # vanished pks
        gone = ~np.isin(old_pks, pks)
        to_remove = [live_rows[gone]]
        report.removed = int(gone.sum())
        # pks in both: compare the stored vector with the current one
        common, old_i, new_i = np.intersect1d(old_pks, pks, assume_unique=True,
                                              return_indices=True)
        if common.size:
            changed = self._changed(matrix, new_i, live_rows[old_i])
            report.changed = int(changed.sum())
            to_remove.append(live_rows[old_i[changed]])
            add_i = np.concatenate([np.flatnonzero(~np.isin(pks, old_pks)), new_i[changed]])
        else:
            add_i = np.arange(len(pks))
        report.added = int(len(add_i) - report.changed)
        rows = np.concatenate(to_remove)
        if rows.size:
            idx.remove(rows)
            for r in rows:
                self._row_of.pop(int(self._pks[r]), None)
            self._pks[rows] = -1
        if len(add_i):
            add_i = np.sort(add_i)
            new_rows = idx.add(matrix[add_i])
            self._pks = np.concatenate([self._pks, pks[add_i]])
            self._row_of.update(zip(pks[add_i].tolist(), new_rows.tolist(), strict=True))
        return report

    def _changed(self, matrix: np.ndarray, new_i: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Whether each vector ``matrix[new_i]`` differs from the index's row ``rows`` (same
        length): compared a block at a time, so that a worker bringing a 100k index up to
        date holds no second and third copy of every vector."""
        idx = self._index
        assert idx is not None
        changed = np.zeros(len(new_i), dtype=bool)
        if len(new_i) == len(idx) and np.may_share_memory(idx.vectors, matrix) \
                and np.array_equal(new_i, rows):
            return changed  # the index reads these very vectors
        for s in range(0, len(new_i), COMPARE_ROWS):
            block = slice(s, s + COMPARE_ROWS)
            current = prepare(matrix[new_i[block]], self.metric, idx.dim)
            changed[block] = np.abs(current - idx.vector(rows[block])).max(axis=1) \
                > CHANGE_TOLERANCE
        return changed

    def _set(self, index: VectorIndex, pks: np.ndarray) -> None:
        self._index, self._pks = index, pks
        self._row_of = {int(p): r for r, p in enumerate(pks.tolist()) if p >= 0}

    def _save(self) -> None:
        idx = self._index
        assert idx is not None
        buf = io.BytesIO()
        inner = idx.to_bytes()
        np.savez(buf, index=np.frombuffer(inner, dtype=np.uint8), pks=self._pks)
        del inner  # 1.7 GB for an HNSW index of 1M e5 vectors: one copy fewer at a time
        meta = {"model_id": self.model_id, "item_kind": self.item_kind, "kind": idx.kind,
                "metric": idx.metric, "rows": len(idx), "live": int((self._pks >= 0).sum()),
                "dim": idx.dim}
        with buf.getbuffer() as saved:  # not getvalue(): no copy of it
            self.store.put_artifact(self.name, meta, saved)
