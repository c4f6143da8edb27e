"""The staged recommend pipeline: history → words → the served model's fused score with
context → filters, per-show cap, MMR → explanation.

One ``RecommendPipeline`` serves one kind of item with one served model (model/hybrid.py
when trained, else the fallback). Evaluation scores the same model on the same histories
(``podrec.recommend.history``), so what ``podrec evaluate`` measures is what this returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from podrec import present
from podrec.model.base import CatalogData, UserBatch
from podrec.model.content import ContentModel
from podrec.model.hybrid import HybridModel, parts_of
from podrec.model.profile import ProfileModel
from podrec.profile.interests import UserProfile
from podrec.profile.labels import interest_label
from podrec.recommend.balance import balance
from podrec.recommend.candidates import POOL_PER_SLOT, CandidateSources
from podrec.recommend.context import RequestContext, duration_fit
from podrec.recommend.diversity import mmr
from podrec.recommend.explain import COLLABORATIVE_PARTS, ContextNote, Explainer, Seed
from podrec.recommend.filters import cap_per_show, excluded_mask, filter_mask
from podrec.recommend.history import HistoryBuilder, ListenerHistory
from podrec.recommend.request import RecommendRequest
from podrec.recommend.results import Card, Recommendation
from podrec.records import EventRecord
from podrec.train.artifacts import ServedModel

Embed = Callable[[list[str]], np.ndarray]
Cards = Callable[[list[int]], dict[int, Card]]


@dataclass
class Prepared:
    """A request made ready to score: the listener as a one-row batch, the request's words
    embedded, its context and, on a large catalog, its candidates."""

    history: ListenerHistory
    batch: UserBatch
    words: str | None
    words_vector: np.ndarray | None
    intent_vector: np.ndarray | None
    rows: np.ndarray | None  # the candidates to score (sorted), None: every item
    context: RequestContext | None  # the request's, with what its words asked for
    intent: Any  # the query read as an intent (podrec.llm.intents.Intent)
    topics: np.ndarray | None  # one vector per topic, for a query of several


@dataclass
class Scoring(Prepared):
    """One listener's scored catalog (of ``rows``): the total and what each part added."""

    total: np.ndarray
    parts: dict[str, np.ndarray]
    interests: tuple[Any, ...] | None = None  # ``_interests`` of the ranked pool, once read

    def at(self, rows: np.ndarray) -> np.ndarray:
        """Positions of catalog ``rows`` in ``total`` and ``parts``."""
        rows = np.asarray(rows, np.int64)
        return rows if self.rows is None else np.searchsorted(self.rows, rows)

    def row_of(self, positions: np.ndarray) -> np.ndarray:
        """Catalog rows of positions in ``total``."""
        return positions if self.rows is None else self.rows[positions]


