"""RSS 2.0 / Atom / iTunes-namespace feeds (feedparser) and OPML subscription lists (listparser).

A show's id is the feed's podcast:guid, else its URL (self link or the URL it was fetched
from), else its site link; an episode's id is its GUID, else its enclosure URL, else its link.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax import SAXParseException

import feedparser
import listparser

from podrec.ingest.catalog import record_from_row
from podrec.ingest.fetch import FEED_SUFFIXES, OPML_SUFFIXES, USER_AGENT, fetch, is_url
from podrec.ingest.normalize import FieldError
from podrec.records import IngestReport, ItemRecord

__all__ = ["FEED_SUFFIXES", "OPML_SUFFIXES", "USER_AGENT", "Subscription", "expand_sources",
           "fetch", "is_url", "parse_feed", "parse_opml", "read_source"]


@dataclass
class Subscription:
    """One outline of an OPML file: a feed the listener subscribes to."""

    url: str
    title: str


def _first(*values: Any) -> Any:
    for value in values:
        if value not in (None, "", [], {}):
            return value
    return None


def _categories(obj: Any) -> list[str]:
    out: list[str] = []
    for tag in obj.get("tags") or []:
        term = (tag.get("term") or "").strip()
        if term and term not in out:
            out.append(term)
    return out


def _content(obj: Any) -> str:
    contents = obj.get("content") or []
    longest = max((c.get("value") or "" for c in contents), key=len, default="")
    summary = obj.get("summary") or obj.get("subtitle") or ""
    return longest if len(longest) > len(summary) else summary


def _self_link(feed: Any) -> str | None:
    for link in feed.get("links") or []:
        if link.get("rel") == "self" and link.get("href"):
            return link["href"]
    return None


def _explicit(value: Any) -> Any:
    return value if value not in (None, "") else None


def parse_feed(data: bytes, source: str, report: IngestReport,
               feed_url: str | None = None) -> Iterator[ItemRecord]:
    """The show and its episodes from one feed document; bad entries reported and skipped."""
    parsed = feedparser.parse(data)
    feed = parsed.get("feed") or {}
    exc = parsed.get("bozo_exception")
    not_well_formed = isinstance(exc, SAXParseException)
    if not_well_formed or (parsed.get("bozo") and not parsed.get("entries")
                           and not feed.get("title")):
        line = getattr(exc, "getLineNumber", lambda: None)()
        where = f"line {line}" if line else "document"
        what = "malformed XML" if not_well_formed else "not a readable RSS/Atom feed"
        report.fail(source, where, None, f"{what}: {exc}; the feed was skipped")
        return
    feed_url = feed_url or _self_link(feed) or feed.get("itunes_new-feed-url")
    show_id = _first(feed.get("podcast_guid"), feed_url, feed.get("link"),
                     f"file:{Path(source).name}" if not is_url(source) else source)
    image = (feed.get("image") or {}).get("href") if isinstance(feed.get("image"), dict) else None
    show_row = {
        "id": show_id, "kind": "show", "title": feed.get("title"),
        "description": _content(feed) or feed.get("description"),
        "author": _first(feed.get("author"), feed.get("itunes_author"),
                         (feed.get("publisher_detail") or {}).get("name")),
        "categories": _categories(feed), "language": feed.get("language"), "image": image,
        "feed_url": feed_url, "explicit": _explicit(feed.get("itunes_explicit")),
        "published": feed.get("updated"), "extra": {"link": feed.get("link")} if feed.get(
            "link") else {},
    }
    try:
        show = record_from_row(show_row, "feed")
    except FieldError as exc:
        report.fail(source, "channel", *_split(exc))
        return
    yield show
    for index, entry in enumerate(parsed.get("entries") or [], start=1):
        enclosure = next((link for link in entry.get("links") or []
                          if link.get("rel") == "enclosure"), None)
        audio = enclosure.get("href") if enclosure else None
        guid = entry.get("id")
        ident = _first(guid, audio, entry.get("link"))
        if ident is None and entry.get("title"):
            ident = hashlib.sha1(f"{show_id}|{entry.get('title')}".encode()).hexdigest()
        row = {
            "id": ident, "kind": "episode", "show_id": show_id, "title": entry.get("title"),
            "description": _content(entry), "author": entry.get("author") or show.author,
            "categories": _categories(entry) or show.categories,
            "language": show.language, "image": (entry.get("image") or {}).get("href")
            if isinstance(entry.get("image"), dict) else None,
            "audio_url": audio, "guid": guid, "duration_s": entry.get("itunes_duration"),
            "published": entry.get("published") or entry.get("updated"),
            "explicit": _explicit(entry.get("itunes_explicit")),
        }
        try:
            yield record_from_row(row, "feed")
        except FieldError as exc:
            label = f"item {index}" + (f" (guid {guid!r})" if guid else "")
            report.fail(source, label, *_split(exc))


def _split(exc: FieldError) -> tuple[str | None, str]:
    field_name, _, message = str(exc).partition(": ")
    return (field_name, message) if message else (None, str(exc))


def parse_opml(data: bytes, source: str, report: IngestReport) -> list[Subscription]:
    parsed = listparser.parse(data.decode("utf-8", errors="replace"))
    if not parsed.get("feeds") and (parsed.get("bozo") or not parsed.get("version")):
        why = parsed.get("bozo_exception") or "expected an <opml> document with <outline> feeds"
        report.fail(source, "document", None, f"not a readable OPML file: {why}")
        return []
    return [Subscription(url=f["url"], title=(f.get("title") or "").strip())
            for f in parsed.get("feeds") or [] if f.get("url")]


def expand_sources(sources: list[str], report: IngestReport) -> Iterator[tuple[str, str]]:
    """('feed' | 'opml', path-or-url) for each feed behind the given files, folders and URLs."""
    for src in sources:
        if is_url(src):
            yield ("opml" if src.lower().endswith(".opml") else "feed", src)
            continue
        path = Path(src)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                suffix = child.suffix.lower()
                if child.is_file() and suffix in FEED_SUFFIXES | OPML_SUFFIXES:
                    yield ("opml" if suffix in OPML_SUFFIXES else "feed", str(child))
        elif path.is_file():
            yield ("opml" if path.suffix.lower() in OPML_SUFFIXES else "feed", str(path))
        else:
            report.fail(src, "path", None, "no such file, folder or URL")


def read_source(src: str, report: IngestReport) -> bytes | None:
    try:
        return fetch(src) if is_url(src) else Path(src).read_bytes()
    except OSError as exc:  # URLError and HTTPError are OSErrors
        report.fail(src, "fetch" if is_url(src) else "file", None, f"cannot read: {exc}")
        return None
