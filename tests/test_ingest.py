"""Ingest from real feed documents, OPML, the public dumps' formats and bad input."""

import threading
from datetime import UTC, datetime
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import FIXTURES

from podrec.ingest.datasets import FormatError, detect_format
from podrec.ingest.language import LanguageDetector
from podrec.ingest.pipeline import ingest_catalog, ingest_events, ingest_feeds
from podrec.storage import Store

FEEDS = FIXTURES / "feeds"


@pytest.fixture
def store(sqlite_url):
    s = Store(sqlite_url)
    yield s
    s.close()


@pytest.fixture(scope="module")
def detector():
    return LanguageDetector(["en", "zh", "es", "de", "fr", "nl", "it", "pt"])


@pytest.fixture
def feed_server():
    """A real HTTP server on loopback serving the feed fixtures."""
    handler = partial(SimpleHTTPRequestHandler, directory=str(FEEDS))
    handler.log_message = lambda *a, **k: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_rss_feed_with_itunes_fields_is_normalised(store, detector):
    report = ingest_feeds(store, [str(FEEDS / "et_yoga.rss.xml")], detector)
    assert (report.added, report.failed) == (4, 0)
    show = store.get_item("https://feeds.example.org/et-yoga.xml")
    assert show.kind == "show" and show.title == "ET Yoga with Charles Green"
    assert show.author == "BBS Radio, BBS Network Inc."
    assert show.categories == ["Health", "Self-Help", "Religion & Spirituality", "Spirituality"]
    assert show.language == "en" and show.image.startswith("http://is")
    assert show.feed_url == "https://feeds.example.org/et-yoga.xml"
    episodes = list(store.iter_items(kind="episode", show_id=show.id))
    assert [e.id for e in episodes] == ["listennotes-episode-41", "listennotes-episode-325",
                                        "listennotes-episode-492"]
    # 3535 s written as "3535", "0:58:55" and "58:55" in the feed
    assert [e.duration_s for e in episodes] == [3535, 3535, 3535]
    # pubDate "Sat, 02 Dec 2017 17:08:50 -0500" is stored in UTC
    assert episodes[0].published == datetime(2017, 12, 2, 22, 8, 50, tzinfo=UTC)
    assert episodes[1].explicit is True
    assert episodes[0].audio_url.endswith(".mp3")
    assert "<" not in episodes[0].description


def test_atom_feed(store, detector):
    report = ingest_feeds(store, [str(FEEDS / "polite_conversations.atom")], detector)
    assert (report.added, report.failed) == (3, 0)
    show = store.get_item("https://feeds.example.org/polite-conversations.atom")
    assert show.author == "Eiynah" and show.categories == ["Society & Culture"]
    ep = store.get_item("urn:listennotes:episode:5012")
    assert ep.show_id == show.id and ep.title == "Episode 41 - David Pakman"
    assert ep.published == datetime(2017, 12, 14, 14, 41, 47, tzinfo=UTC)


def test_folder_with_a_broken_feed_repairs_it_and_takes_the_rest(store, detector):
    report = ingest_feeds(store, [str(FEEDS)], detector)
    # broken.xml's show is taken; its one item, empty once read, is reported
    assert (report.added, report.failed) == (8, 1)
    problem = report.problems[0]
    assert problem.source.endswith("broken.xml") and problem.location == "item 1"
    repair = next(r for r in report.repairs if r.source.endswith("broken.xml"))
    assert "not well-formed XML (line 2" in repair.message and "tolerant" in repair.message
    assert store.get_item("file:broken.xml").title == "Broken"
    again = ingest_feeds(store, [str(FEEDS)], detector)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 8)


def test_feeds_by_url_and_opml_subscriptions_for_a_listener(store, detector, feed_server,
                                                            tmp_path):
    opml = tmp_path / "subs.opml"
    opml.write_text(f"""<?xml version="1.0"?><opml version="2.0"><body>
      <outline text="ET Yoga" type="rss" xmlUrl="{feed_server}/et_yoga.rss.xml"/>
      <outline text="Polite Conversations" type="rss"
               xmlUrl="{feed_server}/polite_conversations.atom"/>
      <outline text="Gone" type="rss" xmlUrl="{feed_server}/missing.xml"/>
    </body></opml>""")
    report = ingest_feeds(store, [str(opml)], detector, user_id="alice")
    assert report.added == 7
    # the fetched URL is the show's feed URL, and the 404 is reported with its URL
    assert store.find_show(feed_url=f"{feed_server}/et_yoga.rss.xml") is not None
    assert any("missing.xml" in p.source and "404" in p.message for p in report.problems)
    subs = [e for e in store.user_events("alice") if e.event == "subscribe"]
    assert len(subs) == 2
    ingest_feeds(store, [str(opml)], detector, user_id="alice")  # importing twice: no doubles
    assert len([e for e in store.user_events("alice") if e.event == "subscribe"]) == 2


def test_unreadable_opml_and_missing_paths_are_reported(store, detector):
    report = ingest_feeds(store, [str(FIXTURES / "not_a_feed.opml"), "/no/such/feed.xml"],
                          detector)
    assert report.failed == 2 and report.added == 0
    messages = " ".join(str(p) for p in report.problems)
    assert "not a readable OPML file" in messages and "no such file" in messages


