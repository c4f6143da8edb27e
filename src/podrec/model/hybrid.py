"""The hybrid: fuses the scores of several models with a blend learned per activity level.

A listener with two events is best served by content and popularity; one with two hundred by
collaborative filtering. So listeners are put in activity buckets (by their number of history
items) and each bucket gets its own weights. The weights are learned on a validation split,
by coordinate ascent on NDCG@k. Every model's scores are standardised per listener
(z-scores over the catalog) before they are weighted, so the weights compare like with like.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from podrec.evaluate.metrics import ndcg_at_k
from podrec.index.vector_index import top_k
from podrec.model.base import CatalogData, Recommender, UserBatch

DEFAULT_BUCKETS = (2, 10)  # ≤2, 3–10, >10 history items
# Catalog rows whose scores set a dense part's scale on candidates (content and profile on a
# large catalog). Its mean shifts every candidate of a listener alike; only the spread
# weighs the part against the others, and 512 rows read it within a few per cent (lists as
# a full pass's at 100k and 1M items, half the reads of 1,024 rows; README.md, "Large
# catalogs").
STANDARDISE_SAMPLE = 512
GRID = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0)


def standardise(scores: np.ndarray) -> np.ndarray:
    """Per-row z-scores; a constant row (a model with nothing to say) becomes zeros."""
    scores = np.asarray(scores, dtype=np.float32)
    mean = scores.mean(axis=1, keepdims=True)
    std = scores.std(axis=1, keepdims=True)
    return np.divide(scores - mean, std, out=np.zeros_like(scores), where=std > 1e-9)


def standardise_by(scores: np.ndarray, head: int) -> np.ndarray:
    """The first ``head`` columns, z-scored by the mean and spread of the other columns (a
    sample of the catalog standing for all of it)."""
    sample = scores[:, head:]
    mean = sample.mean(axis=1, keepdims=True)
    std = sample.std(axis=1, keepdims=True)
    return np.divide(scores[:, :head] - mean, std, out=np.zeros_like(scores[:, :head]),
                     where=std > 1e-9)


def bucket_of(counts: np.ndarray, edges: Sequence[int] = DEFAULT_BUCKETS) -> np.ndarray:
    return np.searchsorted(np.asarray(edges), counts, side="left")


def parts_of(model: Recommender) -> dict[str, Recommender]:
    """A served model's parts by name (a single model is its own one part)."""
    return dict(model.components) if isinstance(model, HybridModel) else {model.name: model}


