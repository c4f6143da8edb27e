"""Collaborative filtering: what listeners do together. Popularity (overall and recent),
item-kNN (cosine), EASE (closed form, numpy) and iALS / BPR (the ``implicit`` library).

All honour ``Recommender``: fit on an ``Interactions``, score listener histories.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse
from threadpoolctl import threadpool_limits

from podrec.model.base import (
    THIN,
    CatalogData,
    Recommender,
    UserBatch,
    best_unseen,
    csr_entries,
    first_listener,
    last_answer,
    row_shares,
    scale_of,
    seen_rows,
)
from podrec.model.interactions import Interactions
from podrec.model.seeding import id_keys, uniform_rows


def _binary(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
    out = sparse.csr_matrix(matrix, dtype=np.float32, copy=True)
    out.data = (out.data > 0).astype(np.float32)
    out.eliminate_zeros()
    return out


class PopularityModel(Recommender):
    """The items most listeners engaged with; with ``half_life_days``, weighted to recent ones."""

    def __init__(self, half_life_days: float | None = None) -> None:
        self.half_life_days = half_life_days
        self.name = "pop-recent" if half_life_days else "pop"

    def fit(self, catalog: CatalogData | None, interactions: Interactions | None = None
            ) -> PopularityModel:
        if interactions is None:  # no events at all: the catalog's own popularity field
            assert catalog is not None
            self._n_items = len(catalog)
            pop = np.nan_to_num(np.asarray(catalog.popularity, np.float64), nan=0.0)
            self.popularity = np.log1p(np.maximum(pop, 0.0)).astype(np.float32)
            return self
        self._n_items = interactions.n_items
        pos = interactions.confidence > 0
        weight = np.ones(int(pos.sum()))
        if self.half_life_days and pos.any():
            age_days = (interactions.times.max() - interactions.times[pos]) / 86400.0
            weight = 0.5 ** (age_days / self.half_life_days)
        self.popularity = np.bincount(interactions.items[pos], weights=weight,
                                      minlength=self._n_items).astype(np.float32)
        return self

    def score(self, batch: UserBatch) -> np.ndarray:
        return np.broadcast_to(self.popularity, (len(batch), self._n_items)).copy()

    def score_rows(self, batch: UserBatch, rows: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.popularity[rows], (len(batch), len(rows))).copy()

    def score_scale(self, batch: UserBatch) -> tuple[np.ndarray, np.ndarray]:
        """The same for everyone: the popularity's own mean and spread (read once)."""
        pop = self.popularity
        mean, std = last_answer(self, "scale", pop, lambda: scale_of(
            pop.sum(dtype=np.float64), np.square(pop, dtype=np.float64).sum(), len(pop)))
        return np.full(len(batch), mean), np.full(len(batch), std)

    def candidates(self, batch: UserBatch, n: int) -> np.ndarray:
        """The most popular items not seen (ranked once, on first use)."""
        seen = seen_rows(batch)
        want = min(n + len(seen), self._n_items)
        if getattr(self, "_ranked", None) is None or len(self._ranked) < want:
            m = min(max(want, 1000), self._n_items)
            top = np.argpartition(-self.popularity, m - 1)[:m] if m else np.zeros(0, np.int64)
            self._ranked = top[np.argsort(-self.popularity[top], kind="stable")]
        ranked = self._ranked[:want]
        return ranked[~np.isin(ranked, seen)][:n].astype(np.int64)

    def params(self) -> dict[str, Any]:
        return {"half_life_days": self.half_life_days}


