"""``Podrec``: the Python API, a thin facade over the service's components.

- ``catalog`` (``CatalogService``): ingest, enrich, items;
- ``listeners`` (``ListenerService``): accounts, people, events, profiles;
- ``models`` (``ModelCache``): fitted and trained models, dropped by one change hook;
- training (``podrec.train``) and recommending (``podrec.recommend.pipeline``).

The CLI, the REST API and the web page call these methods, and nothing below them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from podrec.config import Config, load_config
from podrec.enrich.embedders import TextEmbedder, make_embedder
from podrec.enrich.pipeline import EnrichReport
from podrec.model.base import CatalogData, Scored
from podrec.model.content import ContentModel, ContentWeights
from podrec.model.profile import ProfileModel
from podrec.privacy.ids import ListenerIds
from podrec.privacy.noise import Releases
from podrec.recommend.history import HistoryBuilder
from podrec.recommend.pipeline import RecommendPipeline
from podrec.recommend.request import RecommendRequest
from podrec.recommend.results import Recommendation
from podrec.records import EventRecord, IngestReport, Item
from podrec.service.catalog import CatalogService
from podrec.service.errors import NotFoundError
from podrec.service.listeners import ListenerService
from podrec.service.models import ModelCache
from podrec.service.writer import summarise, word_reasons
from podrec.storage import Store
from podrec.train.trainer import Trainer, TrainReport

REQUEST_FIELDS = {f.name for f in fields(RecommendRequest)}


class Podrec:
    """podrec over one database: ingest, enrich, train, inspect, recommend."""

    def __init__(self, config: Config | None = None, database_url: str | None = None,
                 embedder: TextEmbedder | None = None,
                 on_fit: Callable[[], None] | None = None) -> None:
        self._config = config or load_config()
        self.store = Store(database_url or self.config.database_url,
                           id_key=self._config.privacy.id_key)
        self._embedder = embedder
        self._embed_lock = threading.Lock()
        self.builder = HistoryBuilder(self._config.event_weights.as_dict(),
                                      self._config.recommend.half_life_days)
        self.catalog = CatalogService(self.store, self._config, self._get_embedder,
                                      lambda: self.models.invalidate())
        self.models = ModelCache(self.store, self._config, self.catalog, self._get_embedder,
                                 self.builder, on_fit, lambda: self.embedder_model_id)
        self.listeners = ListenerService(self.store, self.builder)

    @property
    def config(self) -> Config:
        return self._config

    @config.setter
    def config(self, config: Config) -> None:
        """A new configuration reaches every component; fitted models are dropped."""
        self._config = self.catalog.config = self.models.config = config
        self.store.ids = ListenerIds(config.privacy.id_key)
        self.builder.weights = config.event_weights.as_dict()
        self.builder.half_life_days = config.recommend.half_life_days
        self.models.invalidate()

    # -- components, loaded on first use ---------------------------------------------------
    def _get_embedder(self) -> TextEmbedder:
        if self._embedder is None:
            with self._embed_lock:
                if self._embedder is None:
                    cfg = self.config.embedder
                    self._embedder = make_embedder(cfg.name, batch_size=cfg.batch_size)
        return self._embedder

    @property
    def embedder(self) -> TextEmbedder:
        return self._get_embedder()

    @property
    def embedder_model_id(self) -> str:
        if self._embedder is not None:
            return self._embedder.model_id
        from podrec.enrich.embedders import EMBEDDERS

        return EMBEDDERS[self.config.embedder.name].model_id

    def close(self) -> None:
        self.models.close()
        self.store.close()

    # -- catalog ----------------------------------------------------------------------------
    def ingest_feeds(self, sources: list[str], user_id: str | None = None) -> IngestReport:
        return self.catalog.ingest_feeds(sources, user_id)

    def ingest_catalog(self, path: str | Path, fmt: str | None = None) -> IngestReport:
        return self.catalog.ingest_catalog(path, fmt)

    def ingest_events(self, path: str | Path, fmt: str | None = None) -> IngestReport:
        return self.catalog.ingest_events(path, fmt)

    def enrich(self, kind: str | None = None, force: bool = False,
               progress: Callable[[int], None] | None = None,
               on_total: Callable[[int], None] | None = None,
               runner: Any = None) -> EnrichReport:
        """Embed and tag new or changed items; ``runner``: as chunk tasks (``podrec.batch``)."""
        return self.catalog.enrich(kind, force, progress, on_total, runner)

    def get_item(self, item_id: str, kind: str | None = None) -> Item:
        return self.catalog.get_item(item_id, kind)

    def item_details(self, item_id: str, kind: str | None = None) -> dict[str, Any]:
        return self.catalog.item_details(item_id, kind)

    def list_items(self, kind: str | None = None, show_id: str | None = None,
                   tag: str | None = None, limit: int | None = None,
                   offset: int = 0) -> list[dict[str, Any]]:
        return self.catalog.list_items(kind, show_id, tag, limit, offset)

    def catalog_stats(self, published: bool = False) -> dict[str, Any]:
        """Counts of the catalog and of listeners; ``published`` (the API): the listener
        count with Laplace noise when ``privacy.dp_epsilon`` is set."""
        stats = self.catalog.stats()
        epsilon = self.config.privacy.dp_epsilon
        if published and epsilon > 0:
            stats["users"] = Releases(self.store, epsilon).count("users", stats["users"])
            stats["dp_epsilon"] = epsilon
        return stats

    def content_weights(self) -> ContentWeights:
        return self.catalog.content_weights()

    def catalog_data(self, kind: str | None = "show") -> CatalogData:
        """The embedded items of one kind as arrays (what models are fit on)."""
        return self.models.data(kind)

    def model(self, kind: str | None = "show", metric: str | None = None) -> ContentModel:
        """The fitted content model of one kind (similar items, onboarding)."""
        return self.models.content(kind, metric)

    def profile_model(self, kind: str = "show") -> ProfileModel:
        return self.models.profile_model(kind)

    # -- listeners --------------------------------------------------------------------------
    def create_user(self, user_id: str) -> bool:
        return self.listeners.create(user_id)

    def link_users(self, user_ids: list[str], person_id: str | None = None) -> str:
        return self.listeners.link(user_ids, person_id)

    def export_user(self, user_id: str) -> dict[str, Any]:
        return self.listeners.export(user_id)

    def delete_user(self, user_id: str) -> dict[str, Any]:
        """Delete a listener and every trace of them (``ListenerService.delete``)."""
        return self.listeners.delete(user_id)

    def listener_key(self, user_id: str) -> str:
        """The listener's id as stored (its keyed hash when ``privacy.id_key`` is set)."""
        return self.store.ids.stored(user_id)

    def purge(self, retain_days: float | None = None) -> dict[str, Any]:
        """Delete events older than ``retain_days`` (default ``privacy.retain_days``; 0:
        nothing is purged); what went and the cut-off."""
        from datetime import UTC, timedelta

        days = self.config.privacy.retain_days if retain_days is None else retain_days
        if days < 0:
            raise ValueError(f"retain_days must be 0 or more, got {days}")
        if not days:
            return {"events": 0, "listeners": 0, "before": None, "retain_days": 0}
        before = datetime.now(UTC) - timedelta(days=days)
        gone = self.store.purge_events(before)
        return gone | {"before": before.isoformat(), "retain_days": days}

    def add_events(self, rows: list[dict[str, Any]], source: str = "request") -> IngestReport:
        return self.listeners.add_events(rows, source)

    def listener_events(self, user_id: str) -> list[EventRecord]:
        return self.listeners.events(user_id)

    def user_texts(self, user_id: str, limit: int = 5,
                   events: list[EventRecord] | None = None) -> list[str]:
        return self.listeners.texts(user_id, limit, events)

    def profile(self, user_id: str, kind: str = "show",
                now: datetime | None = None) -> dict[str, Any]:
        def title_of(item_id: str) -> str | None:
            item = self.store.get_item(item_id)
            return item.title if item else None

        return self.listeners.profile(user_id, self.models.profile_model(kind), now, title_of,
                                      lambda facts: self._summarise(facts, owner=user_id))

    def _summarise(self, facts: list[Any], wait: bool | None = None,
                   owner: str | None = None) -> list[dict[str, Any]]:
        """Interest summaries as the request path allows (``llm.summaries``), of the
        listener ``owner``."""
        writer = self.models.writer() if self.config.llm.summaries else None
        return summarise(writer, facts, wait, owner)

    def summarise(self, user_ids: list[str] | None = None, kind: str = "show",
                  progress: Callable[[str], None] | None = None) -> dict[str, int]:
        """Write the interest summaries of listeners (default: all) now, so profiles show
        them at once; counts of interests by outcome."""
        pmodel = self.models.profile_model(kind)
        counts: dict[str, int] = {}
        for user_id in user_ids if user_ids is not None else self.store.list_users():
            profile = self.listeners.profile(
                user_id, pmodel, summarise=lambda f, u=user_id: self._summarise(f, True, u)
                if self.config.llm.summaries else summarise(None, f))
            for it in profile["interests"]:
                outcome = it["summary_source"] if it["summary_fallback"] is None \
                    else it["summary_fallback"].split(" ")[0]
                counts[outcome] = counts.get(outcome, 0) + 1
            if progress is not None:
                progress(user_id)
        return counts

    # -- training ---------------------------------------------------------------------------
    def train(self, kind: str = "show", progress: Callable[[str], None] | None = None,
              runner: Any = None, **overrides: Any) -> TrainReport:
        """Choose and fit the served model of ``kind`` on the stored events (``[train]``,
        with ``overrides`` of its keys) and save it as the newest version. ``runner``:
        where grid points and fits run (``podrec.batch``; default: this process)."""
        from dataclasses import replace

        config = replace(self.config.train, **overrides) if overrides else self.config.train
        trainer = Trainer(self.store, config, self.config.event_weights.as_dict(),
                          self.embedder, self.config.recommend.half_life_days)
        if self.config.privacy.dp_epsilon > 0:
            trainer.dp = Releases(self.store, self.config.privacy.dp_epsilon)
        trainer.runner = runner
        report = trainer.train(self.models.data(kind), kind, progress)
        self.models.invalidate()
        return report

    def served_model(self, kind: str = "show") -> dict[str, Any]:
        """What is served for ``kind``: the trained version (None: the fallback) and its meta."""
        served = self.models.pipeline(kind).served
        return {"kind": kind, "version": served.version, "fallback": served.meta.get("fallback"),
                "meta": served.meta}

    # -- recommend --------------------------------------------------------------------------
    def recommend(self, request: RecommendRequest | None = None, /, **fields_: Any
                  ) -> list[Recommendation]:
        """Recommendations for a ``RecommendRequest`` (or its fields as keywords): a known
        listener's history, seed items and/or free text, through the served model."""
        if request is None:
            unknown = set(fields_) - REQUEST_FIELDS
            if unknown:
                raise TypeError(f"unknown request field(s): {', '.join(sorted(unknown))}")
            request = RecommendRequest(**fields_)
        self.models.refresh()
        pipeline = self.models.pipeline(request.kind)
        request, events = self._listener_of(request, pipeline)
        results = pipeline.recommend(request, events)
        self._worded(request, events, results)
        return results

    def recommend_many(self, requests: Sequence[RecommendRequest]
                       ) -> list[list[Recommendation] | Exception]:
        """``recommend`` for several requests at once (a server's concurrent ones): the same
        lists, with the served model scoring the listeners together. Each request's list, or
        the error ``recommend`` would have raised for it, in order."""
        self.models.refresh()
        out: list[list[Recommendation] | Exception] = [[] for _ in requests]
        kinds: dict[str, list[tuple[int, RecommendRequest, list[EventRecord]]]] = {}
        for i, request in enumerate(requests):
            try:
                request, events = self._listener_of(request, self.models.pipeline(request.kind))
            except Exception as exc:  # noqa: BLE001 - that request's answer, not the others'
                out[i] = exc
                continue
            kinds.setdefault(request.kind, []).append((i, request, events))
        for kind, group in kinds.items():
            answers = self.models.pipeline(kind).recommend_many(
                [r for _, r, _ in group], [e for _, _, e in group])
            for (i, request, events), answer in zip(group, answers, strict=True):
                if not isinstance(answer, Exception):
                    try:
                        self._worded(request, events, answer)
                    except Exception as exc:  # noqa: BLE001
                        answer = exc
                out[i] = answer
        return out

    def _listener_of(self, request: RecommendRequest, pipeline: RecommendPipeline
                     ) -> tuple[RecommendRequest, list[EventRecord]]:
        """The request with its listener as stored, and their events; a seed that is not in
        the catalog is an error."""
        if request.user_id:  # as stored: what trained models know the listener by
            request = replace(request, user_id=self.listener_key(request.user_id))
        events = self.listeners.events(request.user_id) if request.user_id else []
        for sid in request.seeds:
            if pipeline.catalog.row_of(sid) is None and self.store.get_item(sid) is None:
                raise NotFoundError(f"seed {sid!r} is not in the catalog")
        return request, events

    def _worded(self, request: RecommendRequest, events: list[EventRecord],
                results: list[Recommendation]) -> None:
        """Reasons in words on an explained list."""
        if request.explain:
            said = self.listeners.texts(request.user_id or "", events=events)
            words = " ".join(t for t in (request.query, *said) if t) or None
            writer = self.models.writer() if self.config.llm.reasons else None
            word_reasons(writer, results, words, self.models.titles(request.kind),
                         owner=request.user_id)

    def read_intent(self, text: str, wait: bool = False) -> Any:
        """What ``text`` asks for (topics, exclusions, length, language, kind, mood), as a
        list request reads it. ``wait``: let a local model write its reading now (it is
        otherwise written in the background for the next request) and return that."""
        reader = self.models.intents()
        found = reader.read(text)
        if not (wait and found.fell_back == "pending"):
            return found
        self.models.writer().wait()  # a reading queued by a list just asked for
        return reader.read(text, wait=True)  # from the cache now, else written here

    def search(self, text: str, k: int | None = None, kind: str = "show",
               languages: list[str] | None = None) -> list[Recommendation]:
        """Semantic search: items whose meaning is closest to ``text`` (any language)."""
        return self.recommend(RecommendRequest.of_query(text, k, kind, languages))

    def similar(self, item_id: str, k: int | None = None, metric: str | None = None,
                kind: str | None = None) -> list[Recommendation]:
        """Items most like ``item_id`` (of its own kind)."""
        item = self.get_item(item_id, kind)
        model = self.models.content(item.kind, metric)
        row = model.catalog.row_of(item.id, item.kind)
        if row is None:
            raise NotFoundError(f"{item.kind} {item_id!r} has no embedding yet: run "
                                "`podrec enrich`")
        return self._results(model, model.similar_items(row, k or self.config.recommend.k))

    def onboarding(self, k: int = 12, languages: list[str] | None = None
                   ) -> list[Recommendation]:
        """Popular shows to pick from on day one, spread over genres: the most popular show
        of each genre in turn, most popular genres first."""
        from podrec.recommend.filters import filter_mask

        model = self.models.content("show")
        c = model.catalog
        mask = filter_mask(c, languages or ())
        pop = np.nan_to_num(c.popularity, nan=0.0)
        order = np.argsort(-pop, kind="stable")
        if mask is not None:
            order = order[mask[order]]
        picked: list[int] = []
        used: set[str] = set()
        for r in order:  # first pass: one show per genre
            genre = (c.categories[r] or ["(none)"])[0]
            if genre not in used:
                used.add(genre)
                picked.append(int(r))
            if len(picked) >= k:
                break
        for r in order:  # then fill with the most popular of the rest
            if len(picked) >= k:
                break
            if int(r) not in picked:
                picked.append(int(r))
        picked.sort(key=lambda r: -pop[r])
        rows = np.array(picked, dtype=np.int64)
        return self._results(model, Scored(rows, pop[rows],
                                           [{"popularity": float(pop[r])} for r in rows]))

    def _results(self, model: ContentModel, scored: Scored) -> list[Recommendation]:
        c = model.catalog
        cards = self.models.cards(model, [int(c.pks[r]) for r in scored.rows])
        out = []
        for r, s, comp in zip(scored.rows, scored.scores, scored.components, strict=True):
            card = cards[int(c.pks[r])]
            out.append(Recommendation(
                id=c.ids[r], kind=c.kinds[r], title=c.titles[r], score=float(s),
                author=c.authors[r], categories=c.categories[r], language=c.languages[r],
                components=comp, show_id=c.show_ids[r], image=card.image,
                duration_s=card.duration_s, tags=list(card.tags)))
        return out

    # -- serving ----------------------------------------------------------------------------
    @property
    def generation(self) -> int:
        return self.models.generation

    def refresh(self, force: bool = False) -> None:
        self.models.refresh(force)

    def drop_models(self) -> None:
        self.models.invalidate()

    def warm(self) -> None:
        """Load the embedder and build the show pipeline now, not on the first request."""
        try:
            self.models.pipeline("show")
        except NotFoundError:
            pass
        self.embedder.embed_queries(["warm up"])

    # -- for the server ---------------------------------------------------------------------
    @property
    def dialect(self) -> str:
        """The database's kind: ``sqlite`` or ``postgresql``."""
        return self.store.engine.dialect.name

    @property
    def database_url(self) -> str:
        return self.store.url

    def item_counts(self) -> dict[str, int]:
        """Stored items per kind (one read: what /health answers with)."""
        return self.store.count_items()

    def kinds_with_items(self) -> list[str]:
        """The kinds of item stored (what a scheduled training trains)."""
        counts = self.item_counts()
        return [k for k in ("show", "episode") if counts.get(k)]

    def ingest_file(self, path: str | Path, fmt: str | None = None) -> IngestReport:
        """A feed or OPML file (by ``fmt`` or suffix) to feed ingest, else catalog ingest."""
        from podrec.ingest.fetch import is_feed_file

        path = Path(path)
        if is_feed_file(path, fmt):
            return self.ingest_feeds([str(path)])
        return self.ingest_catalog(path, fmt)

    def tag_counts(self, source: str | None = None, limit: int = 200
                   ) -> list[tuple[str, int]]:
        return self.catalog.tag_counts(source, limit)

    def user_exists(self, user_id: str) -> bool:
        return self.listeners.exists(user_id)

    def listener_version(self, user_id: str) -> tuple[str, int, int] | None:
        """What a kept list of ``user_id`` is keyed by; None: no such listener."""
        return self.listeners.version(user_id)

    def person_of(self, user_id: str) -> str | None:
        return self.listeners.person(user_id)

    def linked_accounts(self, user_id: str) -> list[str]:
        return self.listeners.accounts(user_id)

    def model_versions(self, kind: str = "show") -> list[dict[str, Any]]:
        """The stored trained versions of ``kind``, newest first: version, created, meta."""
        from podrec.train.artifacts import artifact_prefix

        prefix = artifact_prefix(kind)
        return [{"version": meta.get("version") or name.removeprefix(prefix),
                 "created": created, "meta": meta}
                for name, created, meta in self.store.artifact_versions(prefix)]
