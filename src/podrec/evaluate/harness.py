"""Offline evaluation of recommenders on a catalog file and an event file, no database.

One run: read the files, embed the catalog (cached on disk), aggregate events into pairs,
split them by a protocol, choose each model's hyper-parameters on a validation split carved
out of the training part (same protocol, another seed), learn the hybrid's blend there, refit
on the whole training part and score every model on the same test listeners, ranking over the
whole catalog with their training items left out.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from podrec.batch.runner import BatchRunner, InProcessRunner
from podrec.enrich.embedders import TextEmbedder
from podrec.evaluate import metrics as M
from podrec.evaluate.folds import (
    EvalData,
    Fold,
    Progress,
    embed_cached,
    make_fold,
    rank,
)
from podrec.evaluate.protocols import SplitConfig, split_pairs
from podrec.model.base import CatalogData, Recommender, UserBatch
from podrec.model.interactions import build_interactions
from podrec.model.registry import (
    GRIDS,
    HISTORY_MODELS,
    MODELS,
    PROFILE_MODELS,
    make_model,
)
from podrec.recommend.history import TextEvent
from podrec.records import EventRecord, ItemRecord
from podrec.train.selection import assemble_hybrid, choose, single_models

__all__ = ["GRIDS", "MODELS", "PROFILE_MODELS", "EvalData", "Fold", "embed_cached",
           "evaluate", "evaluate_platforms", "make_fold", "make_model", "prepare", "rank"]
SLICES = (("users≤2", 0, 2), ("users3-10", 3, 10), ("users>10", 11, 10**9))


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
    user_texts: dict[int, list[TextEvent]] = {}
    for ev in events:
        if ev.user_id in users and (words := TextEvent.of(ev)) is not None:
            user_texts.setdefault(users[ev.user_id], []).append(words)
    return EvalData(catalog, interactions, user_texts)




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


def test_one(task: tuple[str, dict[str, Any], int, tuple[int, ...], tuple[float, ...]],
             data: EvalData, fold: Fold) -> tuple[dict[str, Any], Recommender]:
    """One chosen model refitted on the fold's training pairs and scored on its test
    listeners (and re-ranked by MMR at each level): its result rows and the fitted model. A
    task of its own (``podrec.batch``)."""
    name, params, seed, ks, mmr_levels = task
    n_users, vectors, kmax = data.interactions.n_users, data.catalog.vectors, max(ks)
    t0 = time.perf_counter()
    model = make_model(name, params, seed).fit(data.catalog, fold.train)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    lists = rank(model, fold, kmax)
    infer_s = time.perf_counter() - t0
    rows = {name: score_lists(lists, fold, ks, vectors, n_users) | {
        "fit_seconds": round(fit_s, 3), "inference_seconds": round(infer_s, 3),
        "params": model.params()}}
    if mmr_levels:
        _, diverse = rank(model, fold, kmax, mmr_levels=mmr_levels, vectors=vectors)
        for lvl, dl in diverse.items():
            rows[f"{name} mmr={lvl:g}"] = score_lists(dl, fold, ks, vectors, n_users) | {
                "fit_seconds": round(fit_s, 3), "params": {"mmr": lvl}}
    return rows, model


def _test_singles(data: EvalData, fold: Fold, sel: Any, singles: Sequence[str],
                  ks: Sequence[int], seed: int, mmr_levels: Sequence[float], say: Progress,
                  runner: BatchRunner | None = None
                  ) -> tuple[dict[str, Any], dict[str, Recommender]]:
    """Each chosen single model refitted on the fold's training pairs and scored on its test
    listeners (and re-ranked by MMR at ``mmr_levels``), one task per model."""
    results: dict[str, Any] = {}
    fitted: dict[str, Recommender] = {}

    def done(n: int, out: tuple[dict[str, Any], Recommender]) -> None:
        name = singles[n]
        rows, fitted[name] = out
        rows[name]["validation_ndcg@10"] = sel.chosen[name]["validation_ndcg@10"]
        results.update(rows)
        say(f"test {name}: ndcg@10 {rows[name]['ndcg@10']:.4f}")

    tasks = [(name, sel.chosen[name]["params"], seed, tuple(ks), tuple(mmr_levels))
             for name in singles]
    (runner or InProcessRunner()).map(test_one, tasks, shared=(data, fold), on_result=done,
                                      what="model tests", keep=False)
    return results, {name: fitted[name] for name in singles}


def evaluate(data: EvalData, split: SplitConfig, model_names: Sequence[str],
             ks: Sequence[int], embedder: TextEmbedder, cache_dir: Path,
             max_validation_users: int = 1000, progress: Progress | None = None,
             text_evidence: str = "train", mmr_levels: Sequence[float] = (),
             fixed: dict[str, dict[str, Any]] | None = None,
             runner: BatchRunner | None = None) -> dict[str, Any]:
    """Score ``model_names`` on one split (grid points and model fits as tasks of
    ``runner``, ``podrec.batch``; here by default). ``text_evidence`` 'train' lets a listener's
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
                    max_users=max_validation_users, seed=split.seed + 1,
                    text_evidence=text_evidence)
    say(f"train pairs {len(fold.train.users)}, test listeners {len(fold.users)}, "
        f"validation listeners {len(val.users)}")
    singles = single_models(model_names)
    sel = choose(data.catalog, val, singles, split.seed, fixed, "hybrid" in model_names, say,
                 runner=runner)
    results, fitted = _test_singles(data, fold, sel, singles, ks, split.seed, mmr_levels, say,
                                    runner)
    if "hybrid" in model_names:
        hybrid = assemble_hybrid(data.catalog, fold.train, fitted, sel)
        t0 = time.perf_counter()
        lists = rank(hybrid, fold, kmax)
        infer_s = time.perf_counter() - t0
        results["hybrid"] = score_lists(lists, fold, ks, data.catalog.vectors,
                                        pairs.n_users) | {
            "fit_seconds": round(sel.blend_seconds + sum(results[n]["fit_seconds"]
                                                         for n in singles), 3),
            "blend_seconds": round(sel.blend_seconds, 3), "inference_seconds": round(infer_s, 3),
            "params": hybrid.params(), "blend_validation": sel.blend_report}
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





