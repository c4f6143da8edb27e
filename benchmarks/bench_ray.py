"""Enrich on Ray against enrich in this process and against the raw embedder.

On the same items (Apple shows, or ``--synthetic N`` episodes from ``synthetic.py``), in one
process so every side sees the same machine load:

- ``raw embedder``: the model package called directly on the embedding texts, 32 at a time
  (the ceiling: no store, no tags);
- ``in-process``: ``Enricher.run`` (embed, taxonomy tags, keyphrases, stored in SQLite) as
  podrec runs it (a run this size extracts keyphrases in a second process,
  ``tagger.keyphrase_process_above``), first run (the keyphrase models load, the taxonomy is
  embedded) and again (``warm``, ``--force``);
- ``in turn``: the same with the keyphrases extracted in this process, batch by batch;
- ``ray cold``: the same on a local Ray cluster of ``--workers`` CPUs, tasks of
  ``--chunk`` items: each worker loads the embedder on its first task (the cluster's own
  start is reported apart);
- ``ray warm``: again with ``--force``, the workers already holding the model.

The in-process rows run ``--rounds`` times, alternating; the best of each is reported (the
machines here are shared and noisy), with every round in the JSON. Each enrich starts from a
fresh SQLite file. Items/s and ratios against the in-process run and the raw embedder are
printed (and written as JSON with ``--json``).

    .venv/bin/python benchmarks/bench_ray.py [--data ../shared/data] [--n 1000]
        [--synthetic 0] [--embedder wordllama|e5] [--workers 2] [--chunk 256] [--rounds 3]
        [--no-ray] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_embedding import load_records  # noqa: E402

from podrec.batch import RayRunner  # noqa: E402
from podrec.enrich.embedders import make_embedder  # noqa: E402
from podrec.enrich.pipeline import Enricher, embedding_text  # noqa: E402
from podrec.storage import Store  # noqa: E402

BATCH = 32


def _enrich(tmp: Path, name: str, records: list[Any], embedder: Any, runner: Any = None,
            chunk: int = 256, force: bool = False, store: Store | None = None,
            process_above: int = 2000) -> tuple[float, Store]:
    """Seconds to enrich ``records`` (in a new SQLite file unless ``store`` is given)."""
    if store is None:
        path = tmp / f"{name}.db"
        path.unlink(missing_ok=True)
        store = Store(f"sqlite:///{path}")
        store.upsert_items(records)
    enricher = Enricher(store, embedder, batch_size=BATCH,
                        keyphrase_process_above=process_above)
    t0 = time.perf_counter()
    report = enricher.run(force=force, runner=runner, chunk_items=chunk)
    seconds = time.perf_counter() - t0
    assert report.tagged == len(records), report
    return seconds, store


def synthetic_records(data: Path, n: int) -> list[Any]:
    """``n`` synthetic episodes (text recombined from the real data sets)."""
    import synthetic

    from podrec.ingest.datasets import read_catalog
    from podrec.records import IngestReport

    pools = synthetic.load_pools(data)
    plan = synthetic.plan_catalog(n, pools, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "catalog.jsonl"
        synthetic.write_catalog(plan, pools, path)
        return [r for r in read_catalog(path, IngestReport()) if r.kind == "episode"][:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--n", type=int, default=1000, help="Apple shows")
    ap.add_argument("--synthetic", type=int, default=0,
                    help="this many synthetic episodes instead of Apple shows")
    ap.add_argument("--embedder", default="wordllama", help="wordllama or e5")
    ap.add_argument("--workers", type=int, default=2, help="CPUs of the local Ray cluster")
    ap.add_argument("--chunk", type=int, default=256, help="items per Ray task")
    ap.add_argument("--rounds", type=int, default=3, help="alternated in-process rounds")
    ap.add_argument("--no-ray", action="store_true", help="the in-process rows only")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    logging.disable(logging.WARNING)

    if args.synthetic:
        records = synthetic_records(args.data, args.synthetic)
        what = "synthetic episodes"
    else:
        records = load_records(args.data, args.n)
        what = "Apple shows"
    embedder = make_embedder(args.embedder, BATCH)
    texts = [embedding_text(r) for r in records]  # type: ignore[arg-type]  # same fields
    rounds: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for r in range(args.rounds):
            t0 = time.perf_counter()
            for i in range(0, len(texts), BATCH):
                embedder.embed_passages(texts[i:i + BATCH])
            rounds.setdefault("raw embedder", []).append(time.perf_counter() - t0)
            # which way goes first alternates from round to round
            ways = [("in-process", 2000), ("in turn", 0)][:: 1 if r % 2 == 0 else -1]
            for label, above in ways:
                above = above if above == 0 else min(above, len(records))
                first, store = _enrich(tmp, label.replace(" ", "-"), records, embedder,
                                       process_above=above)
                again, _ = _enrich(tmp, "", records, embedder, force=True, store=store,
                                   process_above=above)
                store.close()
                rounds.setdefault(f"{label}, first run", []).append(first)
                rounds.setdefault(f"{label}, again", []).append(again)
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in rounds.items()),
                  flush=True)
        rows = {label: min(v) for label, v in rounds.items()}
        start_s = 0.0
        if not args.no_ray:
            t0 = time.perf_counter()
            runner = RayRunner("local", max_retries=1, num_cpus=args.workers)
            start_s = time.perf_counter() - t0
            try:
                rows[f"ray cold ({args.workers} workers)"], store = _enrich(
                    tmp, "ray", records, embedder, runner, args.chunk)
                rows[f"ray warm ({args.workers} workers)"], _ = _enrich(
                    tmp, "ray", records, embedder, runner, args.chunk, force=True, store=store)
            finally:
                runner.close()
    n = len(records)
    here, raw = n / rows["in-process, first run"], n / rows["raw embedder"]
    print(f"{n} {what}, embedder {embedder.model_id}, batch {BATCH}, best of {args.rounds} "
          f"rounds; Ray tasks of {args.chunk} items; {os.cpu_count()} CPUs here"
          + ("" if args.no_ray else f"; Ray cluster start {start_s:.1f} s (not counted)"))
    print(f"{'':28} {'seconds':>8} {'items/s':>9} {'÷ in-process':>13} {'÷ raw':>7}")
    out: dict[str, Any] = {"items": n, "what": what, "embedder": embedder.model_id,
                           "chunk": args.chunk, "workers": args.workers,
                           "cpus": os.cpu_count(), "rounds_run": args.rounds,
                           "ray_start_seconds": round(start_s, 2),
                           "python": platform.python_version(), "rows": {},
                           "rounds": {k: [round(x, 3) for x in v] for k, v in rounds.items()}}
    for label, seconds in rows.items():
        per_s = n / seconds
        print(f"{label:28} {seconds:8.2f} {per_s:9.1f} {per_s / here:13.2f} {per_s / raw:7.2f}")
        out["rows"][label] = {"seconds": round(seconds, 3), "items_per_s": round(per_s, 1),
                              "vs_in_process": round(per_s / here, 3),
                              "vs_raw": round(per_s / raw, 3)}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
