"""The recommender protocol every model honours, and the plain catalog data they are fit on.

Models work on row numbers of a ``CatalogData`` (numpy in, numpy out); the service layer maps
row numbers to the ids items came with.
"""

from __future__ import annotations

import re
import unicodedata
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from scipy import sparse


def norm_name(text: str | None) -> str:
    text = unicodedata.normalize("NFKC", text or "").casefold()
    return re.sub(r"[^\w]+", " ", text).strip()


T = TypeVar("T")


class LastAnswer:
    """One answer kept for as long as the object it was computed from lives (held by a weak
    reference, so a new object at the same address is never mistaken for it, and the answer
    is let go with it). The stages of one request ask the same question twice (candidates,
    then scoring); a second request's question only replaces the answer. Pickles empty: an
    answer is not part of a model."""

    def __init__(self) -> None:
        self._kept: tuple[Any, Any, Any] | None = None

    def __reduce__(self) -> tuple[type, tuple[()]]:
        return LastAnswer, ()

    def get(self, key: Any, compute: Callable[[], T], tag: Any = None) -> T:
        kept = self._kept  # one read: another thread may replace it meanwhile
        if kept is not None and kept[0]() is key and kept[1] == tag:
            return kept[2]
        out = compute()
        slot = weakref.ref(self)

        def forget(ref: weakref.ref) -> None:  # the key is gone: so is its answer
            kept = (me := slot()) is not None and me._kept
            if kept and kept[0] is ref:
                me._kept = None

        try:
            self._kept = (weakref.ref(key, forget), tag, out)
        except TypeError:  # not weakly referable (a list): not kept
            pass
        return out


def last_answer(owner: Any, name: str, key: Any, compute: Callable[[], T],
                tag: Any = None) -> T:
    """``owner``'s ``LastAnswer`` called ``name`` (made on first use, so objects unpickled
    from before it existed have one too) for ``key``."""
    slots = owner.__dict__.get("_last_answers")
    if slots is None:
        slots = owner.__dict__.setdefault("_last_answers", {})
    slot = slots.get(name)
    if slot is None:
        slot = slots.setdefault(name, LastAnswer())
    return slot.get(key, compute, tag)


@dataclass
class CatalogData:
    """Items as arrays: the vectors of one embedder plus the metadata models use."""

    ids: list[str]
    kinds: list[str]
    vectors: np.ndarray  # (n, d) float32, unit rows
    titles: list[str] = field(default_factory=list)
    categories: list[list[str]] = field(default_factory=list)
    authors: list[str | None] = field(default_factory=list)
    popularity: np.ndarray | None = None  # (n,) raw popularity (ratings, plays, ...), nan = unknown
    languages: list[str | None] = field(default_factory=list)
    pks: np.ndarray | None = None  # store row keys, when loaded from a store
    texts: list[str] = field(default_factory=list)  # the text each vector was embedded from
    explicit: list[bool | None] = field(default_factory=list)
    show_ids: list[str | None] = field(default_factory=list)  # an episode's show
    durations: np.ndarray | None = None  # (n,) seconds, nan = unknown
    platforms: list[list[str] | None] = field(default_factory=list)  # None = anywhere
    published: np.ndarray | None = None  # (n,) Unix seconds, nan = unknown

    def __post_init__(self) -> None:
        n = len(self.ids)
        self.titles = self.titles or [""] * n
        self.categories = self.categories or [[] for _ in range(n)]
        self.authors = self.authors or [None] * n
        self.languages = self.languages or [None] * n
        self.texts = self.texts or list(self.titles)
        self.explicit = self.explicit or [None] * n
        self.show_ids = self.show_ids or [None] * n
        self.platforms = self.platforms or [None] * n
        if self.popularity is None:
            self.popularity = np.full(n, np.nan, dtype=np.float32)
        if self.durations is None:
            self.durations = np.full(n, np.nan, dtype=np.float32)
        self._row = {(k, i): r for r, (k, i) in enumerate(zip(self.kinds, self.ids, strict=True))}

    def __len__(self) -> int:
        return len(self.ids)

    def vectors_of(self, rows: np.ndarray) -> np.ndarray:
        """``vectors[rows]``, the last answer kept while that very ``rows`` array lives: every
        part of one list's score reads its candidates' vectors, and in a large catalog that
        gather is random reads from memory (about 1.5 ms for 1,600 rows of a 100k catalog,
        twice the product that follows). Read-only: the answer is shared."""

        def gather() -> np.ndarray:
            out = self.vectors[rows]
            out.flags.writeable = False
            return out

        return last_answer(self, "vectors_of", rows, gather)

    def row_of(self, item_id: str, kind: str | None = None) -> int | None:
        """Row of an item id; a show wins over an episode that shares its id."""
        if kind:
            return self._row.get((kind, item_id))
        row = self._row.get(("show", item_id))
        return row if row is not None else self._row.get(("episode", item_id))


