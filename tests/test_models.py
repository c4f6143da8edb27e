"""Every recommender on a real slice of MovieLens (users 1-40): the protocol, and each model's
own defining property."""

import numpy as np
import pytest
from conftest import FIXTURES
from scipy import sparse

from podrec.ingest.datasets import read_catalog
from podrec.ingest.events import read_events
from podrec.model.base import CatalogData, UserBatch
from podrec.model.collaborative import (
    ALSModel,
    BPRModel,
    EASEModel,
    ItemKNNModel,
    PopularityModel,
)
from podrec.model.content import ContentModel, ContentWeights
from podrec.model.hybrid import HybridModel, standardise
from podrec.model.interactions import build_interactions, event_weight
from podrec.records import IngestReport

ML = FIXTURES / "movielens_40users"


@pytest.fixture(scope="module")
def ml(wordllama):
    report = IngestReport()
    records = list(read_catalog(ML / "movies.csv", report))
    events = list(read_events(ML / "ratings.csv", report))
    assert report.failed == 0
    data = build_interactions(events, [r.id for r in records])
    vectors = wordllama.embed_passages([f"{r.title}. {', '.join(r.categories)}" for r in records])
    catalog = CatalogData(ids=[r.id for r in records], kinds=["show"] * len(records),
                          vectors=vectors, titles=[r.title for r in records],
                          categories=[r.categories for r in records])
    return data, catalog


def test_event_weights_follow_the_documented_rules():
    w = {"rate": 1.0, "play": 1.0, "skip": -1.0, "complete": 3.0}
    assert event_weight("rate", 5.0, w) == 2.5 and event_weight("rate", 1.0, w) == -2.0
    assert event_weight("play", 0.5, w) == 0.5  # progress
    assert event_weight("play", 100.0, w) == pytest.approx(np.log1p(100.0))  # a play count
    assert event_weight("skip", None, w) == -1.0 and event_weight("complete", None, w) == 3.0


def test_interactions_aggregate_pairs(ml):
    data, catalog = ml
    assert data.n_users == 40 and data.n_items == len(catalog)
    assert len(data.users) == 6873  # one pair per (user, movie) in MovieLens
    m = data.matrix()
    assert m.shape == (40, data.n_items) and (m.data > 0).all()
    assert (data.confidence <= 0).sum() > 0  # low ratings count against


ALL = [PopularityModel(), PopularityModel(half_life_days=90), ItemKNNModel(neighbours=50),
       EASEModel(l2=100.0), ALSModel(factors=16, iterations=5),
       BPRModel(factors=16, iterations=20), ContentModel()]


@pytest.mark.parametrize("model", ALL, ids=lambda m: m.name)
def test_every_model_honours_the_protocol(ml, model):
    data, catalog = ml
    model.fit(catalog, data)
    m = data.matrix()
    batch = UserBatch(m[:5], user_rows=np.arange(5))
    scores = model.score(batch)
    assert scores.shape == (5, data.n_items) and np.isfinite(scores).all()
    recs = model.recommend(batch, k=10)
    for i, r in enumerate(recs):
        assert len(r.rows) == 10 and len(set(r.rows.tolist())) == 10
        assert not set(r.rows.tolist()) & set(m[i].indices.tolist())  # seen items left out
        assert (np.diff(r.scores) <= 1e-6).all()
    sim = model.similar_items(int(m[0].indices[0]), k=5)
    assert len(sim.rows) == 5 and int(m[0].indices[0]) not in sim.rows


def test_popularity_recent_prefers_recent_items(ml):
    data, catalog = ml
    overall = PopularityModel().fit(catalog, data).popularity
    recent = PopularityModel(half_life_days=30).fit(catalog, data).popularity
    pos = data.confidence > 0
    newest = data.items[pos][np.argmax(data.times[pos])]
    assert recent[newest] / recent.max() > overall[newest] / overall.max()


