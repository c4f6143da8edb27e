"""A cache-miss list in-process at 100k and 1M episodes: the served pipeline scored on
candidates (``recommend.candidates_above``) against the same pipeline scoring every item, in
one run, with the overlap of their lists.

No real catalog of that size with embeddings exists here, so the catalog is synthetic: e5-like
vectors (``bench_index.clustered``), one of 24 genres per item by its nearest genre centre,
texts of genre words, shows of 50 episodes with publication times; listeners with log-normal
activity (1 to 400 events), each drawn to one or two genres and, within them, to popular
items (Zipf). Every part of the default hybrid is fitted on those events (pop, pop-recent,
item kNN, EASE on its 8,000 most popular items, iALS, BPR, content, profile) and blended
uniformly (every part active: the dearest case). Indexes use the defaults (HNSW m=16,
ef_construction=200, ef_search=128), built with both cores; requests run on one thread, as a
server worker does.

Run from the repository root: ``python benchmarks/bench_large_lists.py --sizes 100000 1000000``
(1M: about 25-50 minutes, most of it building the HNSW graphs; with ``--cache DIR`` a rerun
reuses what the first run built and fitted, and reports that run's build and fit times).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pickle
import platform
import pstats
import sys
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_index import clustered, rss  # noqa: E402

from podrec.config import IndexConfig, RecommendConfig, TrainConfig  # noqa: E402
from podrec.index import index_from_bytes, make_index  # noqa: E402
from podrec.model.base import CatalogData  # noqa: E402
from podrec.model.content import ContentModel, ContentWeights  # noqa: E402
from podrec.model.hybrid import HybridModel  # noqa: E402
from podrec.model.interactions import Interactions  # noqa: E402
from podrec.model.profile import ProfileModel  # noqa: E402
from podrec.model.registry import GRIDS, make_model  # noqa: E402
from podrec.recommend.candidates import CandidateSources  # noqa: E402
from podrec.recommend.history import HistoryBuilder  # noqa: E402
from podrec.recommend.pipeline import RecommendPipeline  # noqa: E402
from podrec.recommend.request import RecommendRequest  # noqa: E402
from podrec.records import EventRecord  # noqa: E402
from podrec.train.artifacts import ServedModel  # noqa: E402

GENRES = 24
WORDS_PER_GENRE = 300


def catalog(n: int, seed: int = 0) -> CatalogData:
    rng = np.random.default_rng(seed)
    vectors = clustered(n, seed=seed)
    centres = vectors[rng.choice(n, GENRES, replace=False)]
    genre = np.concatenate([np.argmax(vectors[s:s + 65536] @ centres.T, axis=1)
                            for s in range(0, n, 65536)])
    vocab = np.array([f"w{g}x{j}" for g in range(GENRES) for j in range(WORDS_PER_GENRE)])
    words = rng.integers(0, WORDS_PER_GENRE, (n, 8)) + genre[:, None] * WORDS_PER_GENRE
    texts = [" ".join(vocab[w]) for w in words]
    shows = [f"s{r // 50}" for r in range(n)]
    return CatalogData(
        ids=[f"e{r}" for r in range(n)], kinds=["episode"] * n, vectors=vectors,
        titles=[f"Episode {r}" for r in range(n)],
        categories=[[f"genre {g}"] for g in genre], authors=[f"a{r // 500}" for r in range(n)],
        popularity=np.full(n, np.nan, np.float32), texts=texts, show_ids=shows,
        durations=rng.lognormal(7.5, 0.6, n).astype(np.float32),
        published=1.6e9 + rng.random(n) * 1e8)


def events(data: CatalogData, listeners: int, seed: int = 1) -> Interactions:
    rng = np.random.default_rng(seed)
    n = len(data)
    genre = np.array([int(c[0].split()[-1]) for c in data.categories])
    by_genre = [np.flatnonzero(genre == g) for g in range(GENRES)]
    zipf = [1.0 / np.arange(1, len(r) + 1) ** 0.9 for r in by_genre]
    zipf = [z / z.sum() for z in zipf]
    rank = [rng.permutation(r) for r in by_genre]  # popularity order within a genre
    counts = np.clip(rng.lognormal(2.3, 1.2, listeners).astype(int), 1, 400)
    users, items = [], []
    for u, c in enumerate(counts):
        liked = rng.choice(GENRES, 1 + int(rng.random() < 0.5), replace=False)
        for g in liked:
            m = max(1, c // len(liked))
            users.append(np.full(m, u))
            items.append(rank[g][rng.choice(len(rank[g]), m, p=zipf[g])])
    users, items = np.concatenate(users), np.concatenate(items)
    pairs = np.unique(users.astype(np.int64) * n + items)
    u, i = (pairs // n).astype(np.int32), (pairs % n).astype(np.int32)
    return Interactions([f"u{k}" for k in range(listeners)], data.ids, u, i,
                        np.full(len(u), 3.0, np.float32),
                        1.7e9 + rng.random(len(u)) * 3e7)


def served_hybrid(data: CatalogData, pairs: Interactions, content_index: Any
                  ) -> tuple[HybridModel, ContentModel, dict[str, float]]:
    fit_s: dict[str, float] = {}
    parts = {}
    content = None
    for name in TrainConfig().parts:
        t0 = time.perf_counter()
        if name == "content":
            content = ContentModel(ContentWeights(expand_k=0), vector_index=content_index)
            parts[name] = content.fit(data)
        elif name == "profile":
            assert content is not None
            parts[name] = ProfileModel().fit_from(content)
        else:
            parts[name] = make_model(name, GRIDS[name][0], 1).fit(data, pairs)
        fit_s[name] = round(time.perf_counter() - t0, 1)
    hybrid = HybridModel(parts).fit(data, pairs)
    uniform = {p: 1.0 for p in hybrid.part_names()}
    hybrid.blend = [dict(uniform) for _ in hybrid.blend]
    return hybrid, content, fit_s


def words_like(data: CatalogData, n: int, seed: int = 99) -> np.ndarray:
    """Vectors of a listener's words: near some item of the catalog, as a text embedding
    of a query lies in the same cone as the items' (a vector drawn apart from the catalog
    has nothing near it, and an HNSW graph finds its nearest items poorly)."""
    rng = np.random.default_rng(seed)
    base = data.vectors[rng.choice(len(data), n, replace=False)]
    noisy = base + 0.3 * rng.standard_normal(base.shape).astype(np.float32) / np.sqrt(
        base.shape[1])
    return (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)


def listener_events(pairs: Interactions, u: int) -> list[EventRecord]:
    mine = np.flatnonzero(pairs.users == u)
    return [EventRecord(user_id=f"u{u}", event="subscribe", item_id=pairs.item_ids[i],
                        item_kind="episode",
                        timestamp=datetime.fromtimestamp(float(pairs.times[j]), UTC))
            for j, i in zip(mine, pairs.items[mine], strict=True)]


def timed_lists(pipe: RecommendPipeline, requests: list[tuple[RecommendRequest, list]]
                ) -> tuple[list[float], list[list[str]]]:
    seconds, lists = [], []
    for req, evs in requests:
        t0 = time.perf_counter()
        recs = pipe.recommend(req, evs)
        seconds.append(time.perf_counter() - t0)
        lists.append([r.id for r in recs])
    return seconds, lists


def pct(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"n": len(ms), "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2)}


def built(n: int, cache: Path | None) -> tuple[dict[str, Any], CatalogData, Interactions,
                                               HybridModel, ContentModel]:
    """The catalog, events, content index and fitted hybrid of size ``n``, with how long each
    took; from ``cache`` when it holds them (the 1M content graph alone takes 25-50 min)."""
    path = cache / f"large-lists-{n}.pkl" if cache is not None else None
    if path is not None and path.is_file():
        with path.open("rb") as f:
            kept = pickle.load(f)  # noqa: S301 - written below by this script
        index = index_from_bytes(kept["graph"])
        for part in [kept["content"], *kept["hybrid"].components.values()]:
            if hasattr(part, "vector_index"):
                part.vector_index = part.index = index
        return ({**kept["built"], "from_cache": str(path)}, kept["data"], kept["pairs"],
                kept["hybrid"], kept["content"])
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    data = catalog(n)
    pairs = events(data, min(max(n // 20, 2000), 50_000))
    out["catalog_s"] = round(time.perf_counter() - t0, 1)
    t0, before = time.perf_counter(), rss()
    index = make_index(data.vectors, "cosine", config=IndexConfig())
    out["content_index"] = {"kind": getattr(index, "kind", "exact"),
                            "build_s": round(time.perf_counter() - t0, 1),
                            "rss_mb": round((rss() - before) / 2**20)}
    hybrid, content, out["fit_s"] = served_hybrid(data, pairs, index)
    t0 = time.perf_counter()
    for part in hybrid.components.values():  # as training does: saved with the model
        part.prepare_candidates()
    out["candidate_graphs_s"] = round(time.perf_counter() - t0, 1)
    if path is not None:  # the index holds a lock: saved as bytes, detached while pickling
        parts = [p for p in [content, *hybrid.components.values()] if hasattr(p, "vector_index")]
        for part in parts:
            part.vector_index = part.index = None
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            pickle.dump({"built": out, "data": data, "pairs": pairs, "hybrid": hybrid,
                         "content": content, "graph": index.to_bytes()}, f, protocol=5)
        for part in parts:
            part.vector_index = part.index = index
    return out, data, pairs, hybrid, content


def run_size(n: int, args: argparse.Namespace) -> dict[str, Any]:
    made, data, pairs, hybrid, content = built(n, args.cache)
    out: dict[str, Any] = {"items": n, **made}
    out["listeners"], out["events"] = pairs.n_users, len(pairs.users)
    served = ServedModel("episode", hybrid, "bench")
    t0 = time.perf_counter()
    sources = CandidateSources(dict(hybrid.components), content, args.per_source)
    out["candidate_sources_s"] = round(time.perf_counter() - t0, 1)
    builder = HistoryBuilder()
    rng = np.random.default_rng(7)
    query_vectors = words_like(data, 64)

    def embed(texts: list[str]) -> np.ndarray:
        return query_vectors[[zlib.crc32(t.encode()) % 64 for t in texts]]

    fast = RecommendPipeline(served, content, builder, embed, lambda pks: {}, 10, sources)
    full = RecommendPipeline(served, content, builder, embed, lambda pks: {}, 10, None)
    users = rng.choice(pairs.n_users, args.requests, replace=False)
    requests = [(RecommendRequest(user_id=f"u{u}", k=10), listener_events(pairs, int(u)))
                for u in users]
    requests += [(RecommendRequest(query=f"words {j}", k=10), []) for j in range(10)]
    with threadpool_limits(1):
        timed_lists(fast, requests[:5])  # warm up
        cand_s, cand_lists = timed_lists(fast, requests)
        full_n = min(len(requests), args.full_requests)
        full_s, full_lists = timed_lists(full, requests[:full_n])
    overlap = [len(set(a) & set(b)) / max(len(b), 1)
               for a, b in zip(cand_lists[:full_n], full_lists, strict=True)]
    out["candidates"] = pct(cand_s)
    out["full_pass"] = pct(full_s)
    out["speed-up_p50"] = round(out["full_pass"]["p50_ms"] / out["candidates"]["p50_ms"], 1)
    out["top10_overlap_with_full_pass"] = round(float(np.mean(overlap)), 3)
    if full_n > args.requests:  # the words-only requests (the last ten) apart
        out["top10_overlap_words_only"] = round(float(np.mean(overlap[args.requests:])), 3)
    if args.profile:
        profile_lists(fast, requests[:args.profile])
    return out


def profile_lists(pipe: RecommendPipeline, requests: list[tuple[RecommendRequest, list]]
                  ) -> None:
    """cProfile of candidate-path lists (cumulative and own time), for whoever optimises."""
    prof = cProfile.Profile()
    with threadpool_limits(1):
        prof.enable()
        timed_lists(pipe, requests)
        prof.disable()
    text = io.StringIO()
    stats = pstats.Stats(prof, stream=text)
    stats.sort_stats("cumulative").print_stats(40)
    stats.sort_stats("tottime").print_stats(30)
    print(f"cProfile of {len(requests)} candidate-path lists:\n{text.getvalue()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--full-requests", type=int, default=30)
    parser.add_argument("--per-source", type=int,
                        default=RecommendConfig().candidates_per_source,
                        help="items each candidate source finds (default: the served default)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--cache", type=Path,
                        help="keep (and reuse) each size's catalog, content graph and fitted "
                             "models here: a rerun at 1M takes minutes, not most of an hour")
    parser.add_argument("--profile", type=int, default=0,
                        help="also print a cProfile of this many candidate-path lists")
    args = parser.parse_args()
    results = {"machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
               "date": datetime.now(UTC).date().isoformat(), "sizes": []}
    for n in args.sizes:
        r = run_size(n, args)
        results["sizes"].append(r)
        print(json.dumps(r), flush=True)
    print(f"{'items':>9} {'cand p50':>9} {'cand p99':>9} {'full p50':>9} {'ratio':>6} "
          f"{'overlap':>8}")
    for r in results["sizes"]:
        print(f"{r['items']:>9} {r['candidates']['p50_ms']:>9} {r['candidates']['p99_ms']:>9} "
              f"{r['full_pass']['p50_ms']:>9} {r['speed-up_p50']:>6} "
              f"{r['top10_overlap_with_full_pass']:>8}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
