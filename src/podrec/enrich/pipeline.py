"""Enrich the stored catalog: embed what changed, tag what was embedded.

An item's embedding text is title + categories + (trimmed) description; its hash, with the
model id, decides whether it must be embedded again. Identical texts share one computation.
A batch's vectors and tags are stored in one transaction, so an enrich stopped at any point
(killed, out of memory) leaves no item with a new vector and old or missing tags: a re-run
embeds and tags exactly what is left.

Keyphrases are RAKE by default (enrich/tagger.py): with a fast embedder such as WordLlama,
YAKE cost more than the embedding and held enrich to 0.36-0.43 of the raw embedder; with RAKE
it runs at 0.63-0.87. With YAKE in Rust (``keyphrase_engine = "rust"``), which lets go of the
GIL for part of its work, keyphrases are extracted on two threads a few batches ahead of the
one being embedded (0.45-0.58). A large run beside an embedder that leaves a core idle
extracts them in a second process (enrich/keyphrase_process.py) while this one embeds.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from podrec.enrich.embedders import TextEmbedder
from podrec.enrich.keyphrase_process import KeyphraseProcess
from podrec.enrich.tagger import (
    KeyphraseExtractor,
    TaxonomyTagger,
    clean_phrases,
    taxonomy_vocabulary,
)
from podrec.records import Item
from podrec.storage import Store

log = logging.getLogger(__name__)
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


RawPhrases = list[list[tuple[str, float]]]  # each item's keyphrases before cleaning


def _keyphrase_text(item: Item) -> str:
    return f"{item.title}. {item.description}"


class KeyphrasesAhead:
    """Raw keyphrases of batches, extracted on ``threads`` threads (one extractor each) or,
    with ``process``, in one other process, while the caller embeds; with neither, in the
    caller's thread when asked.

    A second process is what lets keyphrases run beside a fast embedder: the tokenizer keeps
    taking the GIL back, so a thread only slows it (RAKE on a thread ahead: 0.87 -> 0.76 of
    the raw embedder), while the other process uses the core the embedder leaves idle. If that
    process cannot start or dies, the batches it had are extracted here instead.
    """

    def __init__(self, top_n: int, threads: int, engine: str = "rake",
                 process: bool = False) -> None:
        self.top_n, self.engine = top_n, engine
        self._local = threading.local()
        self._pool: ThreadPoolExecutor | None = None
        self._process: KeyphraseProcess | None = None
        self._warned = False
        if process:
            try:
                self._process = KeyphraseProcess(top_n, engine)
            except OSError as exc:
                log.warning("keyphrases stay in this process: no second process (%s)", exc)
        elif threads > 0:
            self._pool = ThreadPoolExecutor(threads, "podrec-keyphrases")

    def _extractor(self) -> KeyphraseExtractor:
        extractor = getattr(self._local, "extractor", None)
        if extractor is None:
            extractor = self._local.extractor = KeyphraseExtractor(self.top_n,
                                                                   engine=self.engine)
        return extractor

    def _extract(self, items: list[Item]) -> RawPhrases:
        extractor = self._extractor()
        return [extractor.extract(_keyphrase_text(item), item.language) for item in items]

    def submit(self, items: list[Item]) -> Future[RawPhrases]:
        if self._process is not None:
            return self._process.submit([(_keyphrase_text(i), i.language) for i in items])
        if self._pool is not None:
            return self._pool.submit(self._extract, items)
        done: Future[RawPhrases] = Future()
        done.set_result(self._extract(items))
        return done

    def result(self, future: Future[RawPhrases], items: list[Item]) -> RawPhrases:
        """``future``'s phrases; extracted here if the other process failed them."""
        try:
            return future.result()
        except RuntimeError as exc:
            if self._process is None:
                raise
            if not self._warned:
                self._warned = True
                log.warning("keyphrases are extracted in this process instead (%s)", exc)
            return self._extract(items)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._process is not None:
            self._process.close()
            self._process = None


@dataclass
class Unsaved:
    """Vectors and tags made and not yet written: written together every ``write_items``
    items, since each write is a transaction (a commit per batch of 32 cost ~12% of a fast
    embedder's enrich)."""

    rows: list[tuple[int, str, np.ndarray]] = field(default_factory=list)
    tagged: dict[int, list[tuple[str, str, float]]] = field(default_factory=dict)

    def save(self, store: Store, model_id: str) -> None:
        if self.rows or self.tagged:
            store.save_enrichment(model_id, self.rows, self.tagged, TAG_SOURCES)
        self.rows, self.tagged = [], {}


def keyphrase_threads(engine: str) -> int:
    """Threads for keyphrases by default: two (where the machine has two cores) for
    ``yake-rust``, which lets go of the GIL for part of its work (0.43 -> 0.58 of the raw
    embedder with WordLlama); none for the Python engines, which only wait for the GIL (RAKE
    on a thread ahead: 0.87 -> 0.76; benchmarks/bench_enrich.py)."""
    return min(2, os.cpu_count() or 1) if engine == "rust" else 0


# Items embedded ahead of the keyphrases they wait for, when those come from another process,
# which may need a second or two to start (and jieba's dictionary another 1.4 s at the first
# Chinese text); their vectors are held meanwhile, ~12 MB with e5.
PROCESS_LAG_ITEMS = 8192


