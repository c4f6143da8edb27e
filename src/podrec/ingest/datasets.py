"""Importers for public catalog dumps: each maps its columns onto the generic catalog row.

Formats (``--format``, or detected from the file's columns/keys):
- ``generic``: the generic catalog format (catalog.py).
- ``apple``: Apple Podcasts pages (podcast_info.json: title, producer, genre, rating,
  num_ratings, link); id = the iTunes id in ``link``.
- ``apple-csv``: Apple Podcasts catalog CSV (podcasts.csv with itunes_id, num_reviews).
- ``listennotes``: Listen Notes podcasts.csv (+ episodes.csv beside it, or given alone); ids
  become ``listennotes:N`` and ``listennotes-episode:N`` (the dump numbers both from 1).
- ``podcastindex``: the Podcast Index database dump (table ``podcasts``); ids become
  ``podcastindex:N``.
- ``podcastindex-trending``: Podcast Index API exports (rss_url, categories_list).
- ``spotify``: Spotify show details (name, id, publisher, languages).
- ``movielens``: MovieLens movies.csv (movieId, title, genres "A|B"); ids become
  ``movielens:N``, the title's "(1995)" becomes extra["year"] and ``published`` 1995-01-01.
- ``lastfm``: HetRec 2011 Last.fm artists.dat (TAB-separated id, name, url, pictureURL); ids
  become ``lastfm:N``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from podrec.ingest.catalog import (
    CSV_SUFFIXES,
    csv_header,
    read_rows,
    read_text,
    records_from_rows,
)
from podrec.records import IngestReport, ItemRecord

Mapper = Callable[[dict[str, Any]], dict[str, Any]]


def _itunes_id(link: Any) -> str | None:
    m = re.search(r"/id(\d+)", str(link or ""))
    return m.group(1) if m else None


def _apple_row(row: dict[str, Any], item_id: Any, popularity_key: str) -> dict[str, Any]:
    """Apple's page fields, shared by the JSON scrape and the CSV catalog."""
    genre = row.get("genre") or ""
    return {
        "id": item_id,
        "title": row.get("title"),
        "description": row.get("description"),
        "author": row.get("producer"),
        "categories": [genre] if genre else [],
        "popularity": row.get(popularity_key),
        "extra": {k: row[k] for k in ("rating", popularity_key, "num_episodes", "link")
                  if row.get(k) not in (None, "")},
    }


def map_apple(row: dict[str, Any]) -> dict[str, Any]:
    return _apple_row(row, _itunes_id(row.get("link")) or row.get("title"), "num_ratings")


def map_apple_csv(row: dict[str, Any]) -> dict[str, Any]:
    return _apple_row(row, row.get("itunes_id") or _itunes_id(row.get("link")), "num_reviews")


def _local(prefix: str, value: Any) -> str | None:
    """Dataset-local numeric ids get the dataset's name, so two dumps' id 1 do not collide."""
    text = str(value).strip() if value is not None else ""
    return f"{prefix}:{text}" if text else None


def map_listennotes_podcast(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": _local("listennotes", row.get("id")), "title": row.get("title"),
        "description": row.get("description"),
        "author": row.get("author"), "categories": row.get("categories"),
        "language": row.get("language"), "image": row.get("image"),
        "extra": {k: row[k] for k in ("website", "itunes_id") if row.get(k)},
    }


def map_listennotes_episode(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": _local("listennotes-episode", row.get("id")), "kind": "episode",
        "show_id": _local("listennotes", row.get("podcast_id")),
        "title": row.get("title"), "description": row.get("description"),
        "audio_url": row.get("audio"), "duration_s": row.get("audio_length"),
        "published": row.get("pub_date"),
    }


def map_podcastindex(row: dict[str, Any]) -> dict[str, Any]:
    cats = [row.get(f"category{i}") for i in range(1, 11)]
    return {
        "id": _local("podcastindex", row.get("id")), "title": row.get("title"),
        "description": row.get("description"),
        "author": row.get("itunesAuthor") or row.get("itunesOwnerName"),
        "categories": [c.strip().title() for c in cats if c and c.strip()],
        "language": row.get("language"), "image": row.get("imageUrl"),
        "feed_url": row.get("url"), "guid": row.get("podcastGuid"),
        "explicit": row.get("explicit"), "popularity": row.get("popularityScore"),
        "published": row.get("newestItemPubdate") or None,
        "extra": {k: row[k] for k in ("itunesId", "episodeCount", "link", "dead")
                  if row.get(k) not in (None, "")},
    }


