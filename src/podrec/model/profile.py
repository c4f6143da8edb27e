"""The profile model: a listener as several interests that fade with time, matched to context.

Each interest (profile/interests.py) scores the catalog with the content model's fused score
against its own items only; an item's score is its best interest's score plus
``share_weight · log(share)`` (a big interest outranks a passing one) plus, when the request
says when or where it is, ``context_weight`` times the interest's log lift in that context
(recommend/context.py). ``interest_mix`` < 1 blends that best-interest score with the
share-weighted mean over interests (which is the single-vector profile's score: 0 gives
exactly that). With ``max_interests=1`` and no half-life this is the single-vector
content profile; ``single_vector=True`` further drops every signal but the embedding (the
classic mean-of-embeddings user vector), the static baseline of the dynamic-interest study.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import sparse

from podrec.index.vector_index import top_k
from podrec.model.base import CatalogData, Recommender, Scored, UserBatch, weighted_rows
from podrec.model.content import COMPONENTS, ContentModel, ContentWeights, seed_weights
from podrec.profile.interests import HistoryItem, InterestProfiler, UserProfile
from podrec.recommend.context import (
    RequestContext,
    duration_fit,
    habit_factor,
    interest_lift,
)


class CentredRows:
    """The catalog's vectors centred on their mean and scaled to unit length, row by row as
    asked (``centred[rows]``): interests are clustered on a listener's few rows, so only the
    mean is kept, not a second items x dims copy of the vectors per worker (147 MB at 100k)."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors
        self.mean = np.asarray(vectors, np.float32).mean(axis=0, keepdims=True)

    def __len__(self) -> int:
        return len(self.vectors)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.vectors), int(self.mean.shape[1]))

    def __getitem__(self, rows: Any) -> np.ndarray:
        centred = np.asarray(self.vectors[rows], np.float32) - self.mean
        norms = np.linalg.norm(centred, axis=-1, keepdims=True)
        return np.divide(centred, norms, out=np.zeros_like(centred), where=norms > 0)


@dataclass
class ProfileScores:
    """Scores of every item for one listener, with the interest that gave each its score."""

    scores: np.ndarray  # (n,)
    interest: np.ndarray  # (n,) index into profile.interests, -1 where none
    parts: np.ndarray | None  # (n, 5) components of the winning interest; None: not asked
    context: np.ndarray  # (n,) what context added (habits, duration, intent)


