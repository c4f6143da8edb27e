"""The content model: what an item is about (its embedding) fused with who made it, which
genre it is in and how widely it is heard.

On Apple's "listeners also subscribed to" lists, co-subscribed shows share a genre 58% of the
time and a producer 11% of the time, and lean popular; the embedding alone misses those
signals. The fused score of a candidate c against a seed s is

    w_cos · sim(s, c) + w_genre · jaccard(categories) + w_author · [same producer]
    + w_pop · log-popularity(c)

with weights learned by ``fit_weights`` (logistic regression on pairs) or taken from config.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import sparse

from podrec.index.vector_index import ExactIndex, top_k
from podrec.model.base import CatalogData, Recommender, Scored, norm_name

COMPONENTS = ("cosine", "genre", "author", "popularity")


@dataclass(frozen=True)
class ContentWeights:
    cosine: float = 1.0
    genre: float = 0.08
    author: float = 0.15
    popularity: float = 0.02

    def as_array(self) -> np.ndarray:
        return np.array([self.cosine, self.genre, self.author, self.popularity],
                        dtype=np.float32)

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


class ContentModel(Recommender):
    """Item-to-item and seed/query recommendations from content and catalog metadata."""

    def __init__(self, weights: ContentWeights | None = None, metric: str = "cosine",
                 query_weight: float = 1.0) -> None:
        self.weights = weights or ContentWeights()
        self.metric = metric
        self.query_weight = query_weight

    # -- fit ------------------------------------------------------------------------------
    def fit(self, catalog: CatalogData, interactions: Any = None) -> ContentModel:
        self.catalog = catalog
        self.index = ExactIndex(catalog.vectors, metric=self.metric)
        n = len(catalog)
        vocab: dict[str, int] = {}
        rows, cols = [], []
        for r, cats in enumerate(catalog.categories):
            for c in {norm_name(c) for c in cats if c}:
                rows.append(r)
                cols.append(vocab.setdefault(c, len(vocab)))
        self._genres = sparse.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n, max(len(vocab), 1)))
        self._genre_counts = np.asarray(self._genres.sum(axis=1)).ravel()
        authors: dict[str, int] = {}
        self._author = np.array([authors.setdefault(norm_name(a), len(authors)) if norm_name(a)
                                 else -1 for a in catalog.authors], dtype=np.int64)
        pop = np.nan_to_num(np.asarray(catalog.popularity, dtype=np.float64), nan=0.0)
        pop = np.log1p(np.maximum(pop, 0.0))
        self._popularity = (pop / pop.max() if pop.max() > 0 else pop).astype(np.float32)
        return self

    # -- scoring --------------------------------------------------------------------------
    def features(self, seed_row: int) -> np.ndarray:
        """(n, 4) matrix of the score components of every item against one seed."""
        cos = self.index.similarities(self.catalog.vectors[seed_row])
        overlap = np.asarray(self._genres @ self._genres[seed_row].T.toarray()).ravel()
        union = self._genre_counts + self._genre_counts[seed_row] - overlap
        genre = np.divide(overlap, union, out=np.zeros_like(overlap), where=union > 0)
        a = self._author[seed_row]
        author = (self._author == a).astype(np.float32) if a >= 0 else np.zeros(len(cos),
                                                                                np.float32)
        return np.column_stack([cos, genre, author, self._popularity]).astype(np.float32)

    def _finish(self, scores: np.ndarray, k: int, exclude: np.ndarray | None,
                candidate_mask: np.ndarray | None, parts: np.ndarray) -> Scored:
        if candidate_mask is not None:
            scores = np.where(candidate_mask, scores, -np.inf)
        rows, best = top_k(scores, k, exclude)
        w = self.weights.as_array()
        components = [dict(zip(COMPONENTS, (parts[r] * w).round(4).tolist(), strict=True))
                      for r in rows]
        return Scored(rows=rows, scores=best, components=components)

    def similar_items(self, row: int, k: int = 10,
                      candidate_mask: np.ndarray | None = None) -> Scored:
        parts = self.features(row)
        scores = parts @ self.weights.as_array()
        return self._finish(scores, k, np.array([row]), candidate_mask, parts)

    def recommend(self, seed_rows: np.ndarray, k: int = 10,
                  query_vectors: np.ndarray | None = None,
                  exclude_rows: np.ndarray | None = None,
                  candidate_mask: np.ndarray | None = None,
                  seed_weights: np.ndarray | None = None) -> Scored:
        """Mean fused similarity to the seeds, plus similarity to the query text(s)."""
        seed_rows = np.asarray(seed_rows, dtype=np.int64).reshape(-1)
        n = len(self.catalog)
        parts = np.zeros((n, len(COMPONENTS)), dtype=np.float32)
        total = 0.0
        if len(seed_rows):
            sw = (np.ones(len(seed_rows)) if seed_weights is None
                  else np.asarray(seed_weights, dtype=np.float64))
            for r, wgt in zip(seed_rows, sw, strict=True):
                parts += float(wgt) * self.features(int(r))
            total += float(np.abs(sw).sum())
        if query_vectors is not None and len(query_vectors):
            for q in np.atleast_2d(query_vectors):
                parts[:, 0] += self.query_weight * self.index.similarities(q)
                total += self.query_weight
            if not len(seed_rows):  # free text alone: popularity still breaks near-ties
                parts[:, 3] += self._popularity * total
        if total == 0:  # nothing to go on: the most popular items
            parts[:, 3] = self._popularity
            total = 1.0
        parts /= total
        scores = parts @ self.weights.as_array()
        exclude = np.concatenate([seed_rows, np.asarray(exclude_rows if exclude_rows is not None
                                                        else [], dtype=np.int64)])
        return self._finish(scores, k, exclude.astype(np.int64), candidate_mask, parts)

    def explain(self, row: int, seed_rows: np.ndarray) -> dict[str, float]:
        """Weighted score components of ``row`` against each seed, averaged."""
        seed_rows = np.asarray(seed_rows, dtype=np.int64).reshape(-1)
        if not len(seed_rows):
            return {}
        parts = np.mean([self.features(int(s))[row] for s in seed_rows], axis=0)
        return dict(zip(COMPONENTS, (parts * self.weights.as_array()).round(4).tolist(),
                        strict=True))


def fit_weights(model: ContentModel, pairs: list[tuple[int, set[int]]], negatives: int = 50,
                seed: int = 0) -> ContentWeights:
    """Learn the component weights from known related pairs (seed row → related rows).

    For each seed, its related rows are positives and ``negatives`` rows drawn from the
    seed's 200 nearest by embedding are negatives (the hard cases a ranker must sort out);
    logistic regression on the four components gives the weights, scaled so cosine is 1.
    """
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for seed_row, related in pairs:
        feats = model.features(seed_row)
        near, _ = top_k(feats[:, 0], 200, np.array([seed_row]))
        pool = np.array([r for r in near if r not in related])
        neg = rng.choice(pool, size=min(negatives, len(pool)), replace=False)
        pos = np.array(sorted(related))
        xs.append(feats[pos])
        xs.append(feats[neg])
        ys.extend([1] * len(pos) + [0] * len(neg))
    x = np.vstack(xs)
    clf = LogisticRegression(C=10.0, max_iter=1000).fit(x, np.array(ys))
    coef = clf.coef_.ravel()
    scale = coef[0] if coef[0] > 0 else 1.0
    w = coef / scale
    return ContentWeights(cosine=1.0, genre=float(w[1]), author=float(w[2]),
                          popularity=float(w[3]))