class HybridModel(Recommender):
    """Weighted sum of standardised component scores, weights per activity bucket."""

    name = "hybrid"

    def __init__(self, components: dict[str, Recommender],
                 buckets: Sequence[int] = DEFAULT_BUCKETS) -> None:
        self.components = components
        self.buckets = tuple(buckets)
        names = self.part_names()
        uniform = {n: 1.0 / len(names) for n in names}
        self.blend: list[dict[str, float]] = [dict(uniform) for _ in range(len(buckets) + 1)]

    def part_names(self) -> list[str]:
        """The blended parts: every component, plus ``content@cold`` (content's scores on
        items no one has touched yet, where collaborative models have nothing to say)."""
        names = list(self.components)
        return names + (["content@cold"] if "content" in self.components else [])

    def fit(self, catalog: CatalogData | None, interactions: Any = None) -> HybridModel:
        """Fit every component not fitted yet (the blend is learned by ``learn_blend``)."""
        for model in self.components.values():
            if not hasattr(model, "_n_items"):
                model.fit(catalog, interactions)
        self._n_items = next(iter(self.components.values())).n_items
        self._cold = (interactions.item_popularity() == 0 if interactions is not None
                      else np.zeros(self._n_items, bool))
        return self

    @classmethod
    def assembled(cls, components: dict[str, Recommender], blend: list[dict[str, float]],
                  cold: np.ndarray, buckets: Sequence[int] = DEFAULT_BUCKETS) -> HybridModel:
        """A hybrid of fitted components with a known blend (a trained model, loaded)."""
        hybrid = cls(components, buckets)
        hybrid.blend = [dict(b) for b in blend]
        hybrid._n_items = next(iter(components.values())).n_items
        hybrid._cold = np.asarray(cold, bool)
        return hybrid

    def words_part(self) -> str | None:
        """The part that reads a listener's words: a request with words and no history is
        ranked by it alone (the collaborative parts have nothing to go on)."""
        return next((p for p in ("profile", "content") if p in self.components), None)

    def blend_rows(self, batch: UserBatch) -> np.ndarray:
        """Which blend weighs each listener of ``batch``: their activity bucket's, or -1 for
        a listener with words and no history, ranked by the words part alone. Listeners with
        the same value are weighed alike (``row_weights``)."""
        counts = np.diff(batch.histories.indptr)
        which = np.asarray(bucket_of(counts, self.buckets), np.int64)
        if self.words_part() is not None:
            has_words = np.zeros(len(batch), bool)
            for v in (batch.text_vectors, batch.intent_vectors):
                if v is not None:
                    has_words |= np.linalg.norm(np.asarray(v), axis=1) > 0
            which = np.where((counts == 0) & has_words, -1, which)
        return which

    def row_weights(self, batch: UserBatch) -> dict[str, np.ndarray]:
        """Per part, its weight for each listener of ``batch`` (their bucket's blend)."""
        which = self.blend_rows(batch).tolist()
        words = self.words_part()
        weights = {n: np.array([self.blend[b].get(n, 0.0) if b >= 0 else float(n == words)
                                for b in which], np.float32)
                   for n in self.part_names()}
        return {n: w for n, w in weights.items() if w.any()}

    def contributions(self, batch: UserBatch, rows: np.ndarray | None = None
                      ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(scores, {part: weight × standardised part score}) for a batch: what each part
        adds to every item's score (the parts sum to the score). ``rows``: of those items
        only (candidates), standardised by a sample of the catalog."""
        weights = self.row_weights(batch)
        parts = self.component_scores(batch, set(weights), rows)
        out = {n: w[:, None] * parts[n] for n, w in weights.items()}
        width = self._n_items if rows is None else len(rows)
        total = np.zeros((len(batch), width), np.float32)
        for values in out.values():
            total += values
        return total, out

    def component_scores(self, batch: UserBatch, only: set[str] | None = None,
                         rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Every part's standardised scores (``only``: just these parts). ``rows``: just
        those items, each part on the scale of a full pass (``_standardised_rows``)."""
        wanted = None if only is None else set(only) | (
            {"content"} if "content@cold" in only else set())
        models = {name: m for name, m in self.components.items()
                  if wanted is None or name in wanted}
        if rows is None:
            parts = {name: standardise(m.score(batch)) for name, m in models.items()}
            cold = self._cold[None, :]
        else:
            rows = np.asarray(rows, np.int64)
            parts = {name: self._standardised_rows(m, batch, rows) for name, m in models.items()}
            cold = self._cold[None, rows]
        if "content" in parts:
            parts["content@cold"] = np.where(cold, parts["content"], 0.0)
        return parts

    def _standardised_rows(self, model: Recommender, batch: UserBatch, rows: np.ndarray
                           ) -> np.ndarray:
        """A part's standardised scores of ``rows``: on the scale of a full pass, from the
        part's own mean and spread over every item (``score_scale``) where it knows them,
        else from its scores of a fixed sample of the catalog."""
        scale = model.score_scale(batch)
        if scale is None:
            cols = np.concatenate([rows, self._sample_rows()])
            return standardise_by(np.asarray(model.score_rows(batch, cols), np.float32),
                                  len(rows))
        mean, std = (np.asarray(v, np.float64)[:, None] for v in scale)
        scores = np.asarray(model.score_rows(batch, rows), np.float64)
        return np.divide(scores - mean, std, out=np.zeros(scores.shape), where=std > 1e-9
                         ).astype(np.float32)

    def _sample_rows(self) -> np.ndarray:
        """A fixed random sample of rows whose scores stand for the catalog's."""
        if getattr(self, "_sample", None) is None:
            n = self._n_items
            rng = np.random.default_rng(0)
            self._sample = np.sort(rng.choice(n, min(STANDARDISE_SAMPLE, n), replace=False))
        return self._sample

    def score(self, batch: UserBatch) -> np.ndarray:
        return self.contributions(batch)[0]

    def learn_blend(self, batch: UserBatch, relevant: Sequence[set[int]], k: int = 10,
                    passes: int = 2, progress: Callable[[str], None] | None = None
                    ) -> list[dict[str, Any]]:
        """Choose each bucket's weights to maximise mean NDCG@k of ``relevant`` on ``batch``
        (the components must be fitted on data that excludes ``relevant``)."""
        parts = self.component_scores(batch)
        names = list(parts)
        seen = [batch.histories[i].indices for i in range(len(batch))]
        which = bucket_of(np.diff(batch.histories.indptr), self.buckets)
        report = []
        for b in range(len(self.buckets) + 1):
            rows = np.flatnonzero(which == b)
            if not len(rows):
                report.append({"bucket": b, "users": 0, "weights": self.blend[b]})
                continue

            def quality(w: np.ndarray, rows: np.ndarray = rows) -> float:
                total = 0.0
                for r in rows:
                    s = sum(w[j] * parts[n][r] for j, n in enumerate(names) if w[j])
                    if np.isscalar(s):
                        return 0.0
                    ranked, _ = top_k(s, k, seen[r])
                    total += ndcg_at_k(ranked.tolist(), relevant[r], k)
                return total / len(rows)

            # start from the best single component, then adjust one weight at a time
            singles = [np.eye(len(names))[j] for j in range(len(names))]
            scored = [quality(w) for w in singles]
            w = singles[int(np.argmax(scored))].copy()
            best = max(scored)
            for _ in range(passes):
                for j in range(len(names)):
                    for v in GRID:
                        trial = w.copy()
                        trial[j] = v
                        if not trial.any():
                            continue
                        q = quality(trial)
                        if q > best + 1e-6:
                            best, w = q, trial
            self.blend[b] = {n: float(w[j]) for j, n in enumerate(names)}
            entry = {"bucket": b, "users": int(len(rows)), "weights": self.blend[b],
                     f"validation_ndcg@{k}": round(best, 4),
                     "best_single": names[int(np.argmax(scored))],
                     f"best_single_ndcg@{k}": round(max(scored), 4)}
            report.append(entry)
            if progress:
                progress(f"hybrid bucket {b}: {entry}")
        return report

    def params(self) -> dict[str, Any]:
        return {"buckets": list(self.buckets), "blend": self.blend,
                "components": {n: m.params() for n, m in self.components.items()}}
