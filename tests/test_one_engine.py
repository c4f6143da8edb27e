"""The pieces that make evaluation and serving one engine: splits and factor models drawn
from ids (so the trainer repeats the harness's choices), one history builder, one request
type, the interest cut, and the hybrid's parts summing to its score."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from conftest import random_pairs
from scipy import sparse

from podrec.evaluate.protocols import SplitConfig, split_pairs
from podrec.model.base import CatalogData, UserBatch
from podrec.model.collaborative import ALSModel, BPRModel, ItemKNNModel, PopularityModel
from podrec.model.hybrid import HybridModel
from podrec.model.interactions import Interactions
from podrec.recommend.history import HistoryBuilder
from podrec.recommend.request import RecommendRequest
from podrec.records import EventRecord


def _pairs(seed: int = 0, users: int = 60, items: int = 300, n: int = 3000) -> Interactions:
    return random_pairs(seed, users, items, n)


def _reordered(data: Interactions, seed: int = 1) -> tuple[Interactions, np.ndarray]:
    """The same pairs with listeners, items and pairs in another order."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(data.users))
    uo = rng.permutation(data.n_users)
    io = rng.permutation(data.n_items)
    u_new = np.argsort(uo)
    i_new = np.argsort(io)
    return Interactions([data.user_ids[k] for k in uo], [data.item_ids[k] for k in io],
                        u_new[data.users[perm]].astype(np.int32),
                        i_new[data.items[perm]].astype(np.int32), data.confidence[perm],
                        data.times[perm]), perm


@pytest.mark.parametrize("protocol", ["temporal", "random", "leave-last", "user-holdout",
                                      "cold-items"])
def test_a_split_depends_on_the_pairs_not_their_order(protocol):
    a = _pairs()
    b, perm = _reordered(a)
    cfg = SplitConfig(protocol, seed=3)
    test_a = split_pairs(a, cfg)
    test_b = split_pairs(b, cfg)
    assert 0 < test_a.sum() < len(test_a)
    names = lambda d, mask: {(d.user_ids[u], d.item_ids[i])  # noqa: E731
                             for u, i in zip(d.users[mask], d.items[mask], strict=True)}
    assert names(a, test_a) == names(b, test_b)
    if protocol not in ("temporal", "leave-last"):  # those two are fixed by the times
        assert names(a, split_pairs(a, SplitConfig(protocol, seed=4))) != names(a, test_a)


def test_factor_models_fit_the_same_whatever_the_order():
    a = _pairs()
    b, _ = _reordered(a)
    for model in (ALSModel, BPRModel):
        fa = model(seed=1).fit(None, a)
        fb = model(seed=1).fit(None, b)
        where = {name: k for k, name in enumerate(b.item_ids)}
        items_b = np.asarray(fb._model.item_factors)[[where[n] for n in a.item_ids]]
        assert np.allclose(np.asarray(fa._model.item_factors), items_b, atol=1e-3)


def test_the_history_sums_event_weights_and_turns_down_negative_sums():
    catalog = CatalogData(ids=["a", "b", "c", "d"], kinds=["show"] * 4,
                          vectors=np.eye(4, dtype=np.float32))
    now = datetime(2026, 12, 1, tzinfo=UTC)
    ev = lambda item, event, days=0, **kw: EventRecord(  # noqa: E731
        user_id="x", item_id=item, item_kind="show", event=event,
        timestamp=now - timedelta(days=days), **kw)
    events = [ev("a", "subscribe"), ev("b", "like", 10), ev("b", "dislike", 5),
              ev("c", "dislike", 180), ev("d", "play", value=0.5),
              EventRecord(user_id="x", event="search", timestamp=now, text="rome"),
              EventRecord(user_id="x", item_id="d", event="review", value=1.0,
                          timestamp=now, text="awful")]
    h = HistoryBuilder(half_life_days=180).build(events, catalog, now)
    assert dict(zip(h.rows.tolist(), h.confidence.tolist(), strict=True)) == {0: 3.0}
    assert h.negative_rows.tolist() == [2, 3]  # a like then a dislike cancel; b is neither
    assert h.negative_weights[0] == pytest.approx(2.0 * 0.5)  # one half-life old
    assert sorted(h.seen_rows.tolist()) == [0, 1, 2, 3]  # every judged item is left out
    assert h.text == "rome"  # a review rated 1 is not the listener's taste
    batch = h.batch(4, now.timestamp())
    assert batch.histories.toarray().tolist() == [[3.0, 0.0, 0.0, 0.0]]


def test_a_request_is_checked_once_where_it_is_made():
    with pytest.raises(ValueError, match="give a user"):
        RecommendRequest(query="   ")
    with pytest.raises(ValueError, match="diversity"):
        RecommendRequest(user_id="x", diversity=2.0)
    r = RecommendRequest(query="  rome ", seeds=["a"], blocked=["b"])
    assert r.query == "rome" and r.seeds == ("a",) and r.blocked == ("b",)


def test_the_hybrids_parts_sum_to_its_score():
    data = _pairs()
    parts = {"pop": PopularityModel().fit(None, data),
             "itemknn": ItemKNNModel().fit(None, data)}
    hybrid = HybridModel(parts).fit(None, data)
    hybrid.blend = [{"pop": 1.0}, {"pop": 0.5, "itemknn": 1.0}, {"itemknn": 2.0}]
    matrix = data.matrix()
    batch = UserBatch(sparse.csr_matrix(matrix[:20]))
    total, each = hybrid.contributions(batch)
    assert np.allclose(total, sum(each.values()), atol=1e-5)
    assert np.allclose(hybrid.score(batch), total)