def test_ease_weights_have_an_empty_diagonal_and_score_like_their_formula(ml):
    data, catalog = ml
    model = EASEModel(l2=100.0).fit(catalog, data)
    assert np.allclose(np.diag(model.weights), 0.0)
    x = (data.matrix()[:, model.items] > 0).astype(np.float32)
    expected = np.asarray(x[:3] @ model.weights)
    got = model.score(UserBatch(data.matrix()[:3]))[:, model.items]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_itemknn_built_in_blocks_is_its_formula(ml, monkeypatch):
    """Blocks of items bound the co-occurrence held at once (a 1M catalog's whole product
    did not fit in 24 GB); the similarity is the formula's, cut to each item's top
    neighbours, however many blocks it took."""
    from podrec.model import collaborative

    data, catalog = ml
    x = (data.matrix() > 0).astype(np.float32)
    counts = np.asarray(x.sum(axis=0)).ravel()
    co = (x.T @ x).toarray()
    np.fill_diagonal(co, 0.0)
    formula = co / (np.sqrt(counts)[:, None] * np.sqrt(counts)[None, :] + 10.0)
    whole = ItemKNNModel(neighbours=20, shrink=10.0).fit(catalog, data).similarity
    monkeypatch.setattr(collaborative, "ITEMKNN_BLOCK_PAIRS", 5000)
    blocks = collaborative._blocks(collaborative._co_bounds(x.tocsr(), x.T.tocsr()), 5000)
    assert len(blocks) > 20
    blocked = ItemKNNModel(neighbours=20, shrink=10.0).fit(catalog, data).similarity
    assert (blocked != whole).nnz == 0
    for row in (0, 7, len(catalog) // 2):
        kept = blocked[row].toarray().ravel()
        assert (kept > 0).sum() == min(20, (formula[row] > 0).sum())
        np.testing.assert_allclose(kept[kept > 0], formula[row][kept > 0], rtol=1e-5)
        assert kept[kept > 0].min() >= np.sort(formula[row])[-20] - 1e-6  # the top ones


def test_factor_models_fold_in_listeners_they_have_not_seen(ml):
    data, catalog = ml
    for model in (ALSModel(factors=16, iterations=10), BPRModel(factors=16, iterations=50)):
        model.fit(catalog, data)
        m = data.matrix()
        known = model.score(UserBatch(m[:1], user_rows=np.array([0])))[0]
        unknown = model.score(UserBatch(m[:1], user_rows=np.array([-1])))[0]
        top_known = set(np.argsort(-known)[:50].tolist())
        top_unknown = set(np.argsort(-unknown)[:50].tolist())
        assert len(top_known & top_unknown) >= 10, model.name


def test_content_profile_scores_match_item_similarity_for_one_item(ml):
    data, catalog = ml
    model = ContentModel().fit(catalog, data)
    row = int(data.matrix()[0].indices[0])
    one = sparse.csr_matrix(([1.0], ([0], [row])), shape=(1, data.n_items))
    by_profile = model.score(UserBatch(one))[0]
    by_features = model.features(row) @ model.weights.as_array()
    # genres are compared by cosine in profiles and by Jaccard item to item: same top item
    by_profile[row] = by_features[row] = -np.inf
    assert np.argmax(by_profile) == np.argmax(by_features)


def test_hybrid_blend_is_learned_per_activity_bucket(ml):
    data, catalog = ml
    rng = np.random.default_rng(0)
    test = rng.random(len(data.users)) < 0.2
    train = data.subset(~test)
    comps = {"pop": PopularityModel().fit(catalog, train),
             "ease": EASEModel(l2=100.0).fit(catalog, train),
             "content": ContentModel().fit(catalog, train)}
    hybrid = HybridModel(comps, buckets=(30, 100)).fit(catalog, train)
    users = np.unique(data.users[test & (data.confidence > 0)])
    relevant = [set(data.items[test & (data.users == u) & (data.confidence > 0)].tolist())
                for u in users]
    batch = UserBatch(train.matrix()[users], user_rows=users)
    report = hybrid.learn_blend(batch, relevant, k=10)
    for entry in report:
        if entry["users"]:
            assert entry["validation_ndcg@10"] >= entry["best_single_ndcg@10"]
    assert len(hybrid.blend) == 3
    parts = hybrid.component_scores(batch)
    assert set(parts) == {"pop", "ease", "content", "content@cold"}
    warm = train.item_popularity() > 0
    assert (~warm).any() and np.all(parts["content@cold"][:, warm] == 0)
    np.testing.assert_allclose(parts["content@cold"][:, ~warm], parts["content"][:, ~warm])
    scores = hybrid.score(batch)
    assert scores.shape == (len(users), data.n_items)


def test_standardise_leaves_constant_rows_at_zero():
    out = standardise(np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 2.0]]))
    assert np.allclose(out[0], 0.0)
    assert out[1].mean() == pytest.approx(0.0) and out[1].std() == pytest.approx(1.0, rel=1e-5)



