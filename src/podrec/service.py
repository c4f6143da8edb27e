"""The Python API: one object over the store, the embedder and the models.

The CLI (and later the REST API) are thin layers over ``Podrec``; everything they can do,
Python can do with the same names.
"""

from __future__ import annotations

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
from podrec.records import IngestReport, Item
from podrec.storage import Store

# Event types that say a listener wants more like this item, with their seed weight.
POSITIVE_EVENTS = {"subscribe": 1.0, "complete": 1.0, "like": 1.0, "play": 0.5,
                   "rate": 0.5, "review": 0.5}
NEGATIVE_EVENTS = {"unsubscribe", "dislike", "skip"}
WEIGHTS_ARTIFACT = "content-weights"


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


class Podrec:
    """podrec over one database: ingest, enrich, inspect, recommend."""

    def __init__(self, config: Config | None = None, database_url: str | None = None,
                 embedder: TextEmbedder | None = None) -> None:
        self.config = config or load_config()
        self.store = Store(database_url or self.config.database_url)
        self._embedder = embedder
        self._detector: LanguageDetector | None = None
        self._models: dict[tuple[str | None, str], ContentModel] = {}

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
            texts=[embedding_text(i, self.config.embedder.max_chars) for i in ordered])

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

    # -- recommend --------------------------------------------------------------------------
    def _results(self, model: ContentModel, scored: Any) -> list[Recommendation]:
        c = model.catalog
        pks = [int(c.pks[r]) for r in scored.rows]
        items = self.store.items_by_pk(pks)
        tags = self.store.tags_for(pks)
        out = []
        for r, s, comp in zip(scored.rows, scored.scores, scored.components, strict=True):
            pk = int(c.pks[r])
            item = items.get(pk)
            out.append(Recommendation(
                id=c.ids[r], kind=c.kinds[r], title=c.titles[r], score=float(s),
                author=c.authors[r], categories=c.categories[r], language=c.languages[r],
                components=comp, show_id=c.show_ids[r],
                image=item.image if item else None,
                duration_s=item.duration_s if item else None,
                tags=[t["tag"] for t in tags.get(pk, []) if t["source"] != "category"][:6]))
        return out

    def user_texts(self, user_id: str, limit: int = 5) -> list[str]:
        """What a listener searched for and wrote in favourable reviews (rating 3 and up, or
        none), latest first: interest evidence in their own words."""
        texts = []
        for ev in reversed(self.store.user_events(user_id)):
            favourable = ev.event == "search" or (
                ev.event == "review" and (ev.value is None or ev.value >= 3))
            if favourable and ev.text and ev.text.strip():
                texts.append(ev.text.strip()[:500])
            if len(texts) >= limit:
                break
        return texts

    @staticmethod
    def _filter_mask(catalog: CatalogData, languages: list[str] | None, allow_explicit: bool,
                     blocked: list[str] | None) -> np.ndarray | None:
        if not languages and allow_explicit and not blocked:
            return None
        mask = np.ones(len(catalog), bool)
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

    def user_seeds(self, user_id: str, now: datetime | None = None
                   ) -> tuple[dict[str, tuple[float, str]], dict[str, float]]:
        """({liked item id: (weight, strongest event)}, {disliked item id: weight}) of a
        listener. Weights decay with the event's age (``recommend.half_life_days``); the
        latest word on an item wins (a dislike after a like is a dislike)."""
        if not self.store.user_exists(user_id):
            raise NotFoundError(f"no listener with id {user_id!r}")
        now = now or datetime.now(UTC)
        half_life = self.config.recommend.half_life_days
        positive: dict[str, tuple[float, str]] = {}
        negative: dict[str, float] = {}
        for ev in self.store.user_events(user_id):
            if not ev.item_id:
                continue
            age_days = max((now - ev.timestamp).total_seconds() / 86400.0, 0.0)
            decay = 0.5 ** (age_days / half_life) if half_life > 0 else 1.0
            if ev.event in NEGATIVE_EVENTS:
                negative[ev.item_id] = decay
                positive.pop(ev.item_id, None)
            elif ev.event in POSITIVE_EVENTS:
                negative.pop(ev.item_id, None)
                w = POSITIVE_EVENTS[ev.event] * decay
                if w > positive.get(ev.item_id, (0.0, ""))[0]:
                    positive[ev.item_id] = (w, ev.event)
        return positive, negative

    def recommend(self, user_id: str | None = None, seeds: list[str] | None = None,
                  query: str | None = None, k: int | None = None, kind: str = "show",
                  metric: str | None = None, diversity: float = 0.0,
                  explain: bool = False, languages: list[str] | None = None,
                  allow_explicit: bool = True, blocked: list[str] | None = None,
                  per_show: int | None = None) -> list[Recommendation]:
        """Recommendations from a known listener's history, seed items and/or free text.

        ``diversity`` (0..1) re-ranks by MMR; ``explain`` adds a reason and its evidence.
        Filters: ``languages`` (items of unknown language pass), ``allow_explicit``,
        ``blocked`` (item or show ids; a blocked show blocks its episodes) and ``per_show``
        (at most this many episodes of one show)."""
        from podrec.recommend.diversity import mmr
        from podrec.recommend.explain import Seed
        from podrec.recommend.explain import explain as explain_item

        if not (user_id or seeds or (query and query.strip())):
            raise ValueError("give a user, one or more seed items, or a query text")
        if not 0.0 <= diversity <= 1.0:
            raise ValueError(f"diversity must be between 0 and 1, got {diversity}")
        model = self.model(kind, metric)
        catalog = model.catalog
        requested = [(sid, 1.0, "seed") for sid in seeds or []]
        exclude_ids: list[str] = []
        if user_id:
            positive, negative = self.user_seeds(user_id)
            requested += [(sid, w, ev) for sid, (w, ev) in positive.items()]
            exclude_ids = list(negative)
            push = self.config.recommend.negative_weight
            if push > 0 and positive:  # pushing away needs something to pull towards
                requested += [(sid, -push * w, "dislike") for sid, w in negative.items()]
        chosen: list[Seed] = []
        for sid, w, ev in requested:
            row = catalog.row_of(sid)
            if row is None:
                if self.store.get_item(sid) is None:
                    raise NotFoundError(f"seed {sid!r} is not in the catalog")
                continue  # another kind (an episode when recommending shows): skip as a seed
            chosen.append(Seed(row, w, ev))
        query = query.strip() if query and query.strip() else None
        texts = ([query] if query else []) + (self.user_texts(user_id) if user_id else [])
        query_vectors = self.embedder.embed_queries(texts) if texts else None
        exclude = [r for r in (catalog.row_of(i) for i in exclude_ids) if r is not None]
        k = k or self.config.recommend.k
        pool = k if diversity == 0 and not per_show else max(4 * k, 50)
        scored = model.recommend_seeds(
            np.array([s.row for s in chosen], dtype=np.int64), pool,
            query_vectors=query_vectors, exclude_rows=np.array(exclude, dtype=np.int64),
            seed_weights=np.array([s.weight for s in chosen]) if chosen else None,
            candidate_mask=self._filter_mask(catalog, languages, allow_explicit, blocked))
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
        query_vectors = query_vectors[:1] if query else None  # the request's own words
        if explain:
            for rec, row in zip(results, scored.rows, strict=True):
                rec.reason, rec.evidence = explain_item(
                    model, int(row), [s for s in chosen if s.weight > 0], query,
                    None if query_vectors is None else query_vectors[0])
        return results
