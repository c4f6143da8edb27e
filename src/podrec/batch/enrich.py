"""Enrich and generated tags as chunks of items, one task each.

A task gets the database URL and its chunk's item keys: it opens the store itself, loads the
embedder (or generator) by name from its own installed packages (once per worker process),
computes, and writes its results in the same per-batch transactions as an enrich in this
process. So a chunk that finished is stored even when another fails, and a re-run's plan,
which looks for missing or stale vectors, skips it. Chunks are whole multiples of the
embedder's batch, so every vector is computed in the same batches as in this process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from podrec.batch.runner import BatchError, BatchRunner, chunks
from podrec.enrich.embedders import EMBEDDERS, TextEmbedder, make_embedder
from podrec.enrich.pipeline import Enricher, EnrichReport, embedding_text, text_hash
from podrec.records import Item
from podrec.storage import Store

# One store, embedder and generator per worker process, kept between its tasks.
_WORKER: dict[Any, Any] = {}


def task_db_url(url: str) -> tuple[str, bool]:
    """The URL a task opens, and whether tasks must stay on this node. A SQLite file is
    only on this machine: its path is made absolute (a worker's directory is its own) and
    its tasks run here; an in-memory database cannot be shared at all."""
    if not url.startswith("sqlite"):
        return url, False
    path = url.split(":///", 1)[1] if ":///" in url else ""
    if not path or path == ":memory:":
        raise BatchError(f"{url}: an in-memory database cannot be shared with Ray workers; "
                         "use a SQLite file (this machine's cores only) or PostgreSQL")
    return "sqlite:///" + str(Path(path).expanduser().resolve()), True


def embedder_name(embedder: TextEmbedder) -> str:
    """The configured name a worker loads ``embedder`` by."""
    for name, cls in EMBEDDERS.items():
        if cls.model_id == embedder.model_id:
            return name
    raise BatchError(f"embedder {embedder.model_id!r} is not one of {', '.join(EMBEDDERS)}: "
                     "Ray workers load the embedder by name from their installed packages")


def _store(url: str) -> Store:
    key = ("store", url)
    if key not in _WORKER:
        _WORKER[key] = Store(url, migrate=False)
    return _WORKER[key]


class _LabelCache:
    """An embedder whose query vectors of the same texts are computed once per worker: the
    taxonomy's labels are embedded by every chunk's tagger."""

    def __init__(self, embedder: TextEmbedder) -> None:
        self._inner, self._queries = embedder, {}
        self.model_id, self.dim = embedder.model_id, embedder.dim
        self.tag_floor = getattr(embedder, "tag_floor", 0.0)

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self._inner.embed_passages(texts)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        key = tuple(texts)
        if key not in self._queries:
            self._queries[key] = self._inner.embed_queries(texts)
        return self._queries[key]


def _embedder(name: str, batch_size: int) -> TextEmbedder:
    key = ("embedder", name, batch_size)
    if key not in _WORKER:
        _WORKER[key] = _LabelCache(make_embedder(name, batch_size))
    return _WORKER[key]


@dataclass(frozen=True)
class EnrichChunk:
    """One enrich task: these items of this database, embedded and tagged with these
    settings."""

    db_url: str
    embedder: str
    settings: dict[str, Any]
    pks: tuple[int, ...]
    force: bool


class _ChunkEnricher(Enricher):
    """An enricher whose plan is its chunk (the driver planned; the chunk is redone whole,
    which a retried task needs)."""

    def __init__(self, store: Store, embedder: TextEmbedder, pks: tuple[int, ...],
                 **settings: Any) -> None:
        super().__init__(store, embedder, **settings)
        self.pks = pks

    def plan(self, kind: str | None = None, force: bool = False
             ) -> tuple[list[tuple[Item, str, str]], int]:
        items = self.store.items_by_pk(list(self.pks))
        model_id = self.embedder.model_id
        todo = []
        for pk in self.pks:
            item = items.get(pk)
            if item is not None:  # deleted since it was planned: nothing to do
                text = embedding_text(item, self.max_chars)
                todo.append((item, text, text_hash(model_id, text)))
        return todo, 0


def enrich_chunk(task: EnrichChunk) -> dict[str, int]:
    """A Ray task: embed and tag one chunk; its counts."""
    embedder = _embedder(task.embedder, int(task.settings.get("batch_size", 32)))
    enricher = _ChunkEnricher(_store(task.db_url), embedder, task.pks, **task.settings)
    return enricher.run(force=task.force).summary()


def enrich_on_runner(enricher: Enricher, runner: BatchRunner,
                     todo: list[tuple[Item, str, str]], report: EnrichReport, force: bool,
                     chunk_items: int, progress: Callable[[int], None] | None = None,
                     task: Callable[[EnrichChunk], dict[str, int]] = enrich_chunk
                     ) -> EnrichReport:
    """``todo`` (the enricher's plan) as chunk tasks on ``runner``; ``report`` filled in."""
    url, this_node = task_db_url(enricher.store.url)
    name = embedder_name(enricher.embedder)
    settings = {"max_chars": enricher.max_chars, "batch_size": enricher.batch_size,
                "taxonomy_top_k": enricher.taxonomy_top_k,
                "taxonomy_min_score": enricher.taxonomy_min_score,
                "keyphrases": enricher.keyphrases,
                "keyphrase_engine": enricher.keyphrase_engine,
                "keyphrase_threads": enricher.keyphrase_threads,
                # the cluster's workers are the parallelism: no process of their own
                "keyphrase_process_above": 0}
    size = -(-max(chunk_items, 1) // enricher.batch_size) * enricher.batch_size
    tasks = [EnrichChunk(url, name, settings, tuple(item.pk for item, _, _ in part), force)
             for part in chunks(todo, size)]

    def done(_n: int, counts: dict[str, int]) -> None:
        report.embedded += counts["embedded"]
        report.reused += counts["reused"]
        report.tagged += counts["tagged"]
        if progress:
            progress(counts["tagged"])

    runner.map(task, tasks, on_result=done, what="enrich chunks", this_node=this_node)
    return report


# -- generated tags ---------------------------------------------------------------------------

@dataclass(frozen=True)
class TagChunk:
    """One generated-tags task: these items, tagged by the generator ``llm`` configures."""

    db_url: str
    llm: Any  # LLMConfig
    pks: tuple[int, ...]
    topics: int
    labels: bool
    timeout_s: float | None


def tag_chunk(task: TagChunk) -> dict[str, Any]:
    """A Ray task: generated tags for one chunk (cached generations are reused); its report."""
    from podrec.enrich.generated import generate_tags_for
    from podrec.llm import make_generator

    store = _store(task.db_url)
    key = ("generator", task.db_url, task.llm)
    if key not in _WORKER:
        _WORKER[key] = make_generator(task.llm, store)
    items = store.items_by_pk(list(task.pks))
    report = generate_tags_for(store, _WORKER[key], [items[pk] for pk in task.pks
                                                     if pk in items],
                               topics=task.topics, timeout_s=task.timeout_s,
                               labels=task.labels)
    return report.__dict__


def tags_on_runner(runner: BatchRunner, store: Store, llm: Any, items: list[Item],
                   topics: int, labels: bool, timeout_s: float | None, chunk_items: int,
                   progress: Callable[[int], None] | None = None) -> Any:
    """Generated tags for ``items`` as chunk tasks on ``runner``: one ``TagReport``. Each
    task asks for ``llm.threads`` CPUs (what one local model uses)."""
    from podrec.enrich.generated import TagReport

    url, this_node = task_db_url(store.url)
    tasks = [TagChunk(url, llm, tuple(i.pk for i in part), topics, labels, timeout_s)
             for part in chunks(items, chunk_items)]
    total = TagReport()
    start = time.perf_counter()

    def done(_n: int, part: dict[str, Any]) -> None:
        total.items += part["items"]
        total.generated += part["generated"]
        total.cached += part["cached"]
        total.fell_back += part["fell_back"]
        for reason, n in part["reasons"].items():
            total.reasons[reason] = total.reasons.get(reason, 0) + n
        if progress:
            progress(part["items"])

    runner.map(tag_chunk, tasks, on_result=done, what="tag chunks", this_node=this_node,
               num_cpus=float(getattr(llm, "threads", 1)))
    total.seconds = time.perf_counter() - start
    return total
