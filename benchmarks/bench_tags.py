"""Tags against source categories the tagger never sees: taxonomy, keyphrases, generated.

Items come from Apple's catalog (one genre each, balanced over genres) and the Podcast Index
trending list (Apple-style categories, a third not English). Each tagger reads only the title
and description. A tag counts for a genre when it is that genre or one of its sub-genres (by
name, for keyphrases and free topics, when the phrase is or contains a label). Precision and
recall are over (item, genre) pairs; speed is items per second on this machine's 2 cores.

    .venv/bin/python benchmarks/bench_tags.py [--apple 60] [--pi 30] [--backend local]
        [--out docs/results/tags.md]
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import random
import time
from collections import defaultdict
from pathlib import Path

from podrec.config import LLMConfig
from podrec.enrich.embedders import E5Embedder
from podrec.enrich.generated import GeneratedTagger
from podrec.enrich.pipeline import embedding_text
from podrec.enrich.tagger import (
    KeyphraseExtractor,
    TaxonomyTagger,
    clean_phrases,
    taxonomy_vocabulary,
)
from podrec.enrich.taxonomy import APPLE_TAXONOMY
from podrec.llm import make_generator
from podrec.llm.intents import detect_language
from podrec.records import Item
from podrec.storage import Store

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PARENT = {g.lower(): g for g in APPLE_TAXONOMY}
PARENT.update({s.lower(): g for g, subs in APPLE_TAXONOMY.items() for s in subs})


def genres_of(tags: list[str]) -> set[str]:
    """The top-level genres a list of tags names (a label, or a phrase containing one)."""
    out = set()
    for tag in tags:
        t = tag.lower().strip()
        if t in PARENT:
            out.add(PARENT[t])
            continue
        for label, genre in PARENT.items():
            if len(label) > 3 and (f" {label} " in f" {t} " or f" {t} " == f" {label} "):
                out.add(genre)
    return out


def apple_items(n: int, seed: int = 7) -> list[tuple[Item, set[str]]]:
    rows = json.load(open(DATA / "apple_podcasts_peterchong_2021" / "podcast_info.json"))
    by_genre: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        if r.get("genre") in APPLE_TAXONOMY and len(r.get("description") or "") > 80:
            by_genre[r["genre"]].append(r)
    rng = random.Random(seed)
    picked: list[dict] = []
    genres = sorted(by_genre)
    while len(picked) < n:
        for g in genres:
            if len(picked) < n:
                picked.append(by_genre[g].pop(rng.randrange(len(by_genre[g]))))
    return [(Item(id=f"apple{i}", title=r["title"], description=r["description"],
                  author=r.get("producer"), language="en", pk=i + 1), {r["genre"]})
            for i, r in enumerate(picked)]


def podcastindex_items(n: int, seed: int = 7) -> list[tuple[Item, set[str]]]:
    path = DATA / "podcastindex_trending_rikadiana1_2026" / "podcasts_raw_enriched.csv"
    with open(path, encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if len(r.get("description") or "") > 80]
    random.Random(seed).shuffle(rows)
    out = []
    for r in rows:
        cats = ast.literal_eval(r["categories_list"]) if r["categories_list"] else []
        gold = genres_of([c for c in cats if c.lower() in PARENT])
        if gold:
            lang = r.get("language_final") or detect_language(r["description"]) or "en"
            out.append((Item(id=f"pi{len(out)}", title=r["title"], description=r["description"],
                             author=r.get("author"), language=lang[:2], pk=1000 + len(out)),
                        gold))
        if len(out) >= n:
            break
    return out


def taxonomy_tags(items: list[Item], embedder: E5Embedder) -> tuple[list[list[str]], float]:
    start = time.perf_counter()
    tagger = TaxonomyTagger(embedder)
    vectors = embedder.embed_passages([embedding_text(i) for i in items])
    tags = [[t for t, _ in row] for row in tagger.tag(vectors)]
    return tags, time.perf_counter() - start


def keyphrase_tags(items: list[Item]) -> tuple[list[list[str]], float]:
    start = time.perf_counter()
    extractor, vocab, out = KeyphraseExtractor(10), taxonomy_vocabulary(), []
    for i in items:
        phrases = extractor.extract(f"{i.title}. {i.description}", i.language)
        out.append([p for p, _ in clean_phrases(phrases, i.title, (), vocab, i.author or "")][:5])
    return out, time.perf_counter() - start


def generated_tags(items: list[Item], backend: str) -> tuple[list[list[str] | None], float, str]:
    # Answers are kept in a store beside the other benchmark caches: a re-run is free.
    store = Store("sqlite:///.cache/bench-llm.db")
    generator = make_generator(LLMConfig(backend=backend, timeout_s=120), store)
    tagger = GeneratedTagger(generator)
    start, out = time.perf_counter(), []
    for n, item in enumerate(items, 1):
        tags, _ = tagger.tag(item)
        out.append(None if tags is None else [t for t, _ in tags])
        print(f"  generated {n}/{len(items)}", end="\r", flush=True)
    seconds = time.perf_counter() - start
    generator.close()
    return out, seconds, generator.model_id


def prf(pred: list[set[str]], gold: list[set[str]]) -> dict[str, float]:
    hits = sum(len(p & g) for p, g in zip(pred, gold, strict=True))
    n_pred, n_gold = sum(len(p) for p in pred), sum(len(g) for g in gold)
    covered = sum(bool(p & g) for p, g in zip(pred, gold, strict=True))
    precision = hits / n_pred if n_pred else 0.0
    recall = hits / n_gold if n_gold else 0.0
    return {"precision": precision, "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if hits else 0.0,
            "items_hit": covered / len(gold), "tags_per_item": n_pred / len(gold)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--apple", type=int, default=60)
    ap.add_argument("--pi", type=int, default=30)
    ap.add_argument("--backend", default="local")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    sets = {"apple": apple_items(args.apple), "podcastindex": podcastindex_items(args.pi)}
    embedder = E5Embedder()
    results, lines = {}, []
    for name, rows in sets.items():
        items, gold = [i for i, _ in rows], [g for _, g in rows]
        tax, tax_s = taxonomy_tags(items, embedder)
        kp, kp_s = keyphrase_tags(items)
        gen, gen_s, model_id = generated_tags(items, args.backend)
        got = [g or [] for g in gen]
        methods = {
            "taxonomy (zero-shot, e5)": ([genres_of(t) for t in tax], tax_s),
            "keyphrases (cleaned)": ([genres_of(t) for t in kp], kp_s),
            f"generated ({model_id})": ([genres_of(t) for t in got], gen_s),
            "taxonomy + generated": ([genres_of(t + g) for t, g in zip(tax, got, strict=True)],
                                     tax_s + gen_s),
        }
        results[name] = {m: {**prf(p, gold), "items_per_s": len(items) / s,
                             "fell_back": sum(g is None for g in gen) if "generated" in m
                             else 0}
                         for m, (p, s) in methods.items()}
        lines += table(name, len(items), results[name])
        lines += sample(rows, tax, kp, gen) if name == "apple" else []
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
        args.out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")


def table(name: str, n: int, res: dict[str, dict[str, float]]) -> list[str]:
    lines = [f"\n### {name}: {n} items\n",
             "| tags | precision | recall | F1 | items with a right genre | genres/item "
             "| items/s | fell back |", "|---|---|---|---|---|---|---|---|"]
    for method, r in res.items():
        lines.append(f"| {method} | {r['precision']:.2f} | {r['recall']:.2f} | {r['f1']:.2f} | "
                     f"{r['items_hit']:.2f} | {r['tags_per_item']:.2f} | "
                     f"{r['items_per_s']:.2f} | {int(r['fell_back'])} |")
    return lines


def sample(rows, tax, kp, gen, n: int = 20) -> list[str]:
    lines = ["\n### 20 items' tags (Apple; the genre was hidden from every tagger)\n",
             "| show | hidden genre | taxonomy | keyphrases | generated |", "|---|---|---|---|---|"]
    for (item, gold), t, k, g in list(zip(rows, tax, kp, gen, strict=True))[:n]:
        cell = "(fell back)" if g is None else ", ".join(g)
        lines.append(f"| {item.title} | {', '.join(sorted(gold))} | {', '.join(t)} | "
                     f"{', '.join(k)} | {cell} |")
    return lines


if __name__ == "__main__":
    main()
