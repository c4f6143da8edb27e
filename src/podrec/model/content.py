"""The content model: what an item is about (its embedding and its words) fused with who made
it, which genre it is in and how widely it is heard.

On Apple's "listeners also subscribed to" lists, co-subscribed shows share a genre 58% of the
time and a producer 11% of the time, and lean popular; an embedding alone misses those signals,
and it misses exact names (people, places, franchises) that TF-IDF catches. The score of a
candidate c against a seed s is

    w_cos · cos(emb_s, emb_c) + w_lex · cos(tfidf_s, tfidf_c) + w_genre · jaccard(categories)
    + w_author · [same producer] + w_pop · log-popularity(c)

and, for item-to-item lists, ``expand_weight`` times the mean score of c against the seed's
``expand_k`` nearest items (neighbours of neighbours: co-subscription is partly transitive).
The weights are learned on validation pairs by ``fit_weights`` or taken from config.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scipy import sparse

from podrec.index import make_index
from podrec.index.vector_index import VectorIndex, top_k
from podrec.model.base import (
    CatalogData,
    Recommender,
    Scored,
    UserBatch,
    csr_entries,
    last_answer,
    norm_name,
    row_shares,
    rows_dot,
    seen_rows,
    sparse_rows_product,
    thin_product,
    weighted_rows,
)

# A listener's strongest items searched for one by one, as candidates (besides their mean
# item and words). 2 rather than 4: at 1M items 2.5 ms a list less (each search is ~0.5 ms of
# memory latency), the top 10 as a full pass's (README.md, "Large catalogs").
SEED_QUERIES = 2
# catalogs up to this many items keep every pair's fused score (items² float32: 100 MB at
# 5,000), so a listener's scores are their items' rows summed instead of a pass over every
# vector per interest (recommend/ at 5k items: content and profile parts ~5x cheaper)
PAIRWISE_MAX_ITEMS = 6000
PAIRWISE_BLOCK = 1024  # rows built at a time (bounds the temporaries)
PAIRS_ATTR = "_content_pairs"  # where a CatalogData object keeps pairwise scores by weights
COMPONENTS = ("cosine", "lexical", "genre", "author", "popularity")


@dataclass(frozen=True)
class ContentWeights:
    cosine: float = 1.0
    lexical: float = 0.5
    genre: float = 0.03
    author: float = 0.15
    popularity: float = 0.08
    expand_k: int = 10
    expand_weight: float = 1.0

    def as_array(self) -> np.ndarray:
        return np.array([self.cosine, self.lexical, self.genre, self.author, self.popularity],
                        dtype=np.float32)

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


ARRAYS_ATTR = "_content_arrays"  # where a CatalogData object keeps its ContentArrays
SPARSE = ("genres", "tfidf", "genres_unit", "authors")
DENSE = ("genre_counts", "genre_set", "set_jaccard", "author", "popularity")


@dataclass
class ContentArrays:
    """Everything a content model derives from its catalog, whatever its weights: TF-IDF of
    the texts, genre and producer matrices, log popularity. Building it (TF-IDF above all)
    is most of a fit; it depends on the catalog alone, so it is built once per catalog and
    can be saved (``.npy`` files, memory-mapped when loaded) and loaded by another process."""

    genres: sparse.csr_matrix
    genre_counts: np.ndarray
    genre_set: np.ndarray
    set_jaccard: np.ndarray | None
    author: np.ndarray
    popularity: np.ndarray
    tfidf: sparse.csr_matrix
    genres_unit: sparse.csr_matrix
    authors: sparse.csr_matrix

    builds: ClassVar[int] = 0  # arrays built in this process (logs and tests)

    @property
    def rows(self) -> int:
        return int(self.genres.shape[0])

    @classmethod
    def build(cls, catalog: CatalogData) -> ContentArrays:
        from sklearn.feature_extraction.text import TfidfVectorizer

        cls.builds += 1
        n = len(catalog)
        vocab: dict[str, int] = {}
        rows, cols = [], []
        for r, cats in enumerate(catalog.categories):
            for c in {norm_name(c) for c in cats if c}:
                rows.append(r)
                cols.append(vocab.setdefault(c, len(vocab)))
        genres = sparse.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n, max(len(vocab), 1)))
        genre_counts = np.asarray(genres.sum(axis=1)).ravel()
        genre_set, set_jaccard = _genre_sets(genres)
        authors: dict[str, int] = {}
        author = np.array([authors.setdefault(norm_name(a), len(authors)) if norm_name(a)
                           else -1 for a in catalog.authors], dtype=np.int64)
        pop = np.nan_to_num(np.asarray(catalog.popularity, dtype=np.float64), nan=0.0)
        pop = np.log1p(np.maximum(pop, 0.0))
        popularity = (pop / pop.max() if pop.max() > 0 else pop).astype(np.float32)
        try:
            tfidf = TfidfVectorizer(sublinear_tf=True, stop_words="english",
                                    min_df=2 if n >= 50 else 1, dtype=np.float32
                                    ).fit_transform(catalog.texts).tocsr()
        except ValueError:  # no usable words at all (e.g. empty texts)
            tfidf = sparse.csr_matrix((n, 1), dtype=np.float32)
        # Row-normalised genre sets and one-hot producers: profile scoring is then linear.
        norms = np.sqrt(np.maximum(genre_counts, 1.0))
        genres_unit = sparse.csr_matrix(sparse.diags(1.0 / norms) @ genres)
        has = author >= 0
        producers = sparse.csr_matrix(
            (np.ones(int(has.sum()), np.float32), (np.flatnonzero(has), author[has])),
            shape=(n, max(int(author.max(initial=-1)) + 1, 1)))
        return cls(genres, genre_counts, genre_set, set_jaccard, author, popularity, tfidf,
                   genres_unit, producers)

    def save(self, folder: Path) -> None:
        """One ``.npy`` file per array (a sparse matrix: its three arrays) and ``meta.json``
        with the shapes, in ``folder`` (created)."""
        folder.mkdir(parents=True, exist_ok=True)
        shapes: dict[str, list[int]] = {}
        for name in SPARSE:
            m = getattr(self, name)
            shapes[name] = [int(m.shape[0]), int(m.shape[1])]
            for part in ("data", "indices", "indptr"):
                np.save(folder / f"{name}.{part}.npy", getattr(m, part))
        for name in DENSE:
            value = getattr(self, name)
            if value is not None:
                np.save(folder / f"{name}.npy", value)
        meta = {"format": ARRAYS_FORMAT, "rows": self.rows, "shapes": shapes,
                "set_jaccard": self.set_jaccard is not None}
        (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> ContentArrays:
        """The arrays ``save`` wrote, memory-mapped read-only (several processes on one
        machine share the pages). Raises ValueError when they are not there or not whole."""
        try:
            meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
            if meta.get("format") != ARRAYS_FORMAT:
                raise ValueError(f"format {meta.get('format')!r}, expected {ARRAYS_FORMAT}")
            values: dict[str, Any] = {}
            for name in SPARSE:
                parts = [np.load(folder / f"{name}.{p}.npy", mmap_mode="r")
                         for p in ("data", "indices", "indptr")]
                values[name] = sparse.csr_matrix(tuple(np.asarray(p) for p in parts),
                                                 shape=tuple(meta["shapes"][name]))
            for name in DENSE:
                if name == "set_jaccard" and not meta["set_jaccard"]:
                    values[name] = None
                    continue
                values[name] = np.asarray(np.load(folder / f"{name}.npy", mmap_mode="r"))
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"content arrays in {folder} unreadable: {exc}") from exc
        arrays = cls(**values)
        if arrays.rows != meta["rows"]:
            raise ValueError(f"content arrays in {folder} have {arrays.rows} rows, "
                             f"meta says {meta['rows']}")
        return arrays


ARRAYS_FORMAT = 1  # bump when ContentArrays.build changes what it computes


def content_arrays(catalog: CatalogData) -> ContentArrays:
    """The catalog's content arrays: the ones attached to it (``attach_arrays``, or by an
    earlier fit), else built now and attached."""
    arrays = catalog.__dict__.get(ARRAYS_ATTR)
    if arrays is None or arrays.rows != len(catalog):
        arrays = ContentArrays.build(catalog)
        attach_arrays(catalog, arrays)
    return arrays


def attach_arrays(catalog: CatalogData, arrays: ContentArrays) -> None:
    """Give ``catalog`` arrays built before (loaded from disk): models fitted on it use them."""
    if arrays.rows != len(catalog):
        raise ValueError(f"content arrays have {arrays.rows} rows; the catalog has "
                         f"{len(catalog)}")
    catalog.__dict__[ARRAYS_ATTR] = arrays


def attached_arrays(catalog: CatalogData) -> ContentArrays | None:
    """The arrays a catalog already has, if any (built by a fit or attached)."""
    return catalog.__dict__.get(ARRAYS_ATTR)


class ContentModel(Recommender):
    """Item-to-item and seed/query recommendations from content and catalog metadata."""

    name = "content"

    def __init__(self, weights: ContentWeights | None = None, metric: str = "cosine",
                 query_weight: float = 1.0, vector_index: VectorIndex | None = None,
                 pairwise_max_items: int = PAIRWISE_MAX_ITEMS) -> None:
        self.weights = weights or ContentWeights()
        self.metric = metric
        self.query_weight = query_weight
        self.pairwise_max_items = pairwise_max_items
        # nearest-neighbour search over the catalog's vectors in catalog row order (an HNSW
        # index for a large catalog); None: exact search, built in ``fit``
        self.vector_index = vector_index

    # -- fit ------------------------------------------------------------------------------
    def fit(self, catalog: CatalogData, interactions: Any = None) -> ContentModel:
        """Take the catalog's derived arrays (TF-IDF, genre and producer matrices,
        popularity): built once per catalog object and shared by every content model on it,
        whatever its weights, or loaded from disk (``ContentArrays.load``)."""
        self.catalog = catalog
        self.index = self.vector_index if self.vector_index is not None else \
            make_index(catalog.vectors, self.metric, "exact")
        self._n_items = len(catalog)
        a = content_arrays(catalog)
        self._genres, self._genre_counts = a.genres, a.genre_counts
        self._genre_set, self._set_jaccard = a.genre_set, a.set_jaccard
        self._author, self._popularity, self._tfidf = a.author, a.popularity, a.tfidf
        self._genres_unit, self._authors = a.genres_unit, a.authors
        self.__dict__.pop("pair_scores_", None)
        self.__dict__.pop("_author_slots", None)
        self.__dict__.pop("_set_units", None)
        return self

    def __getstate__(self) -> dict[str, Any]:
        """What is saved: not the pairwise scores (rebuilt from the catalog on first use)."""
        return {k: v for k, v in self.__dict__.items()
                if k not in ("pair_scores_", "_set_cosine", "_set_units")}

    def pair_scores(self) -> np.ndarray | None:
        """(items x items) fused score of every pair without genre and popularity (cosine,
        lexical and producer, weighted; genres are added per distinct genre set, since a
        listener's profile compares them by cosine and an interest by Jaccard), built on
        first use, for a catalog of at most ``pairwise_max_items`` items; None above it (or
        without cosine vectors or genre sets), where scoring reads every vector instead."""
        found = self.__dict__.get("pair_scores_")
        if found is not None:
            return found
        n = self._n_items
        if n > self.pairwise_max_items or self.metric != "cosine" or self._set_jaccard is None:
            return None
        w = self.weights.as_array()
        # kept on the catalog, by weights: the served content part and the profile part's
        # content model (the same weights, as a rule) share one matrix
        shared = self.catalog.__dict__.setdefault(PAIRS_ATTR, {})
        key = (float(w[0]), float(w[1]), float(w[3]))
        if key in shared:
            self.pair_scores_, self._set_cosine = shared[key]
            return self.pair_scores_
        v = np.asarray(self.catalog.vectors, np.float32)
        out = np.empty((n, n), np.float32)
        for lo in range(0, n, PAIRWISE_BLOCK):
            block = slice(lo, min(lo + PAIRWISE_BLOCK, n))
            out[block] = w[0] * (v[block] @ v.T)
            if w[1]:
                out[block] += w[1] * (self._tfidf[block] @ self._tfidf.T).toarray()
            if w[3]:
                mine = self._author[block][:, None]
                out[block] += w[3] * ((mine == self._author[None, :]) & (mine >= 0))
        sets = self._genres[np.unique(self._genre_set, return_index=True)[1]]
        overlap = (sets @ sets.T).toarray()
        size = np.sqrt(np.maximum(np.asarray(sets.sum(axis=1)).ravel(), 1.0))
        self._set_cosine = (overlap / size[:, None] / size[None, :]).astype(np.float32)
        self.pair_scores_ = out
        shared[key] = (out, self._set_cosine)
        return out

    def score(self, batch: UserBatch) -> np.ndarray:
        """A listener's profile is the weighted mean of their items (vector, words, genres,
        producers), plus the vector of text they wrote; every component of the fused score is
        then one matrix product."""
        return self.score_rows(batch, None)

    def score_rows(self, batch: UserBatch, rows: np.ndarray | None) -> np.ndarray:
        """``score`` on ``rows`` only (None: every item): the products shrink to them."""
        h, totals = row_shares(batch.histories)
        w = self.weights.as_array()
        vectors = self.catalog.vectors
        sel = slice(None) if rows is None else np.asarray(rows, np.int64)
        pairs = self.pair_scores()
        if pairs is not None:
            return self._score_from_pairs(batch, pairs, h, totals, sel)
        profile = sparse_rows_product(vectors, h).T
        if batch.text_vectors is not None:
            text = np.asarray(batch.text_vectors, dtype=np.float32)
            has_text = (np.linalg.norm(text, axis=1) > 0)[:, None]
            has_items = (totals > 0)[:, None]
            mixed = np.where(has_items, 0.5 * profile + 0.5 * text, text)
            profile = np.where(has_text, mixed, profile)
        scores = thin_product(vectors if rows is None else self.catalog.vectors_of(sel),
                              profile.T).T * w[0]
        # each sparse component as (items x features) @ dense (features x listeners): one
        # sparse-dense product, rather than a sparse product and a densified result
        for weight, m in ((w[1], self._tfidf), (w[2], self._genres_unit), (w[3], self._authors)):
            if weight:
                mean = sparse_rows_product(m, h)
                scores += weight * (m @ mean if rows is None
                                    else self._component_rows(m, sel, mean)).T
        scores += self._popularity[None, sel] * w[4] * (totals > 0)[:, None]
        return scores.astype(np.float32, copy=False)

    def score_scale(self, batch: UserBatch) -> tuple[np.ndarray, np.ndarray] | None:
        """Exact for a small catalog, whose every score is one product of the pairwise
        scores away; None above it (the hybrid reads a sample)."""
        if self.pair_scores() is None:
            return None
        scores = np.asarray(self.score(batch), np.float64)
        return scores.mean(axis=1), scores.std(axis=1)

    def _score_from_pairs(self, batch: UserBatch, pairs: np.ndarray, h: sparse.csr_matrix,
                          totals: np.ndarray, sel: slice | np.ndarray) -> np.ndarray:
        """``score_rows`` from the pairwise scores: each listener's items' rows, weighted by
        their shares; a listener's words move the embedding part as in the full pass."""
        w = self.weights.as_array()
        scores = sparse_rows_product(pairs, h).T[:, sel]
        if w[2]:  # the listener's genre shares, by cosine of genre sets
            per_set = np.zeros((len(self._set_cosine), h.shape[0]), np.float32)
            owner = np.repeat(np.arange(h.shape[0]), np.diff(h.indptr))
            np.add.at(per_set, (self._genre_set[h.indices], owner), h.data)
            scores = scores + w[2] * (self._set_cosine @ per_set)[self._genre_set[sel]].T
        if batch.text_vectors is not None:
            text = np.asarray(batch.text_vectors, dtype=np.float32)
            has_text = np.linalg.norm(text, axis=1) > 0
            if has_text.any():
                items = sparse_rows_product(self.catalog.vectors, h).T
                mixed = np.where((totals > 0)[:, None], 0.5 * items + 0.5 * text, text)
                shift = np.where(has_text[:, None], mixed - items, 0.0)
                v = self.catalog.vectors
                scores = scores + w[0] * thin_product(
                    v if isinstance(sel, slice) else v[sel], shift.T).T
        scores = scores + self._popularity[None, sel] * w[4] * (totals > 0)[:, None]
        return np.asarray(scores, np.float32)

    def candidates(self, batch: UserBatch, n: int) -> np.ndarray:
        """The items nearest (in the vector index) to the listener's mean item, their
        strongest items and their words: one search each, ``n`` spread over them."""
        h = sparse.csr_matrix(batch.histories[:1])
        rows, vals = h.indices, h.data
        queries = []
        if (vals > 0).any():
            rows, vals = rows[vals > 0], vals[vals > 0]
            vectors = self.catalog.vectors
            queries.append(vals @ vectors[rows])
            queries.extend(vectors[rows[np.argsort(-vals, kind="stable")[:SEED_QUERIES]]])
        for v in (batch.text_vectors, batch.intent_vectors):
            if v is not None and np.linalg.norm(v[0]) > 0:
                queries.append(np.asarray(v[0], np.float32))
        if not queries:
            return np.zeros(0, np.int64)
        k = max(n // len(queries), 20)
        queries = [q for q in queries if np.linalg.norm(q) > 0]
        if not queries:
            return np.zeros(0, np.int64)
        # scored again by every part: a beam of k finds them (one of ef_search, 30% dearer
        # at 100k, found no better list: README.md, "Large catalogs")
        found = self.index.search_each(np.stack(queries), k, seen_rows(batch), beam=k)
        return np.unique(np.concatenate([rows for rows, _ in found]))

    # -- scoring --------------------------------------------------------------------------
    @property
    def popularity(self) -> np.ndarray:
        """Normalised log popularity per row (0..1)."""
        return self._popularity

    def features(self, seed_row: int, rows: np.ndarray | None = None) -> np.ndarray:
        """(n, 5) matrix of the score components of every item (or of ``rows``) against one
        seed."""
        sel = slice(None) if rows is None else rows
        if rows is None:
            cos = self.index.similarities(self.catalog.vectors[seed_row])
        else:
            cos = self.index.similarities(self.catalog.vectors[seed_row], rows)
        lex = np.asarray((self._tfidf[sel] @ self._tfidf[seed_row].T).toarray()).ravel()
        overlap = np.asarray((self._genres[sel] @ self._genres[seed_row].T).toarray()).ravel()
        union = self._genre_counts[sel] + self._genre_counts[seed_row] - overlap
        genre = np.divide(overlap, union, out=np.zeros_like(overlap), where=union > 0)
        a = self._author[seed_row]
        authors = self._author[sel]
        author = ((authors == a) if a >= 0 else np.zeros(len(cos), bool)).astype(np.float32)
        return np.column_stack([cos, lex, genre, author, self._popularity[sel]]
                               ).astype(np.float32)

    def weighted_features(self, seed_rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Σ_s weight_s · features(s): the (n, 5) components against many seeds at once.
        Embedding and TF-IDF similarity are linear in the seed, so they cost one product."""
        return self.grouped_features([(seed_rows, weights)])[0]

    def grouped_features(self, groups: list[tuple[np.ndarray, np.ndarray]],
                         rows: np.ndarray | None = None) -> list[np.ndarray]:
        """``weighted_features`` of several groups of seeds (a listener's interests) in one
        pass: each component is one product against a (seeds x groups) weight matrix, rather
        than one product per group. ``rows``: the components of those items only."""
        comps = self.grouped_components(groups, rows)
        return [np.ascontiguousarray(comps[:, :, j].T) for j in range(comps.shape[2])]

    def grouped_components(self, groups: list[tuple[np.ndarray, np.ndarray]],
                           rows: np.ndarray | None = None) -> np.ndarray:
        """(5, items, groups) float32: every score component of every item (of ``rows``)
        against each group of weighted seeds, component-major so that a weighted sum over
        components is one product (``grouped_features`` is its per-group view)."""
        n = self.catalog.vectors.shape[0] if rows is None else len(rows)
        out = np.zeros((len(COMPONENTS), n, len(groups)), np.float32)
        if not groups:
            return out
        seed_rows, w = seed_weights(groups)
        sel = slice(None) if rows is None else np.asarray(rows, np.int64)
        v = self.catalog.vectors
        if self.metric == "cosine":
            out[0] = thin_product(v if rows is None else self.catalog.vectors_of(sel),
                                  v[seed_rows].T @ w)
        else:
            sims = np.column_stack([self.index.similarities(v[s], rows) for s in seed_rows])
            out[0] = sims @ w
        seeds_lex = weighted_rows(self._tfidf, seed_rows, w)
        out[1] = (self._tfidf @ seeds_lex if rows is None
                  else self._rows_dot(self._tfidf, sel, seeds_lex))
        out[2] = self.grouped_genre(seed_rows, w, sel)
        # same producer: each producer's summed seed weight, read off by every item's producer
        authors = self._author[seed_rows]
        slots = self.__dict__.get("_author_slots")  # a pass over every item: once
        if slots is None:
            slots = self._author_slots = max(int(self._author.max(initial=-1)) + 2, 1)
        per_author = np.zeros((slots, w.shape[1]), np.float32)
        np.add.at(per_author, authors[authors >= 0], w[authors >= 0])
        mine = self._author[sel]
        out[3] = np.where((mine >= 0)[:, None], per_author[mine], 0.0)
        out[4] = self._popularity[sel][:, None] * w.sum(axis=0)[None, :]
        return out

    def _component_rows(self, matrix: sparse.csr_matrix, rows: np.ndarray, mean: np.ndarray
                        ) -> np.ndarray:
        """``matrix[rows] @ mean`` for one of the sparse components. A producer row is one
        1 at the item's producer and a genre row is its genre set's unit vector, so those
        two are read off the item's producer or set (one random read a candidate, not three)."""
        if matrix is self._authors:
            mine = self._author[rows]
            return np.where((mine >= 0)[:, None], mean[np.maximum(mine, 0)], 0.0)
        if matrix is self._genres_unit and self._set_jaccard is not None:
            units = self.__dict__.get("_set_units")
            if units is None:  # each distinct genre set's unit row: a few thousand at most
                first = np.unique(self._genre_set, return_index=True)[1]
                units = self._set_units = self._genres_unit[first].toarray()
            return units[self._genre_set[rows]] @ mean
        return self._rows_dot(matrix, rows, mean)

    def _rows_dot(self, matrix: sparse.csr_matrix, rows: np.ndarray, dense: np.ndarray
                  ) -> np.ndarray:
        """``rows_dot`` with the rows' stored values read once per candidate set: the content
        and profile parts of one list read the same candidates of the same (shared) matrices,
        and those reads are random accesses into a large matrix."""
        entries = last_answer(self.catalog, f"csr_entries:{id(matrix)}", rows,
                              lambda: csr_entries(matrix, rows))
        return rows_dot(matrix, rows, dense, entries)

    def grouped_genre(self, seed_rows: np.ndarray, w: np.ndarray,
                       sel: slice | np.ndarray = slice(None)) -> np.ndarray:
        """Σ_s w[s, j] · Jaccard(genres of item, genres of seed s), for every item (of
        ``sel``) and group. Items share few distinct genre sets, so the Jaccard of every pair
        of sets is computed once (in ``fit``) and the seeds' weights are summed per set: the
        cost follows the number of sets, not items × seeds."""
        if self._set_jaccard is None:  # too many distinct sets: item by seed
            overlap = (self._genres[sel] @ self._genres[seed_rows].T).toarray()
            union = self._genre_counts[sel][:, None] \
                + self._genre_counts[seed_rows][None, :] - overlap
            return np.divide(overlap, union, out=np.zeros_like(overlap), where=union > 0) @ w
        per_set = np.zeros((self._set_jaccard.shape[0], w.shape[1]), np.float32)
        np.add.at(per_set, self._genre_set[seed_rows], w)
        of_sel = self._genre_set[sel]
        if len(of_sel) < per_set.shape[0]:  # fewer items asked than sets: their rows only
            return self._set_jaccard[of_sel] @ per_set
        return (self._set_jaccard @ per_set)[of_sel]

    def block_scores(self, seed_rows: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """(len(rows), len(seed_rows)) fused scores of ``rows`` against several seeds at once:
        one matrix product per component instead of one pass per seed."""
        w = self.weights.as_array()
        v = self.catalog.vectors
        if self.metric == "cosine":
            out = w[0] * (v[rows] @ v[seed_rows].T)
        else:
            out = w[0] * np.column_stack([self.index.similarities(v[s])[rows]
                                          for s in seed_rows])
        if w[1]:
            out += w[1] * (self._tfidf[rows] @ self._tfidf[seed_rows].T).toarray()
        if w[2]:
            overlap = (self._genres[rows] @ self._genres[seed_rows].T).toarray()
            union = (self._genre_counts[rows][:, None] + self._genre_counts[seed_rows][None, :]
                     - overlap)
            out += w[2] * np.divide(overlap, union, out=np.zeros_like(overlap),
                                    where=union > 0)
        if w[3]:
            a, b = self._author[rows][:, None], self._author[seed_rows][None, :]
            out += w[3] * ((a == b) & (b >= 0))
        out += w[4] * self._popularity[rows][:, None]
        return out.astype(np.float32)

    def _finish(self, scores: np.ndarray, k: int, exclude: np.ndarray | None,
                candidate_mask: np.ndarray | None, parts: np.ndarray,
                extra: dict[str, np.ndarray] | None = None) -> Scored:
        if candidate_mask is not None:
            scores = np.where(candidate_mask, scores, -np.inf)
        rows, best = top_k(scores, k, exclude)
        w = self.weights.as_array()
        components = []
        for r in rows:
            comp = dict(zip(COMPONENTS, (parts[r] * w).round(4).tolist(), strict=True))
            for name, values in (extra or {}).items():
                comp[name] = round(float(values[r]), 4)
            components.append(comp)
        return Scored(rows=rows, scores=best, components=components)

    def similar_items(self, row: int, k: int = 10,
                      candidate_mask: np.ndarray | None = None,
                      pool: int = 300) -> Scored:
        """The seed's fused scores; with neighbour expansion, the best ``pool`` candidates are
        re-scored against the seed's nearest items too (the rest cannot catch up: expansion
        only adds to a candidate already close to the seed's neighbourhood)."""
        w = self.weights.as_array()
        if getattr(self.index, "kind", "exact") == "ann":  # a large catalog: the graph's
            return self._similar_from_graph(row, k, candidate_mask, pool)  # neighbours only
        parts = self.features(row)
        scores = parts @ w
        if not (self.weights.expand_k > 0 and self.weights.expand_weight):
            return self._finish(scores, k, np.array([row]), candidate_mask, parts)
        own = scores.copy()
        own[row] = -np.inf
        if candidate_mask is not None:
            own = np.where(candidate_mask, own, -np.inf)
        candidates, _ = top_k(own, max(pool, k))
        neighbours = candidates[: self.weights.expand_k]
        expansion = np.zeros_like(scores)
        if len(neighbours):
            expansion[candidates] = self.weights.expand_weight * self.block_scores(
                neighbours, candidates).mean(axis=1)
        mask = np.zeros(len(scores), bool)
        mask[candidates] = True
        return self._finish(scores + expansion, k, np.array([row]), mask, parts,
                            {"neighbours": expansion})

    def _similar_from_graph(self, row: int, k: int, candidate_mask: np.ndarray | None,
                            pool: int) -> Scored:
        """``similar_items`` over the approximate index's ``pool`` nearest items: the fused
        score (and the expansion) is computed for them alone, not for the whole catalog."""
        rows, _ = self.index.search(self.catalog.vectors[row], max(pool, k) + 1,
                                    np.array([row]))
        if candidate_mask is not None:
            rows = rows[np.asarray(candidate_mask, bool)[rows]]
        w = self.weights.as_array()
        n = len(self.catalog)
        parts = np.zeros((n, len(COMPONENTS)), np.float32)
        parts[rows] = self.features(row, rows)
        scores = np.full(n, -np.inf, np.float32)
        scores[rows] = parts[rows] @ w
        extra = {}
        if self.weights.expand_k > 0 and self.weights.expand_weight and len(rows):
            neighbours = rows[np.argsort(-scores[rows], kind="stable")][:self.weights.expand_k]
            expansion = np.zeros(n, np.float32)
            expansion[rows] = self.weights.expand_weight * self.block_scores(
                neighbours, rows).mean(axis=1)
            scores[rows] += expansion[rows]
            extra = {"neighbours": expansion}
        return self._finish(scores, k, np.array([row]), None, parts, extra)

    def recommend_seeds(self, seed_rows: np.ndarray, k: int = 10,
                        query_vectors: np.ndarray | None = None,
                        exclude_rows: np.ndarray | None = None,
                        candidate_mask: np.ndarray | None = None,
                        seed_weights: np.ndarray | None = None) -> Scored:
        """Weighted mean score against the seeds, plus similarity to the query text(s)."""
        seed_rows = np.asarray(seed_rows, dtype=np.int64).reshape(-1)
        n = len(self.catalog)
        parts = np.zeros((n, len(COMPONENTS)), dtype=np.float32)
        total = 0.0
        if len(seed_rows):
            sw = (np.ones(len(seed_rows)) if seed_weights is None
                  else np.asarray(seed_weights, dtype=np.float64))
            parts += self.weighted_features(seed_rows, sw)
            total += float(np.abs(sw).sum())
        if query_vectors is not None and len(query_vectors):
            for q in np.atleast_2d(query_vectors):
                parts[:, 0] += self.query_weight * self.index.similarities(q)
                total += self.query_weight
            if not len(seed_rows):  # free text alone: popularity only breaks near-ties
                parts[:, 4] += 0.25 * self._popularity * total
        if total == 0:  # nothing to go on: the most popular items
            parts[:, 4] = self._popularity
            total = 1.0
        parts /= total
        scores = parts @ self.weights.as_array()
        exclude = np.concatenate([seed_rows, np.asarray(exclude_rows if exclude_rows is not None
                                                        else [], dtype=np.int64)])
        return self._finish(scores, k, exclude.astype(np.int64), candidate_mask, parts)

    def explain(self, row: int, history: sparse.csr_matrix) -> dict[str, float]:
        """Weighted score components of ``row`` against the history's items, averaged."""
        h = sparse.csr_matrix(history)
        seeds, weights = h.indices, np.maximum(h.data, 0.0)
        if not len(seeds) or weights.sum() <= 0:
            return {}
        parts = np.average([self.features(int(s))[row] for s in seeds], axis=0, weights=weights)
        return dict(zip(COMPONENTS, (parts * self.weights.as_array()).round(4).tolist(),
                        strict=True))


def fit_weights(model: ContentModel, pairs: Sequence[tuple[int, set[int]]], k: int = 20,
                passes: int = 2, progress: Callable[[str], None] | None = None
                ) -> tuple[ContentWeights, float]:
    """Learn the weights that maximise mean recall@k over known related pairs (validation).

    Coordinate ascent over a small grid per weight, the embedding cosine fixed at 1; then the
    neighbour expansion. Returns the weights and their validation recall@k.
    """
    feats = {seed: model.features(seed) for seed, _ in pairs}

    def recall(w: np.ndarray) -> float:
        total = 0.0
        for seed, related in pairs:
            scores = feats[seed] @ w
            scores[seed] = -np.inf
            top = np.argpartition(-scores, k)[:k]
            total += len(related.intersection(top.tolist())) / len(related)
        return total / len(pairs)

    grid = {1: [0.0, 0.25, 0.5, 0.75, 1.0, 1.5], 2: [0.0, 0.01, 0.02, 0.03, 0.05, 0.1],
            3: [0.0, 0.05, 0.1, 0.15, 0.2, 0.3], 4: [0.0, 0.03, 0.05, 0.08, 0.12, 0.2]}
    w = ContentWeights().as_array()
    w[0] = 1.0
    best = recall(w)
    for _ in range(passes):
        for j, values in grid.items():
            for v in values:
                trial = w.copy()
                trial[j] = v
                r = recall(trial)
                if r > best + 1e-6:
                    best, w = r, trial
        if progress:
            progress(f"weights {np.round(w, 3).tolist()}: validation recall@{k} {best:.4f}")
    weights = ContentWeights(*map(float, w), expand_k=0, expand_weight=0.0)
    best_expand = (0, 0.0)
    subset = list(pairs)[:400]  # neighbour expansion costs expand_k more feature passes
    base = _recall_with_expansion(model, weights, subset, k)
    for ek, ew in ((5, 0.5), (10, 0.5), (10, 1.0), (20, 1.0)):
        r = _recall_with_expansion(model, replace(weights, expand_k=ek, expand_weight=ew),
                                   subset, k)
        if r > base + 1e-6:
            base, best_expand = r, (ek, ew)
    return replace(weights, expand_k=best_expand[0], expand_weight=best_expand[1]), best


def _recall_with_expansion(model: ContentModel, weights: ContentWeights,
                           pairs: Sequence[tuple[int, set[int]]], k: int) -> float:
    saved = model.weights
    model.weights = weights
    try:
        total = 0.0
        for seed, related in pairs:
            rows = model.similar_items(seed, k).rows
            total += len(related.intersection(rows.tolist())) / len(related)
        return total / len(pairs)
    finally:
        model.weights = saved


def seed_weights(groups: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Groups of weighted seeds as (every seed row, a seeds x groups weight matrix)."""
    seed_rows = np.concatenate([np.asarray(r, dtype=np.int64) for r, _ in groups])
    w = np.zeros((len(seed_rows), len(groups)), dtype=np.float32)
    start = 0
    for j, (seeds, weights) in enumerate(groups):
        w[start:start + len(seeds), j] = np.asarray(weights, dtype=np.float32)
        start += len(seeds)
    return seed_rows, w


MAX_GENRE_SETS = 4000  # distinct genre sets up to which their pairwise Jaccard is kept


def _genre_sets(genres: sparse.csr_matrix) -> tuple[np.ndarray, np.ndarray | None]:
    """(the distinct genre set of every item, the Jaccard of every pair of distinct sets),
    or None for the matrix when there are too many sets to keep it."""
    keys = [tuple(genres.indices[genres.indptr[r]:genres.indptr[r + 1]].tolist())
            for r in range(genres.shape[0])]
    index: dict[tuple[int, ...], int] = {}
    of_item = np.array([index.setdefault(k, len(index)) for k in keys], dtype=np.int64)
    if len(index) > MAX_GENRE_SETS:
        return of_item, None
    sets = genres[np.unique(of_item, return_index=True)[1]]
    overlap = (sets @ sets.T).toarray()
    counts = np.asarray(sets.sum(axis=1)).ravel()
    union = counts[:, None] + counts[None, :] - overlap
    jaccard = np.divide(overlap, union, out=np.zeros_like(overlap), where=union > 0)
    return of_item, jaccard.astype(np.float32)