@dataclass
class Scored:
    """Ranked rows with their scores and, per row, the parts the score is made of."""

    rows: np.ndarray
    scores: np.ndarray
    components: list[dict[str, float]] = field(default_factory=list)


@dataclass
class UserBatch:
    """Listeners to score: their histories (rows of confidence over the item index), their
    rows in the training matrix (-1 for unseen listeners; None when unknown) and, optionally,
    vectors of text they wrote (reviews, searches; zero rows where none), when each history
    pair last happened (Unix seconds, the same sparsity as ``histories``), the moment of each
    request (Unix seconds), which time-aware models use for recency and as context, and the
    embedded mood or intent text of each request (zero rows where none), for models that
    take context; ``negatives``: what each listener turned down (decayed weights, the same
    sparsity pattern idea as ``histories``), pushed away by models that can; ``seen``: every
    item each listener has an event on, left out of their lists (``histories`` when None);
    ``contexts``: the request context of each listener (hour, device, minutes, intent), for
    models that take context; ``history_items``: per listener, each history item with the
    hour, weekday and device of its latest event (profile models read habits from them;
    offline, hours come from ``history_times``)."""

    histories: sparse.csr_matrix
    user_rows: np.ndarray | None = None
    text_vectors: np.ndarray | None = None
    history_times: sparse.csr_matrix | None = None
    now: np.ndarray | None = None
    intent_vectors: np.ndarray | None = None
    negatives: sparse.csr_matrix | None = None
    seen: sparse.csr_matrix | None = None
    contexts: list[Any] | None = None
    history_items: list[Any] | None = None

    def __len__(self) -> int:
        return int(self.histories.shape[0])

    @classmethod
    def stacked(cls, batches: Sequence[UserBatch]) -> UserBatch:
        """One batch of the listeners of ``batches``, in order (requests scored together).
        A field some of them lack is zero rows for those (no words, no negatives; an unknown
        listener's row -1, an unknown moment nan); one that all of them lack stays None."""
        def matrices(name: str) -> sparse.csr_matrix | None:
            found = [getattr(b, name) for b in batches]
            if all(m is None for m in found):
                return None
            shape = (1, batches[0].histories.shape[1])
            return sparse.vstack([sparse.csr_matrix(shape, dtype=np.float32) if m is None
                                  else m for m in found], format="csr")

        def arrays(name: str, fill: float = 0.0) -> np.ndarray | None:
            found = [getattr(b, name) for b in batches]
            given = next((a for a in found if a is not None), None)
            if given is None:
                return None
            blank = np.full((1, *np.shape(given)[1:]), fill, np.asarray(given).dtype)
            return np.concatenate([blank if a is None else np.asarray(a) for a in found])

        def lists(name: str) -> list[Any] | None:
            found = [getattr(b, name) for b in batches]
            if all(x is None for x in found):
                return None
            return [v for b, x in zip(batches, found, strict=True)
                    for v in (x if x is not None else [None] * len(b))]

        return cls(matrices("histories"), arrays("user_rows", -1), arrays("text_vectors"),
                   matrices("history_times"), arrays("now", np.nan), arrays("intent_vectors"),
                   matrices("negatives"), matrices("seen"), lists("contexts"),
                   lists("history_items"))

    def take(self, index: np.ndarray) -> UserBatch:
        def pick(a: Any) -> Any:
            return None if a is None else a[index]

        return UserBatch(self.histories[index], pick(self.user_rows), pick(self.text_vectors),
                         pick(self.history_times), pick(self.now), pick(self.intent_vectors),
                         pick(self.negatives), pick(self.seen),
                         None if self.contexts is None else [self.contexts[i] for i in index],
                         None if self.history_items is None
                         else [self.history_items[i] for i in index])


