"""Listener profiles on the bundled sample (real shows, real e5): several interests, habits by
hour and device, duration fit, intent text, cold start, onboarding, linked accounts and
platform availability."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from podrec.profile.interests import HistoryItem, InterestProfiler
from podrec.recommend.context import RequestContext, duration_fit, interest_lift
from podrec.records import EventRecord

CRIME = ["1322200189", "1441595858", "1232009882", "1455668750"]
SPORTS = ["1089022756", "1112425552", "1435183458", "1043699613"]
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # a Friday


def _listen(user: str, items: list[str], hour: int, device: str | None = None,
            days_ago: float = 1.0, event: str = "complete") -> list[EventRecord]:
    day = (NOW - timedelta(days=days_ago)).replace(hour=hour, minute=0)
    return [EventRecord(user_id=user, item_id=i, item_kind="show", event=event,
                        timestamp=day + timedelta(minutes=5 * n), device=device)
            for n, i in enumerate(items)]


@pytest.fixture
def app(sample_app, tmp_path, e5):
    """A private copy of the enriched sample database (tests here add events and items)."""
    from sqlalchemy import text

    from podrec.service import Podrec

    with sample_app.store.engine.begin() as conn:  # everything into the main file first
        conn.execute(text("PRAGMA wal_checkpoint(FULL)"))
    src = sample_app.store.url.removeprefix("sqlite:///")
    dst = tmp_path / "copy.db"
    shutil.copy(src, dst)
    copy = Podrec(sample_app.config, database_url=f"sqlite:///{dst}", embedder=e5)
    yield copy
    copy.close()


def test_two_unrelated_tastes_become_two_interests(app):
    app.store.add_events(_listen("two-tastes", CRIME, 21) + _listen("two-tastes", SPORTS, 7))
    profile = app.profile("two-tastes", now=NOW)
    labels = [i["label"] for i in profile["interests"]]
    assert {"True Crime", "Sports"} <= set(labels)
    for interest in profile["interests"][:2]:
        ids = {x["id"] for x in interest["items"]}
        assert ids <= set(CRIME) or ids <= set(SPORTS)  # no interest mixes the two
    assert sum(i["weight"] for i in profile["interests"]) == pytest.approx(1.0, abs=1e-3)
    recs = app.recommend(user_id="two-tastes", k=8)
    genres = [c for r in recs for c in r.categories]
    assert "True Crime" in genres and "Sports" in genres  # both tastes served


def test_a_single_interest_listener_gets_one_interest():
    vectors = np.eye(8, dtype=np.float32)[[0, 0, 0, 0, 0]] + 0.01
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    history = [HistoryItem(r, 1.0) for r in range(5)]
    assert len(InterestProfiler().build(history, vectors).interests) == 1
    spread = np.eye(8, dtype=np.float32)[[0, 0, 1, 1, 2, 2]]
    history = [HistoryItem(r, 1.0) for r in range(6)]
    assert len(InterestProfiler().build(history, spread).interests) == 3
    assert len(InterestProfiler(max_interests=2).build(history, spread).interests) == 2


def test_clusters_of_a_history_are_reused_until_its_items_or_the_catalog_change():
    import pickle

    spread = np.eye(8, dtype=np.float32)[[0, 0, 1, 1, 2, 2]]
    profiler = InterestProfiler()
    calls = []
    cluster = profiler.cluster
    profiler.cluster = lambda v: calls.append(len(v)) or cluster(v)  # type: ignore[method-assign]
    history = [HistoryItem(r, 1.0) for r in range(6)]
    first = profiler.build(history, spread, now=1e9)
    # the same items later (weights fade with time, clusters do not): clustered once
    again = profiler.build([HistoryItem(r, 2.0, time=5e8) for r in range(6)], spread, now=2e9)
    assert calls == [6]
    assert [sorted(i.rows.tolist()) for i in first.interests] == \
        [sorted(i.rows.tolist()) for i in again.interests]
    profiler.build(history[:5], spread)  # other items: clustered
    assert calls == [6, 5]
    # other vectors (a refitted catalog): clustered afresh, and grouped by the new vectors
    merged = np.eye(8, dtype=np.float32)[[0, 0, 0, 0, 2, 2]]
    assert len(profiler.build(history, merged).interests) == 2 and calls == [6, 5, 6]
    # what is saved with a model does not carry them; a loaded profiler keeps its own
    saved = InterestProfiler()
    saved.build(history, spread)
    assert "_labels" not in saved.__getstate__()
    back = pickle.loads(pickle.dumps(saved))
    assert len(back.build(history, spread).interests) == 3


def test_the_hour_of_the_request_favours_what_the_listener_hears_then(app):
    app.store.add_events(_listen("habits", CRIME, 21) + _listen("habits", SPORTS, 7))

    def sports_rank(hour: int) -> float:
        recs = app.recommend(user_id="habits", k=10,
                             context=RequestContext(time=NOW.replace(hour=hour)))
        return np.mean([i for i, r in enumerate(recs) if "Sports" in r.categories] or [10])

    assert sports_rank(7) < sports_rank(21)
    morning = app.recommend(user_id="habits", k=3, explain=True,
                            context=RequestContext(time=NOW.replace(hour=7)))
    assert "Sports" in morning[0].categories
    assert "you often turn to Sports in the morning" in morning[0].reason
    habit = [e for e in morning[0].evidence if e.get("factor") == "habit"]
    assert habit and habit[0]["share"] > 0


def test_the_device_of_the_request_favours_what_the_listener_hears_on_it(app):
    app.store.add_events(_listen("devices", CRIME, 12, device="car")
                         + _listen("devices", SPORTS, 12, device="speaker"))
    first = {d: app.recommend(user_id="devices", k=1, context=RequestContext(device=d))[0]
             for d in ("car", "speaker")}
    assert "True Crime" in first["car"].categories
    assert "Sports" in first["speaker"].categories


def test_no_context_changes_nothing(app):
    app.store.add_events(_listen("plain", CRIME, 21) + _listen("plain", SPORTS, 7))
    plain = [r.id for r in app.recommend(user_id="plain", k=10)]
    empty = [r.id for r in app.recommend(user_id="plain", k=10, context=RequestContext())]
    assert plain == empty


def test_minutes_available_favour_episodes_that_fit(app):
    unhurried = app.recommend(query="news and interviews", kind="episode", k=8)
    hurried = app.recommend(query="news and interviews", kind="episode", k=8, explain=True,
                            context=RequestContext(minutes=20, device="phone"))
    fits = lambda recs: sum(r.duration_s is not None and r.duration_s <= 1200  # noqa: E731
                            for r in recs)
    assert fits(hurried) > fits(unhurried)
    fitting = next(r for r in hurried if r.duration_s and r.duration_s <= 1200)
    assert "fits your 20 minutes on your phone" in fitting.reason
    assert duration_fit(np.array([600.0, 2400.0, np.nan]), 20).tolist() == pytest.approx(
        [0.0, -np.log(2.0), 0.0])


def test_intent_text_shifts_the_list(app):
    app.store.add_events(_listen("moody", CRIME[:2] + SPORTS[:2], 20))
    calm = app.recommend(user_id="moody", k=5, explain=True,
                         context=RequestContext(intent="calm meditation to fall asleep"))
    plain = app.recommend(user_id="moody", k=5)
    assert [r.id for r in calm] != [r.id for r in plain]
    assert any("it suits “calm meditation to fall asleep”" in r.reason for r in calm)


def test_interest_lift_is_zero_without_a_habit():
    hours = np.zeros((2, 24))
    shares = np.array([0.5, 0.5])
    lift = interest_lift(hours, np.zeros((2, 7)), [{}, {}], shares, RequestContext(hour=7))
    assert lift.tolist() == [0.0, 0.0]
    hours[0, 7], hours[1, 20] = 3.0, 3.0
    lift = interest_lift(hours, np.zeros((2, 7)), [{}, {}], shares, RequestContext(hour=7))
    assert lift[0] > 0 > lift[1]


def test_a_new_listener_starts_from_free_text(app):
    app.create_user("newcomer")
    assert app.profile("newcomer")["interests"] == []
    app.add_events([{"user_id": "newcomer", "event": "search", "timestamp": NOW.isoformat(),
                     "text": "podcasts about the history of ancient Rome and empires"}])
    recs = app.recommend(user_id="newcomer", k=5)
    assert sum("History" in r.categories for r in recs) >= 3


def test_onboarding_offers_popular_shows_across_genres(app):
    picks = app.onboarding(k=12)
    assert len(picks) == 12 and all(r.kind == "show" for r in picks)
    assert len({r.categories[0] for r in picks if r.categories}) >= 10
    assert [r.score for r in picks] == sorted((r.score for r in picks), reverse=True)
    assert picks[0].id == "1322200189"  # Crime Junkie, the most popular show in the sample


def test_linked_accounts_share_one_profile(app):
    app.store.add_events(_listen("alice@phone-app", CRIME, 21))
    app.create_user("alice@web")
    app.add_events([{"user_id": "alice@web", "event": "play", "item_id": SPORTS[0],
                     "item_kind": "show", "timestamp": NOW.isoformat(), "platform": "web"}])
    before = app.profile("alice@web")
    assert [x["id"] for i in before["interests"] for x in i["items"]] == [SPORTS[0]]
    person = app.link_users(["alice@web", "alice@phone-app"])
    after = app.profile("alice@web")
    assert after["person_id"] == person
    assert after["accounts"] == ["alice@phone-app", "alice@web"]
    heard = {x["id"] for i in after["interests"] for x in i["items"]}
    assert set(CRIME) | {SPORTS[0]} <= heard
    recs = app.recommend(user_id="alice@web", k=5)
    assert sum("True Crime" in r.categories for r in recs) >= 2  # learned on the other app
    exported = app.export_user("alice@web")
    assert exported["linked_accounts"] == after["accounts"] and len(exported["events"]) == 1
    assert app.delete_user("alice@web")["deleted_events"] == 1
    assert app.store.linked_accounts("alice@phone-app") == ["alice@phone-app"]


def test_items_not_on_the_requesting_platform_are_left_out(app, tmp_path):
    import json

    exclusive = {"id": "1043699613", "title": "The Bill Simmons Podcast",
                 "author": "The Ringer", "categories": ["Sports"],
                 "description": "Sports and pop culture with Bill Simmons.",
                 "platforms": ["spotify"]}
    path = tmp_path / "exclusive.jsonl"
    path.write_text(json.dumps(exclusive) + "\n")
    assert app.ingest_catalog(path).updated == 1
    app.enrich()
    app.store.add_events(_listen("fan", SPORTS[:3], 12))
    everywhere = [r.id for r in app.recommend(user_id="fan", k=30)]
    on_apple = [r.id for r in app.recommend(user_id="fan", k=30, platform="apple")]
    on_spotify = [r.id for r in app.recommend(user_id="fan", k=30, platform="Spotify")]
    assert "1043699613" in everywhere and "1043699613" in on_spotify
    assert "1043699613" not in on_apple
