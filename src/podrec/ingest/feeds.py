"""RSS 2.0 / Atom / iTunes-namespace feeds (feedparser) and OPML subscription lists (listparser).

A show's id is the feed's podcast:guid, else its URL (self link or the URL it was fetched
from), else its site link; an episode's id is its GUID, else its enclosure URL, else its link.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit
from xml.sax import SAXParseException

import feedparser
import listparser

from podrec.ingest.catalog import record_from_row, sniff_encoding
from podrec.ingest.fetch import (
    FEED_SUFFIXES,
    OPML_SUFFIXES,
    USER_AGENT,
    Refused,
    TooLarge,
    fetch,
    is_url,
    read_local,
)
from podrec.ingest.limits import ITEM_LENGTHS
from podrec.ingest.normalize import (
    FieldError,
    clean_text,
    clean_title,
    parse_bool,
    parse_datetime,
    parse_duration,
)
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


def parse_feed(data: bytes, source: str, report: IngestReport,
               feed_url: str | None = None) -> Iterator[ItemRecord]:
    """The show and its episodes from one feed document, read as a tolerant podcast client
    reads it: damage is repaired where it can be (and reported, per feed, on ``report``'s
    repairs); an entry with nothing to know it by is reported and skipped."""
    notes = Repairs()
    parsed = tolerant_parse(data, notes)
    feed = parsed.get("feed") or {}
    entries = parsed.get("entries") or []
    if not entries and not feed.get("title") and not feed.get("link"):
        exc = parsed.get("bozo_exception")
        why = f": {exc}" if exc else ": expected an RSS or Atom document"
        report.fail(source, "document", None, f"not a readable RSS/Atom feed{why}")
        return
    feed_url = feed_url or _self_link(feed) or feed.get("itunes_new-feed-url")
    show = _show(feed, source, feed_url, notes)
    if show is None:
        report.fail(source, "channel", None, "nothing to name the show by")
        return
    yield show
    base = feed_url if feed_url and is_url(feed_url) else feed.get("link")
    for index, entry in enumerate(entries, start=1):
        rec = _episode(entry, index, show, base, notes)
        if rec is None:
            report.fail(source, f"item {index}", None, "no title, description, enclosure or "
                        "date to know the episode by; skipped")
            continue
        yield rec
    notes.report(report, source)


class Repairs:
    """What was repaired in one feed, grouped by kind of repair: one line per kind, naming
    the items it touched."""

    def __init__(self) -> None:
        self.kinds: dict[tuple[str | None, str], list[str]] = {}

    def note(self, where: str, field_name: str | None, message: str) -> None:
        self.kinds.setdefault((field_name, message), []).append(where)

    def report(self, report: IngestReport, source: str) -> None:
        for (field_name, message), places in self.kinds.items():
            shown = ", ".join(places[:10]) + (f" and {len(places) - 10} more"
                                              if len(places) > 10 else "")
            report.repair(source, shown, field_name, message)


# Namespaces of the prefixes podcast feeds use, declared when a feed forgets to.
KNOWN_PREFIXES = {
    "itunes": "http://www.itunes.com/dtds/podcast-1.0.dtd",
    "content": "http://purl.org/rss/1.0/modules/content/",
    "media": "http://search.yahoo.com/mrss/",
    "dc": "http://purl.org/dc/elements/1.1/",
    "atom": "http://www.w3.org/2005/Atom",
    "podcast": "https://podcastindex.org/namespace/1.0",
    "googleplay": "http://www.google.com/schemas/play-podcasts/1.0",
    "sy": "http://purl.org/rss/1.0/modules/syndication/",
    "slash": "http://purl.org/rss/1.0/modules/slash/",
    "wfw": "http://wellformedweb.org/CommentAPI/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "feedburner": "http://rssnamespace.org/feedburner/ext/1.0",
}
_PREFIX_USE = re.compile(rb"<\/?([A-Za-z_][\w.-]*):[A-Za-z_]"
                         rb"|\s([A-Za-z_][\w.-]*):[A-Za-z_][\w.-]*\s*=")
_ROOT = re.compile(rb"<(rss|feed|rdf:RDF|RDF)\b", re.IGNORECASE)


def tolerant_parse(data: bytes, notes: Repairs) -> Any:
    """feedparser over the bytes (never a path or URL: a document that looks like one is
    still a document). Undeclared prefixes are declared and the strict parse tried again;
    a document that is still not well-formed is taken from feedparser's loose parser."""
    stripped = data.lstrip(b" \t\r\n")
    if stripped is not data and stripped.startswith(b"<?xml") and len(stripped) < len(data):
        data = stripped
        notes.note("document", None, "whitespace before the XML declaration removed")
    parsed = feedparser.parse(io.BytesIO(data))
    exc = parsed.get("bozo_exception")
    if isinstance(exc, SAXParseException) and "unbound prefix" in str(exc):
        fixed, declared = declare_prefixes(data)
        if declared:
            again = feedparser.parse(io.BytesIO(fixed))
            if not isinstance(again.get("bozo_exception"), SAXParseException):
                notes.note("document", None, "undeclared namespace prefixes declared: "
                           + ", ".join(declared))
                return again
    if isinstance(exc, SAXParseException):
        line = exc.getLineNumber()
        notes.note("document", None, f"not well-formed XML (line {line}: {exc.getMessage()}); "
                   "read with the tolerant parser")
    elif isinstance(exc, feedparser.CharacterEncodingOverride):
        notes.note("document", None, f"wrong encoding: {exc}")
    return parsed