class Enricher:
    """Embeds and tags a store's items with one embedder. ``keyphrase_engine``: see
    ``KeyphraseExtractor``; ``keyphrase_threads``: threads that extract keyphrases ahead of
    the batch being embedded (None: ``keyphrase_threads(engine)``; 0: in turn, in the enrich
    thread); ``keyphrase_process_above``: a run of at least this many items to embed, on a
    machine of two or more CPUs, with an embedder that does not take every core itself
    (``uses_all_cores``), extracts its keyphrases in a second process instead (0: never;
    starting it costs about a second, hidden behind the first batches' embedding);
    ``write_items``: items whose vectors and tags are written in one transaction (an enrich
    stopped midway redoes at most that many)."""

    def __init__(self, store: Store, embedder: TextEmbedder, max_chars: TextLimit = 1000,
                 batch_size: int = 32, taxonomy_top_k: int = 3,
                 taxonomy_min_score: float = 0.0, keyphrases: int = 5,
                 keyphrase_engine: str = "rake", keyphrase_threads: int | None = None,
                 keyphrase_process_above: int = 2000, write_items: int = 256) -> None:
        self.store, self.embedder = store, embedder
        self.keyphrase_process_above = keyphrase_process_above
        self.write_items = write_items  # items written per transaction
        self.max_chars, self.batch_size = max_chars, batch_size
        self.taxonomy_top_k, self.taxonomy_min_score = taxonomy_top_k, taxonomy_min_score
        self.keyphrases = keyphrases
        self.keyphrase_engine, self.keyphrase_threads = keyphrase_engine, keyphrase_threads
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
        batches = [todo[s:s + self.batch_size] for s in range(0, len(todo), self.batch_size)]
        threads = keyphrase_threads(self.keyphrase_engine) if self.keyphrase_threads is None \
            else self.keyphrase_threads
        # A second process only beside an embedder that leaves a core idle: beside e5, which
        # takes every core, it cost 0.98 -> 0.95 of the raw embedder (bench_ray.py).
        process = (self.keyphrases > 0 and 0 < self.keyphrase_process_above <= len(todo)
                   and (os.cpu_count() or 1) >= 2
                   and not getattr(self.embedder, "uses_all_cores", False))
        ahead_by = -(-PROCESS_LAG_ITEMS // self.batch_size) if process else threads + 1
        # Twice as many candidates as kept: cleaning drops generic words and title fragments.
        ahead = KeyphrasesAhead(self.keyphrases * 2, threads if self.keyphrases > 0 else 0,
                                self.keyphrase_engine, process)
        phrases: dict[int, Future[RawPhrases]] = {}
        embedded: deque[tuple[int, np.ndarray]] = deque()  # batches waiting for keyphrases
        asked = 0  # batches whose keyphrases were asked for, from the first
        unsaved = Unsaved()

        def finish(b: int, vectors: np.ndarray) -> None:
            batch = batches[b]
            raw = ahead.result(phrases.pop(b), [item for item, _, _ in batch]) \
                if b in phrases else [[] for _ in batch]
            unsaved.rows += [(item.pk, h, vec) for (item, _, h), vec in
                             zip(batch, vectors, strict=True)]
            unsaved.tagged.update(self._tag(batch, vectors, tagger, raw))
            if len(unsaved.rows) >= self.write_items:
                unsaved.save(self.store, model_id)
            report.tagged += len(batch)
            if progress:
                progress(len(batch))

        try:
            for b, batch in enumerate(batches):
                while self.keyphrases > 0 and asked < min(b + ahead_by, len(batches)):
                    phrases[asked] = ahead.submit([item for item, _, _ in batches[asked]])
                    asked += 1
                need = [(i, text) for i, (_, text, h) in enumerate(batch) if h not in cached]
                if need:
                    vectors = self.embedder.embed_passages([text for _, text in need])
                    for (i, _), vec in zip(need, vectors, strict=True):
                        cached[batch[i][2]] = vec
                report.embedded += len(need)
                report.reused += len(batch) - len(need)
                embedded.append((b, np.vstack([cached[h] for _, _, h in batch])))
                # tag in order each batch whose keyphrases are in; wait only when too far ahead
                while embedded and (len(embedded) >= ahead_by or embedded[0][0] not in phrases
                                    or phrases[embedded[0][0]].done()):
                    finish(*embedded.popleft())
            while embedded:
                finish(*embedded.popleft())
            unsaved.save(self.store, model_id)
        finally:
            ahead.close()
        return report

    def _tag(self, batch: list[tuple[Item, str, str]], vectors: np.ndarray,
             tagger: TaxonomyTagger, raw: RawPhrases
             ) -> dict[int, list[tuple[str, str, float]]]:
        """The batch's tags (category, taxonomy, keyphrase from ``raw``) by item key."""
        tagged: dict[int, list[tuple[str, str, float]]] = {}
        for (item, _, _), labels, found in zip(batch, tagger.tag(vectors), raw, strict=True):
            entries = [("category", c, 1.0) for c in item.categories]
            entries += [("taxonomy", tag, score) for tag, score in labels]
            if found:
                phrases = clean_phrases(found, item.title,
                                        [*item.categories, *(t for t, _ in labels)],
                                        self._vocab, item.author or "", limit=self.keyphrases)
                entries += [("keyphrase", kw, s) for kw, s in phrases]
            tagged[item.pk] = entries
        return tagged
