"""Enrich the stored catalog: embed what changed, tag what was embedded.

An item's embedding text is title + categories + (trimmed) description; its hash, with the
model id, decides whether it must be embedded again. Identical texts share one computation.
A batch's vectors and tags are stored in one transaction, so an enrich stopped at any point
(killed, out of memory) leaves no item with a new vector and old or missing tags: a re-run
embeds and tags exactly what is left.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from podrec.enrich.embedders import TextEmbedder
from podrec.enrich.tagger import (
    KeyphraseExtractor,
    TaxonomyTagger,
    clean_phrases,
    taxonomy_vocabulary,
)
from podrec.records import Item
from podrec.storage import Store

Progress = Callable[[int], None]
TAG_SOURCES = ("category", "taxonomy", "keyphrase")  # the tags an enrich replaces


# Description characters embedded: one number for every kind, or one per kind ("show",
# "episode"; a kind not named takes the show's). Measured per kind in bench_enrich.py.
TextLimit = int | Mapping[str, int]


def chars_for(kind: str | None, max_chars: TextLimit) -> int:
    """The description characters embedded for an item of ``kind``."""
    if isinstance(max_chars, int):
        return max_chars
    return int(max_chars.get(kind or "show", max_chars.get("show", 1000)))


def embedding_text(item: Item, max_chars: TextLimit = 1000) -> str:
    """The text an item is embedded from: title, categories, then the start of the description."""
    max_chars = chars_for(item.kind, max_chars)
    parts = [item.title.strip()]
    if item.categories:
        parts.append(", ".join(item.categories))
    if item.description:
        description = item.description.strip()
        if len(description) > max_chars:
            description = description[:max_chars].rsplit(" ", 1)[0]
        parts.append(description)
    return ". ".join(p for p in parts if p)


def text_hash(model_id: str, text: str) -> str:
    return hashlib.sha256(f"{model_id}\x1f{text}".encode()).hexdigest()


@dataclass
class EnrichReport:
    embedded: int = 0
    reused: int = 0
    unchanged: int = 0
    tagged: int = 0

    def summary(self) -> dict[str, int]:
        return {"embedded": self.embedded, "reused": self.reused, "unchanged": self.unchanged,
                "tagged": self.tagged}


class Enricher:
    """Embeds and tags a store's items with one embedder."""

    def __init__(self, store: Store, embedder: TextEmbedder, max_chars: TextLimit = 1000,
                 batch_size: int = 32, taxonomy_top_k: int = 3,
                 taxonomy_min_score: float = 0.0, keyphrases: int = 5) -> None:
        self.store, self.embedder = store, embedder
        self.max_chars, self.batch_size = max_chars, batch_size
        self.taxonomy_top_k, self.taxonomy_min_score = taxonomy_top_k, taxonomy_min_score
        self.keyphrases = keyphrases
        self._vocab = taxonomy_vocabulary()

    def plan(self, kind: str | None = None, force: bool = False
             ) -> tuple[list[tuple[Item, str, str]], int]:
        """Items whose embedding is missing or stale, with their text and hash; and how many
        are up to date. An item with categories but no category tags is not up to date
        either: a database enriched before vectors and tags were stored together may hold
        its vector without its tags (its vector is reused, not computed again)."""
        model_id = self.embedder.model_id
        stored = {} if force else self.store.embedding_hashes(model_id)
        with_tags = set() if force else self.store.tagged_items("category")
        todo, fresh = [], 0
        for item in self.store.iter_items(kind=kind):
            text = embedding_text(item, self.max_chars)
            h = text_hash(model_id, text)
            tagless = item.pk not in with_tags and any(c.strip() for c in item.categories)
            if stored.get(item.pk) == h and not tagless:
                fresh += 1
            else:
                todo.append((item, text, h))
        return todo, fresh

    def run(self, kind: str | None = None, force: bool = False,
            progress: Progress | None = None, on_total: Callable[[int], None] | None = None,
            runner: Any = None, chunk_items: int = 256) -> EnrichReport:
        """Embed and tag what the plan finds; with a distributed ``runner``
        (``podrec.batch``), as tasks of ``chunk_items`` items that write their own results."""
        report = EnrichReport()
        model_id = self.embedder.model_id
        todo, report.unchanged = self.plan(kind, force)
        if on_total:
            on_total(len(todo))
        if not todo:
            return report
        if runner is not None and runner.distributed:
            from podrec.batch.enrich import enrich_on_runner

            return enrich_on_runner(self, runner, todo, report, force, chunk_items, progress)
        cached = {} if force else self.store.vectors_for_hashes(model_id,
                                                                 sorted({h for _, _, h in todo}))
        tagger = TaxonomyTagger(self.embedder, self.taxonomy_top_k, self.taxonomy_min_score)
        # Twice as many candidates as kept: cleaning drops generic words and title fragments.
        keyphraser = KeyphraseExtractor(self.keyphrases * 2)
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start:start + self.batch_size]
            need = [(i, text) for i, (_, text, h) in enumerate(batch) if h not in cached]
            if need:
                vectors = self.embedder.embed_passages([text for _, text in need])
                for (i, _), vec in zip(need, vectors, strict=True):
                    cached[batch[i][2]] = vec
            report.embedded += len(need)
            report.reused += len(batch) - len(need)
            rows = [(item.pk, h, cached[h]) for item, _, h in batch]
            tagged = self._tag(batch, np.vstack([cached[h] for _, _, h in batch]), tagger,
                               keyphraser)
            self.store.save_enrichment(model_id, rows, tagged, TAG_SOURCES)
            report.tagged += len(batch)
            if progress:
                progress(len(batch))
        return report

    def _tag(self, batch: list[tuple[Item, str, str]], vectors: np.ndarray,
             tagger: TaxonomyTagger, keyphraser: KeyphraseExtractor
             ) -> dict[int, list[tuple[str, str, float]]]:
        """The batch's tags (category, taxonomy, keyphrase) by item key."""
        tagged: dict[int, list[tuple[str, str, float]]] = {}
        for (item, _, _), labels in zip(batch, tagger.tag(vectors), strict=True):
            entries = [("category", c, 1.0) for c in item.categories]
            entries += [("taxonomy", tag, score) for tag, score in labels]
            text = f"{item.title}. {item.description}"
            phrases = clean_phrases(keyphraser.extract(text, item.language), item.title,
                                    [*item.categories, *(t for t, _ in labels)], self._vocab,
                                    item.author or "")
            entries += [("keyphrase", kw, s) for kw, s in phrases[: self.keyphrases]]
            tagged[item.pk] = entries
        return tagged