class ItemKNNModel(Recommender):
    """Item-based kNN: cosine between items' listener vectors, ``neighbours`` kept per item."""

    name = "itemknn"

    def __init__(self, neighbours: int = 100, shrink: float = 10.0) -> None:
        self.neighbours, self.shrink = neighbours, shrink

    def fit(self, catalog: CatalogData | None, interactions: Interactions | None = None
            ) -> ItemKNNModel:
        assert interactions is not None
        x = _binary(interactions.matrix())
        n = self._n_items = x.shape[1]
        norms = np.sqrt(np.asarray(x.sum(axis=0)).ravel())
        xt = x.T.tocsr()  # items x listeners
        parts = []
        for a, b in _blocks(_co_bounds(x, xt), ITEMKNN_BLOCK_PAIRS):
            co = (xt[a:b] @ x).tocoo()  # items a..b against every item
            off = co.row + a != co.col  # not an item with itself
            rows, cols = co.row[off], co.col[off]
            sims = co.data[off] / (norms[rows + a] * norms[cols] + self.shrink)
            block = sparse.csr_matrix((sims.astype(np.float32), (rows, cols)),
                                      shape=(b - a, n))
            parts.append(_keep_top_per_row(block, self.neighbours))
        self.similarity = sparse.vstack(parts, format="csr", dtype=np.float32) if parts \
            else sparse.csr_matrix((n, n), dtype=np.float32)
        return self

    def score(self, batch: UserBatch) -> np.ndarray:
        return np.asarray((_binary(batch.histories) @ self.similarity).todense(),
                          dtype=np.float32)

    def _summed(self, histories: sparse.csr_matrix) -> sparse.csr_matrix:
        """Each history's neighbour lists summed, sparse; kept for the request's second
        question (candidates, then scoring)."""
        return last_answer(self, "summed", histories,
                           lambda: history_rows_sum(_binary(histories), self.similarity))

    def score_rows(self, batch: UserBatch, rows: np.ndarray) -> np.ndarray:
        """The history's neighbours stay sparse; only ``rows`` are read off them."""
        return sparse_columns(self._summed(batch.histories), rows)

    def score_scale(self, batch: UserBatch) -> tuple[np.ndarray, np.ndarray]:
        """Off the summed neighbour lists: every other item scores zero."""
        summed = self._summed(batch.histories)
        return scale_of(np.asarray(summed.sum(axis=1)).ravel(),
                        np.asarray(summed.multiply(summed).sum(axis=1)).ravel(), self._n_items)

    def candidates(self, batch: UserBatch, n: int) -> np.ndarray:
        """The ``n`` items the history's neighbour lists speak for most."""
        summed = self._summed(first_listener(batch))
        return best_unseen(summed.data, n, seen_rows(batch), summed.indices)

    def item_affinity(self, rows: np.ndarray, target: int) -> np.ndarray:
        return np.asarray(self.similarity[np.asarray(rows), target].todense()).ravel()

    def params(self) -> dict[str, Any]:
        return {"neighbours": self.neighbours, "shrink": self.shrink}


def _key(rows: np.ndarray | None) -> tuple[int, ...] | None:
    return None if rows is None else tuple(np.asarray(rows).ravel().tolist())


EXACT_CANDIDATES = 200_000  # factor models: exact inner products up to this many items


def sparse_columns(m: sparse.spmatrix, rows: np.ndarray) -> np.ndarray:
    """Dense (m.rows × len(rows)) values of a sparse matrix at the columns ``rows``, read
    without densifying its other columns."""
    m = sparse.csr_matrix(m)
    m.sum_duplicates()
    rows = np.asarray(rows, np.int64)
    out = np.zeros((m.shape[0], len(rows)), np.float32)
    for u in range(m.shape[0]):
        idx, data = m.indices[m.indptr[u]:m.indptr[u + 1]], m.data[m.indptr[u]:m.indptr[u + 1]]
        if not len(idx):
            continue
        pos = np.minimum(np.searchsorted(idx, rows), len(idx) - 1)
        hit = idx[pos] == rows
        out[u, hit] = data[pos[hit]]
    return out


def history_rows_sum(histories: sparse.csr_matrix, matrix: sparse.csr_matrix
                     ) -> sparse.csr_matrix:
    """``histories @ matrix`` (CSR, sorted) for a few listeners: their items' rows of a wide
    item x item matrix summed from its stored values, since scipy's product keeps a work
    array as wide as the catalog (about 1 ms a call at a million items). Many listeners
    (evaluation) go through scipy."""
    h = sparse.csr_matrix(histories)
    if h.shape[0] > THIN:
        out = sparse.csr_matrix(h @ matrix)
    else:
        pos, cols, vals = csr_entries(matrix, h.indices.astype(np.int64))
        user = np.repeat(np.arange(h.shape[0]), np.diff(h.indptr))[pos]
        out = sparse.coo_matrix((vals * h.data[pos], (user, cols)),
                                shape=(h.shape[0], matrix.shape[1])).tocsr()
    out.sum_duplicates()
    return out