def first_listener(batch: UserBatch) -> sparse.csr_matrix:
    """The first listener's history row: the batch's own matrix when it holds only them (the
    same object, so answers kept for it are found again)."""
    return batch.histories if len(batch) == 1 else batch.histories[:1]


def seen_rows(batch: UserBatch) -> np.ndarray:
    """The rows the first listener of ``batch`` has seen (left out of their lists)."""
    m = batch.histories if batch.seen is None else batch.seen
    m = sparse.csr_matrix(m)
    return m.indices[m.indptr[0]:m.indptr[1]].astype(np.int64)


THIN = 8  # right-hand columns up to which a product is done one column at a time


def scale_of(total: np.ndarray, squares: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, standard deviation) of ``n`` values per listener from their sums and sums of
    squares (float64, so that the difference of the two moments keeps its digits)."""
    mean = np.asarray(total, np.float64) / max(n, 1)
    var = np.asarray(squares, np.float64) / max(n, 1) - mean ** 2
    return mean, np.sqrt(np.maximum(var, 0.0))


def thin_product(matrix: np.ndarray, thin: np.ndarray) -> np.ndarray:
    """``matrix @ thin`` for a tall dense matrix and a few columns, as float32. OpenBLAS's
    sgemm with 2-8 columns packs the whole tall matrix first and took 3-8x the time of one
    matrix-vector product per column (measured at 5,000 x 384), which is what this does."""
    thin = np.asarray(thin, np.float32)
    if thin.ndim == 1 or thin.shape[1] > THIN:
        return np.asarray(matrix @ thin, np.float32)
    out = np.empty((matrix.shape[0], thin.shape[1]), np.float32)
    for j in range(thin.shape[1]):
        out[:, j] = matrix @ np.ascontiguousarray(thin[:, j])
    return out


def csr_entries(matrix: sparse.csr_matrix, rows: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(position in ``rows``, column, value) of every stored value of those rows of a CSR
    matrix, read off its arrays without building a sliced matrix."""
    starts = matrix.indptr[rows].astype(np.int64)
    lengths = matrix.indptr[rows + 1].astype(np.int64) - starts
    at = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
    owner = np.repeat(np.arange(len(rows)), lengths)
    return owner, matrix.indices[at], matrix.data[at].astype(np.float32)


def weighted_rows(matrix: Any, rows: np.ndarray, weights: np.ndarray,
                  columns: np.ndarray | None = None) -> np.ndarray:
    """(features x groups) dense: Σ_s weights[s, j] · matrix[rows[s]], for a dense or CSR
    ``matrix``; only the ``columns`` features when given (of a dense matrix only those are
    read: a list balanced over 100 pooled items reads 100 columns of the seeds' rows). For a
    few rows of a sparse matrix this reads their stored values directly: slicing scipy
    matrices and multiplying sparse by sparse costs more than the sums."""
    rows = np.asarray(rows, np.int64)
    w = np.asarray(weights, np.float32)
    w = w.reshape(len(rows), 1) if w.ndim == 1 else w
    if not sparse.issparse(matrix):
        block = matrix[rows] if columns is None \
            else matrix[np.ix_(rows, np.asarray(columns, np.int64))]
        return np.asarray(block, np.float32).T @ w
    if columns is not None:
        return weighted_rows(matrix, rows, w)[np.asarray(columns, np.int64)]
    m = matrix if isinstance(matrix, sparse.csr_matrix) else sparse.csr_matrix(matrix)
    owner, cols, vals = csr_entries(m, rows)
    out = np.empty((m.shape[1], w.shape[1]), np.float32)
    for j in range(w.shape[1]):
        out[:, j] = np.bincount(cols, weights=vals * w[owner, j], minlength=m.shape[1])
    return out