def test_configured_event_weights_change_confidence():
    from datetime import UTC, datetime

    from podrec.config import load_config
    from podrec.records import EventRecord

    t = datetime(2026, 1, 1, tzinfo=UTC)
    events = [EventRecord(user_id="u", event="complete", timestamp=t, item_id="a"),
              EventRecord(user_id="u", event="skip", timestamp=t, item_id="b")]
    default = build_interactions(events, ["a", "b"])
    assert default.confidence.tolist() == [3.0, -1.0]
    cfg = load_config(env={"PODREC_CONFIG": ""})
    assert cfg.event_weights.as_dict()["complete"] == 3.0
    custom = build_interactions(events, ["a", "b"], {**cfg.event_weights.as_dict(),
                                                     "complete": 5.0, "skip": 0.0})
    assert custom.confidence.tolist() == [5.0, 0.0]


def test_content_scores_of_candidates_are_the_full_pass_scores(ml):
    """A large catalog scores only its candidates, reading a candidate's producer and genre
    set rather than its sparse rows: every component must equal the full pass's, items
    without a producer or a genre included."""
    from dataclasses import replace

    data, catalog = ml
    n = len(catalog)
    authors = [f"producer {k % 7}" if k % 5 else None for k in range(n)]
    categories = [c if k % 9 else [] for k, c in enumerate(catalog.categories)]
    shaped = replace(catalog, authors=authors, categories=categories)
    model = ContentModel(ContentWeights(cosine=0.0, lexical=0.0, genre=1.0, author=1.0,
                                        popularity=0.0), pairwise_max_items=0).fit(shaped, data)
    batch = UserBatch(sparse.csr_matrix(data.matrix()[:6].maximum(0)))
    full = model.score(batch)
    rows = np.arange(1, n, 3)
    assert np.ptp(full[:, rows]) > 0.1  # producers and genres do move these scores
    np.testing.assert_allclose(model.score_rows(batch, rows), full[:, rows], atol=1e-5)
    default = ContentModel(pairwise_max_items=0).fit(shaped, data)
    np.testing.assert_allclose(default.score_rows(batch, rows), default.score(batch)[:, rows],
                               atol=1e-5)


def test_pairwise_scores_give_the_full_pass_scores(ml):
    """A small catalog's content and profile parts score from every pair's stored score;
    the lists must be the ones the pass over every vector gives, words and turned-down
    items included."""
    from podrec.model.profile import ProfileModel

    data, catalog = ml
    fast = ContentModel().fit(catalog, data)
    slow = ContentModel(pairwise_max_items=0).fit(catalog, data)
    assert fast.pair_scores() is not None and slow.pair_scores() is None
    assert len({len(c) for c in catalog.categories}) > 1  # genre sets of several sizes
    m = sparse.csr_matrix(data.matrix()[:6].maximum(0))
    words = np.zeros((6, catalog.vectors.shape[1]), np.float32)
    words[1] = catalog.vectors[7]
    words[2] = catalog.vectors[11]
    batch = UserBatch(m, text_vectors=words)
    np.testing.assert_allclose(fast.score(batch), slow.score(batch), atol=1e-4)
    rows = np.arange(0, data.n_items, 3)
    np.testing.assert_allclose(fast.score_rows(batch, rows), slow.score_rows(batch, rows),
                               atol=1e-4)
    nothing = sparse.csr_matrix((1, data.n_items), dtype=np.float32)  # no items yet
    for said in (words[1:2], None):  # words only, and nothing at all
        alone = UserBatch(nothing, text_vectors=said)
        np.testing.assert_allclose(fast.score(alone), slow.score(alone), atol=1e-4)
    fast_p, slow_p = ProfileModel().fit_from(fast), ProfileModel().fit_from(slow)
    for u in range(3):
        one = m[u]
        turned_down = sparse.csr_matrix(([1.0, 1.0], ([0, 0], [3, 5])),
                                        shape=(1, data.n_items))
        b = UserBatch(one, negatives=turned_down, text_vectors=words[u:u + 1])
        a, c = fast_p.score(b), slow_p.score(b)
        np.testing.assert_allclose(a, c, atol=1e-4)
        assert list(np.argsort(-a[0])[:10]) == list(np.argsort(-c[0])[:10])