def map_podcastindex_trending(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row.get("itunes_id") or row.get("rss_url"), "title": row.get("title"),
        "description": row.get("description"), "author": row.get("author"),
        "categories": row.get("categories_list") or row.get("categories"),
        "language": row.get("language_final") or row.get("language"),
        "feed_url": row.get("rss_url"), "explicit": row.get("explicit"),
        "extra": {k: row[k] for k in ("episode_count", "itunes_id") if row.get(k)},
    }


def map_spotify(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row.get("id"), "title": row.get("name"), "description": row.get("description"),
        "author": row.get("publisher"), "language": row.get("languages"),
        "image": row.get("image_url"), "explicit": row.get("explicit"),
        "categories": row.get("category"),
        "extra": {k: row[k] for k in ("total_episodes", "external_url") if row.get(k)},
    }


_YEAR = re.compile(r"\((\d{4})(?:\s*[-\u2013]\s*(?:\d{4})?)?\)\s*$")


def map_movielens(row: dict[str, Any]) -> dict[str, Any]:
    title = row.get("title") or ""
    genres = [g for g in (row.get("genres") or "").split("|")
              if g.strip() and g.strip() != "(no genres listed)"]
    year = _YEAR.search(title)  # "Toy Story (1995)", "Fawlty Towers (1975-1979)"
    return {
        "id": _local("movielens", row.get("movieId")), "title": title,
        "categories": genres, "published": f"{year.group(1)}-01-01" if year else None,
        "extra": {"year": int(year.group(1))} if year else {},
    }


def map_lastfm_artist(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": _local("lastfm", row.get("id")), "title": row.get("name"), "author": None,
        "image": row.get("pictureURL"),
        "extra": {"link": row["url"]} if row.get("url") else {},
    }


FORMATS: dict[str, Mapper | None] = {
    "generic": None,
    "apple": map_apple,
    "apple-csv": map_apple_csv,
    "listennotes": map_listennotes_podcast,
    "listennotes-episodes": map_listennotes_episode,
    "podcastindex": map_podcastindex,
    "podcastindex-trending": map_podcastindex_trending,
    "spotify": map_spotify,
    "movielens": map_movielens,
    "lastfm": map_lastfm_artist,
}

# Columns (or JSON keys) that identify each format, most specific first.
_SIGNATURES: list[tuple[str, set[str]]] = [
    ("podcastindex", {"url", "title", "itunesId", "podcastGuid", "category1"}),
    ("podcastindex-trending", {"rss_url", "title", "itunes_id"}),
    ("listennotes-episodes", {"podcast_id", "title", "audio", "audio_length"}),
    ("listennotes", {"id", "title", "categories", "website", "itunes_id"}),
    ("spotify", {"name", "id", "publisher", "languages"}),
    ("movielens", {"movieId", "title", "genres"}),
    ("lastfm", {"id", "name", "url", "pictureURL"}),
    ("apple-csv", {"title", "producer", "genre", "itunes_id"}),
    ("apple", {"title", "producer", "genre", "link"}),
]


class FormatError(ValueError):
    """The file's format is unknown or cannot be detected."""


def _columns(path: Path) -> set[str]:
    if path.suffix.lower() in CSV_SUFFIXES:
        return set(csv_header(path))
    stripped = read_text(path, limit=200_000).lstrip("\ufeff \t\r\n")
    try:
        if stripped.startswith("["):
            m = re.search(r"\{.*?\}", stripped, re.S)
            return set(json.loads(m.group(0))) if m else set()
        return set(json.loads(stripped.splitlines()[0])) if stripped else set()
    except (json.JSONDecodeError, AttributeError, IndexError, RecursionError):
        return set()


def detect_format(path: Path) -> str:
    """The importer for ``path``, from its columns; generic when it has id and title."""
    cols = _columns(path)
    for name, needed in _SIGNATURES:
        if needed <= cols:
            return name
    if {"id", "title"} <= cols:
        return "generic"
    raise FormatError(
        f"{path}: cannot tell the catalog format from its columns ({', '.join(sorted(cols)[:12])});"
        f" expected the generic format (id, title, ...) or pass --format "
        f"({', '.join(FORMATS)})")


def read_catalog(path: Path, report: IngestReport, fmt: str | None = None) -> Iterator[ItemRecord]:
    """Records of one catalog file in ``fmt`` (detected when None)."""
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise FormatError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    yield from records_from_rows(read_rows(path, report), str(path), fmt, FORMATS[fmt], report)
    if fmt == "listennotes":  # its episodes file lives beside the podcasts file
        episodes = path.with_name("episodes.csv")
        if episodes.exists() and episodes != path:
            yield from records_from_rows(read_rows(episodes, report), str(episodes),
                                         "listennotes", map_listennotes_episode, report)