def _platform_lists(name: str, data: EvalData, fold: Fold, linked: UserBatch,
                    only_b: UserBatch, ks: Sequence[int], seed: int) -> dict[str, Any]:
    """One model of the platform study (a task): fitted once, ranked with the linked and
    the single-platform history."""
    model = make_model(name, GRIDS[name][0], seed).fit(data.catalog, fold.train)
    out = {}
    for label, batch in (("linked A+B", linked), ("B only", only_b)):
        lists = rank(model, replace(fold, batch=batch), max(ks))
        out[f"{name} · {label}"] = score_lists(
            lists, fold, ks, data.catalog.vectors, data.interactions.n_users) | {
            "fit_seconds": 0.0, "params": model.params()}
    return out


def evaluate_platforms(data: EvalData, split: SplitConfig, model_names: Sequence[str],
                       ks: Sequence[int], embedder: TextEmbedder, cache_dir: Path,
                       progress: Progress | None = None, runner: BatchRunner | None = None
                       ) -> dict[str, Any]:
    """One person, two platforms: each pair is put on pseudo-platform A or B (a seeded coin).
    Test pairs are drawn by ``split`` from B only; the test listeners' A pairs stay out of
    training. Each model then ranks for a request on B twice: with the B history alone, and
    with the A history linked in. Default hyper-parameters (the first of each grid); one
    model per task of ``runner`` (here by default)."""
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
    def done(_n: int, part: dict[str, Any]) -> None:
        for label, figures in part.items():
            say(f"{label}: ndcg@10 {figures['ndcg@10']:.4f}")

    parts = (runner or InProcessRunner()).map(
        _platform_lists, list(model_names), shared=(data, fold, linked, only_b, tuple(ks),
                                                    split.seed),
        on_result=done, what="platform study models")
    results = {label: figures for part in parts for label, figures in part.items()}
    return {"protocol": split.__dict__ | {"platforms": "A/B coin per pair, test on B"},
            "ks": list(ks),
            "data": {"users": pairs.n_users, "items": pairs.n_items,
                     "pairs": int(len(pairs.users)), "test_users": int(len(fold.users)),
                     "hidden_a_pairs": int(hidden.sum()), "embedder": embedder.model_id},
            "models": results}