def test_generic_csv_bad_rows_are_reported_with_line_and_field(store, detector):
    report = ingest_catalog(store, FIXTURES / "bad_catalog.csv", None, detector)
    assert (report.added, report.failed) == (3, 5)
    found = {(p.location.split(" (")[0], p.field) for p in report.problems}
    assert found == {("line 3", "id"), ("line 4", "published"), ("line 6", "duration_s"),
                     ("line 7", "title"), ("line 8", "show_id")}
    bad_byte = next(p for p in report.problems if p.location.startswith("line 7"))
    assert "UTF-8" in bad_byte.message
    birds = store.get_item("s1")
    assert birds.description == "Weekly & wild: birds from every continent."
    assert birds.categories == ["Nature", "Science"] and birds.explicit is False
    owls = store.get_item("e1")
    assert owls.duration_s == 3723 and owls.explicit is True
    assert owls.published == datetime(2021, 1, 1, tzinfo=UTC)
    garden = store.get_item("s4")  # quoted comma and newline inside a field
    assert garden.title == "Gardening, Slowly" and "with a newline" in garden.description


def test_generic_jsonl_bad_lines_are_reported(store, detector):
    report = ingest_catalog(store, FIXTURES / "bad_catalog.jsonl", None, detector)
    assert report.added == 2
    by_line = {p.location.split(" (")[0]: p for p in report.problems}
    assert set(by_line) == {"line 2", "line 3", "line 4", "line 5"}
    assert "not valid JSON" in by_line["line 2"].message
    assert "UTF-8" in by_line["line 3"].message
    assert "JSON object" in by_line["line 4"].message
    assert by_line["line 5"].field == "kind"
    quiet = store.get_item("j5")
    assert quiet.explicit is False and quiet.published.year == 2023


def test_bad_records_never_change_what_is_stored(store, detector):
    ingest_catalog(store, FIXTURES / "bad_catalog.csv", None, detector)
    before = {i.id: i.content_hash() for i in store.iter_items()}
    ingest_catalog(store, FIXTURES / "bad_catalog.csv", None, detector)
    assert {i.id: i.content_hash() for i in store.iter_items()} == before


@pytest.mark.parametrize(("path", "fmt"), [
    ("apple_podcast_info_slice.json", "apple"),
    ("apple_podcasts_csv_slice.csv", "apple-csv"),
    ("listennotes/podcasts.csv", "listennotes"),
    ("listennotes/episodes.csv", "listennotes-episodes"),
    ("podcastindex_dump_slice.csv", "podcastindex"),
    ("podcastindex_trending_slice.csv", "podcastindex-trending"),
    ("spotify_slice.csv", "spotify"),
    ("bad_catalog.csv", "generic"),
    ("bad_catalog.jsonl", "generic"),
])
def test_public_dump_formats_are_detected(path, fmt):
    assert detect_format(FIXTURES / path) == fmt


def test_unknown_format_is_a_clear_error():
    with pytest.raises(FormatError, match="cannot tell the catalog format"):
        detect_format(FIXTURES / "events.csv")


def test_apple_catalog_import(store, detector):
    report = ingest_catalog(store, FIXTURES / "apple_podcast_info_slice.json", None, detector)
    assert (report.added, report.failed) == (5, 1)
    assert report.problems[0].location == "record 6" and report.problems[0].field == "title"
    item = store.get_item("1471389934")
    assert item.title == "Green Eggs and Dan" and item.author == "The Podglomerate"
    assert item.categories == ["Arts"] and item.popularity == 337
    assert item.language == "en"  # detected: the dump declares none


def test_listennotes_import_brings_episodes_and_keeps_ids_apart(store, detector):
    report = ingest_catalog(store, FIXTURES / "listennotes" / "podcasts.csv", None, detector)
    assert report.failed == 0 and report.added == 50
    assert store.count_items() == {"show": 20, "episode": 30}
    ep = store.get_item("listennotes-episode:1")
    assert ep.show_id == "listennotes:14" and ep.duration_s == 2739
    assert ep.published == datetime(2017, 12, 1, 0, 9, 47, tzinfo=UTC)
    ingest_catalog(store, FIXTURES / "podcastindex_dump_slice.csv", None, detector)
    # Podcast Index also numbers from 1: both shows are kept
    assert store.get_item("listennotes:1").title == "D-Hour Radio Network"
    assert store.get_item("podcastindex:1").title == "Christianity Questions and Answers"


def test_podcastindex_trending_keeps_languages_and_detects_chinese(store, detector):
    ingest_catalog(store, FIXTURES / "podcastindex_trending_slice.csv", None, detector)
    langs = {i.language for i in store.iter_items()}
    assert "en" in langs
    store.upsert_items([])
    from podrec.ingest.pipeline import with_language
    from podrec.records import ItemRecord

    rec = next(with_language([ItemRecord(id="z", title="学习英语的播客")], detector))
    assert rec.language == "zh"


def test_events_csv_bad_rows_are_reported(store):
    report = ingest_events(store, FIXTURES / "events.csv")
    assert report.added == 3
    fields = {p.location: p.field for p in report.problems}
    assert fields == {"line 4": "user_id", "line 5": "event", "line 6": "value",
                      "line 7": "timestamp"}
    events = store.user_events("u1")
    assert events[1].context == {"minutes": 30} and events[1].device == "car"
    assert store.user_events("u2")[0].text == "birds at night"
    assert ingest_events(store, FIXTURES / "events.csv").added == 0


def test_missing_file_is_reported(store):
    report = ingest_catalog(store, Path("/no/such/catalog.csv"))
    assert report.failed == 1 and "no such file" in report.problems[0].message