def declare_prefixes(data: bytes) -> tuple[bytes, list[str]]:
    """``data`` with every namespace prefix it uses but never declares declared on the root
    element (known prefixes with their namespace, others with a placeholder)."""
    used = {(m.group(1) or m.group(2)).decode("ascii", "replace")
            for m in _PREFIX_USE.finditer(data)}
    missing = sorted(p for p in used - {"xml", "xmlns"}
                     if f"xmlns:{p}=".encode() not in data)
    root = _ROOT.search(data)
    if not missing or root is None:
        return data, []
    decl = "".join(f' xmlns:{p}="{KNOWN_PREFIXES.get(p, "urn:podrec:undeclared:" + p)}"'
                   for p in missing)
    return data[:root.end()] + decl.encode() + data[root.end():], missing


def _show(feed: Any, source: str, feed_url: str | None, notes: Repairs) -> ItemRecord | None:
    """The channel as a show; a missing title is taken from the feed's URL or file name."""
    show_id = _first(feed.get("podcast_guid"), feed_url, feed.get("link"),
                     f"file:{Path(source).name}" if not is_url(source) else source)
    title = clean_title(feed.get("title"))
    if not title:
        title = title_from_location(feed_url or source)
        notes.note("channel", "title", f"missing; {title!r} taken from the feed's "
                   + ("URL" if feed_url or is_url(source) else "file name"))
    image = feed.get("image")
    row = {
        "id": _short_id(show_id, "channel", notes), "kind": "show", "title": title,
        "description": _content(feed) or feed.get("description"),
        "author": _first(feed.get("author"), feed.get("itunes_author"),
                         (feed.get("publisher_detail") or {}).get("name")),
        "categories": _categories(feed), "language": feed.get("language"),
        "image": image.get("href") if isinstance(image, dict) else None,
        "feed_url": feed_url,
        "explicit": _tolerant(parse_bool, feed.get("itunes_explicit"), "channel",
                              "explicit", notes),
        "published": _date(feed, ("updated", "published"), "channel", notes),
        "extra": {"link": feed.get("link")} if feed.get("link") else {},
    }
    return _record(row, "channel", notes)


def _episode(entry: Any, index: int, show: ItemRecord, base: str | None,
             notes: Repairs) -> ItemRecord | None:
    """One entry as an episode, repaired; None when nothing identifies it."""
    where = f"item {index}"
    audio = _url(_enclosure(entry), base, where, "audio_url", notes)
    link = _str_or_none(entry.get("link"))  # only an id of last resort: kept as written
    guid = _str_or_none(entry.get("id"))
    published = _date(entry, ("published", "updated"), where, notes)
    description = _content(entry)
    title = clean_title(entry.get("title"))
    if not title:
        title = _fallback_title(description, audio, published)
        if not title:
            return None
        notes.note(where, "title", "missing; taken from the "
                   + ("description" if clean_text(description) else
                      "enclosure's file name" if audio else "date"))
    ident = _first(guid, audio, link)
    if ident is None:
        stable = f"{show.id}|{title}|{published.isoformat() if published else ''}"
        ident = "sha1:" + hashlib.sha1(stable.encode()).hexdigest()
        notes.note(where, "guid", "missing, and no enclosure or link: id derived from "
                   "the show, title and date")
    row = {
        "id": _short_id(ident, where, notes), "kind": "episode", "show_id": show.id,
        "title": title, "description": description,
        "author": entry.get("author") or show.author,
        "categories": _categories(entry) or show.categories, "language": show.language,
        "image": (entry.get("image") or {}).get("href")
        if isinstance(entry.get("image"), dict) else None,
        "audio_url": audio, "guid": guid if guid and len(guid) <= 2000 else None,
        "duration_s": _tolerant(parse_duration, entry.get("itunes_duration"), where,
                                "duration_s", notes),
        "published": published,
        "explicit": _tolerant(parse_bool, entry.get("itunes_explicit"), where, "explicit",
                              notes),
    }
    return _record(row, where, notes)


def _record(row: dict[str, Any], where: str, notes: Repairs) -> ItemRecord | None:
    found: list[str] = []
    try:
        rec = record_from_row(row, "feed", found)
    except FieldError as exc:  # not expected after the repairs: say so, skip the entry
        notes.note(where, None, f"skipped: {exc}")
        return None
    for note in found:
        field_name, _, message = note.partition(": ")
        notes.note(where, field_name, message)
    return rec


