"""The catalog side of the service: ingest, enrich, and reading items back."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from podrec.config import Config
from podrec.enrich.embedders import TextEmbedder
from podrec.enrich.pipeline import Enricher, EnrichReport, TextLimit, embedding_text
from podrec.ingest.language import LanguageDetector
from podrec.ingest.pipeline import ingest_catalog, ingest_events, ingest_feeds
from podrec.model.base import CatalogData
from podrec.model.content import ContentWeights
from podrec.records import IngestReport, Item
from podrec.service.errors import NotFoundError
from podrec.storage import Store

WEIGHTS_ARTIFACT = "content-weights"
ITEM_ROWS = 10_000  # stored items read at a time when the catalog arrays are built


def catalog_row(i: Item, max_chars: TextLimit) -> tuple[Any, ...]:
    """One item's values in ``CatalogData``'s columns (ids, kinds, titles, categories,
    authors, popularity, languages, explicit, show ids, texts, durations, platforms,
    published), NaN for an unknown number."""
    return (i.id, i.kind, i.title, i.categories, i.author,
            np.nan if i.popularity is None else i.popularity, i.language, i.explicit,
            i.show_id, embedding_text(i, max_chars),
            np.nan if i.duration_s is None else i.duration_s, item_platforms(i.extra),
            np.nan if i.published is None else i.published.timestamp())


def item_platforms(extra: dict[str, Any]) -> list[str] | None:
    """The platforms an item says it is available on (catalog field ``platforms``)."""
    value = extra.get("platforms") if extra else None
    if isinstance(value, str):
        value = [p for p in value.replace(";", ",").split(",")]
    if not isinstance(value, list):
        return None
    names = [str(p).strip().lower() for p in value if str(p).strip()]
    return names or None


class CatalogService:
    """Items in, items out. Every change calls ``changed`` (the model cache's one hook)."""

    def __init__(self, store: Store, config: Config, embedder: Callable[[], TextEmbedder],
                 changed: Callable[[], None]) -> None:
        self.store = store
        self.config = config
        self._embedder = embedder
        self._changed = changed
        self._detector: LanguageDetector | None = None
        self.lock = threading.Lock()  # one ingest or enrich at a time in this process

    @property
    def detector(self) -> LanguageDetector:
        if self._detector is None:
            self._detector = LanguageDetector(self.config.language_whitelist)
        return self._detector

    # -- in ---------------------------------------------------------------------------------
    def ingest_feeds(self, sources: list[str], user_id: str | None = None) -> IngestReport:
        with self.lock:
            report = ingest_feeds(self.store, sources, self.detector, user_id=user_id)
        self._changed()
        return report

    def ingest_catalog(self, path: str | Path, fmt: str | None = None) -> IngestReport:
        with self.lock:
            report = ingest_catalog(self.store, Path(path), fmt, self.detector)
        self._changed()
        return report

    def ingest_events(self, path: str | Path, fmt: str | None = None) -> IngestReport:
        return ingest_events(self.store, Path(path), fmt)

    def enrich(self, kind: str | None = None, force: bool = False,
               progress: Callable[[int], None] | None = None,
               on_total: Callable[[int], None] | None = None, runner: Any = None
               ) -> EnrichReport:
        cfg, tag = self.config.embedder, self.config.tagger
        with self.lock:
            enricher = Enricher(self.store, self._embedder(), max_chars=self.text_limit(),
                                batch_size=cfg.batch_size, taxonomy_top_k=tag.taxonomy_top_k,
                                taxonomy_min_score=tag.taxonomy_min_score,
                                keyphrases=tag.keyphrases,
                                keyphrase_engine=tag.keyphrase_engine,
                                keyphrase_process_above=tag.keyphrase_process_above)
            report = enricher.run(kind=kind, force=force, progress=progress,
                                  on_total=on_total, runner=runner,
                                  chunk_items=self.config.ray.chunk_items)
        self._changed()
        return report

    # -- out --------------------------------------------------------------------------------
    def get_item(self, item_id: str, kind: str | None = None) -> Item:
        item = self.store.get_item(item_id, kind)
        if item is None:
            raise NotFoundError(f"no {kind or 'item'} with id {item_id!r} in the catalog")
        return item

    def item_details(self, item_id: str, kind: str | None = None) -> dict[str, Any]:
        item = self.get_item(item_id, kind)
        return item.to_dict(tags=self.store.tags_for([item.pk])[item.pk])

    def list_items(self, kind: str | None = None, show_id: str | None = None,
                   tag: str | None = None, limit: int | None = None,
                   offset: int = 0) -> list[dict[str, Any]]:
        items = list(self.store.iter_items(kind=kind, show_id=show_id, tag=tag, limit=limit,
                                           offset=offset))
        tags = self.store.tags_for([i.pk for i in items])
        return [i.to_dict(tags=tags[i.pk]) for i in items]

    def tag_counts(self, source: str | None = None, limit: int = 200) -> list[tuple[str, int]]:
        return self.store.tag_counts(source=source, limit=limit)

    def stats(self) -> dict[str, Any]:
        """Counts for the operator view: items per kind, languages, top tags."""
        return {"items": self.store.count_items(), "languages": self.store.language_counts(),
                "tags": [{"tag": t, "count": n} for t, n in self.store.tag_counts(limit=30)],
                "users": self.store.count_users()}

    def data(self, model_id: str, kind: str | None = "show") -> CatalogData:
        """The embedded items of one kind as arrays (what models are fit on). Items are read
        ``ITEM_ROWS`` at a time, so that only their columns are held, not every stored item
        (descriptions, extras) at once: at 100k episodes that was the catalog's load peak."""
        pks, vectors = self.store.load_vectors(model_id, kind=kind)
        if not len(pks):
            raise NotFoundError(
                f"no {kind or 'item'} has a {model_id} embedding yet: run `podrec enrich`")
        max_chars = self.text_limit()
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(pks), ITEM_ROWS):
            part = pks[start:start + ITEM_ROWS].tolist()
            items = self.store.items_by_pk(part)
            rows += [catalog_row(items[pk], max_chars) for pk in part]
            del items
        (ids, kinds, titles, categories, authors, popularity, languages, explicit, show_ids,
         texts, durations, platforms, published) = (list(c) for c in zip(*rows, strict=True))
        del rows
        return CatalogData(
            ids=ids, kinds=kinds, vectors=vectors, titles=titles, categories=categories,
            authors=authors, popularity=np.array(popularity, dtype=np.float32),
            languages=languages, pks=pks, explicit=explicit, show_ids=show_ids, texts=texts,
            durations=np.array(durations, dtype=np.float32), platforms=platforms,
            published=np.array(published, dtype=np.float64))

    def text_limit(self) -> dict[str, int]:
        """Description characters embedded per kind (``[embedder]`` max_chars and
        episode_max_chars)."""
        cfg = self.config.embedder
        return {"show": cfg.max_chars, "episode": cfg.episode_max_chars}

    def content_weights(self) -> ContentWeights:
        """Weights learned on this store (``evaluate-similar --save-weights``), else config's."""
        saved = self.store.get_artifact(WEIGHTS_ARTIFACT)
        if saved is not None:
            return ContentWeights(**saved[0]["weights"])
        r = self.config.recommend
        return ContentWeights(cosine=r.weight_cosine, lexical=r.weight_lexical,
                              genre=r.weight_genre, author=r.weight_author,
                              popularity=r.weight_popularity, expand_k=r.expand_k,
                              expand_weight=r.expand_weight)
