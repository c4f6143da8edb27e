"""The list itself on the bundled sample catalog (real data, e5): explanations, diversity,
filters."""

import numpy as np
import pytest

from podrec.recommend.diversity import mmr


def test_explained_recommendations_name_the_history_that_drove_them(sample_app):
    recs = sample_app.recommend(user_id="demo-listener", k=5, explain=True)
    history = {"1322200189", "283605519", "1028908750"}
    for rec in recs:
        assert rec.reason.startswith("Because you ")
        items = [e for e in rec.evidence if e["type"] == "item"]
        assert {e["id"] for e in items} <= history and items
        assert sum(e["share"] for e in rec.evidence if "share" in e) == pytest.approx(1.0,
                                                                                   abs=0.01)
        assert f"“{items[0]['title']}”" in rec.reason  # the biggest share is named
        as_json = rec.to_dict()
        assert as_json["reason"] == rec.reason and as_json["evidence"] == rec.evidence
    crime = next(r for r in recs if "True Crime" in r.categories)
    top = max((e for e in crime.evidence if e["type"] == "item"), key=lambda e: e["share"])
    assert top["id"] == "1322200189" and top["event"] == "subscribe"  # Crime Junkie


def test_query_only_explanations_quote_the_query(sample_app):
    recs = sample_app.recommend(query="history of Rome", k=3, explain=True)
    assert all(r.reason == "It matches “history of Rome”." for r in recs)
    assert sample_app.recommend(query="history", k=2)[0].reason is None  # only when asked


def test_diversity_spreads_the_list_over_more_genres(sample_app):
    plain = sample_app.recommend(seeds=["1322200189"], k=8)
    varied = sample_app.recommend(seeds=["1322200189"], k=8, diversity=0.7)
    genres = lambda recs: len({c for r in recs for c in r.categories})  # noqa: E731
    assert genres(varied) > genres(plain)
    assert varied[0].id == plain[0].id  # the most relevant item still leads
    with pytest.raises(ValueError, match="diversity must be between 0 and 1"):
        sample_app.recommend(seeds=["1322200189"], diversity=1.5)


def test_mmr_trades_relevance_for_variety():
    vectors = np.array([[1, 0], [0.99, 0.1], [0, 1]], dtype=np.float32)
    rows, scores = np.array([0, 1, 2]), np.array([1.0, 0.95, 0.5])
    assert mmr(rows, scores, vectors, 2, 0.0).tolist() == [0, 1]
    assert mmr(rows, scores, vectors, 2, 0.6).tolist() == [0, 2]


def test_filters_by_language_explicit_block_and_episodes_per_show(sample_app):
    zh = sample_app.recommend(query="business and investing", k=5, languages=["zh"])
    assert zh and all(r.language in ("zh", None) for r in zh)
    first = sample_app.recommend(seeds=["1322200189"], k=3)
    blocked = sample_app.recommend(seeds=["1322200189"], k=3, blocked=[first[0].id])
    assert first[0].id not in [r.id for r in blocked] and blocked[0].id == first[1].id
    episodes = sample_app.recommend(query="church sermon", kind="episode", k=5, per_show=1)
    shows = [sample_app.get_item(r.id, "episode").show_id for r in episodes]
    assert len(shows) == len(set(shows)) >= 3
    show_id = shows[0]
    without = sample_app.recommend(query="church sermon", kind="episode", k=5,
                                   blocked=[show_id])
    assert all(sample_app.get_item(r.id, "episode").show_id != show_id for r in without)


def test_filter_mask_combines_every_filter():
    from podrec.model.base import CatalogData
    from podrec.recommend.filters import filter_mask

    catalog = CatalogData(ids=["a", "b", "c", "d"], kinds=["episode"] * 4,
                          vectors=np.eye(4, dtype=np.float32),
                          languages=["en", "zh", None, "en"],
                          explicit=[True, False, None, False],
                          show_ids=["s1", "s1", "s2", "s3"])
    assert filter_mask(catalog, None, True, None) is None
    assert filter_mask(catalog, ["en"], True, None).tolist() == [True, False, True, True]
    assert filter_mask(catalog, None, False, None).tolist() == [False, True, True, True]
    assert filter_mask(catalog, None, True, ["s1", "d"]).tolist() == [
        False, False, True, False]


def _event(user, item, event, when):
    from podrec.records import EventRecord

    return EventRecord(user_id=user, item_id=item, item_kind="show", event=event, timestamp=when)


def test_a_new_event_changes_the_next_recommendations_at_once(sample_app):
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    sample_app.store.add_events([_event("fresh-1", "1322200189", "subscribe", now)])
    before = [r.id for r in sample_app.recommend(user_id="fresh-1", k=10)]
    sample_app.store.add_events([_event("fresh-1", "1028908750", "complete", now)])
    after = sample_app.recommend(user_id="fresh-1", k=10, explain=True)
    assert [r.id for r in after] != before and "1028908750" not in [r.id for r in after]
    assert any(e.get("id") == "1028908750" for r in after for e in r.evidence)


def test_dislikes_push_similar_items_away(sample_app):
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    sample_app.store.add_events([_event("picky", "1028908750", "subscribe", now),
                                 _event("picky", "1322200189", "subscribe", now),
                                 _event("picky", "998568017", "dislike", now)])
    recs = sample_app.recommend(user_id="picky", k=10)
    crime = sum("True Crime" in r.categories for r in recs)
    original = sample_app.config
    try:
        from dataclasses import replace

        sample_app.config = replace(original, recommend=replace(original.recommend,
                                                                negative_weight=0.0))
        unpushed = sample_app.recommend(user_id="picky", k=10)
    finally:
        sample_app.config = original
    assert "998568017" not in [r.id for r in recs + unpushed]  # disliked: never shown
    assert crime < sum("True Crime" in r.categories for r in unpushed)


def test_old_events_count_less_than_recent_ones(sample_app):
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    sample_app.store.add_events([_event("decay", "1322200189", "subscribe",
                                        now - timedelta(days=720)),
                                 _event("decay", "1028908750", "subscribe", now)])
    profile = sample_app.profile("decay", now=now)
    weight = {i["id"]: i["weight"] for interest in profile["interests"]
              for i in interest["items"]}
    # the same event, 720 days older: 4 half-lives, so 1/16 of the weight
    assert weight["1322200189"] / weight["1028908750"] == pytest.approx(0.5 ** 4, rel=1e-3)


def test_what_a_listener_searched_for_counts_as_interest(sample_app):
    from datetime import UTC, datetime

    from podrec.records import EventRecord

    now = datetime.now(UTC)
    sample_app.store.add_events([
        EventRecord(user_id="searcher", event="search", timestamp=now,
                    text="学习投资理财的播客"),
        EventRecord(user_id="searcher", item_id="360084272", item_kind="show",
                    event="play", value=0.9, timestamp=now),
        EventRecord(user_id="no-searcher", item_id="360084272", item_kind="show",
                    event="play", value=0.9, timestamp=now)])
    assert sample_app.user_texts("searcher") == ["学习投资理财的播客"]
    assert sample_app.user_texts("no-searcher") == []
    zh = [sum(r.language == "zh" for r in sample_app.recommend(user_id=u, k=5))
          for u in ("no-searcher", "searcher")]
    assert zh[0] == 0 and zh[1] >= 2  # the search pulls in Chinese investing shows