class RecommendPipeline:
    """Lists for one kind of item from one served model."""

    def __init__(self, served: ServedModel, content: ContentModel, builder: HistoryBuilder,
                 embed: Embed, cards: Cards, default_k: int = 10,
                 candidates: CandidateSources | None = None,
                 read_intent: Callable[..., Any] | None = None, balance: float = 0.0,
                 topic_balance: float = 1.0) -> None:
        self.served = served
        self.content = content
        self.catalog: CatalogData = content.catalog
        self.builder = builder
        self.embed = embed
        self.cards = cards
        self.default_k = default_k
        model = served.model
        parts = parts_of(model)
        self.profile: ProfileModel | None = next(
            (m for m in parts.values() if isinstance(m, ProfileModel)), None)
        self.explainer = Explainer(content, {n: m for n, m in parts.items()
                                             if n in COLLABORATIVE_PARTS})
        # a large catalog is scored on candidates (recommend/candidates.py), not item by item
        self.candidates = candidates
        # a query read into topics, exclusions and a length limit (podrec.llm.intents)
        self.read_intent = read_intent
        self.balance, self.topic_balance = balance, topic_balance

    # -- stages ---------------------------------------------------------------------------
    def history(self, request: RecommendRequest, events: Sequence[EventRecord]
                ) -> ListenerHistory:
        return self.builder.build(events, self.catalog, request.moment, request.seeds)

    def score(self, request: RecommendRequest, history: ListenerHistory,
              events: Sequence[EventRecord] = (), everything: bool = False) -> Scoring:
        """The served model's fused score of every item (of the candidates, for a large
        catalog, unless ``everything``), with the request's words and context."""
        return self._scored([self._prepare(request, history, events, everything)])[0]

    def _prepare(self, request: RecommendRequest, history: ListenerHistory,
               events: Sequence[EventRecord], everything: bool = False) -> Prepared:
        """What scoring ``request`` needs: its words embedded, its context, the listener as
        a one-row batch and, on a large catalog, the candidates."""
        words = " ".join(t for t in (request.query, history.text) if t)[:1000] or None
        intent = request.context.intent if request.context else None
        asked = (self.read_intent(request.query, owner=request.user_id)
                 if request.query and self.read_intent else None)
        topics = list(asked.topics) if asked is not None and len(asked.topics) > 1 else []
        texts = [t for t in (words, intent) if t]
        vectors = self.embed(texts + topics) if texts or topics else None
        words_vector = vectors[0] if words and vectors is not None else None
        intent_vector = vectors[len(texts) - 1] if intent and vectors is not None else None
        topic_vectors = vectors[len(texts):] if topics and vectors is not None else None
        context = request.context
        if asked is not None and asked.max_minutes and (context is None
                                                        or context.minutes is None):
            context = replace(context or RequestContext(), minutes=float(asked.max_minutes))
        row = self.served.user_row(request.user_id, len(history),
                                   float(history.confidence.sum()))
        batch = history.batch(len(self.catalog), request.moment.timestamp(), words_vector,
                              intent_vector, row)
        batch.contexts = [context]
        model = self.served.model
        rows = None
        if self.candidates is not None and not everything:
            active = set(model.row_weights(batch)) if isinstance(model, HybridModel) else None
            rows = self.candidates.rows(batch, events, active, request.k or self.default_k)
            if topic_vectors is not None:  # every topic's nearest items are candidates too
                each = self.candidates.per_source // 4
                near = self.content.index.search_each(topic_vectors, each, beam=each)
                rows = np.unique(np.concatenate([rows, *(r for r, _ in near)]))
        return Prepared(history, batch, words, words_vector, intent_vector, rows, context, asked,
                     topic_vectors)

    def _scored(self, prepared: list[Prepared]) -> list[Scoring]:
        """The served model's scores of several listeners at once: one call of each part for
        all of them. They score the same rows (every item, or one list's candidates)."""
        model = self.served.model
        rows = prepared[0].rows
        batch = prepared[0].batch if len(prepared) == 1 else UserBatch.stacked(
            [a.batch for a in prepared])
        if isinstance(model, HybridModel):
            total, parts = model.contributions(batch, rows)
        else:
            total = np.asarray(model.score(batch) if rows is None
                               else model.score_rows(batch, rows), np.float32)
            parts = {model.name: total}
        return [Scoring(**vars(a), total=total[i], parts={n: p[i] for n, p in parts.items()})
                for i, a in enumerate(prepared)]

    def rank(self, request: RecommendRequest, scoring: Scoring) -> np.ndarray:
        """Rows of the list: filters, what the listener has judged left out, then the
        per-show cap and MMR over a larger pool."""
        k = request.k or self.default_k
        scores = scoring.total.astype(np.float32, copy=True)
        mask = filter_mask(self.catalog, request.languages, request.allow_explicit,
                           request.blocked, request.platform, scoring.rows)
        if mask is not None:
            scores[~mask] = -np.inf
        if scoring.intent is not None and scoring.intent.exclusions:
            scores[excluded_mask(self.catalog, scoring.intent.exclusions, scoring.rows)] = -np.inf
        seen = scoring.history.seen_rows
        if scoring.rows is None:
            scores[seen] = -np.inf
        else:
            scores[np.isin(scoring.rows, seen)] = -np.inf
        strength = self.balance if request.balance is None else request.balance
        if scoring.topics is not None:
            strength = self.topic_balance if request.balance is None else request.balance
        pool = k if request.diversity == 0 and not request.per_show else max(4 * k, 50)
        if strength > 0:
            pool = max(pool, POOL_PER_SLOT * k, 100)
        pool = min(pool, int(np.isfinite(scores).sum()))
        if pool <= 0:
            return np.zeros(0, np.int64)
        part = np.argpartition(-scores, pool - 1)[:pool]
        part = part[np.argsort(-scores[part], kind="stable")]
        rows = scoring.row_of(part)
        if strength > 0:
            keep = self._balanced(request, scoring, rows, k, strength)
            rows, part = rows[keep], part[keep]
        if request.per_show:
            keep = cap_per_show(rows, self.catalog, request.per_show)
            rows, part = rows[keep], part[keep]
        if request.diversity > 0:
            rows = rows[mmr(rows, scores[part], self.catalog.vectors, k, request.diversity)]
        return rows[:k].astype(np.int64)

    def results(self, rows: np.ndarray, scoring: Scoring) -> list[Recommendation]:
        c = self.catalog
        cards = self.cards([int(c.pks[r]) for r in rows]) if c.pks is not None else {}
        out = []
        for r, at in zip(rows.tolist(), scoring.at(rows).tolist(), strict=True):
            card = cards.get(int(c.pks[r])) if c.pks is not None else None
            out.append(Recommendation(
                id=c.ids[r], kind=c.kinds[r], title=c.titles[r],
                score=float(scoring.total[at]), author=c.authors[r],
                categories=c.categories[r], language=c.languages[r],
                components={n: float(p[at]) for n, p in scoring.parts.items()},
                show_id=c.show_ids[r], image=card.image if card else None,
                duration_s=card.duration_s if card else None,
                tags=list(card.tags) if card else []))
        return out

    def recommend(self, request: RecommendRequest, events: Sequence[EventRecord]
                  ) -> list[Recommendation]:
        history = self.history(request, events)
        return self._listed(request, history, events, self.score(request, history, events))

    def recommend_many(self, requests: Sequence[RecommendRequest],
                       events: Sequence[Sequence[EventRecord]]
                       ) -> list[list[Recommendation] | Exception]:
        """``recommend`` for several requests (a server's concurrent ones): the same lists,
        with the listeners whose parts score every item alike scored together, one call of
        each part for all of them instead of one per listener. Each request's list, or the
        error it raised, in order."""
        out: list[list[Recommendation] | Exception | None] = [None] * len(requests)
        together: dict[Any, list[tuple[int, Prepared]]] = {}
        model = self.served.model
        for i, (request, own) in enumerate(zip(requests, events, strict=True)):
            try:
                a = self._prepare(request, self.history(request, own), own)
            except Exception as exc:  # noqa: BLE001 - that request's answer, not the others'
                out[i] = exc
                continue
            key: Any = (i,)  # scored alone: its own candidates
            if a.rows is None:  # scored with those its hybrid weighs alike
                key = int(model.blend_rows(a.batch)[0]) if isinstance(model, HybridModel) \
                    else ()
            together.setdefault(key, []).append((i, a))
        for group in together.values():
            try:
                scorings = self._scored([a for _, a in group])
            except Exception as exc:  # noqa: BLE001
                for i, _ in group:
                    out[i] = exc
                continue
            for (i, a), scoring in zip(group, scorings, strict=True):
                try:
                    out[i] = self._listed(requests[i], a.history, events[i], scoring)
                except Exception as exc:  # noqa: BLE001
                    out[i] = exc
        return [o if o is not None else [] for o in out]

    def _listed(self, request: RecommendRequest, history: ListenerHistory,
                events: Sequence[EventRecord], scoring: Scoring) -> list[Recommendation]:
        """The list from a listener's scores: ranked, carded and, when asked, explained."""
        rows = self.rank(request, scoring)
        if scoring.rows is not None and len(rows) < (request.k or self.default_k):
            # filters left too few candidates: score the whole catalog after all
            scoring = self.score(request, history, events, everything=True)
            rows = self.rank(request, scoring)
        results = self.results(rows, scoring)
        if request.explain:
            self.explain(request, scoring, rows, results)
        return results

    def _balanced(self, request: RecommendRequest, scoring: Scoring, rows: np.ndarray, k: int,
                  strength: float) -> np.ndarray:
        """Positions (into the ranked pool ``rows``) of a list that gives each topic of the
        query, else each interest of the listener, its share of the ``k`` slots."""
        if scoring.topics is not None:
            interest = np.argmax(self.catalog.vectors[rows] @ scoring.topics.T, axis=1)
            shares = [1.0] * len(scoring.topics)
        else:
            if self.profile is None or len(scoring.history) < 2:
                return np.arange(len(rows))
            scoring.interests = self._interests(request, scoring, rows)
            profile, mapping = scoring.interests[0], scoring.interests[1]
            if profile is None or mapping is None or len(profile.interests) < 2:
                return np.arange(len(rows))
            interest = np.fromiter(mapping.values(), np.int64, len(mapping))  # rows' order
            shares = [i.share for i in profile.interests]
        chosen = balance(rows, interest, shares, k, strength)
        rest = np.ones(len(rows), bool)
        rest[chosen] = False
        return np.concatenate([chosen, np.flatnonzero(rest)])

    # -- explanation ----------------------------------------------------------------------
    def explain(self, request: RecommendRequest, scoring: Scoring, rows: np.ndarray,
                results: list[Recommendation]) -> None:
        """A reason and its evidence on every result."""
        h = scoring.history
        context = scoring.context
        found = scoring.interests
        if found is None or found[1] is None or not set(rows.tolist()) <= set(found[1]):
            found = self._interests(request, scoring, rows)
        profile, interest_of, ctx_term = found
        labels = [interest_label(self.catalog, i) for i in profile.interests] if profile else []
        members = [{int(r) for r in i.rows} for i in profile.interests] if profile else []
        events = dict(zip(h.rows.tolist(), h.events, strict=True))
        weights = dict(zip(h.rows.tolist(), h.confidence.tolist(), strict=True))
        for rec, row in zip(results, rows.tolist(), strict=True):
            j = interest_of.get(row, -1) if interest_of is not None else -1
            rows_j = members[j] if j >= 0 else set(weights)
            seeds = [Seed(r, weights[r], events[r]) for r in weights if r in rows_j]
            notes = self._context_notes(context, row, labels[j] if j >= 0 else None,
                                        None if ctx_term is None or j < 0
                                        else float(ctx_term[j]), scoring.intent_vector)
            rec.reason, rec.evidence = self.explainer.explain(
                row, rec.components, seeds, scoring.words, scoring.words_vector, notes, h.rows,
                labels[j] if j >= 0 else None)
            if profile is not None and j >= 0 and len(profile.interests) > 1:
                rec.evidence.append({"type": "interest", "index": j, "label": labels[j],
                                     "share": round(profile.interests[j].share, 3)})

    def _interests(self, request: RecommendRequest, scoring: Scoring, rows: np.ndarray
                   ) -> tuple[UserProfile | None, dict[int, int] | None, np.ndarray | None]:
        """The listener's interests as the profile part sees them, which interest each
        listed item (``rows``, in their order) scored through, and each interest's context
        term."""
        pm, h = self.profile, scoring.history
        if pm is None or not len(h):
            return None, None, None
        now = request.moment.timestamp()
        # the very history list scoring gave the profile part: its profile is built once
        items = (scoring.batch.history_items or [h.items()])[0]
        profile = pm.build_profile(items, now, scoring.context)
        detail = pm.score_profile(profile, scoring.context, **pm.request_terms(scoring.batch, 0),
                                  rows=rows)
        ctx = pm.interest_bonus(profile, scoring.context)[1] if profile.interests else None
        return profile, dict(zip(rows.tolist(), detail.interest.tolist(), strict=True)), ctx

    def _context_notes(self, context: RequestContext | None, row: int, label: str | None,
                       habit: float | None, intent_vector: np.ndarray | None
                       ) -> list[ContextNote]:
        """The context behind one item's score: duration fit, habit, intent."""
        pm = self.profile
        if context is None or pm is None:
            return []
        notes = []
        if context.minutes is not None:
            dur = float(self.catalog.durations[row])
            if np.isfinite(dur):
                effect = pm.duration_weight * float(duration_fit(np.array([dur]),
                                                                 context.minutes)[0])
                phrase = present.duration_phrase(dur, context.minutes, context.device)
                notes.append(ContextNote(effect, {"type": "context", "factor": "duration",
                                                  "minutes": context.minutes,
                                                  "duration_s": dur}, phrase))
        if habit is not None and habit > 0.05:
            notes.append(ContextNote(habit, {
                "type": "context", "factor": "habit", "interest": label},
                present.habit_phrase(label, context.hour, context.device)))
        if intent_vector is not None and context.intent:
            sim = float(self.catalog.vectors[row] @ intent_vector)
            notes.append(ContextNote(pm.intent_weight * sim * pm.weights.cosine, {
                "type": "context", "factor": "intent", "text": context.intent},
                present.intent_phrase(context.intent)))
        return notes

