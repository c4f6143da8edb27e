"""The damaged-feed corpus: one fixture per kind of damage seen in real feeds, and the
episodes a tolerant podcast client would take from it (expected.json). Every fixture is read
without an exception; every feed with episodes yields them; each repair is reported."""

from __future__ import annotations

import json

import pytest
from conftest import FIXTURES

from podrec.ingest.feeds import declare_prefixes, parse_feed, title_from_location
from podrec.ingest.pipeline import ingest_feeds
from podrec.records import IngestReport
from podrec.storage import Store

CORPUS = FIXTURES / "feeds_damaged"
EXPECTED = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))


def test_the_corpus_has_a_fixture_for_every_expectation():
    files = {p.name for p in CORPUS.iterdir() if p.name != "expected.json"}
    assert files == set(EXPECTED) and len(files) >= 15


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_damaged_feed_yields_the_expected_episodes(name):
    want = EXPECTED[name]
    report = IngestReport()
    records = list(parse_feed((CORPUS / name).read_bytes(), name, report))
    shows = [r for r in records if r.kind == "show"]
    assert (shows[0].title if shows else None) == want["show"]
    got = [{"id": r.id, "title": r.title, "audio_url": r.audio_url,
            "duration_s": r.duration_s,
            "published": r.published.isoformat() if r.published else None}
           for r in records if r.kind == "episode"]
    assert got == want["episodes"]
    assert [p.location for p in report.problems] == want["failed"]
    assert [f"{p.location} | {p.field} | {p.message}" for p in report.repairs] \
        == want["repairs"]


def test_every_feed_with_episodes_yields_them():
    """Only the two files that are not feeds at all, and items with nothing to know them by,
    are refused."""
    refused = {name for name, want in EXPECTED.items() if want["show"] is None}
    assert refused == {"empty.xml", "not_a_feed.xml"}
    for name, want in EXPECTED.items():
        if name not in refused:
            assert want["episodes"], name


def test_the_corpus_goes_into_the_store_and_again_unchanged(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'corpus.db'}")
    try:
        report = ingest_feeds(store, [str(CORPUS)])
        episodes = sum(len(w["episodes"]) for w in EXPECTED.values())
        shows = sum(w["show"] is not None for w in EXPECTED.values())
        assert report.added == episodes + shows
        assert store.count_items() == {"show": shows, "episode": episodes}
        again = ingest_feeds(store, [str(CORPUS)])
        assert again.added == 0 and again.updated == 0
    finally:
        store.close()


def test_undeclared_prefixes_are_declared_on_the_root_element():
    data = b'<?xml version="1.0"?><rss version="2.0"><channel><itunes:author>A</itunes:author>' \
           b'<x:y z:w="1"/></channel></rss>'
    fixed, declared = declare_prefixes(data)
    assert declared == ["itunes", "x", "z"]
    assert b'<rss xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"' in fixed
    assert b'xmlns:x="urn:podrec:undeclared:x"' in fixed
    assert declare_prefixes(fixed) == (fixed, [])


def test_a_document_that_looks_like_a_path_is_not_opened():
    """feedparser opens a string or bytes naming an existing file; podrec hands it the bytes
    as a stream, so a 'feed' whose content is a server path reads as no feed."""
    report = IngestReport()
    assert list(parse_feed(b"/etc/hostname", "upload.xml", report)) == []
    assert "not a readable RSS/Atom feed" in report.problems[0].message


def test_titles_from_locations():
    assert title_from_location("https://feeds.example.com/the_daily.xml") \
        == "the daily (feeds.example.com)"
    assert title_from_location("https://feeds.example.com/feed") == "feeds.example.com"
    assert title_from_location("/srv/feeds/my-show.rss") == "my show"
