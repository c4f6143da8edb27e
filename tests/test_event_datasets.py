"""Importers for real interaction dumps (MovieLens ratings, Last.fm play counts, Apple Podcasts
reviews) and their catalogs, on real slices (tests/fixtures/README.md) and hand-written bad
files."""

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import FIXTURES, SAMPLE

from podrec.ingest.datasets import FormatError, detect_format, read_catalog
from podrec.ingest.events import UNKNOWN_TIME, detect_event_format, read_events
from podrec.ingest.pipeline import ingest_catalog, ingest_events
from podrec.records import IngestReport
from podrec.storage import Store

RATINGS = FIXTURES / "movielens" / "ratings.csv"
MOVIES = FIXTURES / "movielens" / "movies.csv"
PLAYS = FIXTURES / "lastfm" / "user_artists.dat"
ARTISTS = FIXTURES / "lastfm" / "artists.dat"
REVIEWS = FIXTURES / "apple_reviews_slice.csv"


@pytest.fixture
def store(sqlite_url):
    s = Store(sqlite_url)
    yield s
    s.close()


def events_of(path: Path, fmt: str | None = None) -> tuple[list, IngestReport]:
    report = IngestReport()
    return list(read_events(path, report, fmt)), report


def problems(report: IngestReport) -> set[tuple[str, str | None]]:
    return {(p.location.split(" (")[0], p.field) for p in report.problems}


@pytest.mark.parametrize(("path", "fmt"), [
    (RATINGS, "movielens"),
    (PLAYS, "lastfm"),
    (REVIEWS, "apple-reviews"),
    (FIXTURES / "events.csv", "generic"),
    (SAMPLE / "events.jsonl", "generic"),
])
def test_event_formats_are_detected(path, fmt):
    assert detect_event_format(path) == fmt


@pytest.mark.parametrize(("path", "fmt"), [(MOVIES, "movielens"), (ARTISTS, "lastfm")])
def test_catalog_formats_are_detected(path, fmt):
    assert detect_format(path) == fmt


def test_unknown_or_mismatched_event_columns_are_clear_errors():
    with pytest.raises(FormatError, match="cannot tell the event format") as exc:
        events_of(MOVIES)
    assert "movieId" in str(exc.value) and "apple-reviews" in str(exc.value)
    with pytest.raises(FormatError, match="needs the columns artistID, userID, weight"):
        events_of(RATINGS, "lastfm")
    with pytest.raises(FormatError, match="unknown event format 'netflix'"):
        events_of(RATINGS, "netflix")


def test_movielens_ratings():
    events, report = events_of(RATINGS)
    assert (len(events), report.failed) == (40, 0)
    first = events[0]  # line 2: 1,31,2.5,1260759144
    assert (first.user_id, first.item_id, first.item_kind) == ("movielens:1", "movielens:31",
                                                               "show")
    assert (first.event, first.value, first.context) == ("rate", 2.5, {})
    assert first.timestamp == datetime(2009, 12, 14, 2, 52, 24, tzinfo=UTC)
    last = events[-1]  # line 41: 2,225,3.0,835355552
    assert (last.user_id, last.item_id, last.value) == ("movielens:2", "movielens:225", 3.0)
    assert last.timestamp == datetime(1996, 6, 21, 11, 12, 32, tzinfo=UTC)
    assert sum(e.user_id == "movielens:1" for e in events) == 20


def test_lastfm_play_counts_have_no_times():
    events, report = events_of(PLAYS)  # TAB-separated, CRLF line ends
    assert (len(events), report.failed) == (30, 0)
    first = events[0]  # 2<TAB>51<TAB>13883
    assert (first.user_id, first.item_id, first.event, first.value) == ("lastfm:2", "lastfm:51",
                                                                        "play", 13883.0)
    assert first.timestamp == UNKNOWN_TIME == datetime(1970, 1, 1, tzinfo=UTC)
    assert first.context == {"timestamp": "unknown"} and first.item_kind == "show"
    assert (events[-1].item_id, events[-1].value) == ("lastfm:80", 1972.0)