# Item pairs one block of ItemKNN's co-occurrence may hold (an upper bound; ~12 bytes each):
# the whole item x item product of 1M episodes and 3M events from power-law listeners did not
# fit in 24 GB, since a listener of n items gives n^2 pairs.
ITEMKNN_BLOCK_PAIRS = 20_000_000


def _co_bounds(x: sparse.csr_matrix, xt: sparse.csr_matrix) -> np.ndarray:
    """For each item, the co-occurrences its row can hold at most: the items of each of its
    listeners, summed."""
    return np.asarray(xt @ np.diff(x.indptr).astype(np.float64)).ravel()


def _blocks(bounds: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Consecutive row ranges whose bounds sum to at most ``budget`` (a row above it alone)."""
    out, start, total = [], 0, 0.0
    for r, v in enumerate(bounds.tolist()):
        if r > start and total + v > budget:
            out.append((start, r))
            start, total = r, 0.0
        total += v
    if start < len(bounds):
        out.append((start, len(bounds)))
    return out


def _keep_top_per_row(m: sparse.csr_matrix, k: int) -> sparse.csr_matrix:
    m = m.tocsr()
    rows, cols, vals = [], [], []
    for r in range(m.shape[0]):
        start, end = m.indptr[r], m.indptr[r + 1]
        if start == end:
            continue
        data, idx = m.data[start:end], m.indices[start:end]
        if len(data) > k:
            keep = np.argpartition(-data, k)[:k]
            data, idx = data[keep], idx[keep]
        rows.append(np.full(len(idx), r))
        cols.append(idx)
        vals.append(data)
    if not rows:
        return sparse.csr_matrix(m.shape, dtype=np.float32)
    # S[j, c]: c among j's nearest; history @ S sums each history item's neighbours
    return sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                             shape=m.shape, dtype=np.float32)


class EASEModel(Recommender):
    """EASE (Steck 2019): a closed-form item-item model, B = I - P·diag(1/diag(P)),
    P = (XᵀX + λI)⁻¹. The inverse is O(items³), so only the ``max_items`` most popular items
    are modelled; the rest score zero."""

    name = "ease"

    def __init__(self, l2: float = 200.0, max_items: int = 8000) -> None:
        self.l2, self.max_items = l2, max_items

    def fit(self, catalog: CatalogData | None, interactions: Interactions | None = None
            ) -> EASEModel:
        assert interactions is not None
        x = _binary(interactions.matrix())
        self._n_items = x.shape[1]
        counts = np.asarray(x.sum(axis=0)).ravel()
        order = np.argsort(-counts, kind="stable")
        self.items = np.sort(order[: min(self.max_items, int((counts > 0).sum()))])
        xs = x[:, self.items]
        gram = np.asarray((xs.T @ xs).todense(), dtype=np.float64)
        gram[np.diag_indices_from(gram)] += self.l2
        p = np.linalg.inv(gram)
        b = p / (-np.diag(p))
        b[np.diag_indices_from(b)] = 0.0
        self.weights = b.astype(np.float32)
        return self

    def score(self, batch: UserBatch) -> np.ndarray:
        out = np.zeros((len(batch), self._n_items), dtype=np.float32)
        h = _binary(batch.histories)[:, self.items]
        out[:, self.items] = np.asarray(h @ self.weights)
        return out

    def score_rows(self, batch: UserBatch, rows: np.ndarray) -> np.ndarray:
        """Only the modelled items have a score: ``rows`` among them are read off the
        (listeners × modelled items) product."""
        rows = np.asarray(rows, np.int64)
        out = np.zeros((len(batch), len(rows)), dtype=np.float32)
        pos = np.minimum(np.searchsorted(self.items, rows), max(len(self.items) - 1, 0))
        ok = (self.items[pos] == rows) if len(self.items) else np.zeros(len(rows), bool)
        if ok.any():
            out[:, ok] = self._modelled(batch.histories)[:, pos[ok]]  # a row, then pick
        return out

    def _modelled(self, histories: sparse.csr_matrix) -> np.ndarray:
        """(listeners x modelled items) scores; kept for the request's second question. The
        history is mapped onto the modelled items by their sorted rows: scipy's column
        selection walks a map as wide as the catalog (about 1 ms at a million items)."""

        def scores() -> np.ndarray:
            h = _binary(histories)
            if not len(self.items):
                return np.zeros((h.shape[0], 0), np.float32)
            pos = np.minimum(np.searchsorted(self.items, h.indices), len(self.items) - 1)
            ok = self.items[pos] == h.indices
            indptr = np.concatenate([[0], np.cumsum(ok)])[h.indptr]
            mine = sparse.csr_matrix((h.data[ok], pos[ok], indptr),
                                     shape=(h.shape[0], len(self.items)))
            return np.asarray(mine @ self.weights)

        return last_answer(self, "modelled", histories, scores)

    def score_scale(self, batch: UserBatch) -> tuple[np.ndarray, np.ndarray]:
        """Off the modelled items' scores: every other item scores zero."""
        s = np.asarray(self._modelled(batch.histories), np.float64)
        return scale_of(s.sum(axis=1), np.square(s).sum(axis=1), self._n_items)

    def candidates(self, batch: UserBatch, n: int) -> np.ndarray:
        """The ``n`` modelled items the history scores highest."""
        s = self._modelled(first_listener(batch))[0]
        return best_unseen(s, n, seen_rows(batch), self.items)

    def item_affinity(self, rows: np.ndarray, target: int) -> np.ndarray:
        pos = np.searchsorted(self.items, np.asarray(rows))
        t = int(np.searchsorted(self.items, target))
        out = np.zeros(len(rows), np.float32)
        if t >= len(self.items) or self.items[t] != target:
            return out
        ok = (pos < len(self.items)) & (self.items[np.minimum(pos, len(self.items) - 1)]
                                        == np.asarray(rows))
        out[ok] = self.weights[pos[ok], t]
        return out

    def params(self) -> dict[str, Any]:
        return {"l2": self.l2, "max_items": self.max_items}


class _ImplicitModel(Recommender):
    """Shared scoring of the implicit library's factor models."""

    _model: Any

    def _fit_matrix(self, interactions: Interactions) -> sparse.csr_matrix:
        return interactions.matrix().tocsr()

    def fit(self, catalog: CatalogData | None, interactions: Interactions | None = None
            ) -> _ImplicitModel:
        """Fit on the pairs in a canonical order (listeners and items sorted by a seeded hash
        of their ids) and map the factors back: the result depends on the pairs, not on the
        order they came in (the harness's files or the store)."""
        assert interactions is not None
        matrix = self._fit_matrix(interactions)
        self._n_items = matrix.shape[1]
        self._train = matrix
        users = np.argsort(id_keys(interactions.user_ids, self.seed, "fit-u"), kind="stable")
        items = np.argsort(id_keys(interactions.item_ids, self.seed, "fit-i"), kind="stable")
        self._start(interactions, users, items)
        with threadpool_limits(1, "blas"):  # implicit parallelises itself
            self._model.fit(matrix[users][:, items], show_progress=False)
        m = self._model
        user_factors, item_factors = np.asarray(m.user_factors), np.asarray(m.item_factors)
        m.user_factors = np.empty_like(user_factors)
        m.user_factors[users] = user_factors
        m.item_factors = np.empty_like(item_factors)
        m.item_factors[items] = item_factors
        for cached in ("_YtY", "_XtX"):
            if hasattr(m, cached):
                setattr(m, cached, None)
        return self

    def _start(self, interactions: Interactions, users: np.ndarray, items: np.ndarray) -> None:
        """Set the starting factors before fitting (None: the library's own)."""
        self._model.user_factors = self._model.item_factors = None

    def _user_factors(self, histories: sparse.csr_matrix,
                      user_rows: np.ndarray | None) -> np.ndarray:
        """Trained factors of known listeners, folded-in ones for the rest; the last
        answer is kept, as candidates and scoring ask twice about one request."""
        return last_answer(self, "user_factors", histories,
                           lambda: self._compute_user_factors(histories, user_rows),
                           _key(user_rows))

    def __getstate__(self) -> dict[str, Any]:
        """What is saved: not the last request's factors nor the candidates' copy of the
        factors; a candidate graph (built at training for a large catalog, see
        ``train.trainer``) is saved, since every worker would otherwise build it again
        (minutes at a million items)."""
        state = {k: v for k, v in self.__dict__.items() if k != "_candidates"}
        found = self.__dict__.get("_candidates")
        if found is not None and found[2] is not None:
            state["_candidate_graph"] = (found[0], np.frombuffer(found[2].to_bytes(), np.uint8))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        graph = state.pop("_candidate_graph", None)
        self.__dict__.update(state)
        if graph is not None:
            from podrec.index import index_from_bytes

            rows, raw = graph
            self._candidates = (rows, None, index_from_bytes(memoryview(raw)))

    def _compute_user_factors(self, histories: sparse.csr_matrix,
                              user_rows: np.ndarray | None) -> np.ndarray:
        factors = np.asarray(self._model.user_factors)
        out = np.zeros((histories.shape[0], factors.shape[1]), dtype=np.float32)
        known = np.zeros(histories.shape[0], bool)
        if user_rows is not None:
            rows = np.asarray(user_rows)
            known = (rows >= 0) & (rows < factors.shape[0])
            out[known] = factors[rows[known]]
        unknown = np.flatnonzero(~known & (np.diff(histories.indptr) > 0))
        if len(unknown):
            out[unknown] = self._fold_in(histories[unknown])
        return out

    def _fold_in(self, histories: sparse.csr_matrix) -> np.ndarray:
        return np.asarray(self._model.recalculate_user(
            np.arange(histories.shape[0]), self._fit_rows(histories)))

    def _fit_rows(self, histories: sparse.csr_matrix) -> sparse.csr_matrix:
        return sparse.csr_matrix(histories, dtype=np.float32)

    def score(self, batch: UserBatch) -> np.ndarray:
        users = self._user_factors(batch.histories, batch.user_rows)
        return users @ np.asarray(self._model.item_factors).T

    def score_rows(self, batch: UserBatch, rows: np.ndarray) -> np.ndarray:
        users = self._user_factors(batch.histories, batch.user_rows)
        return users @ np.asarray(self._model.item_factors)[np.asarray(rows, np.int64)].T

    def score_scale(self, batch: UserBatch) -> tuple[np.ndarray, np.ndarray]:
        """A score is the inner product of the listener's factors with an item's, so its
        mean and spread over every item follow from the items' mean factor and second
        moments (factors x factors, read once): no item is scored."""
        items = np.asarray(self._model.item_factors)

        def moments() -> tuple[np.ndarray, np.ndarray]:  # in blocks: no float64 copy of all
            total = np.zeros(items.shape[1], np.float64)
            second = np.zeros((items.shape[1], items.shape[1]), np.float64)
            for lo in range(0, len(items), 65536):
                v = np.asarray(items[lo:lo + 65536], np.float64)
                total += v.sum(axis=0)
                second += v.T @ v
            return total / max(len(items), 1), second / max(len(items), 1)

        # keyed by the factors' memory: a memory-mapped model gives a new view each time
        mean_item, second = last_answer(self, "moments", self, moments,
                                        (items.shape, items.__array_interface__["data"][0]))
        users = np.asarray(self._user_factors(batch.histories, batch.user_rows), np.float64)
        mean = users @ mean_item
        var = np.einsum("ij,jk,ik->i", users, second, users) - mean ** 2
        return mean, np.sqrt(np.maximum(var, 0.0))

    def candidates(self, batch: UserBatch, n: int) -> np.ndarray:
        """The items of highest inner product with the listener's factors, among the items
        that had training events (the others' factors are their starting draw, or zero: no
        collaborative evidence). Exact up to ``EXACT_CANDIDATES`` such items, else from an
        HNSW graph over their factors (made norm-equal with one more coordinate, so cosine
        order is inner-product order)."""
        one = batch if len(batch) == 1 else batch.take(np.array([0]))  # the same histories
        user = self._user_factors(one.histories, one.user_rows)[0]  # as scoring's: one fold-in
        if n <= 0 or not np.any(user):
            return np.zeros(0, np.int64)
        self.prepare_candidates()
        rows, factors, graph = self._candidates
        seen = seen_rows(batch)
        at = np.searchsorted(rows, seen)
        at = at[(at < len(rows)) & (rows[np.minimum(at, max(len(rows) - 1, 0))] == seen)]
        if graph is None:
            scores = factors @ user
            scores[at] = -np.inf
            n = min(n, len(rows) - len(at))
            if n <= 0:
                return np.zeros(0, np.int64)
            return rows[np.argpartition(-scores, n - 1)[:n]]
        return rows[graph.search(np.append(user, 0.0).astype(np.float32), n, at)[0]]

    def prepare_candidates(self) -> None:
        """The trained items' rows and a contiguous copy of their factors (a product over
        them reads a third of a 100k catalog's factors in the benchmark's catalog, where 28%
        of the items have events), or an HNSW graph over them above ``EXACT_CANDIDATES``."""
        if getattr(self, "_candidates", None) is not None:
            return
        items = np.asarray(self._model.item_factors, np.float32)
        train = getattr(self, "_train", None)
        rows = (np.unique(sparse.csr_matrix(train).indices)  # the columns with an event
                if train is not None and train.shape[1] == len(items)
                else np.arange(len(items)))
        factors = np.ascontiguousarray(items[rows])
        if len(rows) <= EXACT_CANDIDATES:
            self._candidates = (rows.astype(np.int64), factors, None)
            return
        from podrec.index import make_index

        norms = np.linalg.norm(factors, axis=1)
        extra = np.sqrt(np.maximum(norms.max() ** 2 - norms ** 2, 0.0))
        graph = make_index(np.column_stack([factors, extra]), "cosine", "ann")
        self._candidates = (rows.astype(np.int64), None, graph)

    def item_affinity(self, rows: np.ndarray, target: int) -> np.ndarray:
        items = np.asarray(self._model.item_factors)
        return items[np.asarray(rows)] @ items[target]


class ALSModel(_ImplicitModel):
    """iALS (Hu, Koren, Volinsky 2008) via ``implicit``: confidence 1 + alpha · weight."""

    name = "ials"

    def __init__(self, factors: int = 64, regularization: float = 0.05, alpha: float = 2.0,
                 iterations: int = 15, seed: int = 0) -> None:
        from implicit.cpu.als import AlternatingLeastSquares

        self.factors, self.regularization, self.alpha = factors, regularization, alpha
        self.iterations, self.seed = iterations, seed
        with threadpool_limits(1, "blas"):  # its constructor checks BLAS threading
            self._model = AlternatingLeastSquares(
                factors=factors, regularization=regularization, alpha=alpha,
                iterations=iterations, random_state=seed)

    def _start(self, interactions: Interactions, users: np.ndarray, items: np.ndarray) -> None:
        """Each item's and listener's starting factors are drawn from its own id, so adding an
        item nobody touched does not move everyone else's starting point."""
        f = self.factors
        self._model.user_factors = 0.01 * uniform_rows(
            [interactions.user_ids[u] for u in users.tolist()], self.seed, f, "als-u")
        self._model.item_factors = 0.01 * uniform_rows(
            [interactions.item_ids[i] for i in items.tolist()], self.seed, f, "als-i")

    def params(self) -> dict[str, Any]:
        return {"factors": self.factors, "regularization": self.regularization,
                "alpha": self.alpha, "iterations": self.iterations}


class BPRModel(_ImplicitModel):
    """BPR (Rendle et al. 2009) via ``implicit``, on binary feedback. A listener the model has
    not seen is folded in as the mean factor of their items."""

    name = "bpr"

    def __init__(self, factors: int = 64, learning_rate: float = 0.05,
                 regularization: float = 0.01, iterations: int = 100, seed: int = 0) -> None:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        self.factors, self.learning_rate = factors, learning_rate
        self.regularization, self.iterations, self.seed = regularization, iterations, seed
        self._model = BayesianPersonalizedRanking(  # one thread: the same seed, the same fit
            factors=factors, learning_rate=learning_rate, regularization=regularization,
            iterations=iterations, random_state=seed, num_threads=1)

    def _fit_matrix(self, interactions: Interactions) -> sparse.csr_matrix:
        return _binary(interactions.matrix())

    def _fold_in(self, histories: sparse.csr_matrix) -> np.ndarray:
        h, _ = row_shares(_binary(histories))
        users = np.asarray(h @ np.asarray(self._model.item_factors))
        users[:, -1] = 1.0  # implicit's BPR keeps item biases in the last factor
        return users

    def params(self) -> dict[str, Any]:
        return {"factors": self.factors, "learning_rate": self.learning_rate,
                "regularization": self.regularization, "iterations": self.iterations}