def rows_dot(matrix: sparse.csr_matrix, rows: np.ndarray, dense: np.ndarray,
             entries: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """``matrix[rows] @ dense`` (rows x columns of ``dense``) for a CSR matrix, read off its
    stored values: on a few thousand candidate rows of a large matrix, scipy's row slicing
    (a new matrix, checked) costs several times the products."""
    rows = np.asarray(rows, np.int64)
    d = np.asarray(dense, np.float32)
    flat = d.ndim == 1
    d = d.reshape(d.shape[0], -1)
    owner, cols, vals = csr_entries(matrix, rows) if entries is None else entries
    out = np.empty((len(rows), d.shape[1]), np.float32)
    for j in range(d.shape[1]):
        out[:, j] = np.bincount(owner, weights=vals * d[cols, j], minlength=len(rows))
    return out[:, 0] if flat else out


def sparse_rows_product(matrix: Any, histories: sparse.csr_matrix) -> np.ndarray:
    """``(histories @ matrix).T`` dense (features x listeners): each listener's weighted sum
    of the matrix's rows of their items (``weighted_rows`` with one group per listener)."""
    h = histories if isinstance(histories, sparse.csr_matrix) else sparse.csr_matrix(histories)
    if h.shape[0] > THIN:  # many listeners (evaluation): one sparse product
        out = h @ matrix
        return np.asarray(out.toarray() if sparse.issparse(out) else out, np.float32).T
    owner = np.repeat(np.arange(h.shape[0]), np.diff(h.indptr))
    w = np.zeros((len(h.indices), h.shape[0]), np.float32)
    w[np.arange(len(h.indices)), owner] = h.data
    return weighted_rows(matrix, h.indices, w)


def row_shares(histories: Any, clip_negative: bool = True) -> tuple[sparse.csr_matrix,
                                                                     np.ndarray]:
    """Each row divided by its sum (negatives taken as 0 first), and the sums: a listener's
    history as shares of their attention. Scales the stored values directly, since building
    a diagonal matrix to multiply by costs more than the scoring itself for one listener."""
    h = sparse.csr_matrix(histories, dtype=np.float32)
    data = np.maximum(h.data, 0.0) if clip_negative else h.data.astype(np.float32, copy=True)
    counts = np.diff(h.indptr)
    totals = np.bincount(np.repeat(np.arange(h.shape[0]), counts), weights=data,
                         minlength=h.shape[0]).astype(np.float32)
    data = data / np.repeat(np.maximum(totals, 1e-9), counts)
    return sparse.csr_matrix((data, h.indices, h.indptr), shape=h.shape), totals


def best_unseen(scores: np.ndarray, n: int, seen: np.ndarray, rows: np.ndarray | None = None
                ) -> np.ndarray:
    """The ``n`` best of ``scores`` (over ``rows``, else over row numbers) not in ``seen``."""
    if rows is None:  # scores over every row: mask the seen ones in place of a search
        scores = np.array(scores, np.float32)
        scores[seen] = -np.inf
        n = min(n, int(np.isfinite(scores).sum()))
        if n <= 0:
            return np.zeros(0, np.int64)
        return np.argpartition(-scores, n - 1)[:n].astype(np.int64)
    rows = np.asarray(rows, np.int64)
    keep = ~np.isin(rows, seen)
    scores, rows = np.asarray(scores)[keep], rows[keep]
    n = min(n, len(rows))
    if n <= 0:
        return np.zeros(0, np.int64)
    return rows[np.argpartition(-scores, n - 1)[:n]].astype(np.int64)


class Recommender(ABC):
    """fit / score / recommend / similar_items / explain / partial_fit_users, on row numbers.

    A listener is given as a history: a row of confidence over the item index (CSR), plus,
    for models with per-user state (matrix factorisation), the user's row in the training
    matrix (-1 for a listener the model has not seen). ``score`` is the one method a model
    must implement; the rest have generic versions built on it.
    """

    name = "base"

    @abstractmethod
    def fit(self, catalog: CatalogData | None, interactions: Any = None) -> Recommender: ...

    @abstractmethod
    def score(self, batch: UserBatch) -> np.ndarray:
        """(listeners × items) scores, higher is better."""

    def score_rows(self, batch: UserBatch, rows: np.ndarray) -> np.ndarray:
        """(listeners × len(rows)) scores of just ``rows``: what a list scored on candidates
        costs. Models whose cost follows the catalog's size override it; this one scores
        everything and picks."""
        return np.asarray(self.score(batch), np.float32)[:, np.asarray(rows, np.int64)]

    def score_scale(self, batch: UserBatch) -> tuple[np.ndarray, np.ndarray] | None:
        """(mean, standard deviation) per listener of ``score`` over every item, for a model
        that knows them without scoring every item: a list scored on candidates puts each
        part on the scale a full pass gives it. None: the hybrid reads them off a sample
        of the catalog, which is close for dense scores (content) and far off for sparse or
        skewed ones (popularity, neighbour lists)."""
        return None

    def candidates(self, batch: UserBatch, n: int) -> np.ndarray | None:
        """Up to ``n`` rows this model would rank high for the (first) listener of ``batch``,
        found without scoring the catalog, leaving out what they have seen
        (``seen_rows``): a candidate source for large catalogs. None: the model has no
        cheaper way than scoring everything."""
        return None

    def prepare_candidates(self) -> None:
        """Build whatever ``candidates`` needs (an index over the model's item vectors) now,
        rather than on the first request."""
        return None

    def recommend(self, batch: UserBatch, k: int = 10, exclude_seen: bool = True,
                  candidate_mask: np.ndarray | None = None) -> list[Scored]:
        """The top ``k`` items per listener, items in their history left out."""
        scores = np.array(self.score(batch), dtype=np.float32)  # a copy we may mask
        if candidate_mask is not None:
            scores[:, ~np.asarray(candidate_mask, bool)] = -np.inf
        if exclude_seen:  # every listener's seen items at once, straight from the CSR arrays
            h = sparse.csr_matrix(batch.histories if batch.seen is None else batch.seen)
            scores[np.repeat(np.arange(h.shape[0]), np.diff(h.indptr)), h.indices] = -np.inf
        k = min(k, scores.shape[1])
        if k <= 0:
            return [Scored(rows=np.zeros(0, np.int64), scores=np.zeros(0, np.float32))
                    for _ in range(scores.shape[0])]
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        best = np.take_along_axis(scores, part, axis=1)
        order = np.argsort(-best, axis=1, kind="stable")
        rows = np.take_along_axis(part, order, axis=1)
        best = np.take_along_axis(best, order, axis=1)
        out = []
        for r, s in zip(rows, best, strict=True):
            keep = np.isfinite(s)  # fewer than k candidates left
            out.append(Scored(rows=r[keep].astype(np.int64), scores=s[keep]))
        return out

    def similar_items(self, row: int, k: int = 10,
                      candidate_mask: np.ndarray | None = None) -> Scored:
        """Items a listener whose history is just ``row`` would be recommended."""
        n = self.n_items
        history = sparse.csr_matrix(([1.0], ([0], [row])), shape=(1, n), dtype=np.float32)
        return self.recommend(UserBatch(history), k, candidate_mask=candidate_mask)[0]

    def explain(self, row: int, history: sparse.csr_matrix) -> dict[str, float]:
        """The parts of ``row``'s score; models that cannot split their score say nothing."""
        return {}

    def item_affinity(self, rows: np.ndarray, target: int) -> np.ndarray:
        """How much each item in ``rows`` speaks for ``target`` in this model (the
        collaborative evidence of an explanation); zeros for models without item links."""
        return np.zeros(len(rows), np.float32)

    def partial_fit_users(self, batch: UserBatch) -> None:
        """Update users without a full refit; models without per-user state need nothing."""
        return None

    def params(self) -> dict[str, Any]:
        """Hyper-parameters, saved with the model and reported by evaluations."""
        return {}

    @property
    def n_items(self) -> int:
        return int(self._n_items)
