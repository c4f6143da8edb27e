"""Latency from a listener's event to recommendations that reflect it, with the trained hybrid
served, against the same recommendation request with no new event (the reference), in one run.

Nothing is refit: a listener's history is read from the store on every request and folded
into the served model (EASE: history x B; iALS/BPR: recalculate_user; the profile), so the
cost of feedback is one event write plus one recommendation.

The store (default ``.cache/evaluate-similar-e5.db``, the Apple catalog embedded with e5) is
built if missing (~9 min) and given a trained hybrid if it serves none (``trained_store.py``:
the mille055 Apple reviews plus synthetic co-subscription listeners, then ``Podrec.train``).
The events are written to a copy of it, so runs do not change the cached store.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_latency import DEFAULT_DB  # noqa: E402
from trained_store import LISTENER_PREFIX, describe, ensure_trained, open_store  # noqa: E402

from podrec.config import Config, EmbedderConfig  # noqa: E402
from podrec.recommend.request import RecommendRequest  # noqa: E402
from podrec.service import Podrec  # noqa: E402

EVENTS = ["like", "complete", "subscribe", "play", "dislike", "skip"]


def stats(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"n": len(ms), "p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99),
            "mean_ms": float(ms.mean())}


def line(s: dict[str, float]) -> str:
    return f"p50 {s['p50_ms']:7.2f} ms  p95 {s['p95_ms']:7.2f} ms  p99 {s['p99_ms']:7.2f} ms"


def copy_sqlite(src: Path, dst: Path) -> None:
    s, d = sqlite3.connect(src), sqlite3.connect(dst)
    with d:
        s.backup(d)
    s.close()
    d.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--db", default=DEFAULT_DB,
                        help="a store with the Apple catalog embedded (built if missing)")
    parser.add_argument("--embedder", default="e5", help="what the store was enriched with")
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--users", type=int, default=30,
                        help="trained listeners the events are spread over")
    parser.add_argument("--listeners", type=int, default=2000,
                        help="synthetic listeners added if the store must be trained")
    parser.add_argument("--blas-threads", type=int, default=1,
                        help="BLAS/OpenMP threads (1, as a server worker runs; 0: default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from rich.console import Console

    console = Console(width=130)
    load_start = os.getloadavg()
    app = open_store(args.db, args.data, args.embedder, console)
    summary = ensure_trained(app, args.data, args.listeners, args.seed, console.print)
    app.close()
    console.print(describe(summary))
    if not args.db.startswith("sqlite:///"):
        sys.exit("error: --db must be a SQLite store (the events go to a copy of it)")
    tmp = Path(tempfile.mkdtemp(prefix="podrec-bench-feedback-"))
    copy_sqlite(Path(args.db.removeprefix("sqlite:///")), tmp / "run.db")
    app = Podrec(Config(embedder=EmbedderConfig(name=args.embedder)),
                 database_url=f"sqlite:///{tmp / 'run.db'}")
    limits = threadpool_limits(args.blas_threads) if args.blas_threads else None
    catalog = app.catalog_data("show")
    pipe = app.models.pipeline("show")
    rng = random.Random(args.seed)
    users = rng.sample(sorted(u for u in pipe.served.users if u.startswith(LISTENER_PREFIX)),
                       args.users)
    sizes = [len(app.listener_events(u)) for u in users]
    for u in users[:10]:
        app.recommend(user_id=u, k=10)  # warm: model built, caches filled
    app.embedder.embed_queries(["warm up"])
    # the reference as trained: each listener's history is what training saw (trained rows)
    trained_ref = []
    for u in users:
        t0 = time.perf_counter()
        app.recommend(RecommendRequest(user_id=u, k=10))
        trained_ref.append(time.perf_counter() - t0)
    reference, with_event, write, after_only = [], [], [], []
    changed = {"on a listed item": [0, 0], "on a random item": [0, 0]}
    by_type: dict[str, list[int]] = {e: [0, 0] for e in EVENTS}
    serial = 0
    for _ in range(args.events):
        u = rng.choice(users)
        t0 = time.perf_counter()
        before = [r.id for r in app.recommend(RecommendRequest(user_id=u, k=10))]
        reference.append(time.perf_counter() - t0)
        on_list = rng.random() < 0.5
        item = rng.choice(before) if on_list else catalog.ids[rng.randrange(len(catalog))]
        kind = rng.choice(EVENTS)
        serial += 1
        row = {"user_id": u, "item_id": item, "item_kind": "show", "event": kind,
               "value": 0.1 if kind == "skip" else None,
               "timestamp": datetime.now(UTC).isoformat()}
        t0 = time.perf_counter()
        app.add_events([row])
        t1 = time.perf_counter()
        after = [r.id for r in app.recommend(RecommendRequest(user_id=u, k=10))]
        t2 = time.perf_counter()
        write.append(t1 - t0)
        after_only.append(t2 - t1)
        with_event.append(t2 - t0)
        key = "on a listed item" if on_list else "on a random item"
        changed[key][0] += after != before
        changed[key][1] += 1
        by_type[kind][0] += after != before
        by_type[kind][1] += 1
    load_end = os.getloadavg()
    res = {"event write + next recommend": stats(with_event),
           "  event write (Podrec.add_events)": stats(write),
           "  next recommend (folded in)": stats(after_only),
           "recommend alone, no event (reference)": stats(reference),
           "recommend alone, as trained (trained rows)": stats(trained_ref)}
    console.print(f"\n{args.events} events over {len(users)} trained synthetic listeners "
                  f"(histories of {min(sizes)}-{max(sizes)} events, p50 "
                  f"{np.median(sizes):.0f}) on {len(catalog)} shows; BLAS threads "
                  f"{args.blas_threads or 'default'}; load average {load_start[0]:.2f} at "
                  f"start, {load_end[0]:.2f} at end")
    for name, s in res.items():
        console.print(f"{name:44} {line(s)}  (n={s['n']})")
    r50 = res["event write + next recommend"]["p50_ms"] / \
        res["recommend alone, no event (reference)"]["p50_ms"]
    console.print(f"ratio at p50, event->list / reference: {r50:.2f}x")
    for key, (c, n) in changed.items():
        console.print(f"the list changed after {c} of {n} events {key}")
    console.print("by event type (changed / events): " + ", ".join(
        f"{e} {c}/{n}" for e, (c, n) in by_type.items()))
    p50 = res["event write + next recommend"]["p50_ms"]
    console.print(f"aim: event -> changed list p50 <= 20 ms: {p50:.1f} ms -> "
                  f"{'met' if p50 <= 20 else 'NOT met'}")
    if limits is not None:
        limits.restore_original_limits()
    app.close()
    if args.json:
        meta = {"date": time.strftime("%Y-%m-%d"), "python": platform.python_version(),
                "cpus": os.cpu_count(), "loadavg_start": load_start, "loadavg_end": load_end,
                "db": args.db, "shows": len(catalog), "blas_threads": args.blas_threads,
                "listeners": len(users), "history_events": sizes, "served": summary}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "results": res, "changed": changed,
                                         "changed_by_type": by_type}, indent=2,
                                        default=str) + "\n")
        console.print(f"wrote {args.json}")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
