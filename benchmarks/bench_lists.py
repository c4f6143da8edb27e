"""A cache-miss list in-process with the trained hybrid served: ``Podrec.recommend`` for known
listeners (history read from the store + hybrid + top-k), against raw kernels in the same run,
with where the time goes (per stage, per hybrid part) and a cProfile of the calls.

Run from the repository root: ``python benchmarks/bench_lists.py --data ../shared/data``.
The store (default ``.cache/evaluate-similar-e5.db``, the Apple catalog with e5) is built if
missing (~9 min) and given a trained hybrid if it serves none (``trained_store.py``).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import logging
import os
import platform
import pstats
import random
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_latency import DEFAULT_DB  # noqa: E402
from trained_store import (  # noqa: E402
    LISTENER_PREFIX,
    describe,
    ensure_trained,
    open_store,
    synthetic_listeners,
)

from podrec.model import hybrid as hybrid_module  # noqa: E402
from podrec.model.aligned import AlignedModel  # noqa: E402
from podrec.model.collaborative import EASEModel  # noqa: E402
from podrec.recommend.request import RecommendRequest  # noqa: E402


def stats(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"n": len(ms), "p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99),
            "mean_ms": float(ms.mean())}


def raw_topk(scores: np.ndarray, seen: np.ndarray, k: int) -> np.ndarray:
    scores[seen] = -np.inf
    part = np.argpartition(-scores, k)[:k]
    return part[np.argsort(-scores[part])]


def unwrap(model: Any) -> Any:
    return model.model if isinstance(model, AlignedModel) else model


def timed(fn: Callable[..., Any], sink: list[float]) -> Callable[..., Any]:
    def wrapper(*a: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            sink.append(time.perf_counter() - t0)
    return wrapper


def breakdown(app: Any, users: list[str], k: int) -> dict[str, dict[str, float]]:
    """Per stage and per hybrid part, the time of each ``recommend`` call (wrappers on the
    pipeline's stages, the store reads and every part's ``score``; ``standardise`` too)."""
    pipe = app.models.pipeline("show")
    model = pipe.served.model
    sinks: dict[str, list[float]] = defaultdict(list)
    restore: list[tuple[Any, str, Any, bool]] = []

    def wrap(obj: Any, attr: str, label: str) -> None:
        own = attr in vars(obj)
        restore.append((obj, attr, getattr(obj, attr), own))
        setattr(obj, attr, timed(getattr(obj, attr), sinks[label]))

    wrap(app.listeners, "events", "1 read events (store)")
    wrap(pipe, "history", "2 build history")
    wrap(pipe, "embed", "  embed own words (inside score)")
    wrap(pipe, "score", "3 score (hybrid, total)")
    wrap(pipe, "rank", "4 rank (filters, top-k)")
    wrap(pipe, "results", "5 results (cards, objects)")
    for name, part in getattr(model, "components", {}).items():
        wrap(part, "score", f"  part {name}.score")
    std = hybrid_module.standardise
    hybrid_module.standardise = timed(std, sinks["  standardise (all parts)"])
    total: list[float] = []
    try:
        for u in users:
            t0 = time.perf_counter()
            app.recommend(RecommendRequest(user_id=u, k=k))
            total.append(time.perf_counter() - t0)
    finally:
        hybrid_module.standardise = std
        for obj, attr, fn, own in reversed(restore):
            if own:
                setattr(obj, attr, fn)
            else:
                delattr(obj, attr)
    n = len(users)
    out = {"0 recommend (whole call)": {"per_call_ms": 1000 * sum(total) / n,
                                        "p50_ms": float(np.percentile(total, 50) * 1000)}}
    for label, s in sorted(sinks.items(), key=lambda kv: kv[0].strip()):
        out[label] = {"per_call_ms": 1000 * sum(s) / n, "calls": len(s),
                      "p50_ms": float(np.percentile(s, 50) * 1000) if s else 0.0}
    named = sum(v["per_call_ms"] for lab, v in out.items() if lab[0] in "12345")
    out["  other (refresh, checks, glue)"] = {
        "per_call_ms": out["0 recommend (whole call)"]["per_call_ms"] - named}
    return out


LIGHT_PREFIX = "bench-light-"


def light_listeners(app: Any, args: argparse.Namespace, catalog: Any) -> list[str]:
    """200 listeners with 3-10 subscriptions (co-subscription walks), added to the store after
    training: the middle activity bucket, folded in at request time as any new listener is."""
    events = synthetic_listeners(args.data, list(catalog.ids), list(catalog.titles),
                                 args.users, args.seed + 1, lo=3, hi=10)
    for e in events:
        e["user_id"] = LIGHT_PREFIX + e["user_id"].removeprefix(LISTENER_PREFIX)
    app.add_events(events, source="bench")
    return sorted({e["user_id"] for e in events})


def part_costs(app: Any, users: list[str], repeats: int) -> dict[str, dict[str, float]]:
    """Every part's ``score`` for one listener at a time, whether or not the listener's bucket
    weights it (the hybrid only scores parts with a non-zero weight)."""
    pipe = app.models.pipeline("show")
    model = pipe.served.model
    batches = []
    for u in users:
        req = RecommendRequest(user_id=u)
        h = pipe.history(req, app.listeners.events(u))
        row = pipe.served.user_row(u, len(h), float(h.confidence.sum()))
        b = h.batch(len(pipe.catalog), req.moment.timestamp(), None, None, row)
        b.contexts = [None]
        batches.append(b)
    out = {}
    for name, part in getattr(model, "components", {}).items():
        times = []
        for _ in range(repeats):
            for b in batches:
                t0 = time.perf_counter()
                hybrid_module.standardise(part.score(b))
                times.append(time.perf_counter() - t0)
        out[name] = stats(times)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--db", default=DEFAULT_DB)
    ap.add_argument("--embedder", default="e5", help="what the store was enriched with")
    ap.add_argument("--requests", type=int, default=500, help="timed recommend calls per group")
    ap.add_argument("--users", type=int, default=200, help="distinct listeners per group")
    ap.add_argument("--profile-calls", type=int, default=200, help="recommend calls profiled")
    ap.add_argument("--listeners", type=int, default=2000,
                    help="synthetic listeners added if the store must be trained")
    ap.add_argument("--blas-threads", type=int, default=1,
                    help="BLAS/OpenMP threads (1, as a server worker runs; 0: library default)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from rich.console import Console

    console = Console(width=130)
    load_start = os.getloadavg()
    app = open_store(args.db, args.data, args.embedder, console)
    summary = ensure_trained(app, args.data, args.listeners, args.seed, console.print)
    console.print(describe(summary))
    limits = threadpool_limits(args.blas_threads) if args.blas_threads else None
    pipe = app.models.pipeline("show")
    model = pipe.served.model
    catalog = pipe.catalog
    vectors = np.ascontiguousarray(catalog.vectors, dtype=np.float32)
    parts = getattr(model, "components", {})
    ease = next((unwrap(p) for p in parts.values() if isinstance(unwrap(p), EASEModel)), None)
    ease_part = next((p for p in parts.values() if isinstance(unwrap(p), EASEModel)), None)
    rng = random.Random(args.seed)
    known = sorted(pipe.served.users)
    groups = {
        "synthetic (10-50 subs, no words)": [u for u in known if u.startswith(LISTENER_PREFIX)],
        "reviewers (1-2 reviews, words embedded)": [u for u in known
                                                   if not u.startswith(LISTENER_PREFIX)],
        "light (3-10 subs, after training)": light_listeners(app, args, catalog),
    }
    console.print(f"{len(catalog)} shows; {len(known)} listeners known to the trained model; "
                  f"BLAS threads {args.blas_threads or 'default'}; load average "
                  f"{load_start[0]:.2f} at start")
    results: dict[str, Any] = {}
    for gname, pool in groups.items():
        if not pool:
            continue
        users = rng.sample(pool, min(args.users, len(pool)))
        # the listeners' history rows, read once (the raw kernels do not read the store)
        rows, lens = {}, []
        for u in users:
            h = pipe.history(RecommendRequest(user_id=u), app.listeners.events(u))
            rows[u] = h.rows
            lens.append(len(h))
        for u in users[:20]:
            app.recommend(user_id=u, k=args.k)  # warm
        order = [rng.choice(users) for _ in range(args.requests)]
        times: dict[str, list[float]] = defaultdict(list)
        if ease is not None:
            col = {int(c): j for j, c in enumerate(ease.items)}
        for u in order:
            t0 = time.perf_counter()
            app.recommend(RecommendRequest(user_id=u, k=args.k))
            times["podrec recommend"].append(time.perf_counter() - t0)
            r = rows[u]
            if ease is not None:
                t0 = time.perf_counter()
                cols = np.asarray([col[int(x)] for x in r if int(x) in col], np.int64)
                # a binary history row x B is the sum of B's rows of the history items
                raw_topk(ease.weights[cols].sum(axis=0), cols, args.k)
                times["raw EASE row x B + argpartition"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            v = vectors[r].mean(axis=0) if len(r) else vectors[0]
            raw_topk(vectors @ v, r, args.k)
            times["raw numpy cosine top-k"].append(time.perf_counter() - t0)
        res = {p: stats(t) for p, t in times.items()}
        ref = res["podrec recommend"]["p50_ms"]
        for s in res.values():
            s["podrec_over_this_p50"] = ref / s["p50_ms"]
        console.print(f"\n[bold]{gname}[/]: {len(users)} listeners, history items p50 "
                      f"{np.median(lens):.0f} (min {min(lens)}, max {max(lens)}), "
                      f"{args.requests} calls, load average {os.getloadavg()[0]:.2f}")
        for p, s in res.items():
            console.print(f"  {p:34} p50 {s['p50_ms']:8.3f}  p95 {s['p95_ms']:8.3f}  p99 "
                          f"{s['p99_ms']:8.3f} ms   podrec/this p50 "
                          f"{s['podrec_over_this_p50']:7.1f}x")
        bd = breakdown(app, order[:200], args.k)
        console.print("  where one call's time goes (mean over 200 calls, wrappers on):")
        for label, v in bd.items():
            console.print(f"    {label:36} {v['per_call_ms']:8.3f} ms/call"
                          + (f"  (p50 {v['p50_ms']:.3f} ms, {v.get('calls', '')} calls)"
                             if "p50_ms" in v else ""))
        pc = part_costs(app, users[:50], 2)
        console.print("  each part's score + standardise for one listener (every part, "
                      "weighted or not):")
        for name, s in pc.items():
            console.print(f"    {name:12} p50 {s['p50_ms']:8.3f}  p99 {s['p99_ms']:8.3f} ms")
        results[gname] = {"listeners": len(users), "history_items_p50": float(np.median(lens)),
                          "latency": res, "breakdown": bd, "part_score_ms": pc,
                          "loadavg": os.getloadavg()}
        if ease_part is not None:
            results[gname]["ease_items_modelled"] = int(len(ease.items))

    pool = groups["synthetic (10-50 subs, no words)"]
    users = [rng.choice(pool) for _ in range(args.profile_calls)]
    prof = cProfile.Profile()
    prof.enable()
    for u in users:
        app.recommend(RecommendRequest(user_id=u, k=args.k))
    prof.disable()
    text = io.StringIO()
    ps = pstats.Stats(prof, stream=text)
    ps.sort_stats("cumulative").print_stats(35)
    ps.sort_stats("tottime").print_stats(25)
    console.print(f"\ncProfile of {args.profile_calls} recommend calls (synthetic listeners):")
    print(text.getvalue())
    if limits is not None:
        limits.restore_original_limits()
    if args.json:
        meta = {"date": time.strftime("%Y-%m-%d"), "python": platform.python_version(),
                "cpus": os.cpu_count(), "loadavg_start": load_start,
                "loadavg_end": os.getloadavg(), "db": args.db, "shows": len(catalog),
                "blas_threads": args.blas_threads, "served": summary}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2,
                                        default=str) + "\n")
        console.print(f"wrote {args.json}")
    app.close()


if __name__ == "__main__":
    main()
