"""The service's fitted models, owned in one place and dropped by one change hook.

Per kind of item: the content model (similar items, onboarding, explanations), the served
model (the newest trained artefact, else the fallback) and the pipeline over them, plus the
result cards of each fitted content model. ``invalidate`` is the one hook every change
calls; ``refresh`` compares the store's catalog version (items, embeddings, tags, artefacts)
at most once a second, so a change made by another process (ingest, enrich, ``podrec
train``) reaches this one too. Fits and drops share one lock: a model fitted from old data
cannot outlive a drop. The catalog's arrays and the content arrays are loaded from the catalog
cache (service/catalog_cache.py) when this catalog version was saved there by any process.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from podrec.config import Config
from podrec.enrich.embedders import QueryVectors, TextEmbedder
from podrec.index import choose_kind
from podrec.index.catalog_rows import CatalogRowIndex
from podrec.index.persist import StoredIndex
from podrec.llm.factory import make_generator
from podrec.model.base import CatalogData, Recommender
from podrec.model.collaborative import PopularityModel
from podrec.model.content import ContentModel, content_arrays
from podrec.model.hybrid import HybridModel, parts_of
from podrec.model.profile import ProfileModel
from podrec.recommend.candidates import CandidateSources
from podrec.recommend.history import HistoryBuilder
from podrec.recommend.pipeline import RecommendPipeline
from podrec.recommend.results import Card
from podrec.service.cards import CardCache
from podrec.service.catalog import CatalogService
from podrec.service.catalog_cache import TEXTS, CatalogCache, SavedTexts, cache_root
from podrec.service.intents import IntentReader
from podrec.service.model_files import ModelFiles
from podrec.service.writer import GenerationWriter
from podrec.storage import Store
from podrec.train.artifacts import ServedModel, load_model
from podrec.train.trainer import FALLBACK_BLEND
from podrec.written import CatalogTitles

VERSION_CHECK_SECONDS = 1.0
# catalogs up to this size have every result card read when their pipeline is built
PREFETCH_CARDS = 20_000
# catalogs up to this size have their titles looked up in written sentences
TITLE_CHECK = 200_000


def release_freed() -> None:
    """Hand freed heap memory back to the system. Loading a stored index or model reads and
    copies it several times over; glibc keeps the freed pages in the process (bench_memory.py:
    80 of the 130 MB a 10k-episode worker grew by while loading its index), so a worker's RSS
    would carry them for its whole life. Not glibc (no ``malloc_trim``): nothing to do."""
    global _TRIM
    if _TRIM is None:
        try:
            _TRIM = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):
            _TRIM = False
    if _TRIM:
        _TRIM(0)


_TRIM: Any = None


class ModelCache:
    """Fitted models per kind, kept until the catalog, its tags or the trained model
    change."""

    def __init__(self, store: Store, config: Config, catalog: CatalogService,
                 embedder: Callable[[], TextEmbedder], builder: HistoryBuilder,
                 on_fit: Callable[[], None] | None = None,
                 model_id: Callable[[], str] | None = None) -> None:
        self.store = store
        # the embedder's id without loading its model (reading stored vectors needs only it)
        self._model_id = model_id
        self.config = config
        self.catalog = catalog
        self._embedder = embedder
        self.builder = builder
        self.on_fit = on_fit
        self.lock = threading.RLock()
        self._data: dict[str | None, CatalogData] = {}
        self._content: dict[tuple[str | None, str], ContentModel] = {}
        self._indexes: dict[tuple[str | None, str], CatalogRowIndex | None] = {}
        self._pipelines: dict[str, RecommendPipeline] = {}
        self._profiles: dict[str, ProfileModel] = {}
        # result cards, within ``[recommend] card_cache_mb`` (service/cards.py)
        self._cards = CardCache(config.recommend.card_cache_mb * 2**20)
        self._version: tuple[Any, ...] | None = None
        self._checked = 0.0
        self.generation = 0  # bumped whenever the fitted models are dropped
        self._intents: IntentReader | None = None
        self._generator: Any = None
        self._writer: GenerationWriter | None = None
        self._titles: dict[str | None, tuple[CatalogData, CatalogTitles | None]] = {}
        self._queries = QueryVectors()  # a listener's words are embedded once
        self._disk: tuple[str, CatalogCache | None] | None = None
        self._files: ModelFiles | None = None

    @property
    def model_id(self) -> str:
        if self._model_id is not None:
            try:
                return self._model_id()
            except KeyError:  # an unknown embedder name: loading it says so clearly
                pass
        return self._embedder().model_id

    # -- the one change hook ---------------------------------------------------------------
    def invalidate(self) -> None:
        """Drop every fitted model (the next request refits from the store)."""
        with self.lock:
            self._data.clear()
            self._content.clear()
            self._indexes.clear()
            self._pipelines.clear()
            self._profiles.clear()
            self._cards.clear()
            self.generation += 1

    def refresh(self, force: bool = False) -> None:
        """Drop the models when another process changed what they are built from."""
        now = time.monotonic()
        if not force and now - self._checked < VERSION_CHECK_SECONDS:
            return
        with self.lock:
            if not force and now - self._checked < VERSION_CHECK_SECONDS:
                return
            version = self.store.catalog_version()
            self._checked = time.monotonic()
            if self._version is not None and version != self._version:
                self.invalidate()
            self._version = version

    # -- fitted models ---------------------------------------------------------------------
    def data(self, kind: str | None) -> CatalogData:
        with self.lock:
            if self._version is None:  # the baseline, taken before anything is fitted
                self._version = self.store.catalog_version()
                self._checked = time.monotonic()
            if kind not in self._data:
                self._data[kind] = self._catalog_data(kind)
            return self._data[kind]

    def _catalog_data(self, kind: str | None) -> CatalogData:
        """The catalog's arrays with their content arrays: loaded from the catalog cache
        when this catalog version was saved there, else built from the store and saved
        (unless the catalog changed while they were built)."""
        cache = self.disk_cache
        model_id = self.model_id
        if cache is None:
            return self.catalog.data(model_id, kind)
        version = self.store.catalog_version()
        key = cache.key(model_id, kind, self.catalog.text_limit(), version)
        data = cache.load(model_id, kind, key)
        if data is not None:
            return data
        data = self.catalog.data(model_id, kind)
        arrays = content_arrays(data)
        if self.store.catalog_version() == version:
            saved = cache.save(model_id, kind, key, data, arrays)
            if saved is not None and (saved / TEXTS).is_file():
                # built and saved: the texts are read back from the set if ever needed
                data.texts = SavedTexts(saved / TEXTS, len(data))  # type: ignore[assignment]
        return data

    @property
    def disk_cache(self) -> CatalogCache | None:
        """The catalog cache of this store (``[index] catalog_cache``), or None."""
        cfg = self.config.index
        if not cfg.catalog_cache:
            return None
        if self._disk is None or self._disk[0] != cfg.cache_dir:
            root = cache_root(self.store.url, cfg.cache_dir)
            self._disk = (cfg.cache_dir, CatalogCache(root) if root is not None else None)
        return self._disk[1]

    @property
    def model_files(self) -> ModelFiles | None:
        """Where trained models are unpacked and memory-mapped (service/model_files.py):
        beside the catalog cache, and on with it."""
        cache = self.disk_cache
        if cache is None:
            return None
        if self._files is None or self._files.root != cache.root / "models":
            self._files = ModelFiles(cache.root / "models", self.config.train.keep_versions)
        return self._files

    def content(self, kind: str | None = "show", metric: str | None = None) -> ContentModel:
        metric = metric or self.config.recommend.metric
        with self.lock:
            key = (kind, metric)
            if key not in self._content:
                data = self.data(kind)
                self._content[key] = ContentModel(self.catalog.content_weights(),
                                                  metric=metric,
                                                  vector_index=self._vector_index(data, kind,
                                                                                  metric),
                                                  pairwise_max_items=self.config.recommend
                                                  .pairwise_max_items).fit(data)
                self._fitted()
            return self._content[key]

    def pipeline(self, kind: str = "show") -> RecommendPipeline:
        with self.lock:
            if kind not in self._pipelines:
                served = self.served(kind)
                content = self._explaining_content(served.model, kind)
                r = self.config.recommend
                sources = None
                if len(content.catalog) >= r.candidates_above:
                    sources = CandidateSources(parts_of(served.model), content,
                                               r.candidates_per_source)
                self._pipelines[kind] = RecommendPipeline(
                    served, content, self.builder, self._embed,
                    lambda pks, c=content: self.cards(c, pks), r.k, sources,
                    self.intents().read, r.balance, r.topic_balance)
                if content.catalog.pks is not None and len(content.catalog) <= PREFETCH_CARDS:
                    self.cards(content, content.catalog.pks.tolist())  # two reads, not many
                release_freed()  # what loading the trained model and the catalog freed
                self._fitted()
            return self._pipelines[kind]

    def intents(self) -> IntentReader:
        """The reader of requests into intents (one per worker; its generator loads its
        model on first use)."""
        if self._intents is None:
            self._intents = IntentReader(self.writer())
        return self._intents

    def generator(self) -> Any:
        """The worker's one generator (intents, reasons, summaries share the loaded model)."""
        with self.lock:
            if self._generator is None:
                self._generator = make_generator(self.config, self.store)
            return self._generator

    def close(self) -> None:
        """Stop the background writer (its job in progress cut short) and free the model."""
        with self.lock:
            writer, generator = self._writer, self._generator
        if writer is not None:
            writer.stop()
        if generator is not None:
            generator.close()

    def writer(self) -> GenerationWriter:
        """Written reasons and summaries: cached, live with an endpoint, else background."""
        with self.lock:
            if self._writer is None:
                self._writer = GenerationWriter(self.generator(),
                                                self.config.llm.request_timeout_s)
            return self._writer

    def titles(self, kind: str | None) -> CatalogTitles | None:
        """The catalog's titles a written sentence could name (None past ``TITLE_CHECK``
        items: quoted and capitalised names are still checked)."""
        data = self.data(kind)
        with self.lock:
            known = self._titles.get(kind)
            if known is None or known[0] is not data:
                known = (data, CatalogTitles(data.titles) if len(data) <= TITLE_CHECK else None)
                self._titles[kind] = known
            return known[1]

    def profile_model(self, kind: str = "show") -> ProfileModel:
        """The served profile part, else one over the content model (for profiles)."""
        with self.lock:
            if kind not in self._profiles:
                served = self.pipeline(kind).profile
                self._profiles[kind] = served or self._fallback_profile(kind)
            return self._profiles[kind]

    def served(self, kind: str) -> ServedModel:
        """The newest trained model of ``kind`` on today's catalog, else the fallback."""
        data = self.data(kind)
        loaded = load_model(self.store, kind, data, self._configure,
                            self._vector_index(data, kind, "cosine"), self.model_files)
        if loaded is not None:
            return loaded
        profile = self._fallback_profile(kind)
        pop = PopularityModel().fit(data)  # no training yet: the catalog's own popularity
        hybrid = HybridModel.assembled({"profile": profile, "pop": pop}, FALLBACK_BLEND,
                                       np.zeros(len(data), bool))
        return ServedModel(kind, hybrid, None, {
            "fallback": "no trained model in the store (run `podrec train`): serving the "
                        "profile (content) plus popularity"})

    # -- helpers ---------------------------------------------------------------------------
    def _vector_index(self, data: CatalogData, kind: str | None, metric: str
                      ) -> CatalogRowIndex | None:
        """The approximate index of a large catalog (``[index]``), kept in the store and
        brought up to date in place; None: exact search (built by the model)."""
        cfg = self.config.index
        if choose_kind(len(data), cfg.kind, cfg.ann_threshold) != "ann" or data.pks is None:
            return None
        with self.lock:  # one per catalog and metric: the served parts and search share it
            if (kind, metric) not in self._indexes:
                stored = StoredIndex(self.store, self.model_id, kind, cfg, metric)
                stored.refresh(data.pks, data.vectors)
                self._indexes[(kind, metric)] = CatalogRowIndex(stored, data.pks)
                release_freed()  # the stored index's bytes, read and copied while loading
            return self._indexes[(kind, metric)]

    def _configure(self, name: str, model: Recommender) -> Recommender:
        """Serving settings of a rebuilt part: the configured context and push weights, and
        up to what catalog size content scores come from pairwise scores."""
        if isinstance(model, ProfileModel):
            self._configured_profile(model)
            model.content.pairwise_max_items = self.config.recommend.pairwise_max_items
        if isinstance(model, ContentModel):
            model.pairwise_max_items = self.config.recommend.pairwise_max_items
        return model

    def _configured_profile(self, model: ProfileModel) -> ProfileModel:
        r = self.config.recommend
        model.context_weight = r.context_weight
        model.duration_weight = r.duration_weight
        model.intent_weight = r.intent_weight
        model.negative_weight = r.negative_weight
        return model

    def _fallback_profile(self, kind: str) -> ProfileModel:
        """The configured profile over the configured content model (no training yet)."""
        r = self.config.recommend
        return self._configured_profile(ProfileModel(
            half_life_days=r.half_life_days, max_interests=r.max_interests,
            distance_threshold=r.interest_distance, share_weight=r.interest_share_weight
        )).fit_from(self.content(kind))

    def _explaining_content(self, model: Recommender, kind: str) -> ContentModel:
        """The content model explanations measure seeds with: the served profile's own."""
        for part in parts_of(model).values():
            if isinstance(part, ProfileModel):
                return part.content
            if isinstance(part, ContentModel):
                return part
        return self.content(kind)

    def _embed(self, texts: list[str]) -> np.ndarray:
        return self._queries.embed(self._embedder(), texts)

    def _fitted(self) -> None:
        if self.on_fit is not None:
            self.on_fit()

    def cards(self, model: ContentModel, pks: list[int]) -> dict[int, Card]:
        """Image, duration and tags of items, read once per fitted model and kept within
        ``card_cache_mb``: a model is refitted whenever the catalog or its tags change, so
        its cards cannot go stale."""
        return self._cards.get(model, pks, self._read_cards)

    def _read_cards(self, pks: list[int]) -> dict[int, Card]:
        items = self.store.items_by_pk(pks)
        tags = self.store.tags_for(pks)
        out = {}
        for pk in pks:
            item = items.get(pk)
            out[pk] = Card(item.image if item else None, item.duration_s if item else None,
                           tuple([t["tag"] for t in tags.get(pk, [])
                                  if t["source"] != "category"][:6]))
        return out
