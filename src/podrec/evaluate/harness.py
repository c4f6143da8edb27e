"""Offline evaluation of recommenders on a catalog file and an event file, no database.

One run: read the files, embed the catalog (cached on disk), aggregate events into pairs,
split them by a protocol, choose each model's hyper-parameters on a validation split carved
out of the training part (same protocol, another seed), learn the hybrid's blend there, refit
on the whole training part and score every model on the same test listeners, ranking over the
whole catalog with their training items left out.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from podrec.enrich.embedders import TextEmbedder
from podrec.evaluate import metrics as M
from podrec.evaluate.protocols import SplitConfig, split_pairs
from podrec.model.base import CatalogData, Recommender, UserBatch
from podrec.model.collaborative import (
    ALSModel,
    BPRModel,
    EASEModel,
    ItemKNNModel,
    PopularityModel,
)
from podrec.model.content import ContentModel, ContentWeights
from podrec.model.hybrid import HybridModel
from podrec.model.interactions import Interactions, build_interactions
from podrec.model.profile import ProfileModel
from podrec.records import EventRecord, ItemRecord

MODELS = ("pop", "pop-recent", "itemknn", "ease", "ials", "bpr", "content", "profile-static",
          "profile", "profile-context", "hybrid")
# Models that are not part of the hybrid unless asked for by name (they study the profile).
PROFILE_MODELS = ("profile-static", "profile", "profile-context")
# Hyper-parameter candidates, tried on the validation split; the first is the default.
GRIDS: dict[str, list[dict[str, Any]]] = {
    "pop": [{}],
    "pop-recent": [{"half_life_days": 90.0}, {"half_life_days": 365.0}],
    "itemknn": [{"neighbours": 100}, {"neighbours": 400}],
    "ease": [{"l2": 200.0}, {"l2": 50.0}, {"l2": 800.0}],
    "ials": [{"factors": 64, "regularization": 0.05, "alpha": 2.0},
             {"factors": 64, "regularization": 0.5, "alpha": 10.0},
             {"factors": 128, "regularization": 0.05, "alpha": 1.0}],
    "bpr": [{"factors": 64, "learning_rate": 0.05}, {"factors": 64, "learning_rate": 0.01}],
    "content": [{}, {"lexical": 0.0, "expand_k": 0}],
    "profile-static": [{}],
    # on top of the content weights chosen for "content" (when it runs too)
    "profile": [{"half_life_days": hl, "max_interests": m, "share_weight": b,
                 "interest_mix": mix}
                for hl in (180.0, 30.0, 0.0) for m, b, mix in ((1, 0.0, 1.0), (5, 0.05, 1.0),
                                                               (5, 0.05, 0.6))],
    # context weights, tried on top of the parameters chosen for "profile"
    "profile-context": [{"context_weight": c} for c in (0.25, 0.5, 0.9)],
}
SLICES = (("users≤2", 0, 2), ("users3-10", 3, 10), ("users>10", 11, 10**9))
Progress = Callable[[str], None]


def make_model(name: str, params: dict[str, Any], seed: int = 0) -> Recommender:
    if name == "pop":
        return PopularityModel()
    if name == "pop-recent":
        return PopularityModel(**params)
    if name == "itemknn":
        return ItemKNNModel(**params)
    if name == "ease":
        return EASEModel(**params)
    if name == "ials":
        return ALSModel(seed=seed, **params)
    if name == "bpr":
        return BPRModel(seed=seed, **params)
    if name == "content":
        return ContentModel(replace(ContentWeights(expand_k=0), **params))
    if name == "profile-static":
        return ProfileModel(single_vector=True)
    if name in ("profile", "profile-context"):
        weights = {k: v for k, v in params.items() if k in ContentWeights.__dataclass_fields__}
        rest = {k: v for k, v in params.items() if k not in weights}
        return ProfileModel(replace(ContentWeights(expand_k=0), **weights), **rest)
    raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")


@dataclass
class EvalData:
    """What every model sees: the catalog as arrays and the listeners' pairs on its index."""

    catalog: CatalogData
    interactions: Interactions
    # per listener: (time, text, item id) of events that carry text (reviews, searches)
    user_texts: dict[int, list[tuple[float, str, str]]] = field(default_factory=dict)


