"""Candidates of the factor models (iALS, BPR) for large catalogs: found among the items that
had training events, exactly or from an HNSW graph, and the graph saved with the model so a
worker loading it does not build it again."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from conftest import random_pairs
from scipy import sparse

from podrec.model import collaborative
from podrec.model.base import UserBatch
from podrec.model.collaborative import ALSModel, BPRModel
from podrec.model.interactions import Interactions

ITEMS = 400
TRAINED = 240  # items 240..399 have no events


def _pairs() -> Interactions:
    return random_pairs(0, users=80, items=TRAINED, n=4000, catalog_items=ITEMS)


def _batch(rows: list[int]) -> UserBatch:
    h = sparse.csr_matrix((np.ones(len(rows), np.float32), (np.zeros(len(rows), int), rows)),
                          shape=(1, ITEMS))
    return UserBatch(h)


def _exact_best(model, batch: UserBatch, n: int) -> set[int]:
    """The ``n`` trained, unseen items of highest score, by scoring every item."""
    scores = np.asarray(model.score(batch), np.float32)[0]
    seen = batch.histories.indices
    ok = np.setdiff1d(np.arange(TRAINED), seen)
    return set(ok[np.argsort(-scores[ok], kind="stable")[:n]].tolist())


@pytest.fixture(scope="module", params=[ALSModel, BPRModel], ids=["ials", "bpr"])
def fitted(request):
    model = (request.param(factors=16, iterations=8) if request.param is ALSModel
             else request.param(factors=16, iterations=30))
    return model.fit(None, _pairs())


def test_candidates_are_the_best_trained_unseen_items(fitted):
    batch = _batch([3, 17, 42, 101])
    found = fitted.candidates(batch, 25)
    assert len(found) == 25
    assert found.max() < TRAINED  # never an item without training events
    assert not set(found.tolist()) & {3, 17, 42, 101}
    assert set(found.tolist()) == _exact_best(fitted, batch, 25)


def test_a_graph_over_many_trained_items_is_saved_with_the_model(fitted, monkeypatch):
    monkeypatch.setattr(collaborative, "EXACT_CANDIDATES", 50)  # 240 trained items: a graph
    model = pickle.loads(pickle.dumps(fitted))  # a fresh copy, nothing prepared
    model.prepare_candidates()
    rows, factors, graph = model._candidates
    assert factors is None and graph is not None and len(rows) == TRAINED
    batch = _batch([5, 9, 200])
    found = model.candidates(batch, 20)
    exact = _exact_best(model, batch, 20)
    assert found.max() < TRAINED and not set(found.tolist()) & {5, 9, 200}
    assert len(set(found.tolist()) & exact) >= 18  # HNSW on 240 items: (nearly) exact

    loaded = pickle.loads(pickle.dumps(model))
    assert loaded._candidates[2] is not None  # loaded, not built again
    monkeypatch.setattr(collaborative, "EXACT_CANDIDATES", 10**9)  # a rebuild would be exact
    assert loaded.candidates(batch, 20).tolist() == found.tolist()
    assert pickle.loads(pickle.dumps(fitted)).__dict__.get("_candidates") is None


def test_a_model_without_a_graph_saves_no_candidate_state(fitted):
    model = pickle.loads(pickle.dumps(fitted))
    model.prepare_candidates()  # exact: a copy of the trained items' factors
    assert model._candidates[2] is None
    state = model.__getstate__()
    assert "_candidates" not in state and "_candidate_graph" not in state
