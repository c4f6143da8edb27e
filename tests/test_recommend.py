"""Recommendations on the bundled real sample catalog, embedded with multilingual e5."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from podrec.index import ExactIndex
from podrec.records import EventRecord
from podrec.service import NotFoundError, RecommendRequest

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


def test_similar_items_need_no_embedding_model(sample_app):
    """Stored vectors are read by the embedder's id: a process that only lists similar
    items never loads the model."""
    from podrec.service import Podrec

    fresh = Podrec(sample_app.config, database_url=sample_app.store.url)
    try:
        got = [r.id for r in fresh.similar("1028908750", k=5)]
        assert got == [r.id for r in sample_app.similar("1028908750", k=5)]
        assert fresh._embedder is None  # noqa: SLF001 - what is asserted is that it never loaded
    finally:
        fresh.close()


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


# -- balanced interests and topics ---------------------------------------------------------------
def test_quotas_follow_shares_and_strength():
    from podrec.recommend.balance import quotas

    assert quotas([3, 4], 10, 1.0).tolist() == [4, 6]
    assert quotas([3, 4], 10, 0.0).tolist() == [0, 0]
    assert quotas([0.95, 0.05], 10, 1.0).tolist() == [10, 0]  # too small to be owed a slot
    assert quotas([1, 1, 1], 2, 1.0).sum() == 2


def test_balance_keeps_score_order_but_owes_each_interest_its_slots():
    from podrec.recommend.balance import balance

    interest = np.array([0] * 20 + [1] * 20)  # a tight interest out-scores a loose one
    rows = np.arange(40)
    assert balance(rows, interest, [0.5, 0.5], 10, 0.0).tolist() == list(range(10))
    picked = balance(rows, interest, [3, 4], 10, 1.0)
    assert (interest[picked] == 1).sum() == 6 and (interest[picked] == 0).sum() == 4
    assert picked.tolist() == sorted(picked.tolist())  # still in score order
    # an interest with too few items leaves its slots to the best of the rest
    short = np.array([0] * 20 + [1])
    assert len(balance(np.arange(21), short, [0.5, 0.5], 10, 1.0)) == 10


def test_calibration_gap_is_zero_for_the_same_mix_and_grows_with_the_difference():
    from podrec.recommend.balance import calibration_gap, genre_distribution

    history = genre_distribution([["Crime"]] * 3 + [["Comedy"]] * 4)
    same = genre_distribution([["Crime"]] * 3 + [["Comedy"]] * 4)
    one_sided = genre_distribution([["Crime"]] * 9 + [["Comedy"]])
    assert calibration_gap(history, same) == pytest.approx(0.0, abs=1e-9)
    assert calibration_gap(history, one_sided) > 0.2


def test_a_listener_with_two_tastes_gets_both(sample_app):
    items = list(sample_app.store.iter_items(kind="show"))
    crime = [i for i in items if "True Crime" in i.categories][:3]
    comedy = [i for i in items if "Comedy" in i.categories
              and "True Crime" not in i.categories][:4]
    now = datetime.now(UTC)
    sample_app.store.add_events([
        EventRecord(user_id="two-tastes", event="complete", item_id=i.id, item_kind="show",
                    timestamp=now - timedelta(days=j)) for j, i in enumerate(crime + comedy)])
    plain = sample_app.recommend(RecommendRequest(user_id="two-tastes", k=10, balance=0.0))
    balanced = sample_app.recommend(RecommendRequest(user_id="two-tastes", k=10, balance=1.0))

    def comedy_count(recs):
        return sum("Comedy" in r.categories for r in recs)

    assert comedy_count(plain) <= 2  # the tight true-crime cluster wins item by item
    assert comedy_count(balanced) >= 3 and comedy_count(balanced) > comedy_count(plain)
    assert sum("True Crime" in r.categories for r in balanced) >= 3


def test_a_request_with_two_topics_gets_both(sample_app):
    query = "history of ancient Rome and true crime"
    plain = sample_app.recommend(RecommendRequest(query=query, k=10, balance=0.0))
    both = sample_app.recommend(RecommendRequest(query=query, k=10))

    def history(recs):
        return sum("History" in r.categories for r in recs)

    crime = sum("True Crime" in r.categories for r in both)
    assert history(both) >= 3 and crime >= 3 and history(both) >= history(plain)


def test_a_length_limit_and_an_exclusion_in_words_are_kept(sample_app):
    recs = sample_app.recommend(RecommendRequest(query="true crime stories, no history",
                                                 k=10))
    assert recs and not any("History" in r.categories for r in recs)
