"""The Python API: one object over the store, the embedder and the models.

The CLI (and later the REST API) are thin layers over ``Podrec``; everything they can do,
Python can do with the same names.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from podrec.config import Config, load_config
from podrec.enrich.embedders import TextEmbedder, make_embedder
from podrec.enrich.pipeline import Enricher, EnrichReport, embedding_text
from podrec.ingest.language import LanguageDetector
from podrec.ingest.pipeline import ingest_catalog, ingest_events, ingest_feeds
from podrec.model.base import CatalogData, Scored
from podrec.model.content import ContentModel, ContentWeights
from podrec.model.profile import ProfileModel
from podrec.profile.interests import HistoryItem, Interest
from podrec.recommend.context import RequestContext, duration_fit
from podrec.recommend.explain import ContextNote
from podrec.records import EventRecord, IngestReport, Item
from podrec.storage import Store

# Event types that say a listener wants more like this item, with their seed weight.
POSITIVE_EVENTS = {"subscribe": 1.0, "complete": 1.0, "like": 1.0, "play": 0.5,
                   "rate": 0.5, "review": 0.5}
NEGATIVE_EVENTS = {"unsubscribe", "dislike", "skip"}
WEIGHTS_ARTIFACT = "content-weights"


@dataclass
class HistoryEvent:
    """A listener's latest positive word on one item."""

    item_id: str
    weight: float
    event: str
    time: float | None = None
    hour: int | None = None
    weekday: int | None = None
    device: str | None = None

    def at(self, row: int, weight: float | None = None) -> HistoryItem:
        """This event as the profiler sees it: on catalog row ``row``."""
        return HistoryItem(row, self.weight if weight is None else weight, self.time,
                           self.hour, self.weekday, self.device)


def _platforms(extra: dict[str, Any]) -> list[str] | None:
    """The platforms an item says it is available on (catalog field ``platforms``)."""
    value = extra.get("platforms") if extra else None
    if isinstance(value, str):
        value = [p for p in value.replace(";", ",").split(",")]
    if not isinstance(value, list):
        return None
    names = [str(p).strip().lower() for p in value if str(p).strip()]
    return names or None


def _on_device(device: str) -> str:
    return "in the car" if device == "car" else f"on your {device}"


def _part_of_day(hour: int) -> str:
    return ("at night" if hour < 5 else "in the morning" if hour < 12 else
            "in the afternoon" if hour < 17 else "in the evening" if hour < 22 else "at night")


class NotFoundError(LookupError):
    """An id, user or embedding the request names is not in the store."""


@dataclass
class Recommendation:
    id: str
    kind: str
    title: str
    score: float
    author: str | None = None
    categories: list[str] = field(default_factory=list)
    language: str | None = None
    components: dict[str, float] = field(default_factory=dict)
    reason: str | None = None
    evidence: list[dict[str, Any]] = field(default_factory=list)
    show_id: str | None = None
    image: str | None = None
    duration_s: int | None = None
    tags: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = {"id": self.id, "kind": self.kind, "title": self.title,
               "score": round(float(self.score), 6), "author": self.author,
               "categories": self.categories, "language": self.language,
               "show_id": self.show_id, "image": self.image, "duration_s": self.duration_s,
               "tags": self.tags,
               "components": {k: round(float(v), 4) for k, v in self.components.items()}}
        if self.reason is not None:
            out |= {"reason": self.reason, "evidence": self.evidence}
        return out


@dataclass(frozen=True)
class _Card:
    """What a recommendation shows beyond the catalog arrays: cover art, duration, tags."""

    image: str | None
    duration_s: int | None
    tags: tuple[str, ...]


