"""A model fitted on the catalog as it was at training time, scoring today's catalog.

Between two trainings items come and go, so the item index a collaborative model was fitted on
drifts from the catalog being served. ``AlignedModel`` maps a listener's history from today's
rows onto the trained items, scores there, and maps the scores back. Items the model never
saw get the listener's mean score, which is zero once the hybrid standardises it: the model
says nothing about them (the hybrid's ``content@cold`` part speaks for them instead).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from scipy import sparse

from podrec.model.base import CatalogData, Recommender, UserBatch, last_answer


def trained_to_current(trained_keys: list[tuple[str, str]], catalog: CatalogData
                       ) -> np.ndarray:
    """Per trained item, its row in ``catalog`` (-1: gone). Kept on ``catalog`` while
    ``trained_keys`` lives: a model's seven collaborative parts all ask it of the same keys,
    and at 1M items each answer was a dict of a million keys built and an 8 MB array kept."""
    def compute() -> np.ndarray:
        current = {key: r for r, key in enumerate(zip(catalog.kinds, catalog.ids, strict=True))}
        rows = np.array([current.get(tuple(k), -1) for k in trained_keys], dtype=np.int64)
        rows.flags.writeable = False  # shared by the parts that asked
        return rows

    return last_answer(catalog, "trained_to_current", trained_keys, compute)


class AlignedModel(Recommender):
    """``model`` (fitted on ``trained_keys``, a list of (kind, id)) on ``catalog``'s rows."""

    def __init__(self, model: Recommender, trained_keys: list[tuple[str, str]],
                 catalog: CatalogData) -> None:
        self.model = model
        self.name = model.name
        self.trained_keys = trained_keys
        self.fit(catalog)

    def fit(self, catalog: CatalogData | None, interactions: Any = None) -> AlignedModel:
        """Map the trained items onto ``catalog`` (nothing is refitted)."""
        assert catalog is not None
        self.to_current_ = trained_to_current(self.trained_keys, catalog)
        self.to_trained_ = np.full(len(catalog), -1, dtype=np.int64)
        ok = self.to_current_ >= 0
        self.to_trained_[self.to_current_[ok]] = np.flatnonzero(ok)
        self.identity_ = (len(catalog) == len(self.trained_keys)
                          and np.array_equal(self.to_current_, np.arange(len(catalog))))
        self._n_items = len(catalog)
        return self

    def _to_trained(self, m: sparse.csr_matrix | None) -> sparse.csr_matrix | None:
        if m is None:
            return None
        coo = sparse.coo_matrix(m)
        cols = self.to_trained_[coo.col]
        keep = cols >= 0
        out = sparse.csr_matrix((coo.data[keep], (coo.row[keep], cols[keep])),
                                shape=(m.shape[0], len(self.trained_keys)), dtype=m.dtype)
        out.sort_indices()
        return out

    def trained_batch(self, batch: UserBatch) -> UserBatch:
        """``batch`` on the trained item index; the same object for the same ``batch`` while
        it lives, so what the part keeps between a request's candidates and its scoring
        (``LastAnswer``, keyed by the history) is found again."""
        if self.identity_:
            return batch
        return last_answer(self, "trained_batch", batch, lambda: replace(
            batch, histories=self._to_trained(batch.histories),
            history_times=self._to_trained(batch.history_times),
            negatives=self._to_trained(batch.negatives), seen=self._to_trained(batch.seen)))

    def score(self, batch: UserBatch) -> np.ndarray:
        scores = self.model.score(self.trained_batch(batch))
        if self.identity_:
            return scores
        return self.to_current(scores)

    def score_rows(self, batch: UserBatch, rows: np.ndarray) -> np.ndarray:
        """Scores of today's ``rows``; rows the model never saw get the mean over the trained
        items (as in ``to_current``) where the model knows it, else the mean of the rest."""
        rows = np.asarray(rows, np.int64)
        if self.identity_:
            return self.model.score_rows(batch, rows)
        mapped = self.to_trained_[rows]
        ok = mapped >= 0
        out = np.zeros((len(batch), len(rows)), np.float32)
        trained = self.trained_batch(batch)
        if ok.any():
            out[:, ok] = self.model.score_rows(trained, mapped[ok])
        if not ok.all():
            scale = self.model.score_scale(trained)
            if scale is not None:
                out[:, ~ok] = scale[0][:, None]
            elif ok.any():
                out[:, ~ok] = out[:, ok].mean(axis=1, keepdims=True)
        return out

    def score_scale(self, batch: UserBatch) -> tuple[np.ndarray, np.ndarray] | None:
        """The trained items' scale, with today's new items at its mean (``to_current``).
        Items gone since training are counted as if still there: a few between two
        trainings, against a catalog's worth."""
        scale = self.model.score_scale(self.trained_batch(batch))
        if scale is None or self.identity_:
            return scale
        trained = len(self.trained_keys)
        new = self._n_items - int((self.to_current_ >= 0).sum())
        mean, std = scale
        return mean, std * np.sqrt(trained / max(trained + new, 1))

    def candidates(self, batch: UserBatch, n: int) -> np.ndarray | None:
        found = self.model.candidates(self.trained_batch(batch), n)
        if found is None:
            return None
        rows = self.to_current_[np.asarray(found, np.int64)]
        return rows[rows >= 0]  # (seen rows are left out on the trained index already)

    def prepare_candidates(self) -> None:
        self.model.prepare_candidates()

    def to_current(self, scores: np.ndarray) -> np.ndarray:
        """Scores over the trained items → over today's rows (unknown rows: the row mean)."""
        scores = np.atleast_2d(np.asarray(scores, dtype=np.float32))
        out = np.repeat(scores.mean(axis=1, keepdims=True), self._n_items, axis=1)
        ok = self.to_current_ >= 0
        out[:, self.to_current_[ok]] = scores[:, ok]
        return out

    def item_affinity(self, rows: np.ndarray, target: int) -> np.ndarray:
        mapped = self.to_trained_[np.asarray(rows, np.int64)]
        t = int(self.to_trained_[target])
        out = np.zeros(len(mapped), np.float32)
        if t < 0:
            return out
        ok = mapped >= 0
        if ok.any():
            out[ok] = self.model.item_affinity(mapped[ok], t)
        return out

    def params(self) -> dict[str, Any]:
        return self.model.params()