def embed_cached(embedder: TextEmbedder, texts: list[str], cache_dir: Path,
                 queries: bool = False, progress: Progress | None = None) -> np.ndarray:
    """Embed texts, reusing an on-disk copy keyed by model id and the texts themselves."""
    key = hashlib.sha256("\x1e".join([embedder.model_id, str(queries), *texts]).encode())
    path = cache_dir / f"{key.hexdigest()[:24]}.npy"
    if path.exists():
        return np.load(path)
    if progress:
        progress(f"embedding {len(texts)} texts with {embedder.model_id}")
    fn = embedder.embed_queries if queries else embedder.embed_passages
    out = np.vstack([fn(texts[i:i + 64]) for i in range(0, len(texts), 64)]) if texts else \
        np.zeros((0, embedder.dim), np.float32)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    return out


def prepare(records: Sequence[ItemRecord], events: Sequence[EventRecord],
            embedder: TextEmbedder, cache_dir: Path, max_chars: int = 1000,
            progress: Progress | None = None,
            event_weights: dict[str, float] | None = None, seed: int = 0) -> EvalData:
    from podrec.enrich.pipeline import embedding_text

    by_id: dict[str, ItemRecord] = {}
    for rec in records:
        by_id.setdefault(rec.id, rec)
    # Item order is shuffled (seeded): a model with nothing to say scores every item the same,
    # and ties must not fall on whatever the catalog file happens to list first.
    file_ids = list(by_id) + list(dict.fromkeys(
        e.item_id for e in events if e.item_id and e.item_id not in by_id))
    ids = [file_ids[i] for i in np.random.default_rng(seed).permutation(len(file_ids))]
    interactions = build_interactions(events, ids, event_weights)
    items = [by_id.get(i) or ItemRecord(id=i, title="") for i in interactions.item_ids]
    texts = [embedding_text(r, max_chars) if r.title else "" for r in items]  # type: ignore[arg-type]
    # embed in the file's own order, so the on-disk cache serves every seed
    position = {i: n for n, i in enumerate(interactions.item_ids)}
    file_order = [position[i] for i in file_ids]
    vectors = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    vectors[file_order] = embed_cached(embedder, [texts[p] for p in file_order], cache_dir,
                                       progress=progress)
    vectors[[not t for t in texts]] = 0.0
    catalog = CatalogData(
        ids=list(interactions.item_ids), kinds=[r.kind for r in items], vectors=vectors,
        titles=[r.title for r in items], categories=[r.categories for r in items],
        authors=[r.author for r in items],
        popularity=np.array([np.nan if r.popularity is None else r.popularity for r in items],
                            dtype=np.float32),
        languages=[r.language for r in items], texts=texts)
    users = {u: n for n, u in enumerate(interactions.user_ids)}
    user_texts: dict[int, list[tuple[float, str, str]]] = {}
    for ev in events:
        if ev.text and ev.user_id in users:
            user_texts.setdefault(users[ev.user_id], []).append(
                (ev.timestamp.timestamp(), ev.text, ev.item_id or ""))
    return EvalData(catalog, interactions, user_texts)


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
              embedder: TextEmbedder, cache_dir: Path, max_users: int | None = None,
              seed: int = 0, text_evidence: str = "train") -> Fold:
    train = pairs.subset(~test_mask)
    test = pairs.subset(test_mask & (pairs.confidence > 0))
    relevant: dict[int, set[int]] = {}
    for u, i in zip(test.users.tolist(), test.items.tolist(), strict=True):
        relevant.setdefault(u, set()).add(i)
    users = np.array(sorted(relevant), dtype=np.int64)
    if max_users and len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
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
    batch = UserBatch(matrix[users], user_rows=users, text_vectors=text_vectors,
                      history_times=times[users], now=first_test[users])
    cold = train.item_popularity() == 0
    return Fold(train, users, batch, [relevant[u] for u in users], counts[users], cold)


def _user_text_vectors(data: EvalData, train: Interactions, users: np.ndarray,
                       embedder: TextEmbedder, cache_dir: Path) -> np.ndarray | None:
    """Vectors of what each listener wrote about the items of ``train`` (normally their
    training part; every pair when text evidence is 'all')."""
    if not data.user_texts:
        return None
    train_items: dict[int, set[str]] = {}
    ids = data.interactions.item_ids
    for u, i in zip(train.users.tolist(), train.items.tolist(), strict=True):
        train_items.setdefault(u, set()).add(ids[i])
    texts = []
    for u in users.tolist():
        allowed = train_items.get(u, set())
        own = [t for _, t, item in data.user_texts.get(u, []) if item in allowed]
        texts.append(" ".join(own)[:1000])
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



