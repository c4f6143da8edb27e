"""Folds for offline evaluation and model selection: the catalog and pairs every model sees,
and each split's training pairs, listeners, histories and items to find.

A fold's histories are built with the same rules as a served listener's
(``podrec.recommend.history``): one event-weight table, positive pairs as the input, pairs
with a negative sum turned down (decayed by age at the request moment) and every judged item
left out of the list, and the listener's own words chosen by ``own_words``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from podrec.enrich.embedders import TextEmbedder
from podrec.model.base import CatalogData, Recommender, UserBatch
from podrec.model.interactions import Interactions
from podrec.model.seeding import id_keys
from podrec.recommend.history import HistoryBuilder, TextEvent, own_words

Progress = Callable[[str], None]


@dataclass
class EvalData:
    """What every model sees: the catalog as arrays and the listeners' pairs on its index."""

    catalog: CatalogData
    interactions: Interactions
    # per listener: what they wrote (reviews, searches), for their own words
    user_texts: dict[int, list[TextEvent]] = field(default_factory=dict)


def embed_cached(embedder: TextEmbedder, texts: list[str], cache_dir: Path | None,
                 queries: bool = False, progress: Progress | None = None) -> np.ndarray:
    """Embed texts, reusing an on-disk copy keyed by model id and the texts themselves."""
    key = hashlib.sha256("\x1e".join([embedder.model_id, str(queries), *texts]).encode())
    path = cache_dir / f"{key.hexdigest()[:24]}.npy" if cache_dir is not None else None
    if path is not None and path.exists():
        return np.load(path)
    if progress:
        progress(f"embedding {len(texts)} texts with {embedder.model_id}")
    fn = embedder.embed_queries if queries else embedder.embed_passages
    out = np.vstack([fn(texts[i:i + 64]) for i in range(0, len(texts), 64)]) if texts else \
        np.zeros((0, embedder.dim), np.float32)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, out)
    return out


@dataclass
class Fold:
    """Training pairs, the listeners to score, their histories and what they should get."""

    train: Interactions
    users: np.ndarray
    batch: UserBatch
    relevant: list[set[int]]
    train_counts: np.ndarray
    cold_items: np.ndarray  # bool per item: no positive pair in training


def make_fold(data: EvalData, pairs: Interactions, test_mask: np.ndarray,
              embedder: TextEmbedder, cache_dir: Path | None, max_users: int | None = None,
              seed: int = 0, text_evidence: str = "train",
              half_life_days: float = 180.0) -> Fold:
    train = pairs.subset(~test_mask)
    test = pairs.subset(test_mask & (pairs.confidence > 0))
    relevant: dict[int, set[int]] = {}
    for u, i in zip(test.users.tolist(), test.items.tolist(), strict=True):
        relevant.setdefault(u, set()).add(i)
    users = np.array(sorted(relevant), dtype=np.int64)
    if max_users and len(users) > max_users:
        keys = id_keys([pairs.user_ids[u] for u in users.tolist()], seed, "sample")
        users = np.sort(users[np.argsort(keys, kind="stable")[:max_users]])  # by id, not order
    matrix = train.matrix()
    matrix.sort_indices()
    keep = train.confidence > 0
    times = sparse.csr_matrix((train.times[keep], (train.users[keep], train.items[keep])),
                              shape=matrix.shape, dtype=np.float64)
    times.sort_indices()
    # the moment of each request: just before the listener's first test pair
    first_test = np.full(pairs.n_users, np.inf)
    np.minimum.at(first_test, test.users, test.times)
    counts = np.diff(matrix.indptr)
    text_vectors = _user_text_vectors(data, pairs if text_evidence == "all" else train, users,
                                      embedder, cache_dir)
    negatives, seen = turned_down(train, users, first_test[users], half_life_days)
    batch = UserBatch(matrix[users], user_rows=users, text_vectors=text_vectors,
                      history_times=times[users], now=first_test[users],
                      negatives=negatives, seen=seen)
    cold = train.item_popularity() == 0
    return Fold(train, users, batch, [relevant[u] for u in users], counts[users], cold)


def _user_text_vectors(data: EvalData, train: Interactions, users: np.ndarray,
                       embedder: TextEmbedder, cache_dir: Path | None
                       ) -> np.ndarray | None:
    """Vectors of what each listener wrote about the items of ``train`` (normally their
    training part; every pair when text evidence is 'all')."""
    if not data.user_texts:
        return None
    train_items: dict[int, set[str]] = {}
    ids = data.interactions.item_ids
    for u, i in zip(train.users.tolist(), train.items.tolist(), strict=True):
        train_items.setdefault(u, set()).add(ids[i])
    texts = [own_words(data.user_texts.get(u, []), train_items.get(u, set()))
             for u in users.tolist()]
    if not any(texts):
        return None
    wanted = [t for t in texts if t]
    vectors = embed_cached(embedder, wanted, cache_dir, queries=True)
    out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
    out[[bool(t) for t in texts]] = vectors
    return out


def rank(model: Recommender, fold: Fold, k: int, chunk: int = 256,
         mmr_levels: Sequence[float] = (), vectors: np.ndarray | None = None, pool: int = 50
         ) -> Any:
    """Top-``k`` rows per test listener; with ``mmr_levels`` (and the item ``vectors``), also
    ({level: lists}) that MMR re-ranks from each listener's top ``pool`` at each level."""
    from podrec.recommend.diversity import mmr

    lists: list[np.ndarray] = []
    diverse: dict[float, list[np.ndarray]] = {lvl: [] for lvl in mmr_levels}
    for start in range(0, len(fold.users), chunk):
        part = fold.batch.take(np.arange(start, min(start + chunk, len(fold.users))))
        for s in model.recommend(part, max(k, pool) if mmr_levels else k):
            lists.append(s.rows[:k])
            for lvl in mmr_levels:
                diverse[lvl].append(s.rows[mmr(s.rows, s.scores, vectors, k, lvl)])
    return (lists, diverse) if mmr_levels else lists


def turned_down(train: Interactions, users: np.ndarray, now: np.ndarray,
                half_life_days: float) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
    """(negatives, seen) of ``users`` in ``train``: pairs with a negative sum, weighted by
    how much of them is left at each request moment, and every pair they have."""
    decay = HistoryBuilder(half_life_days=half_life_days).decay
    lookup = np.full(train.n_users, -1, dtype=np.int64)
    lookup[users] = np.arange(len(users))
    rows = lookup[train.users]
    pick = rows >= 0
    rows = rows[pick]
    cols = train.items[pick].astype(np.int64)
    conf = train.confidence[pick]
    times = train.times[pick]
    shape = (len(users), train.n_items)
    neg = conf < 0
    weights = np.array([-c * decay(float(t), float(now[r])) for c, t, r in
                        zip(conf[neg].tolist(), times[neg].tolist(), rows[neg].tolist(),
                            strict=True)], dtype=np.float32)
    negatives = sparse.csr_matrix((weights, (rows[neg], cols[neg])), shape=shape)
    seen = sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)
    negatives.sort_indices()
    seen.sort_indices()
    return negatives, seen