class ProfileModel(Recommender):
    """Multi-interest, time-aware, context-aware listener profiles over the content model."""

    name = "profile"

    def __init__(self, weights: ContentWeights | None = None, half_life_days: float = 180.0,
                 max_interests: int = 5, distance_threshold: float = 0.9,
                 share_weight: float = 0.05, context_weight: float = 0.0,
                 duration_weight: float = 0.1, intent_weight: float = 1.0,
                 interest_mix: float = 1.0, single_vector: bool = False,
                 negative_weight: float = 0.5, text_weight: float = 3.0) -> None:
        self.weights = weights or ContentWeights(expand_k=0)
        if single_vector:
            self.weights = ContentWeights(cosine=1.0, lexical=0.0, genre=0.0, author=0.0,
                                          popularity=0.0, expand_k=0)
            half_life_days, max_interests = 0.0, 1
        self.half_life_days = half_life_days
        self.max_interests = max_interests
        self.distance_threshold = distance_threshold
        self.share_weight = share_weight
        self.context_weight = context_weight
        self.duration_weight = duration_weight
        self.intent_weight = intent_weight
        self.interest_mix = interest_mix
        self.single_vector = single_vector
        self.negative_weight = negative_weight
        self.text_weight = text_weight
        self.profiler = InterestProfiler(half_life_days, max_interests, distance_threshold)

    def params(self) -> dict[str, Any]:
        return {"half_life_days": self.half_life_days, "max_interests": self.max_interests,
                "distance_threshold": self.distance_threshold,
                "share_weight": self.share_weight, "context_weight": self.context_weight,
                "interest_mix": self.interest_mix, "negative_weight": self.negative_weight,
                "text_weight": self.text_weight,
                "duration_weight": self.duration_weight, "intent_weight": self.intent_weight,
                "single_vector": self.single_vector, "content_weights": self.weights.to_dict()}

    def fit(self, catalog: CatalogData, interactions: Any = None) -> ProfileModel:
        return self.fit_from(ContentModel(replace(self.weights, expand_k=0)).fit(catalog))

    def fit_from(self, content: ContentModel) -> ProfileModel:
        """Share an already fitted content model (its TF-IDF, genres, producers)."""
        self.content = content
        self.weights = content.weights
        catalog = self.catalog = content.catalog
        self._n_items = len(catalog)
        self.centred = CentredRows(catalog.vectors)
        return self

    def map_2d(self, vectors: np.ndarray) -> np.ndarray:
        """(n, 2) positions of centred vectors on the catalog's two main axes (PCA), for
        drawing a listener's interests on one map."""
        if not hasattr(self, "_axes"):
            sample = self.centred[np.random.default_rng(0).permutation(len(self.centred))[:2000]]
            _, _, vt = np.linalg.svd(sample - sample.mean(axis=0), full_matrices=False)
            self._axes = vt[:2].T if vt.shape[0] >= 2 else np.eye(sample.shape[1], 2)
        return np.atleast_2d(vectors) @ self._axes

    # -- one listener ---------------------------------------------------------------------
    def build_profile(self, history: list[HistoryItem], now: float | None = None,
                      context: RequestContext | None = None) -> UserProfile:
        """The listener's interests; with a context that names the moment (hour, weekday,
        device), items heard at such moments count more (``context_weight``, 0..1). The last
        one built is kept: a served list asks again for the same history (to balance and to
        explain) after scoring."""
        last = getattr(self, "_last_profile", None)
        if last is not None and last[0] is history and last[1] == now and last[2] is context:
            return last[3]
        habit = None
        if context is not None:
            habit = habit_factor([h.hour for h in history], [h.weekday for h in history],
                                 [h.device for h in history], context, self.context_weight)
        profile = self.profiler.build(history, self.centred, now, habit)
        self._last_profile = (history, now, context, profile)
        return profile

    def __getstate__(self) -> dict[str, Any]:
        """What is saved: not the last request's profile."""
        return {k: v for k, v in self.__dict__.items() if k != "_last_profile"}

    def score_profile(self, profile: UserProfile, context: RequestContext | None = None,
                      text_vectors: np.ndarray | None = None,
                      negatives: tuple[np.ndarray, np.ndarray] | None = None,
                      intent_vector: np.ndarray | None = None,
                      rows: np.ndarray | None = None, with_parts: bool = False
                      ) -> ProfileScores:
        """Every item's (or just ``rows``') score for one listener. ``text_vectors``: what
        they searched for or wrote (each counts like one more item of every interest, on
        embedding similarity); ``negatives``: (rows, weights) of what they turned down, pulled
        away from in every interest;
        ``intent_vector``: the embedded mood/intent text of the request. ``with_parts``:
        the winning interest's score components too (else only where they come free)."""
        sel = slice(None) if rows is None else np.asarray(rows, np.int64)
        n = len(self.catalog) if rows is None else len(sel)
        w = self.weights.as_array()
        text_sim, text_total = None, 0.0
        if text_vectors is not None and len(text_vectors):
            # each text counts like one more history item of ``text_weight`` (a subscription's
            # weight: words are the clearest statement of a taste), on the embedding component
            text_sim = self.text_weight * np.sum(
                [self.content.index.similarities(t, rows) for t in np.atleast_2d(text_vectors)],
                axis=0)
            text_total = self.text_weight * float(len(np.atleast_2d(text_vectors)))
        neg, neg_total = None, 0.0
        if negatives is not None and len(negatives[0]):
            neg = (np.asarray(negatives[0], np.int64), np.asarray(negatives[1], np.float32))
            neg_total = float(np.abs(negatives[1]).sum())
        interests = profile.interests
        if not interests:  # no history: the text they gave, else popularity
            parts = np.zeros((n, len(COMPONENTS)), np.float32)
            if text_sim is not None:
                parts[:, 0] = text_sim / text_total
                parts[:, 4] = 0.25 * self.content.popularity[sel]
            else:
                parts[:, 4] = self.content.popularity[sel]
            base = parts @ w
            best = np.full(n, -1)
            all_parts = parts
        else:
            base, best, all_parts = self._best_interest(profile, context, rows, text_sim,
                                                        text_total, neg, neg_total, with_parts)
        extra = self.context_scores(context, intent_vector, rows)
        return ProfileScores((base + extra).astype(np.float32), best, all_parts,
                             extra.astype(np.float32))

    def _best_interest(self, profile: UserProfile, context: RequestContext | None,
                       rows: np.ndarray | None, text_sim: np.ndarray | None,
                       text_total: float, neg: tuple[np.ndarray, np.ndarray] | None,
                       neg_total: float, with_parts: bool = False
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(score, winning interest, its components) of every item: each interest's fused
        score against its own items (minus the turned-down ones, plus the listener's words)
        plus its share and context bonus; the best interest wins (``interest_mix`` < 1
        blends in the share-weighted mean). All interests at once: (5, items, interests)."""
        interests = profile.interests
        totals = np.array([float(i.weights.sum()) for i in interests])
        if neg is not None:
            totals += neg_total
        if text_sim is not None:
            totals += text_total
        scale = np.maximum(totals, 1e-9).astype(np.float32)
        comps = None
        fused = None if with_parts else self._fused_from_pairs(profile, rows, text_sim, neg)
        if fused is None:
            comps = self.content.grouped_components([(i.rows, i.weights) for i in interests],
                                                    rows)
            if neg is not None:
                comps -= self.content.grouped_components([neg], rows)
            if text_sim is not None:
                comps[0] += np.asarray(text_sim, np.float32)[:, None]
            comps /= scale[None, None, :]
            fused = np.tensordot(self.weights.as_array(), comps, axes=1)  # (items, interests)
        else:
            fused /= scale[None, :]
        share_term, ctx_term = self.interest_bonus(profile, context)
        s = fused + (share_term + ctx_term)[None, :]
        best = np.argmax(s, axis=1)
        at = np.arange(s.shape[0])
        base = s[at, best].astype(np.float64)
        if self.interest_mix < 1.0:
            shares = np.array([i.share for i in interests])
            base = self.interest_mix * base + (1.0 - self.interest_mix) * (fused @ shares)
        parts = None if comps is None else np.ascontiguousarray(comps[:, at, best].T)
        return base, best.astype(np.int64), parts

    def _fused_from_pairs(self, profile: UserProfile, rows: np.ndarray | None,
                          text_sim: np.ndarray | None,
                          neg: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray | None:
        """Each interest's fused score (items x interests, before dividing by its total)
        from the content part's pairwise scores: the interest's items' rows summed, less the
        turned-down items' (``neg``: rows, weights); None without pairwise scores (a large
        catalog)."""
        pairs = self.content.pair_scores()
        if pairs is None:
            return None
        seeds, weights = seed_weights([(i.rows, i.weights) for i in profile.interests])
        sel = slice(None) if rows is None else np.asarray(rows, np.int64)
        fused = weighted_rows(pairs, seeds, weights, rows)
        w = self.weights.as_array()
        if w[2]:  # genres by Jaccard, per distinct genre set
            fused += w[2] * self.content.grouped_genre(seeds, weights, sel)
        fused += w[4] * self.content.popularity[sel][:, None] * weights.sum(axis=0)[None, :]
        if text_sim is not None:
            fused += w[0] * np.asarray(text_sim, np.float32)[:, None]
        if neg is not None:
            away = weighted_rows(pairs, neg[0], neg[1][:, None], rows)[:, 0]
            away += w[4] * self.content.popularity[sel] * float(neg[1].sum())
            if w[2]:
                away += w[2] * self.content.grouped_genre(neg[0], neg[1][:, None], sel)[:, 0]
            fused -= away[:, None]
        return fused

    def context_scores(self, context: RequestContext | None,
                       intent_vector: np.ndarray | None = None,
                       rows: np.ndarray | None = None) -> np.ndarray:
        """What the request's moment adds to every item (or to ``rows``): duration fit to the
        minutes available, and closeness to the mood/intent text. Zeros without context."""
        sel = slice(None) if rows is None else np.asarray(rows, np.int64)
        extra = np.zeros(len(self.catalog) if rows is None else len(sel))
        if context is not None and context.minutes is not None and self.duration_weight:
            extra += self.duration_weight * duration_fit(self.catalog.durations[sel],
                                                         context.minutes)
        if intent_vector is not None and self.intent_weight:
            extra += self.intent_weight * self.weights.cosine * \
                self.content.index.similarities(np.asarray(intent_vector).ravel(), rows)
        return extra

    def interest_bonus(self, profile: UserProfile, context: RequestContext | None
                       ) -> tuple[np.ndarray, np.ndarray]:
        """(share term, context term) per interest of ``profile``."""
        shares = np.array([i.share for i in profile.interests])
        share_term = self.share_weight * np.log(np.maximum(shares, 1e-9))
        ctx = np.zeros(len(shares))
        if context is not None and self.context_weight and len(shares) > 1:
            ctx = self.context_weight * interest_lift(
                np.vstack([i.hours for i in profile.interests]),
                np.vstack([i.weekdays for i in profile.interests]),
                [i.devices for i in profile.interests], shares, context)
        return share_term, ctx

    def recommend_profile(self, profile: UserProfile, k: int = 10,
                          exclude_rows: np.ndarray | None = None,
                          candidate_mask: np.ndarray | None = None,
                          **score_args: Any) -> tuple[Scored, ProfileScores]:
        scored = self.score_profile(profile, **score_args)
        scores = scored.scores
        if candidate_mask is not None:
            scores = np.where(candidate_mask, scores, -np.inf)
        seen = np.concatenate([i.rows for i in profile.interests] + [
            np.asarray(exclude_rows if exclude_rows is not None else [], np.int64)])
        rows, best = top_k(scores, k, seen.astype(np.int64))
        w = self.weights.as_array()
        parts = scored.parts[rows] if scored.parts is not None else self.score_profile(
            profile, rows=rows, with_parts=True, **score_args).parts
        components = []
        for r, part in zip(rows, parts, strict=True):
            comp = dict(zip(COMPONENTS, (part * w).round(4).tolist(), strict=True))
            comp["interest"] = int(scored.interest[r])
            if scored.context[r]:
                comp["context"] = round(float(scored.context[r]), 4)
            components.append(comp)
        return Scored(rows, best, components), scored

    # -- the Recommender protocol (offline evaluation) -----------------------------------
    def score(self, batch: UserBatch) -> np.ndarray:
        return self.score_rows(batch, None)

    def score_scale(self, batch: UserBatch) -> tuple[np.ndarray, np.ndarray] | None:
        """Exact for a small catalog (scored from the pairwise scores, every item costs
        little); None above it (the hybrid reads a sample)."""
        if self.content.pair_scores() is None:
            return None
        scores = np.asarray(self.score(batch), np.float64)
        return scores.mean(axis=1), scores.std(axis=1)

    def score_rows(self, batch: UserBatch, rows: np.ndarray | None) -> np.ndarray:
        """Each listener's ``score_profile`` (of ``rows`` only, when given)."""
        wanted = rows
        h = sparse.csr_matrix(batch.histories, dtype=np.float32)
        times = None if batch.history_times is None else sparse.csr_matrix(batch.history_times)
        width = len(self.catalog) if wanted is None else len(wanted)
        out = np.zeros((h.shape[0], width), dtype=np.float32)
        for u in range(h.shape[0]):
            lo, hi = h.indptr[u], h.indptr[u + 1]
            rows, vals = h.indices[lo:hi], h.data[lo:hi]
            ts = None
            if times is not None:
                assert np.array_equal(times.indices[times.indptr[u]:times.indptr[u + 1]], rows)
                ts = times.data[times.indptr[u]:times.indptr[u + 1]]
            history = batch.history_items[u] if batch.history_items is not None else [
                HistoryItem(int(r), float(v), *_when(None if ts is None else ts[i]))
                for i, (r, v) in enumerate(zip(rows, vals, strict=True))]
            now = None if batch.now is None else float(batch.now[u])
            context = self._context_of(batch, u, now)
            out[u] = self.score_profile(self.build_profile(history, now, context), context,
                                        **self.request_terms(batch, u), rows=wanted).scores
        return out

    def candidates(self, batch: UserBatch, n: int) -> np.ndarray:
        return self.content.candidates(batch, n)

    def _context_of(self, batch: UserBatch, u: int, now: float | None
                    ) -> RequestContext | None:
        """A served request's own context; offline, the hour and weekday of the request
        moment when this model weighs context."""
        if batch.contexts is not None:
            return batch.contexts[u]
        if self.context_weight and now is not None:  # the request's time of day
            return RequestContext(hour=_when(now)[1], weekday=_when(now)[2])
        return None

    def request_terms(self, batch: UserBatch, u: int) -> dict[str, Any]:
        """Listener ``u``'s own words, intent and turned-down items, as ``score_profile``
        takes them; negatives are pushed away only from a listener with a history."""
        out: dict[str, Any] = {}
        if batch.text_vectors is not None and np.linalg.norm(batch.text_vectors[u]) > 0:
            out["text_vectors"] = batch.text_vectors[u]
        if batch.intent_vectors is not None and np.linalg.norm(batch.intent_vectors[u]) > 0:
            out["intent_vector"] = batch.intent_vectors[u]
        if batch.negatives is not None and self.negative_weight > 0 and \
                batch.histories.indptr[u + 1] > batch.histories.indptr[u]:
            neg = sparse.csr_matrix(batch.negatives)
            lo, hi = neg.indptr[u], neg.indptr[u + 1]
            if hi > lo:
                out["negatives"] = (neg.indices[lo:hi].astype(np.int64),
                                    self.negative_weight * neg.data[lo:hi])
        return out


def _when(t: float | None) -> tuple[float | None, int | None, int | None]:
    """(time, UTC hour, weekday) of a Unix time."""
    if t is None or not np.isfinite(t):
        return None, None, None
    days, seconds = divmod(float(t), 86400.0)
    return float(t), int(seconds // 3600), int((days + 3) % 7)  # 1970-01-01 was a Thursday