def context_applies(batch: UserBatch, min_items: int = 10) -> np.ndarray | None:
    """Per listener: does the hour of the request tell their history apart? True when they
    have at least ``min_items`` timed history items and between 10% and 90% of them were
    heard within two hours of the request's hour of day (so a habit exists and this moment
    picks a part of it)."""
    if batch.history_times is None or batch.now is None:
        return None
    times = sparse.csr_matrix(batch.history_times)
    out = np.zeros(times.shape[0], bool)
    for u in range(times.shape[0]):
        t = times.data[times.indptr[u]:times.indptr[u + 1]]
        if len(t) < min_items or not np.isfinite(batch.now[u]):
            continue
        d = np.abs((t // 3600) % 24 - (batch.now[u] // 3600) % 24)
        near = np.minimum(d, 24 - d) <= 2
        out[u] = 0.1 <= near.mean() <= 0.9
    return out


def score_lists(lists: Sequence[np.ndarray], fold: Fold, ks: Sequence[int],
                vectors: np.ndarray, n_users: int) -> dict[str, Any]:
    """Accuracy per listener (overall and by activity slice), cold items, beyond-accuracy."""
    pop = fold.train.item_popularity()
    top_decile = pop >= np.quantile(pop[pop > 0], 0.9) if (pop > 0).any() else pop > 0
    per_user: dict[str, list[float]] = {}
    for ranked_arr, rel in zip(lists, fold.relevant, strict=True):
        ranked = ranked_arr.tolist()
        for k in ks:
            for name, fn in (("recall", M.recall_at_k), ("ndcg", M.ndcg_at_k),
                             ("map", M.average_precision_at_k), ("mrr", M.mrr_at_k),
                             ("hit", M.hit_rate_at_k)):
                per_user.setdefault(f"{name}@{k}", []).append(fn(ranked, rel, k))
    out: dict[str, Any] = {name: float(np.mean(v)) for name, v in per_user.items()}
    n_items = len(pop)
    for k in ks:
        recommended = [r[:k] for r in lists]
        flat = np.concatenate(recommended) if recommended else np.zeros(0, int)
        out[f"coverage@{k}"] = float(len(np.unique(flat)) / n_items)
        out[f"diversity@{k}"] = float(np.mean([M.intra_list_diversity(r, vectors)
                                               for r in recommended]))
        out[f"novelty@{k}"] = float(np.mean([M.self_information(r, pop, n_users)
                                             for r in recommended]))
        out[f"popularity@{k}"] = float(pop[flat].mean()) if len(flat) else 0.0
        out[f"top10%share@{k}"] = float(top_decile[flat].mean()) if len(flat) else 0.0
    slices: dict[str, dict[str, float]] = {}
    for label, lo, hi in SLICES:
        idx = np.flatnonzero((fold.train_counts >= lo) & (fold.train_counts <= hi))
        if len(idx):
            slices[label] = {"users": int(len(idx))} | {
                name: float(np.mean(np.asarray(v)[idx])) for name, v in per_user.items()
                if name.startswith(("ndcg", "recall"))}
    cold_rel = [({i for i in rel if fold.cold_items[i]}, r) for rel, r in
                zip(fold.relevant, lists, strict=True)]
    cold_rel = [(rel, r) for rel, r in cold_rel if rel]
    if cold_rel:
        slices["cold items"] = {"users": len(cold_rel)} | {
            f"recall@{k}": float(np.mean([M.recall_at_k(r.tolist(), rel, k)
                                          for rel, r in cold_rel])) for k in ks}
    applies = context_applies(fold.batch)
    if applies is not None and applies.any():
        idx = np.flatnonzero(applies)
        slices["context applies"] = {"users": int(len(idx))} | {
            name: float(np.mean(np.asarray(v)[idx])) for name, v in per_user.items()
            if name.startswith(("ndcg", "recall"))}
    out["slices"] = slices
    return out


def evaluate(data: EvalData, split: SplitConfig, model_names: Sequence[str],
             ks: Sequence[int], embedder: TextEmbedder, cache_dir: Path,
             max_validation_users: int = 1000, progress: Progress | None = None,
             text_evidence: str = "train", mmr_levels: Sequence[float] = (),
             fixed: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Score ``model_names`` on one split. ``text_evidence`` 'train' lets a listener's
    reviews/searches about training items count as evidence; 'all' also their text about the
    test items (the review-text cold-start task: find the show from what its listener wrote,
    easier than a real cold start because reviews often name the show). ``mmr_levels``:
    also score each single model's lists re-ranked by MMR at these diversity levels, to
    weigh intra-list diversity against accuracy. ``fixed``: {model: parameters} tried
    alone instead of that model's grid (a setting decided in advance, still reported with its
    validation score)."""
    say = progress or (lambda _m: None)
    kmax = max(ks)
    pairs = data.interactions
    test_mask = split_pairs(pairs, split)
    fold = make_fold(data, pairs, test_mask, embedder, cache_dir, text_evidence=text_evidence)
    inner_pairs = fold.train
    inner_mask = split_pairs(inner_pairs, replace(split, seed=split.seed + 1))
    val = make_fold(data, inner_pairs, inner_mask, embedder, cache_dir,
                    max_users=max_validation_users, seed=split.seed,
                    text_evidence=text_evidence)
    say(f"train pairs {len(fold.train.users)}, test listeners {len(fold.users)}, "
        f"validation listeners {len(val.users)}")
    singles = [m for m in model_names if m != "hybrid"]
    if "hybrid" in model_names and not singles:
        singles = [m for m in MODELS if m != "hybrid" and m not in PROFILE_MODELS]
    if "profile-context" in singles and "profile" not in singles:
        singles.append("profile")
    singles.sort(key=MODELS.index)  # content before profile, profile before its context
    chosen: dict[str, dict[str, Any]] = {}
    val_models: dict[str, Recommender] = {}
    for name in singles:
        best = None
        grid = [fixed[name]] if fixed and name in fixed else GRIDS[name]
        if name == "profile-context":  # context on top of the chosen profile
            grid = [chosen["profile"]["params"] | p for p in grid]
        elif name == "profile" and "content" in chosen:  # profiles of the chosen content
            grid = [chosen["content"]["params"] | p for p in grid]
        for params in grid:
            model = make_model(name, params, split.seed).fit(data.catalog, val.train)
            lists = rank(model, val, 10)
            q = float(np.mean([M.ndcg_at_k(r.tolist(), rel, 10)
                               for r, rel in zip(lists, val.relevant, strict=True)]))
            say(f"validation {name} {params}: ndcg@10 {q:.4f}")
            if best is None or q > best[0]:
                best = (q, params, model)
        assert best is not None
        chosen[name] = {"params": best[1], "validation_ndcg@10": round(best[0], 4)}
        val_models[name] = best[2]
    results: dict[str, Any] = {}
    fitted: dict[str, Recommender] = {}
    for name in singles:
        t0 = time.perf_counter()
        model = make_model(name, chosen[name]["params"], split.seed).fit(data.catalog,
                                                                          fold.train)
        fit_s = time.perf_counter() - t0
        fitted[name] = model
        t0 = time.perf_counter()
        lists = rank(model, fold, kmax)
        infer_s = time.perf_counter() - t0
        results[name] = score_lists(lists, fold, ks, data.catalog.vectors, pairs.n_users) | {
            "fit_seconds": round(fit_s, 3), "inference_seconds": round(infer_s, 3),
            "params": model.params(), "validation_ndcg@10": chosen[name]["validation_ndcg@10"]}
        say(f"test {name}: ndcg@10 {results[name]['ndcg@10']:.4f}")
        if mmr_levels:
            _, diverse = rank(model, fold, kmax, mmr_levels=mmr_levels,
                              vectors=data.catalog.vectors)
            for lvl, dl in diverse.items():
                results[f"{name} mmr={lvl:g}"] = score_lists(
                    dl, fold, ks, data.catalog.vectors, pairs.n_users) | {
                    "fit_seconds": round(fit_s, 3), "params": {"mmr": lvl}}
    if "hybrid" in model_names:
        parts = {n: m for n, m in val_models.items()
                 if n not in ("profile-static", "profile-context")}
        hybrid_val = HybridModel(parts).fit(data.catalog, val.train)
        t0 = time.perf_counter()
        blend = hybrid_val.learn_blend(val.batch, val.relevant, k=10, progress=say)
        learn_s = time.perf_counter() - t0
        hybrid = HybridModel({n: fitted[n] for n in parts}).fit(data.catalog, fold.train)
        hybrid.blend = hybrid_val.blend
        t0 = time.perf_counter()
        lists = rank(hybrid, fold, kmax)
        infer_s = time.perf_counter() - t0
        results["hybrid"] = score_lists(lists, fold, ks, data.catalog.vectors,
                                        pairs.n_users) | {
            "fit_seconds": round(learn_s + sum(results[n]["fit_seconds"] for n in singles), 3),
            "blend_seconds": round(learn_s, 3), "inference_seconds": round(infer_s, 3),
            "params": hybrid.params(), "blend_validation": blend}
        say(f"test hybrid: ndcg@10 {results['hybrid']['ndcg@10']:.4f}")
    order = [m for m in MODELS if m in results] + sorted(
        r for r in results if r not in MODELS)
    return {
        "protocol": split.__dict__ | {"text_evidence": text_evidence}
        | ({"fixed": fixed} if fixed else {}),
        "ks": list(ks),
        "data": {"users": pairs.n_users, "items": pairs.n_items, "pairs": int(len(pairs.users)),
                 "positive_pairs": int((pairs.confidence > 0).sum()),
                 "train_pairs": int(len(fold.train.users)), "test_users": int(len(fold.users)),
                 "validation_users": int(len(val.users)),
                 "cold_test_items": int(len({i for rel in fold.relevant for i in rel
                                             if fold.cold_items[i]})),
                 "embedder": embedder.model_id},
        "models": {m: results[m] for m in order},
    }



# Models that score a listener from their history alone (no per-listener state learned in
# fit), so a history from another platform can be handed to them at request time.
HISTORY_MODELS = ("pop", "itemknn", "ease", "content", "profile")


def evaluate_platforms(data: EvalData, split: SplitConfig, model_names: Sequence[str],
                       ks: Sequence[int], embedder: TextEmbedder, cache_dir: Path,
                       progress: Progress | None = None) -> dict[str, Any]:
    """One person, two platforms: each pair is put on pseudo-platform A or B (a seeded coin).
    Test pairs are drawn by ``split`` from B only; the test listeners' A pairs stay out of
    training. Each model then ranks for a request on B twice: with the B history alone, and
    with the A history linked in. Default hyper-parameters (the first of each grid)."""
    say = progress or (lambda _m: None)
    bad = [m for m in model_names if m not in HISTORY_MODELS]
    if bad:
        raise ValueError(f"the platform study takes models that score from a history alone "
                         f"({', '.join(HISTORY_MODELS)}), not {', '.join(bad)}")
    pairs = data.interactions
    on_a = np.random.default_rng(split.seed + 7).random(len(pairs.users)) < 0.5
    test_mask = split_pairs(pairs, split) & ~on_a
    fold = make_fold(data, pairs, test_mask, embedder, cache_dir)
    test_user = np.zeros(pairs.n_users, bool)
    test_user[fold.users] = True
    hidden = on_a & test_user[pairs.users]
    train = pairs.subset(~test_mask & ~hidden)
    linked = fold.batch  # every non-test pair of the listener: A and B
    b_fold = make_fold(data, pairs, test_mask | hidden, embedder, cache_dir)
    assert np.array_equal(b_fold.users, fold.users)  # hidden pairs are test listeners' only
    only_b = replace(b_fold.batch, now=linked.now)  # the same request moment
    fold = replace(fold, train=train, cold_items=train.item_popularity() == 0)
    say(f"test listeners {len(fold.users)}; their A pairs {int(hidden.sum())}, B test pairs "
        f"{int((test_mask & (pairs.confidence > 0)).sum())}")
    results: dict[str, Any] = {}
    for name in model_names:
        model = make_model(name, GRIDS[name][0], split.seed).fit(data.catalog, train)
        for label, batch in (("linked A+B", linked), ("B only", only_b)):
            lists = rank(model, replace(fold, batch=batch), max(ks))
            results[f"{name} · {label}"] = score_lists(
                lists, fold, ks, data.catalog.vectors, pairs.n_users) | {
                "fit_seconds": 0.0, "params": model.params()}
            say(f"{name} · {label}: ndcg@10 {results[f'{name} · {label}']['ndcg@10']:.4f}")
    return {"protocol": split.__dict__ | {"platforms": "A/B coin per pair, test on B"},
            "ks": list(ks),
            "data": {"users": pairs.n_users, "items": pairs.n_items,
                     "pairs": int(len(pairs.users)), "test_users": int(len(fold.users)),
                     "hidden_a_pairs": int(hidden.sum()), "embedder": embedder.model_id},
            "models": results}