def test_the_interest_cut_matches_scipys():
    from scipy.cluster.hierarchy import cut_tree, linkage
    from scipy.spatial.distance import pdist

    from podrec.profile.interests import cut_merges

    v = np.random.default_rng(0).normal(size=(200, 8))
    tree = linkage(pdist(v, "cosine"), method="average")
    for k in (2, 5, 9):
        ours, theirs = cut_merges(tree, 200, k), cut_tree(tree, n_clusters=k).ravel()
        assert len(np.unique(ours)) == k
        assert all(len(set(ours[theirs == c])) == 1 for c in np.unique(theirs))


def test_a_part_on_a_changed_catalog_reuses_its_answers_within_one_request(monkeypatch):
    """A trained part served on a catalog that changed since training (new items) sees one
    mapped batch per request, so what it keeps between candidates and scoring is found
    again; its scores are the trained model's on the items it knows."""
    from podrec.model.aligned import AlignedModel

    pairs = _pairs()
    knn = ItemKNNModel().fit(None, pairs)
    keys = [("show", i) for i in pairs.item_ids]
    ids = ["new-1", *pairs.item_ids[::-1], "new-2"]  # reordered, two items added
    catalog = CatalogData(ids=ids, kinds=["show"] * len(ids),
                          vectors=np.zeros((len(ids), 2), np.float32))
    served = AlignedModel(knn, keys, catalog)
    assert not served.identity_
    row = {i: r for r, i in enumerate(ids)}
    items = [row[pairs.item_ids[i]] for i in (1, 7, 30)]
    batch = UserBatch(sparse.csr_matrix((np.ones(3, np.float32), ([0, 0, 0], items)),
                                        shape=(1, len(ids))))
    assert served.trained_batch(batch) is served.trained_batch(batch)
    from podrec.model import collaborative

    sums = []
    real = collaborative.history_rows_sum
    monkeypatch.setattr(collaborative, "history_rows_sum",
                        lambda h, m: sums.append(h) or real(h, m))
    found = served.candidates(batch, 15)
    scores = served.score_rows(batch, found)
    assert len(sums) == 1  # scoring found the candidates' answer
    served.score_rows(UserBatch(batch.histories.copy()), found)  # another request: computed
    assert len(sums) == 2
    trained = UserBatch(sparse.csr_matrix((np.ones(3, np.float32), ([0, 0, 0], [1, 7, 30])),
                                          shape=(1, pairs.n_items)))
    expected = knn.score(trained)[0][served.to_trained_[found]]
    np.testing.assert_allclose(scores[0], expected, atol=1e-5)


def test_parts_scored_on_candidates_keep_the_full_pass_scale():
    """Scored on candidates, a part whose scores are sparse or skewed (popularity, item kNN,
    EASE) or a factor product (iALS, BPR) is standardised by its own mean and spread over
    every item, so every candidate's contribution is the one a full pass gives it; a
    catalog sample put the most popular items tens of spreads too high."""
    from podrec.model.collaborative import EASEModel

    data = _pairs(users=80, items=400, n=4000)
    parts = {"pop": PopularityModel().fit(None, data),
             "pop-recent": PopularityModel(half_life_days=30).fit(None, data),
             "itemknn": ItemKNNModel(neighbours=20).fit(None, data),
             "ease": EASEModel(max_items=150).fit(None, data),
             "ials": ALSModel(factors=8, iterations=3).fit(None, data),
             "bpr": BPRModel(factors=8, iterations=20).fit(None, data)}
    hybrid = HybridModel(parts).fit(None, data)
    hybrid.blend = [{n: 1.0 for n in parts}] * 3
    batch = UserBatch(sparse.csr_matrix(data.matrix()[:12].maximum(0)),
                      user_rows=np.arange(12))
    rows = np.sort(np.random.default_rng(3).choice(data.n_items, 60, replace=False))
    total, each = hybrid.contributions(batch)
    cand_total, cand_each = hybrid.contributions(UserBatch(batch.histories.copy(),
                                                           user_rows=np.arange(12)), rows)
    for name in parts:
        np.testing.assert_allclose(cand_each[name], each[name][:, rows], atol=1e-4,
                                   err_msg=name)
    np.testing.assert_allclose(cand_total, total[:, rows], atol=1e-3)


def test_a_part_on_a_changed_catalog_knows_its_full_pass_scale():
    """Served on a catalog with items added since training, a part's scale is the one its
    full pass over today's catalog has (new items at the trained items' mean), and a new
    candidate gets that mean, as in the full pass."""
    from podrec.model.aligned import AlignedModel

    pairs = _pairs()
    for model in (ItemKNNModel().fit(None, pairs), ALSModel(factors=8, iterations=3).fit(
            None, pairs)):
        keys = [("show", i) for i in pairs.item_ids]
        ids = ["new-1", *pairs.item_ids[::-1], "new-2", "new-3"]
        catalog = CatalogData(ids=ids, kinds=["show"] * len(ids),
                              vectors=np.zeros((len(ids), 2), np.float32))
        served = AlignedModel(model, keys, catalog)
        row = {i: r for r, i in enumerate(ids)}
        items = [row[pairs.item_ids[i]] for i in (1, 7, 30, 44)]
        batch = UserBatch(sparse.csr_matrix((np.ones(4, np.float32), ([0] * 4, items)),
                                            shape=(1, len(ids))))
        full = served.score(batch)[0]
        mean, std = served.score_scale(batch)
        assert mean[0] == pytest.approx(full.mean(), abs=1e-5)
        assert std[0] == pytest.approx(full.std(), rel=1e-4)
        new = np.array([0, len(ids) - 2, len(ids) - 1])
        np.testing.assert_allclose(served.score_rows(batch, new)[0], full[new], atol=1e-5)