class Podrec:
    """podrec over one database: ingest, enrich, inspect, recommend."""

    def __init__(self, config: Config | None = None, database_url: str | None = None,
                 embedder: TextEmbedder | None = None) -> None:
        self.config = config or load_config()
        self.store = Store(database_url or self.config.database_url)
        self._embedder = embedder
        self._detector: LanguageDetector | None = None
        self._models: dict[tuple[str | None, str], ContentModel] = {}
        self._profile_models: dict[tuple[str | None, str], ProfileModel] = {}
        # per fitted model: {item pk: its card}; goes when the model goes
        self._card_cache: weakref.WeakKeyDictionary[ContentModel, dict[int, _Card]] = \
            weakref.WeakKeyDictionary()

    # -- components, loaded on first use ---------------------------------------------------
    @property
    def embedder(self) -> TextEmbedder:
        if self._embedder is None:
            cfg = self.config.embedder
            self._embedder = make_embedder(cfg.name, batch_size=cfg.batch_size)
        return self._embedder

    @property
    def detector(self) -> LanguageDetector:
        if self._detector is None:
            self._detector = LanguageDetector(self.config.language_whitelist)
        return self._detector

    def close(self) -> None:
        self.store.close()

    # -- ingest -----------------------------------------------------------------------------
    def ingest_feeds(self, sources: list[str], user_id: str | None = None) -> IngestReport:
        report = ingest_feeds(self.store, sources, self.detector, user_id=user_id)
        self._models.clear()
        return report

    def ingest_catalog(self, path: str | Path, fmt: str | None = None) -> IngestReport:
        report = ingest_catalog(self.store, Path(path), fmt, self.detector)
        self._models.clear()
        return report

    def ingest_events(self, path: str | Path, fmt: str | None = None) -> IngestReport:
        return ingest_events(self.store, Path(path), fmt)

    def add_events(self, rows: list[dict[str, Any]], source: str = "request") -> IngestReport:
        """Store events given as generic-format dicts (the REST API's body). Each bad row is
        reported by its index and field and skipped; the rest go in."""
        from podrec.ingest.events import event_from_row
        from podrec.ingest.normalize import FieldError

        report = IngestReport()
        good = []
        for i, row in enumerate(rows):
            try:
                good.append(event_from_row(row))
            except FieldError as exc:
                field_name, _, message = str(exc).partition(": ")
                report.fail(source, f"event {i}", field_name if message else None,
                            message or str(exc))
        self.store.add_events(good, report)
        return report

    # -- listeners --------------------------------------------------------------------------
    def create_user(self, user_id: str) -> None:
        self.store.ensure_user(user_id)

    def link_users(self, user_ids: list[str], person_id: str | None = None) -> str:
        """Link one person's accounts on several platforms; their events make one profile."""
        return self.store.link_users(user_ids, person_id)

    def export_user(self, user_id: str) -> dict[str, Any]:
        data = self.store.export_user(user_id)
        if not data:
            raise NotFoundError(f"no listener with id {user_id!r}")
        return data

    def delete_user(self, user_id: str) -> dict[str, Any]:
        """Delete an account and every event it sent (linked accounts stay)."""
        if not self.store.user_exists(user_id):
            raise NotFoundError(f"no listener with id {user_id!r}")
        return {"user_id": user_id, "deleted_events": self.store.delete_user(user_id)}

    # -- enrich -----------------------------------------------------------------------------
    def enrich(self, kind: str | None = None, force: bool = False,
               progress: Callable[[int], None] | None = None,
               on_total: Callable[[int], None] | None = None) -> EnrichReport:
        cfg, tag = self.config.embedder, self.config.tagger
        enricher = Enricher(self.store, self.embedder, max_chars=cfg.max_chars,
                            batch_size=cfg.batch_size, taxonomy_top_k=tag.taxonomy_top_k,
                            taxonomy_min_score=tag.taxonomy_min_score,
                            keyphrases=tag.keyphrases)
        report = enricher.run(kind=kind, force=force, progress=progress, on_total=on_total)
        self._models.clear()
        return report

    # -- catalog ----------------------------------------------------------------------------
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

    def catalog_data(self, kind: str | None = "show") -> CatalogData:
        """The embedded items of one kind as arrays (what models are fit on)."""
        model_id = self.embedder_model_id
        pks, vectors = self.store.load_vectors(model_id, kind=kind)
        if not len(pks):
            raise NotFoundError(
                f"no {kind or 'item'} has a {model_id} embedding yet: run `podrec enrich`")
        items = self.store.items_by_pk(pks.tolist())
        ordered = [items[int(pk)] for pk in pks]
        return CatalogData(
            ids=[i.id for i in ordered], kinds=[i.kind for i in ordered], vectors=vectors,
            titles=[i.title for i in ordered], categories=[i.categories for i in ordered],
            authors=[i.author for i in ordered],
            popularity=np.array([np.nan if i.popularity is None else i.popularity
                                 for i in ordered], dtype=np.float32),
            languages=[i.language for i in ordered], pks=pks,
            explicit=[i.explicit for i in ordered], show_ids=[i.show_id for i in ordered],
            texts=[embedding_text(i, self.config.embedder.max_chars) for i in ordered],
            durations=np.array([np.nan if i.duration_s is None else i.duration_s
                                for i in ordered], dtype=np.float32),
            platforms=[_platforms(i.extra) for i in ordered])

    @property
    def embedder_model_id(self) -> str:
        if self._embedder is not None:
            return self._embedder.model_id
        from podrec.enrich.embedders import EMBEDDERS

        return EMBEDDERS[self.config.embedder.name].model_id

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

    def model(self, kind: str | None = "show", metric: str | None = None) -> ContentModel:
        metric = metric or self.config.recommend.metric
        key = (kind, metric)
        if key not in self._models:
            self._models[key] = ContentModel(self.content_weights(), metric=metric).fit(
                self.catalog_data(kind))
        return self._models[key]

    def profile_model(self, kind: str | None = "show", metric: str | None = None
                      ) -> ProfileModel:
        """The interest-profile model over the same fitted content model."""
        metric = metric or self.config.recommend.metric
        key = (kind, metric)
        if key not in self._profile_models or \
                self._profile_models[key].content is not self.model(kind, metric):
            r = self.config.recommend
            self._profile_models[key] = ProfileModel(
                half_life_days=r.half_life_days, max_interests=r.max_interests,
                distance_threshold=r.interest_distance, share_weight=r.interest_share_weight,
                context_weight=r.context_weight, duration_weight=r.duration_weight,
                intent_weight=r.intent_weight).fit_from(self.model(kind, metric))
        return self._profile_models[key]

    # -- recommend --------------------------------------------------------------------------
    def _cards(self, model: ContentModel, pks: list[int]) -> dict[int, _Card]:
        """Image, duration and tags of items, read once per fitted model: a model is refitted
        whenever the catalog or its tags change, so its cards cannot go stale."""
        known = self._card_cache.setdefault(model, {})
        missing = [pk for pk in pks if pk not in known]
        if missing:
            items = self.store.items_by_pk(missing)
            tags = self.store.tags_for(missing)
            for pk in missing:
                item = items.get(pk)
                known[pk] = _Card(item.image if item else None,
                                  item.duration_s if item else None,
                                  tuple([t["tag"] for t in tags.get(pk, [])
                                         if t["source"] != "category"][:6]))
        return {pk: known[pk] for pk in pks}

    def _results(self, model: ContentModel, scored: Any) -> list[Recommendation]:
        c = model.catalog
        cards = self._cards(model, [int(c.pks[r]) for r in scored.rows])
        out = []
        for r, s, comp in zip(scored.rows, scored.scores, scored.components, strict=True):
            card = cards[int(c.pks[r])]
            out.append(Recommendation(
                id=c.ids[r], kind=c.kinds[r], title=c.titles[r], score=float(s),
                author=c.authors[r], categories=c.categories[r], language=c.languages[r],
                components=comp, show_id=c.show_ids[r], image=card.image,
                duration_s=card.duration_s, tags=list(card.tags)))
        return out

    def user_texts(self, user_id: str, limit: int = 5,
                   events: list[EventRecord] | None = None) -> list[str]:
        """What a listener searched for and wrote in favourable reviews (rating 3 and up, or
        none), latest first: interest evidence in their own words. ``events``: the
        listener's events when already read."""
        texts = []
        for ev in reversed(events if events is not None else self.store.user_events(user_id)):
            favourable = ev.event == "search" or (
                ev.event == "review" and (ev.value is None or ev.value >= 3))
            if favourable and ev.text and ev.text.strip():
                texts.append(ev.text.strip()[:500])
            if len(texts) >= limit:
                break
        return texts

    @staticmethod
    def _filter_mask(catalog: CatalogData, languages: list[str] | None, allow_explicit: bool,
                     blocked: list[str] | None, platform: str | None = None
                     ) -> np.ndarray | None:
        if not languages and allow_explicit and not blocked and not platform:
            return None
        mask = np.ones(len(catalog), bool)
        if platform:  # items that list where they are available, and not here, go
            where = platform.strip().lower()
            mask &= np.array([p is None or where in p for p in catalog.platforms])
        if languages:
            wanted = {lang.lower() for lang in languages}
            mask &= np.array([lang is None or lang in wanted for lang in catalog.languages])
        if not allow_explicit:
            mask &= np.array([e is not True for e in catalog.explicit])
        if blocked:
            block = set(blocked)
            mask &= np.array([i not in block and s not in block
                              for i, s in zip(catalog.ids, catalog.show_ids, strict=True)])
        return mask

    def catalog_stats(self) -> dict[str, Any]:
        """Counts for the operator view: items per kind, languages, top tags."""
        return {"items": self.store.count_items(), "languages": self.store.language_counts(),
                "tags": [{"tag": t, "count": n} for t, n in self.store.tag_counts(limit=30)],
                "users": self.store.count_users()}

    def search(self, text: str, k: int | None = None, kind: str = "show",
               languages: list[str] | None = None) -> list[Recommendation]:
        """Semantic search: items whose meaning is closest to ``text`` (any language)."""
        return self.recommend(query=text, k=k, kind=kind, languages=languages)

    def onboarding(self, k: int = 12, languages: list[str] | None = None) -> list[Recommendation]:
        """Popular shows to pick from on day one, spread over genres: the most popular show
        of each genre in turn, most popular genres first."""
        model = self.model("show")
        c = model.catalog
        mask = self._filter_mask(c, languages, True, None)
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

    def similar(self, item_id: str, k: int | None = None, metric: str | None = None,
                kind: str | None = None) -> list[Recommendation]:
        """Items most like ``item_id`` (of its own kind)."""
        item = self.get_item(item_id, kind)
        model = self.model(item.kind, metric)
        row = model.catalog.row_of(item.id, item.kind)
        if row is None:
            raise NotFoundError(f"{item.kind} {item_id!r} has no embedding yet: run "
                                "`podrec enrich`")
        return self._results(model, model.similar_items(row, k or self.config.recommend.k))

    def listener_events(self, user_id: str) -> list[EventRecord]:
        """Every event of a listener and of the accounts linked to them, oldest first."""
        if not self.store.user_exists(user_id):
            raise NotFoundError(f"no listener with id {user_id!r}")
        return self.store.user_events(user_id)

    def user_history(self, user_id: str, now: datetime | None = None,
                     events: list[EventRecord] | None = None
                     ) -> tuple[list[HistoryEvent], dict[str, float]]:
        """(positive history, {turned-down item id: weight}) of a listener and every account
        linked to them. Per item the latest word wins (a dislike after a like is a dislike);
        a positive item keeps its strongest event and its latest time, hour and device.
        Negative weights decay with age (``recommend.half_life_days``); positive ones decay
        in the profile."""
        if events is None:
            events = self.listener_events(user_id)
        now = now or datetime.now(UTC)
        half_life = self.config.recommend.half_life_days
        positive: dict[str, HistoryEvent] = {}
        negative: dict[str, float] = {}
        for ev in events:
            if not ev.item_id:
                continue
            if ev.event in NEGATIVE_EVENTS:
                age_days = max((now - ev.timestamp).total_seconds() / 86400.0, 0.0)
                negative[ev.item_id] = 0.5 ** (age_days / half_life) if half_life > 0 else 1.0
                positive.pop(ev.item_id, None)
            elif ev.event in POSITIVE_EVENTS:
                negative.pop(ev.item_id, None)
                old = positive.get(ev.item_id)
                weight = max(POSITIVE_EVENTS[ev.event], old.weight if old else 0.0)
                event = ev.event if not old or POSITIVE_EVENTS[ev.event] >= old.weight \
                    else old.event
                hour = ev.context.get("hour") if isinstance(ev.context, dict) else None
                positive[ev.item_id] = HistoryEvent(
                    ev.item_id, weight, event, ev.timestamp.timestamp(),
                    int(hour) if isinstance(hour, int | float) and 0 <= hour < 24
                    else ev.timestamp.hour, ev.timestamp.weekday(), ev.device)
        return list(positive.values()), negative

    def profile(self, user_id: str, kind: str = "show",
                now: datetime | None = None) -> dict[str, Any]:
        """A listener's interest profile as plain data: each interest with its share, its
        top items, genres, listening hours and devices, and a 2-D map position."""
        now = now or datetime.now(UTC)
        events = self.listener_events(user_id)
        positive, negative = self.user_history(user_id, now, events)
        pmodel = self.profile_model(kind)
        c = pmodel.catalog
        profile = pmodel.build_profile(
            [h.at(r) for h in positive if (r := c.row_of(h.item_id)) is not None],
            now.timestamp())
        interests = []
        for interest in profile.interests:
            centre = (interest.weights[:, None] * pmodel.centred[interest.rows]).sum(axis=0)
            x, y = pmodel.map_2d(centre / max(float(np.linalg.norm(centre)), 1e-9))[0]
            order = np.argsort(-interest.weights, kind="stable")
            genres: dict[str, float] = {}
            for r, w in zip(interest.rows, interest.weights, strict=True):
                for g in c.categories[int(r)]:
                    genres[g] = genres.get(g, 0.0) + float(w)
            hours = interest.hours / max(interest.hours.sum(), 1e-9)
            interests.append({
                "label": self._interest_label(pmodel.content, interest),
                "weight": round(interest.share, 4), "x": round(float(x), 4),
                "y": round(float(y), 4),
                "items": [{"id": c.ids[int(interest.rows[i])],
                           "title": c.titles[int(interest.rows[i])],
                           "weight": round(float(interest.weights[i]), 4)} for i in order[:8]],
                "tags": sorted(genres, key=lambda g: -genres[g])[:5],
                "hours": [round(float(h), 4) for h in hours],
                "weekdays": [round(float(d), 4) for d in
                             interest.weekdays / max(interest.weekdays.sum(), 1e-9)],
                "devices": {d: round(w, 4) for d, w in interest.devices.items()}})
        titles = {i: (it.title if (it := self.store.get_item(i)) else None) for i in negative}
        return {"user_id": user_id, "person_id": self.store.person_of(user_id),
                "accounts": self.store.linked_accounts(user_id),
                "events": len(events),
                "interests": interests,
                "disliked": [{"id": i, "title": t} for i, t in titles.items()],
                "texts": self.user_texts(user_id, events=events)}

    def recommend(self, user_id: str | None = None, seeds: list[str] | None = None,
                  query: str | None = None, k: int | None = None, kind: str = "show",
                  metric: str | None = None, diversity: float = 0.0,
                  explain: bool = False, languages: list[str] | None = None,
                  allow_explicit: bool = True, blocked: list[str] | None = None,
                  per_show: int | None = None, context: RequestContext | None = None,
                  platform: str | None = None) -> list[Recommendation]:
        """Recommendations from a known listener's interest profile, seed items and/or free
        text.

        ``diversity`` (0..1) re-ranks by MMR; ``explain`` adds a reason and its evidence.
        ``context`` (time, device, minutes, intent) shifts scores; none changes nothing.
        Filters: ``languages`` (items of unknown language pass), ``allow_explicit``,
        ``blocked`` (item or show ids; a blocked show blocks its episodes), ``per_show``
        (at most this many episodes of one show) and ``platform`` (items that list the
        platforms they are on must list this one)."""
        from podrec.recommend.diversity import mmr
        from podrec.recommend.explain import Seed
        from podrec.recommend.explain import explain as explain_item

        if not (user_id or seeds or (query and query.strip())):
            raise ValueError("give a user, one or more seed items, or a query text")
        if not 0.0 <= diversity <= 1.0:
            raise ValueError(f"diversity must be between 0 and 1, got {diversity}")
        context = None if context is None or context.empty else context
        model = self.model(kind, metric)
        pmodel = self.profile_model(kind, metric)
        catalog = model.catalog
        now = context.time if context and context.time else datetime.now(UTC)
        history: list[HistoryEvent] = [HistoryEvent(sid, 1.0, "seed") for sid in seeds or []]
        negative: dict[str, float] = {}
        events: list[EventRecord] = []
        if user_id:  # one read of the listener's (and linked accounts') events per request
            events = self.listener_events(user_id)
            positive, negative = self.user_history(user_id, now, events)
            history += positive
        chosen: list[tuple[Seed, HistoryEvent]] = []
        for h in history:
            row = catalog.row_of(h.item_id)
            if row is None:
                if self.store.get_item(h.item_id) is None:
                    raise NotFoundError(f"seed {h.item_id!r} is not in the catalog")
                continue  # another kind (an episode when recommending shows): skip as a seed
            chosen.append((Seed(row, h.weight, h.event), h))
        query = query.strip() if query and query.strip() else None
        texts = ([query] if query else []) + (self.user_texts(user_id, events=events)
                                              if user_id else [])
        intent = context.intent if context else None
        vectors = self.embedder.embed_queries(texts + ([intent] if intent else [])) \
            if texts or intent else None
        query_vectors = vectors[:len(texts)] if vectors is not None and texts else None
        intent_vector = vectors[-1] if intent and vectors is not None else None
        exclude = np.array([r for r in (catalog.row_of(i) for i in negative) if r is not None],
                           dtype=np.int64)
        k = k or self.config.recommend.k
        pool = k if diversity == 0 and not per_show else max(4 * k, 50)
        mask = self._filter_mask(catalog, languages, allow_explicit, blocked, platform)
        push = self.config.recommend.negative_weight
        neg_rows = exclude if push > 0 and chosen else np.zeros(0, np.int64)
        neg_weights = np.array([push * negative[catalog.ids[r]] for r in neg_rows])
        profile = pmodel.build_profile([h.at(s.row, s.weight) for s, h in chosen],
                                       now.timestamp(), context)
        scored, detail = pmodel.recommend_profile(
            profile, pool, exclude_rows=exclude, candidate_mask=mask, context=context,
            text_vectors=query_vectors, negatives=(neg_rows, neg_weights),
            intent_vector=intent_vector)
        if per_show:
            counts: dict[str | None, int] = {}
            keep_rows = []
            for i, r in enumerate(scored.rows):
                show = catalog.show_ids[r] or catalog.ids[r]
                counts[show] = counts.get(show, 0) + 1
                if counts[show] <= per_show:
                    keep_rows.append(i)
            scored = Scored(scored.rows[keep_rows], scored.scores[keep_rows],
                            [scored.components[i] for i in keep_rows])
        if diversity == 0:
            scored = Scored(scored.rows[:k], scored.scores[:k], scored.components[:k])
        if diversity > 0:
            keep = mmr(scored.rows, scored.scores, catalog.vectors, k, diversity)
            scored = Scored(scored.rows[keep], scored.scores[keep],
                            [scored.components[i] for i in keep])
        results = self._results(model, scored)
        if explain:
            ctx_term = (pmodel.interest_bonus(profile, context)[1] if profile.interests
                        else None)
            labels = [self._interest_label(model, i) for i in profile.interests]
            members = [{int(r) for r in i.rows} for i in profile.interests]
            own_query = query_vectors[0] if query and query_vectors is not None else None
            for rec, row in zip(results, scored.rows, strict=True):
                j = int(detail.interest[row])
                seeds_j = [s for s, _ in chosen if s.weight > 0 and j >= 0
                           and s.row in members[j]]
                notes = self._context_notes(pmodel, context, int(row),
                                            labels[j] if j >= 0 else None,
                                            None if ctx_term is None or j < 0
                                            else float(ctx_term[j]), intent_vector)
                rec.reason, rec.evidence = explain_item(
                    model, int(row), seeds_j, query, own_query, context=notes)
                if j >= 0 and len(profile.interests) > 1:
                    rec.evidence.append({"type": "interest", "index": j, "label": labels[j],
                                         "share": round(profile.interests[j].share, 3)})
        return results

    @staticmethod
    def _context_notes(pmodel: ProfileModel, context: RequestContext | None, row: int,
                       label: str | None, habit: float | None,
                       intent_vector: np.ndarray | None) -> list[ContextNote]:
        """The context behind one item's score, for its explanation: ``label`` and ``habit``
        are the item's interest and that interest's context term."""
        if context is None:
            return []
        notes = []
        if context.minutes is not None:
            dur = float(pmodel.catalog.durations[row])
            if np.isfinite(dur):
                effect = pmodel.duration_weight * float(duration_fit(np.array([dur]),
                                                                     context.minutes)[0])
                fits = dur <= 60 * context.minutes
                where = f" {_on_device(context.device)}" if context.device else ""
                phrase = (f"at {round(dur / 60)} minutes it fits your {context.minutes:g} "
                          f"minutes{where}") if fits else None
                notes.append(ContextNote(effect, {"type": "context", "factor": "duration",
                                                  "minutes": context.minutes,
                                                  "duration_s": dur}, phrase))
        if habit is not None and habit > 0.05:
            when = " and ".join(x for x in [
                _part_of_day(context.hour) if context.hour is not None else "",
                _on_device(context.device) if context.device else ""] if x)
            notes.append(ContextNote(habit, {
                "type": "context", "factor": "habit", "interest": label},
                f"you often turn to {label} {when}".rstrip()))
        if intent_vector is not None and context.intent:
            sim = float(pmodel.content.index.vectors[row] @ intent_vector)
            notes.append(ContextNote(pmodel.intent_weight * sim * pmodel.weights.cosine, {
                "type": "context", "factor": "intent", "text": context.intent},
                f"it suits “{context.intent}”"))
        return notes

    @staticmethod
    def _interest_label(model: ContentModel, interest: Interest) -> str:
        """A name for an interest: its items' most common genre, else its top item."""
        counts: dict[str, float] = {}
        for r, w in zip(interest.rows, interest.weights, strict=True):
            for c in model.catalog.categories[int(r)][:2]:
                if c.lower() not in ("podcasts", "(no genres listed)"):
                    counts[c] = counts.get(c, 0.0) + float(w)
        if counts:
            return max(counts, key=lambda c: counts[c])
        return model.catalog.titles[int(interest.top_rows(1)[0])]