def test_interests_cut_where_scipys_distance_criterion_cuts():
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist

    from podrec.profile.interests import InterestProfiler, cut_merges

    profiler = InterestProfiler()
    rng = np.random.default_rng(0)
    for _ in range(100):
        n = int(rng.integers(4, 30))
        v = rng.standard_normal((n, 16))
        v[: n // 2] += 3 * rng.standard_normal(16)  # some topics
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        ours = profiler.cluster(v)
        tree = linkage(np.maximum(pdist(v, "cosine"), 0.0), method="average")
        theirs = fcluster(tree, t=profiler.distance_threshold, criterion="distance") - 1
        if theirs.max() + 1 > profiler.max_interests:
            theirs = cut_merges(tree, n, profiler.max_interests)
        # the same partition (labels may be numbered differently)
        pairs = {(int(a), int(b)) for a, b in zip(ours, theirs, strict=True)}
        assert len(pairs) == len(set(ours.tolist())) == len(set(theirs.tolist()))


def test_a_gather_of_candidate_vectors_is_shared_while_its_rows_live():
    """The parts of one list's score read their candidates' vectors once: the same rows
    array gets the same read-only gather; other rows, or a pickled catalog, get their own."""
    import pickle

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((50, 8)).astype(np.float32)
    catalog = CatalogData(ids=[f"i{k}" for k in range(50)], kinds=["show"] * 50,
                          vectors=vectors)
    rows = np.array([4, 9, 31], np.int64)
    first = catalog.vectors_of(rows)
    np.testing.assert_array_equal(first, vectors[rows])
    assert catalog.vectors_of(rows) is first and not first.flags.writeable
    same_values = rows.copy()  # equal rows in another array: read again, still right
    again = catalog.vectors_of(same_values)
    assert again is not first
    np.testing.assert_array_equal(again, vectors[rows])
    other = np.array([0, 49], np.int64)
    np.testing.assert_array_equal(catalog.vectors_of(other), vectors[other])
    copy = pickle.loads(pickle.dumps(catalog))  # the kept gather is not pickled
    np.testing.assert_array_equal(copy.vectors_of(rows), vectors[rows])


@pytest.mark.parametrize("model", [ItemKNNModel(), EASEModel(max_items=300),
                                   ALSModel(factors=8, iterations=3)], ids=lambda m: m.name)
def test_answers_kept_between_candidates_and_scoring_never_go_stale(ml, model):
    """A part keeps its last product for the same history object (candidates, then scoring
    of one request): every answer equals a fresh full pass, whichever history came before,
    and the kept answer is not pickled."""
    import pickle

    data, catalog = ml
    model.fit(catalog, data)
    rows = np.arange(0, data.n_items, 4)
    histories = [sparse.csr_matrix(data.matrix()[u:u + 1].maximum(0)) for u in (0, 5, 0)]
    for h in histories:  # the first listener asked again with a new object: no stale answer
        batch = UserBatch(h)
        full = np.asarray(model.score(UserBatch(h.copy())), np.float32)
        model.candidates(batch, 20)
        np.testing.assert_allclose(model.score_rows(batch, rows), full[:, rows], atol=1e-5)
        np.testing.assert_allclose(model.score_rows(batch, rows), full[:, rows], atol=1e-5)
    copy = pickle.loads(pickle.dumps(model))
    assert all(slot._kept is None for slot in copy.__dict__.get("_last_answers", {}).values())


def test_a_kept_answer_goes_with_the_object_it_was_computed_from():
    import gc

    from podrec.model.base import LastAnswer

    slot = LastAnswer()
    key = np.arange(5)
    calls = []
    first = slot.get(key, lambda: calls.append(1) or np.ones(3))
    assert slot.get(key, lambda: calls.append(2) or np.zeros(3)) is first and calls == [1]
    assert slot.get(key, lambda: np.zeros(3), tag="other") is not first  # another question
    del key, first
    gc.collect()
    assert slot._kept is None  # nothing held for a request that is over


def test_history_rows_sum_is_the_sparse_product():
    from podrec.model.collaborative import history_rows_sum

    matrix = sparse.random(500, 500, density=0.02, format="csr", random_state=4,
                           dtype=np.float32)
    for users in (1, 3, 20):  # 20: past the few-listener path, scipy's product
        h = sparse.random(users, 500, density=0.03, format="csr", random_state=users,
                          dtype=np.float32)
        h = sparse.vstack([h, sparse.csr_matrix((1, 500), dtype=np.float32)]).tocsr()
        got = history_rows_sum(h, matrix)
        np.testing.assert_allclose(got.toarray(), (h @ matrix).toarray(), atol=1e-5)
        assert got.has_sorted_indices and got.shape == (users + 1, 500)
