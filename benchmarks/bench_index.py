"""Vector index: exact numpy search against the HNSW index (hnswlib), side by side.

For each size (default 100k and 1M 384-d unit vectors): build time, memory (bytes per vector
and RSS growth), single-query latency p50/p99 (one thread, as a serving worker runs),
recall@10 against exact search at several ef_search values, the cost of adding and removing
1,000 vectors, and the ANN/exact ratios. ``--crossover`` also times both on small catalogs to
place ``index.ann_threshold``.

The vectors are synthetic, calibrated on real e5 embeddings (the 276-item sample catalog,
multilingual-e5-small: mean pairwise cosine 0.79, nearest-neighbour cosine 0.87): unit
vectors around one shared direction, in clusters (one per 100 vectors, log-normal sizes) with
anisotropic spread (a power-law spectrum over the 384 dimensions, randomly permuted per
chunk). Queries are further vectors from the same mixture. No embeddings cache of 100k+ real
shows exists here (e5 embeds ~10 items/s on 2 cores).

Run from the repository root: ``python benchmarks/bench_index.py [--sizes 100000,1000000]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from threadpoolctl import threadpool_limits

from podrec.config import IndexConfig
from podrec.index import ExactIndex
from podrec.index.ann import ANNIndex

console = Console(width=150)


def clustered(n: int, dim: int = 384, seed: int = 0) -> np.ndarray:
    """Unit vectors like e5 embeddings (see the module docstring)."""
    rng = np.random.default_rng(seed)
    clusters = max(8, n // 100)
    scales = (np.arange(1, dim + 1) ** -0.3).astype(np.float32)
    scales /= np.sqrt((scales ** 2).sum())
    common = rng.standard_normal(dim).astype(np.float32)
    common /= np.linalg.norm(common)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32) * scales
    weights = rng.lognormal(0.0, 1.0, clusters)
    labels = rng.choice(clusters, n, p=weights / weights.sum())
    out = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, 65536):
        lab = labels[s:s + 65536]
        noise = rng.standard_normal((len(lab), dim)).astype(np.float32) * scales[
            rng.permutation(dim)]
        x = common + 0.38 * centres[lab] + 0.42 * noise
        out[s:s + len(lab)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def latencies(index: Any, queries: np.ndarray, k: int,
              exclude: np.ndarray | None = None) -> np.ndarray:
    """Milliseconds of each single-query ``index.search``."""
    out = np.empty(len(queries))
    for i, q in enumerate(queries):
        t = time.perf_counter()
        index.search(q, k, exclude)
        out[i] = time.perf_counter() - t
    return out * 1e3


def pct(ms: np.ndarray) -> dict[str, float]:
    return {"p50_ms": round(float(np.percentile(ms, 50)), 4),
            "p99_ms": round(float(np.percentile(ms, 99)), 4)}


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f) & set(t)) for f, t in zip(found.tolist(), truth.tolist(),
                                                    strict=True))
    return hits / truth.size


def exact_truth(index: ExactIndex, queries: np.ndarray, k: int) -> np.ndarray:
    rows = [index.search_batch(queries[s:s + 100], k)[0] for s in range(0, len(queries), 100)]
    return np.vstack(rows)


def run_size(n: int, args: argparse.Namespace) -> dict[str, Any]:
    cfg = IndexConfig()
    m = args.m or cfg.m
    efc = args.ef_construction or cfg.ef_construction
    console.print(f"[bold]{n:,} vectors[/bold]: generating")
    data = clustered(n + args.queries + args.add, args.dim, seed=n)
    base, queries = data[:n], data[n:n + args.queries]
    extra = data[n + args.queries:]
    out: dict[str, Any] = {"n": n, "dim": args.dim, "k": args.k}

    gc.collect()
    r0, t = rss(), time.perf_counter()
    exact = ExactIndex(base)
    out["exact"] = {"build_s": round(time.perf_counter() - t, 3),
                    "rss_delta_mb": round((rss() - r0) / 2**20, 1),
                    "bytes_per_vector": int(exact.vectors.nbytes // n)}
    console.print(f"  exact built in {out['exact']['build_s']} s; ground truth")
    t = time.perf_counter()
    exact.to_bytes()
    out["exact"]["save_s"] = round(time.perf_counter() - t, 2)
    truth = exact_truth(exact, queries, args.k)
    sample = queries[: args.exact_queries]
    with threadpool_limits(1):
        exact.search(sample[0], args.k)
        out["exact"].update(pct(latencies(exact, sample, args.k)))
    console.print(f"  exact p50 {out['exact']['p50_ms']} ms; building HNSW m={m} "
                  f"ef_construction={efc} ({args.threads} threads)")

    gc.collect()
    r0, t = rss(), time.perf_counter()
    ann = ANNIndex(base, m=m, ef_construction=efc, ef_search=cfg.ef_search,
                   num_threads=args.threads)
    build = time.perf_counter() - t
    delta = rss() - r0
    t = time.perf_counter()
    saved = len(ann.to_bytes())  # the graph file: its vectors and links
    out["ann"] = {"m": m, "ef_construction": efc, "default_ef": cfg.ef_search,
                  "build_s": round(build, 2), "build_threads": args.threads,
                  "rss_delta_mb": round(delta / 2**20, 1),
                  "bytes_per_vector": int((ann.vectors.nbytes + saved) // n),
                  "graph_bytes_per_vector": saved // n,
                  "save_s": round(time.perf_counter() - t, 2)}
    console.print(f"  HNSW built in {build:.1f} s")
    by_ef = {}
    for ef in sorted(set(args.ef + [cfg.ef_search])):
        ann.set_ef(ef)
        found = np.vstack([ann.search(q, args.k)[0] for q in queries])
        ms = latencies(ann, queries, args.k)
        by_ef[ef] = {"ef": ef, "recall_at_10": round(recall(found, truth), 4), **pct(ms)}
        console.print(f"  ef={ef}: recall@{args.k} {by_ef[ef]['recall_at_10']}, "
                      f"p50 {by_ef[ef]['p50_ms']} ms")
    out["ann"]["by_ef"] = list(by_ef.values())
    ann.set_ef(cfg.ef_search)
    out["ann"].update({k: by_ef[cfg.ef_search][k] for k in ("recall_at_10", "p50_ms",
                                                             "p99_ms")})

    # add, then remove, the same number of vectors from each
    for name, idx in (("exact", exact), ("ann", ann)):
        t = time.perf_counter()
        new = idx.add(extra)
        add_s = time.perf_counter() - t
        gone = np.concatenate([new[:args.add // 2], np.arange(args.add // 2)])
        t = time.perf_counter()
        idx.remove(gone)
        rm_s = time.perf_counter() - t
        found = np.vstack([idx.search(q, args.k)[0] for q in queries[:200]])
        assert not np.isin(found, gone).any()
        out[name].update({"add_ms_per_vector": round(add_s * 1e3 / len(extra), 4),
                          "remove_ms_per_vector": round(rm_s * 1e3 / len(gone), 5)})
    out["ratio_ann_over_exact"] = {
        "build": round(out["ann"]["build_s"] / max(out["exact"]["build_s"], 1e-9), 1),
        "bytes_per_vector": round(out["ann"]["bytes_per_vector"]
                                  / out["exact"]["bytes_per_vector"], 2),
        "p50": round(out["ann"]["p50_ms"] / out["exact"]["p50_ms"], 4),
        "p99": round(out["ann"]["p99_ms"] / out["exact"]["p99_ms"], 4)}
    del exact, ann, data, base
    gc.collect()
    return out


def crossover(sizes: list[int], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Single-query p50 of both at small sizes, to place index.ann_threshold."""
    cfg, rows = IndexConfig(), []
    for n in sizes:
        data = clustered(n + 300, args.dim, seed=n + 1)
        base, queries = data[:n], data[n:]
        exact = ExactIndex(base)
        t = time.perf_counter()
        ann = ANNIndex(base, num_threads=args.threads)
        build = time.perf_counter() - t
        seen = np.arange(0, n, max(1, n // 20))[:20]  # a listener's 20 seen items
        with threadpool_limits(1):
            e = np.percentile(latencies(exact, queries, args.k, seen), 50)
            a = np.percentile(latencies(ann, queries, args.k, seen), 50)
        truth = exact_truth(exact, queries, args.k)
        found = np.vstack([ann.search(q, args.k)[0] for q in queries])
        rows.append({"n": n, "exact_p50_ms": round(float(e), 4), "ann_p50_ms": round(float(a), 4),
                     "ann_build_s": round(build, 2), "ann_recall_at_10": round(
                         recall(found, truth), 4), "ef": cfg.ef_search})
        console.print(f"  crossover {n:,}: exact {e:.3f} ms, ann {a:.3f} ms")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,1000000", help="comma-separated vector counts")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--queries", type=int, default=1000, help="queries for recall and ANN time")
    ap.add_argument("--exact-queries", type=int, default=200,
                    help="queries timed on exact search (slow at 1M)")
    ap.add_argument("--ef", default="16,32,128", help="ef_search values besides the default")
    ap.add_argument("--m", type=int, default=0, help="HNSW m (default: IndexConfig's)")
    ap.add_argument("--ef-construction", type=int, default=0)
    ap.add_argument("--threads", type=int, default=-1, help="HNSW build threads (-1: all)")
    ap.add_argument("--add", type=int, default=1000, help="vectors added, then removed")
    ap.add_argument("--crossover", default="",
                    help="also time small sizes, e.g. 1000,2000,5000,10000,20000,50000")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = ap.parse_args()
    args.ef = [int(e) for e in args.ef.split(",") if e]

    meta = {"python": platform.python_version(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
            "vectors": "synthetic clustered, calibrated on e5 (see bench_index.py)"}
    results = [run_size(int(s), args) for s in args.sizes.split(",") if s]
    cross = crossover([int(s) for s in args.crossover.split(",") if s], args)

    table = Table(title=f"Vector index, {args.dim}-d, recall@{args.k} against exact")
    for col in ("n", "index", "build s", "bytes/vec", "RSS +MB", "p50 ms", "p99 ms",
                "recall@10", "add ms/vec", "remove ms/vec"):
        table.add_column(col, justify="right")
    for r in results:
        for name in ("exact", "ann"):
            x = r[name]
            table.add_row(f"{r['n']:,}", name if name == "exact" else
                          f"hnsw ef={x['default_ef']}", f"{x['build_s']}",
                          f"{x['bytes_per_vector']:,}", f"{x['rss_delta_mb']:,}",
                          f"{x['p50_ms']}", f"{x['p99_ms']}",
                          "1.0" if name == "exact" else f"{x['recall_at_10']}",
                          f"{x['add_ms_per_vector']}", f"{x['remove_ms_per_vector']}")
        ratio = r["ratio_ann_over_exact"]
        table.add_row(f"{r['n']:,}", "ann/exact", f"{ratio['build']}x",
                      f"{ratio['bytes_per_vector']}x", "", f"{ratio['p50']}x",
                      f"{ratio['p99']}x", "", "", "")
    console.print(table)
    efs = Table(title="HNSW recall and latency by ef_search")
    for col in ("n", "ef", "recall@10", "p50 ms", "p99 ms"):
        efs.add_column(col, justify="right")
    for r in results:
        for e in r["ann"]["by_ef"]:
            efs.add_row(f"{r['n']:,}", str(e["ef"]), str(e["recall_at_10"]),
                        str(e["p50_ms"]), str(e["p99_ms"]))
    console.print(efs)
    if cross:
        ct = Table(title="Small catalogs: single query with 20 excluded rows, p50")
        for col in ("n", "exact ms", "hnsw ms", "hnsw build s", "recall@10"):
            ct.add_column(col, justify="right")
        for c in cross:
            ct.add_row(f"{c['n']:,}", str(c["exact_p50_ms"]), str(c["ann_p50_ms"]),
                       str(c["ann_build_s"]), str(c["ann_recall_at_10"]))
        console.print(ct)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "results": results,
                                         "crossover": cross}, indent=2) + "\n")
        console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
