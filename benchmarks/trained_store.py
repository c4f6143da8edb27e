"""A store with a *trained* hybrid served, for the benchmarks of the serving path.

Shared by ``bench_feedback.py``, ``bench_lists.py`` and ``bench_server.py``. If a store's
newest trained model is missing (or is the fallback), ``ensure_trained``:

1. ingests the mille055 Apple reviews (``apple_itunes_reviews_mille055_2023/reviews.csv``,
   ``apple-reviews``: their item ids are bare iTunes ids, as in the peterchong catalog; about
   6.5k of the 10.7k reviews fall on 338 of its shows, from 6.4k reviewers of whom only 116
   wrote two or more), and
2. adds synthetic listeners with 10-50 subscriptions each (plus plays and completes of some of
   them), drawn by random walks over the catalog's "listeners also subscribed to" lists
   (``podcast_subs.json``, matched to the catalog by title), so that the collaborative parts
   have real co-subscription structure to learn, then
3. trains the hybrid with ``Podrec.train("show")`` (the configured ``[train]``: every part of
   the hybrid, the blend per activity bucket) and returns its report.

The synthetic listeners are ``bench-sub-NNNN``; the same seed gives the same listeners.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REVIEWS = "apple_itunes_reviews_mille055_2023/reviews.csv"
SUBS = "apple_podcasts_peterchong_2021/podcast_subs.json"
LISTENER_PREFIX = "bench-sub-"
Say = Callable[[str], None]


def co_subscription_graph(data: Path, ids: list[str], titles: list[str]
                          ) -> dict[str, list[str]]:
    """Show id → ids of the shows its listeners also subscribed to (catalog shows only)."""
    by_title: dict[str, str] = {}
    for item_id, title in zip(ids, titles, strict=True):
        by_title.setdefault((title or "").strip().lower(), item_id)
    graph: dict[str, list[str]] = {}
    for rec in json.loads((data / SUBS).read_text()):
        src = by_title.get((rec.get("title") or "").strip().lower())
        if src is None:
            continue
        subs = [by_title.get((t or "").strip().lower()) for t in rec.get("subs") or []]
        subs = [s for s in subs if s is not None and s != src]
        if subs:
            graph.setdefault(src, [])
            graph[src] += [s for s in subs if s not in graph[src]]
    return graph


def synthetic_listeners(data: Path, ids: list[str], titles: list[str], n: int, seed: int,
                        lo: int = 10, hi: int = 50) -> list[dict[str, Any]]:
    """Events of ``n`` listeners with ``lo``-``hi`` subscriptions each: a random walk over the
    co-subscription graph (a random jump to any connected show 15% of the time), one
    ``subscribe`` per show, and a ``play`` / ``complete`` of a third of them, over the last
    year."""
    rng = random.Random(seed)
    graph = co_subscription_graph(data, ids, titles)
    nodes = sorted(graph)
    now = datetime.now(UTC)
    out: list[dict[str, Any]] = []
    for u in range(n):
        user = f"{LISTENER_PREFIX}{u:04d}"
        want = rng.randint(lo, hi)
        subs = [rng.choice(nodes)]
        seen = set(subs)
        tries = 0
        while len(subs) < want and tries < 50 * want:
            tries += 1
            if rng.random() < 0.15:
                nxt = rng.choice(nodes)
            else:
                nxt = rng.choice(graph.get(rng.choice(subs), nodes) or nodes)
            if nxt not in seen:
                seen.add(nxt)
                subs.append(nxt)
        start = now - timedelta(days=365)
        for i, item in enumerate(subs):
            ts = start + timedelta(days=365 * (i + rng.random()) / (len(subs) + 1))
            out.append({"user_id": user, "item_id": item, "item_kind": "show",
                        "event": "subscribe", "timestamp": ts.isoformat()})
            if rng.random() < 1 / 3:
                out.append({"user_id": user, "item_id": item, "item_kind": "show",
                            "event": rng.choice(["play", "complete"]), "value": 1.0,
                            "timestamp": (ts + timedelta(hours=rng.random() * 48)).isoformat()})
    return out


def open_store(db: str, data: Path, embedder: str, console: Any) -> Any:
    """``Podrec`` over ``db`` with ``embedder``: for e5, ``bench_latency.open_app`` (which
    builds the Apple catalog store if it is missing); else the store must exist already
    (e.g. ``bench_server.py``'s wordllama store, trained copy)."""
    from podrec.config import Config, EmbedderConfig
    from podrec.service import Podrec

    if embedder == "e5":
        from bench_latency import open_app

        return open_app(db, data, console)
    if db.startswith("sqlite:///") and not Path(db.removeprefix("sqlite:///")).exists():
        raise SystemExit(f"error: {db} does not exist (only the e5 store is built here)")
    return Podrec(Config(embedder=EmbedderConfig(name=embedder)), database_url=db)


def served_summary(app: Any, kind: str = "show") -> dict[str, Any]:
    """What the store serves: version, fallback, parts, blend, data, validation."""
    served = app.served_model(kind)
    meta = served["meta"] or {}
    model = app.models.pipeline(kind).served.model
    parts = list(getattr(model, "components", {model.name: model}))
    return {"version": served["version"], "fallback": served["fallback"],
            "model": meta.get("model"), "parts": parts,
            "blend": getattr(model, "blend", None), "params": meta.get("params"),
            "data": meta.get("data"), "validation": meta.get("validation"),
            "train_seconds": meta.get("seconds")}


def ensure_trained(app: Any, data: Path, listeners: int = 2000, seed: int = 0,
                   say: Say = print, force: bool = False) -> dict[str, Any]:
    """Train the hybrid on ``app``'s store unless a trained (non-fallback) one is served."""
    summary = served_summary(app)
    if summary["version"] is not None and not summary["fallback"] and not force:
        say(f"store already serves trained model {summary['version']}")
        return summary
    catalog = app.catalog_data("show")
    t0 = time.perf_counter()
    if (data / REVIEWS).is_file():
        rep = app.ingest_events(data / REVIEWS, "apple-reviews")
        say(f"reviews {data / REVIEWS}: added {rep.added}, skipped {rep.skipped}, "
            f"failed {rep.failed} ({time.perf_counter() - t0:.0f}s)")
    else:
        say(f"notice: {data / REVIEWS} missing: synthetic listeners only")
    events = synthetic_listeners(data, list(catalog.ids), list(catalog.titles), listeners,
                                 seed)
    for i in range(0, len(events), 5000):
        app.add_events(events[i:i + 5000], source="bench")
    say(f"{listeners} synthetic listeners, {len(events)} events (co-subscription walks, "
        f"10-50 shows each) ({time.perf_counter() - t0:.0f}s)")
    t1 = time.perf_counter()
    report = app.train("show", progress=lambda m: say(f"  train: {m}"))
    say(f"trained {report.version} in {time.perf_counter() - t1:.0f}s"
        + (f" -- FALLBACK: {report.fallback}" if report.fallback else ""))
    return served_summary(app)


def describe(summary: dict[str, Any]) -> str:
    """A few lines on the served model, for the benchmarks' output."""
    lines = [f"served model: {summary['model'] or 'fallback'} version {summary['version']}"
             + (f" (FALLBACK: {summary['fallback']})" if summary["fallback"] else "")]
    lines.append(f"  parts: {', '.join(summary['parts'])}")
    if summary.get("data"):
        d = summary["data"]
        lines.append(f"  trained on {d.get('events')} events, {d.get('listeners')} listeners, "
                     f"{d.get('items')} items, {d.get('pairs')} pairs in "
                     f"{summary.get('train_seconds')} s")
    for b, weights in enumerate(summary.get("blend") or []):
        nz = {n: w for n, w in weights.items() if w}
        lines.append(f"  blend bucket {b}: {nz}")
    if summary.get("params"):
        lines.append(f"  params: {summary['params']}")
    return "\n".join(lines)