def _tolerant(parse: Any, value: Any, where: str, field_name: str, notes: Repairs) -> Any:
    """``parse(value)``; a value it cannot read is left unknown, with a note."""
    try:
        return parse(value)
    except FieldError:
        notes.note(where, field_name, f"{str(value)[:40]!r} not understood; left unknown")
        return None


def _date(obj: Any, keys: tuple[str, ...], where: str, notes: Repairs) -> datetime | None:
    """The first date among ``keys``: ours first, then feedparser's reading of spellings
    ours does not know; unreadable or out-of-range dates are left unknown, with a note."""
    for key in keys:
        raw = obj.get(key)
        if not raw:
            continue
        try:
            return parse_datetime(raw)
        except FieldError:
            parsed = obj.get(f"{key}_parsed")
            if parsed:
                try:
                    return datetime(*parsed[:6], tzinfo=UTC)
                except (TypeError, ValueError, OverflowError):
                    pass
            notes.note(where, "published", f"{str(raw)[:40]!r} not understood; left unknown")
            return None
    return None


def _enclosure(entry: Any) -> str | None:
    for link in entry.get("links") or []:
        if link.get("rel") == "enclosure" and link.get("href"):
            return str(link["href"])
    for media in entry.get("media_content") or []:
        if isinstance(media, dict) and media.get("url"):
            return str(media["url"])
    return None


def _url(value: Any, base: str | None, where: str, field_name: str,
         notes: Repairs) -> str | None:
    """An absolute http(s) URL: relative ones resolved against the feed, spaces and
    protocol-relative forms repaired; other schemes (javascript:, file:) dropped."""
    text = _str_or_none(value)
    if text is None:
        return None
    fixed = text.replace(" ", "%20").replace("\n", "").replace("\t", "")
    if fixed.startswith("//"):
        fixed = "https:" + fixed
    scheme = urlsplit(fixed).scheme.lower()
    if not scheme and base and is_url(base):
        fixed = urljoin(base, fixed)
    elif scheme and scheme not in ("http", "https"):
        notes.note(where, field_name, f"{scheme}: URL dropped")
        return None
    if fixed != text:
        notes.note(where, field_name, "URL repaired (relative, spaces or '//' form)")
    return fixed


def _str_or_none(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _short_id(ident: str, where: str, notes: Repairs) -> str:
    """An id that fits its column: a longer one is replaced by its hash."""
    if len(ident) <= ITEM_LENGTHS["id"]:
        return ident
    notes.note(where, "id", f"{len(ident)} characters; its SHA-1 used instead")
    return "sha1:" + hashlib.sha1(ident.encode("utf-8", "surrogatepass")).hexdigest()


def _fallback_title(description: str, audio: str | None, published: datetime | None
                    ) -> str | None:
    """A title for an entry without one: the description's start, the enclosure's file
    name, or the date."""
    text = clean_text(description)
    if text:
        return text if len(text) <= 80 else text[:80].rsplit(" ", 1)[0] + "…"
    if audio:
        name = unquote(Path(urlsplit(audio).path).name)
        if name:
            return name
    if published:
        return f"Episode of {published.date().isoformat()}"
    return None


def title_from_location(location: str) -> str:
    """A readable show title from a feed URL or file name: 'feeds.example.com/daily.xml'
    → 'daily (feeds.example.com)'; a file 'my_show.rss' → 'my show'."""
    if is_url(location):
        parts = urlsplit(location)
        stem = Path(unquote(parts.path)).stem
        if stem and stem.lower() not in ("feed", "rss", "index", "podcast"):
            return f"{stem.replace('_', ' ').replace('-', ' ')} ({parts.hostname})"
        return parts.hostname or location
    stem = Path(location).stem.replace("_", " ").replace("-", " ").strip()
    return stem or "untitled feed"


def parse_opml(data: bytes, source: str, report: IngestReport) -> list[Subscription]:
    """The outlines of an OPML file. Always handed to listparser as bytes of UTF-8: given a
    string that starts with http://, listparser would fetch it itself."""
    encoding = sniff_encoding(data[:4000])
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        report.repair(source, f"byte {exc.start}", None,
                      f"not valid {encoding.upper()}; bad bytes replaced")
        text = data.decode(encoding, errors="replace")
    parsed = listparser.parse(text.lstrip("\ufeff").encode("utf-8"))
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


def read_source(src: str, report: IngestReport, outline: bool = False) -> bytes | None:
    """The bytes of a feed or OPML source: a URL is fetched under the fetch policy in force;
    a path given on the command line is read; a path or file:// URL named by an OPML
    outline only where the policy allows local paths (the CLI, not the server)."""
    try:
        if is_url(src):
            return fetch(src)
        return read_local(src) if outline else Path(src).read_bytes()
    except Refused as exc:
        report.fail(src, "fetch" if is_url(src) else "outline", None, f"refused: {exc}")
    except TooLarge as exc:
        report.fail(src, "fetch", None, f"{exc} (server.fetch_max_bytes)")
    except OSError as exc:  # URLError and HTTPError are OSErrors
        report.fail(src, "fetch" if is_url(src) else "file", None, f"cannot read: {exc}")
    return None
