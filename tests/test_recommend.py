"""Recommendations on the bundled real sample catalog, embedded with multilingual e5."""

import numpy as np
import pytest

from podrec.index import ExactIndex
from podrec.service import NotFoundError

CRIME_JUNKIE = "1322200189"
HIDDEN_BRAIN = "1028908750"
JOE_ROGAN = "360084272"


def test_exact_index_cosine_and_euclidean():
    vectors = np.array([[1, 0], [0.9, 0.1], [0, 1], [-1, 0]], dtype=np.float32)
    idx = ExactIndex(vectors, "cosine")
    rows, scores = idx.search(np.array([1, 0]), k=2, exclude=np.array([0]))
    assert rows.tolist() == [1, 2] and scores[0] > scores[1]
    euc = ExactIndex(vectors * np.array([[1], [3], [1], [1]], dtype=np.float32), "euclidean")
    rows, scores = euc.search(np.array([1, 0]), k=1)
    assert rows.tolist() == [0] and scores[0] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="unknown metric"):
        ExactIndex(vectors, "manhattan")


def test_similar_shows_share_the_subject(sample_app):
    recs = sample_app.similar(CRIME_JUNKIE, k=5)
    assert len(recs) == 5 and CRIME_JUNKIE not in [r.id for r in recs]
    assert sum("True Crime" in r.categories for r in recs) >= 4
    assert recs == sorted(recs, key=lambda r: -r.score)


def test_similar_with_euclidean_metric(sample_app):
    recs = sample_app.similar(CRIME_JUNKIE, k=5, metric="euclidean")
    assert sum("True Crime" in r.categories for r in recs) >= 4


def test_similar_episodes_stay_episodes(sample_app):
    episode = next(i for i in sample_app.list_items(kind="episode", limit=1))
    recs = sample_app.similar(episode["id"], k=3, kind="episode")
    assert recs and all(r.kind == "episode" for r in recs)


def test_free_text_query_in_english(sample_app):
    recs = sample_app.recommend(query="true crime murder investigations", k=5)
    assert sum("True Crime" in r.categories for r in recs) >= 3


def test_free_text_query_in_chinese_finds_chinese_investing_shows(sample_app):
    recs = sample_app.recommend(query="学习投资理财的播客", k=5)
    assert recs[0].language == "zh"
    assert sum(r.language == "zh" for r in recs) >= 3


def test_seeds_plus_text(sample_app):
    recs = sample_app.recommend(seeds=[HIDDEN_BRAIN], query="psychology of decisions", k=5)
    assert HIDDEN_BRAIN not in [r.id for r in recs]
    assert len(recs) == 5


def test_known_listener_gets_recommendations_from_their_history(sample_app):
    recs = sample_app.recommend(user_id="demo-listener", k=10)
    ids = [r.id for r in recs]
    # subscribed/completed shows are not recommended again, nor the disliked one
    assert not {CRIME_JUNKIE, "283605519", HIDDEN_BRAIN, JOE_ROGAN} & set(ids)
    assert any("True Crime" in r.categories for r in recs)
    assert any(r.components for r in recs)


def test_unknown_ids_are_clear_errors(sample_app):
    with pytest.raises(NotFoundError, match="no item with id 'nope'"):
        sample_app.similar("nope")
    with pytest.raises(NotFoundError, match="no listener"):
        sample_app.recommend(user_id="nobody")
    with pytest.raises(NotFoundError, match="seed 'nope'"):
        sample_app.recommend(seeds=["nope"])
    with pytest.raises(ValueError, match="give a user"):
        sample_app.recommend()