def test_apple_reviews_join_title_and_text():
    events, report = events_of(REVIEWS)
    assert (len(events), report.failed) == (20, 0)
    first = events[0]
    assert (first.user_id, first.item_id, first.event, first.value) == (
        "u_76adb58b3a0cb2fc", "1436541194", "review", 5.0)  # the bare iTunes id, as apple-csv
    assert first.text.startswith("Experiencing Awe. Great podcast in general.")
    assert first.timestamp == UNKNOWN_TIME and first.context == {"timestamp": "unknown"}
    assert events[2].text == ("Interesting, Informative and Inspiring. Thank you for creating "
                              "this podcast! Just what I was looking for.")
    # lines 9-12: a review over four lines, its title ending in "…" (no extra full stop)
    multi = events[7]
    assert multi.user_id == "u_f95ee46e1147506b" and multi.value == 1.0
    assert multi.text.startswith("All the episodes are the same… I read the review")
    assert "\nWhile I do think" in multi.text
    assert events[8].user_id == "u_b5497c6c38898353"
    assert events[-1].item_id == "1553973947"


def test_bad_ratings_are_reported_with_line_and_field():
    events, report = events_of(FIXTURES / "bad_ratings.csv")
    assert [(e.item_id, e.value) for e in events] == [("movielens:31", 2.5),
                                                      ("movielens:39", 5.0)]
    assert problems(report) == {("line 3", "rating"), ("line 4", "movieId"),
                                ("line 5", "rating"), ("line 6", "userId"),
                                ("line 7", "timestamp"), ("line 8", None)}
    by_line = {p.location: p for p in report.problems}
    assert by_line["line 3"].message == "expected a number, got 'three'"
    assert "0.5 to 5" in by_line["line 5"].message
    assert "more values than the header" in by_line["line 8"].message
    assert all(p.source.endswith("bad_ratings.csv") for p in report.problems)


def test_bad_play_counts_are_reported():
    events, report = events_of(FIXTURES / "bad_user_artists.dat")
    assert [(e.user_id, e.item_id) for e in events] == [("lastfm:2", "lastfm:51"),
                                                        ("lastfm:3", "lastfm:57")]
    assert problems(report) == {("line 3", "artistID"), ("line 4", "weight"),
                                ("line 5", "weight"), ("line 6", "weight")}


def test_bad_reviews_are_reported_and_multiline_rows_keep_line_numbers():
    events, report = events_of(FIXTURES / "bad_reviews.csv")
    assert [e.user_id for e in events] == ["u_0000000000000001", "u_0000000000000004"]
    assert events[1].text == "Two\r\nlines. Still, one review."
    # the review on lines 6-7 moves the next row to line 8
    assert problems(report) == {("line 3", "user"), ("line 4", "rating"),
                                ("line 5", "itunes_id"), ("line 8", "rating"),
                                ("line 9", "itunes_id")}


def test_movielens_catalog(store):
    report = ingest_catalog(store, MOVIES)
    assert (report.added, report.failed) == (40, 0)
    dumbo = store.get_item("movielens:1029")
    assert dumbo.title == "Dumbo (1941)" and dumbo.kind == "show" and dumbo.author is None
    assert dumbo.categories == ["Animation", "Children", "Drama", "Musical"]
    assert dumbo.extra == {"year": 1941}
    assert dumbo.published == datetime(1941, 1, 1, tzinfo=UTC)
    assert ingest_catalog(store, MOVIES).unchanged == 40


