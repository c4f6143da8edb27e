"""Latency from a listener's event to recommendations that reflect it, against the same
recommendation request with no new event (the reference), in one run.

Nothing is refit: a listener's history is read from the store on every request, so the cost
of feedback is one event write plus one recommendation.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from podrec.config import Config
from podrec.records import EventRecord
from podrec.service import Podrec


def percentiles(ms: list[float]) -> str:
    a = np.asarray(ms)
    return f"p50 {np.percentile(a, 50):7.2f} ms  p95 {np.percentile(a, 95):7.2f} ms  " \
           f"p99 {np.percentile(a, 99):7.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", default="sqlite:///.cache/evaluate-similar-e5.db",
                        help="a store with the Apple catalog embedded (podrec evaluate-similar)")
    parser.add_argument("--embedder", default="e5", help="the embedder the store was "
                        "enriched with (e5 or wordllama)")
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    db_path = Path(args.db.removeprefix("sqlite:///"))
    if args.db.startswith("sqlite:///") and not db_path.exists():
        print(f"error: {db_path} not found: run `podrec evaluate-similar` first", file=sys.stderr)
        return 2
    from dataclasses import replace

    config = Config()
    app = Podrec(replace(config, embedder=replace(config.embedder, name=args.embedder)),
                 database_url=args.db)
    catalog = app.catalog_data("show")
    rng = np.random.default_rng(args.seed)
    user = f"bench-feedback-{int(time.time())}"
    events = ["like", "complete", "subscribe", "dislike", "skip"]
    app.store.add_events([EventRecord(user_id=user, item_id=catalog.ids[0], event="subscribe",
                                      timestamp=datetime.now(UTC))])
    app.recommend(user_id=user, k=10)  # warm: model built, caches filled
    with_event, reference, changed = [], [], 0
    for _ in range(args.events):
        t0 = time.perf_counter()
        app.recommend(user_id=user, k=10)
        reference.append((time.perf_counter() - t0) * 1000)
        before = [r.id for r in app.recommend(user_id=user, k=10)]
        item = catalog.ids[int(rng.integers(len(catalog)))]
        ev = EventRecord(user_id=user, item_id=item, event=str(rng.choice(events)),
                         timestamp=datetime.now(UTC))
        t0 = time.perf_counter()
        app.store.add_events([ev])
        after = [r.id for r in app.recommend(user_id=user, k=10)]
        with_event.append((time.perf_counter() - t0) * 1000)
        changed += after != before
    print(f"{args.events} events on {len(catalog)} shows, listener history growing to "
          f"{args.events + 1} events")
    print(f"event write + next recommend: {percentiles(with_event)}")
    print(f"recommend alone (reference):  {percentiles(reference)}")
    print(f"ratio at p50: {np.percentile(with_event, 50) / np.percentile(reference, 50):.2f}x;"
          f" the list changed after {changed} of {args.events} events")
    return 0


if __name__ == "__main__":
    sys.exit(main())