def test_movielens_titles_without_genres_or_a_plain_year(tmp_path):
    movies = tmp_path / "movies.csv"  # three real rows of the full movies.csv
    movies.write_text("movieId,title,genres\n83829,Scorpio Rising (1964),(no genres listed)\n"
                      "108583,Fawlty Towers (1975-1979),Comedy\n162376,Stranger Things,Drama\n")
    report = IngestReport()
    scorpio, fawlty, stranger = read_catalog(movies, report)
    assert report.failed == 0
    assert scorpio.categories == [] and scorpio.extra == {"year": 1964}
    assert fawlty.extra == {"year": 1975} and fawlty.categories == ["Comedy"]
    assert stranger.extra == {} and stranger.published is None


def test_lastfm_catalog_is_tab_separated_and_unquoted(store):
    report = ingest_catalog(store, ARTISTS)
    assert (report.added, report.failed) == (31, 0)
    weird = store.get_item("lastfm:1686")
    assert weird.title == '"Weird Al" Yankovic'  # quotes are part of the name, not CSV quoting
    assert weird.extra == {"link": "http://www.last.fm/music/%22Weird+Al%22+Yankovic"}
    assert weird.image == "http://userserve-ak.last.fm/serve/252/38457043.png"
    assert weird.author is None and weird.categories == []
    assert store.get_item("lastfm:64").title == "Röyksopp"


def test_lastfm_catalog_bad_lines(store):
    report = ingest_catalog(store, FIXTURES / "bad_artists.dat")
    assert (report.added, report.failed) == (2, 2)
    assert problems(report) == {("line 3", "name"), ("line 4", "title")}
    latin1 = next(p for p in report.problems if p.location == "line 3")
    assert "UTF-8" in latin1.message
    assert store.get_item("lastfm:91").title == "Madonna"  # a short line: no url, no picture


def test_reingesting_events_is_idempotent(store):
    counts = {}
    for path in (RATINGS, PLAYS, REVIEWS):
        report = ingest_events(store, path)
        again = ingest_events(store, path)
        counts[path.name] = (report.added, report.failed, again.added, again.skipped)
    assert counts == {"ratings.csv": (40, 0, 0, 40), "user_artists.dat": (30, 0, 0, 30),
                      "apple_reviews_slice.csv": (20, 0, 0, 20)}
    history = store.user_events("movielens:2")
    assert len(history) == 20
    assert [e.timestamp for e in history] == sorted(e.timestamp for e in history)
    assert history[0].item_id == "movielens:150"  # 2,150,5.0,835355395: user 2's earliest
    plays = store.user_events("lastfm:2")
    assert len(plays) == 30 and plays[0].context == {"timestamp": "unknown"}
    review = store.user_events("u_f7ebb834ae4475c6")[0]
    assert (review.item_id, review.value) == ("1436541194", 1.0)
    assert review.text.startswith("Bad and it is getting worse. I had a great hopes")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODREC_")}
    return subprocess.run([sys.executable, "-m", "podrec.cli", *args], capture_output=True,
                          text=True, env=env, timeout=300)


def test_ingest_events_from_the_command_line(tmp_path):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    out = run_cli("ingest", "events", str(RATINGS), "--format", "movielens", "--db", db,
                  "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert (summary["added"], summary["failed"]) == (40, 0)
    out = run_cli("ingest", "events", str(RATINGS), "--format", "movielens", "--db", db,
                  "--json")
    assert (json.loads(out.stdout)["added"], json.loads(out.stdout)["skipped"]) == (0, 40)
    out = run_cli("ingest", "events", str(FIXTURES / "bad_user_artists.dat"), "--db", db)
    assert out.returncode == 0 and "added 2" in out.stdout and "failed 4" in out.stdout
    assert ("bad_user_artists.dat: line 4, field 'weight'" in out.stderr.replace("\n", ""))
    out = run_cli("ingest", "events", str(RATINGS), "--format", "lastfm", "--db", db)
    assert out.returncode == 2 and "needs the columns" in out.stderr
    assert "Traceback" not in out.stderr
    out = run_cli("ingest", "events", str(MOVIES), "--db", db)
    assert out.returncode == 2 and "cannot tell the event format" in out.stderr
