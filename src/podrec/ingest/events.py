"""The generic event format: JSONL or CSV rows of what listeners did.

Columns: ``user_id`` (required), ``item_id`` (required except for search), ``item_kind``
(show|episode, optional), ``event`` (one of EVENT_TYPES), ``value`` (progress 0..1 or a
rating), ``text`` (review or search text), ``timestamp`` (ISO 8601 or Unix seconds, required),
``platform``, ``device``, ``context`` (a JSON object).

Public interaction dumps (``fmt``, or detected from a CSV file's header) are mapped onto it:
- ``movielens``: MovieLens ratings.csv (userId, movieId, rating 0.5..5, timestamp in Unix
  seconds) → ``rate`` events; ids become ``movielens:N``.
- ``lastfm``: HetRec 2011 Last.fm user_artists.dat (TAB-separated userID, artistID, weight)
  → ``play`` events whose value is the play count; ids become ``lastfm:N``.
- ``apple-reviews``: Apple Podcasts reviews.csv (itunes_id, user, rating, title, review) →
  ``review`` events, value = rating, text = "title. review"; the bare iTunes id as in the
  ``apple-csv`` catalog.
The last two carry no times: their events are dated at the Unix epoch with
``context = {"timestamp": "unknown"}``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from podrec.ingest.catalog import CSV_SUFFIXES, csv_header, read_rows, report_notes
from podrec.ingest.datasets import FormatError
from podrec.ingest.limits import (
    EVENT_LENGTHS,
    MAX_JSON_DEPTH,
    check_lengths,
    finite,
    finite_json,
    max_depth,
    safe_loads,
    strip_nul,
)
from podrec.ingest.normalize import FieldError, parse_datetime, parse_float
from podrec.records import EVENT_TYPES, KINDS, EventRecord, IngestReport

# Where a dump has no times: the epoch, flagged in the event's context.
UNKNOWN_TIME = datetime(1970, 1, 1, tzinfo=UTC)


def _opt(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def event_from_row(row: Mapping[str, Any], notes: list[str] | None = None) -> EventRecord:
    """One generic-format event; FieldError('field: message') when it cannot be stored.
    NUL characters are removed (noted in ``notes``); numbers must be finite and ids fit
    their columns, so SQLite and PostgreSQL take the same events."""
    row = {str(k): strip_nul(v, str(k), notes) for k, v in row.items()}
    user = _opt(row.get("user_id"))
    if user is None:
        raise FieldError("user_id: required, but missing or empty")
    event = (_opt(row.get("event")) or "").lower()
    if event not in EVENT_TYPES:
        raise FieldError(f"event: expected one of {', '.join(EVENT_TYPES)}, got {event!r}")
    item = _opt(row.get("item_id"))
    if item is None and event != "search":
        raise FieldError(f"item_id: required for a {event!r} event, but missing or empty")
    kind = _opt(row.get("item_kind"))
    if kind is not None and kind not in KINDS:
        raise FieldError(f"item_kind: expected 'show' or 'episode', got {kind!r}")
    try:
        timestamp = parse_datetime(row.get("timestamp"))
    except FieldError as exc:
        raise FieldError(f"timestamp: {exc}") from None
    if timestamp is None:
        raise FieldError("timestamp: required, but missing or empty")
    try:
        value = parse_float(row.get("value"))
    except FieldError as exc:
        raise FieldError(f"value: {exc}") from None
    rec = EventRecord(user_id=user, event=event, timestamp=timestamp, item_id=item,
                      item_kind=kind, value=value, text=_opt(row.get("text")),
                      platform=_opt(row.get("platform")), device=_opt(row.get("device")),
                      context=_context(row.get("context")))
    check_event(rec)
    return rec


def _context(context: Any) -> dict[str, Any]:
    """The context column: a JSON object (or its text), nested at most MAX_JSON_DEPTH deep,
    every number finite (NaN or infinity cannot be written back as JSON)."""
    if isinstance(context, str) and context.strip():
        try:
            context = safe_loads(context, json.loads)
        except ValueError as exc:
            raise FieldError(f"context: expected a JSON object ({exc})") from None
    if context in (None, ""):
        return {}
    if not isinstance(context, dict):
        raise FieldError("context: expected a JSON object")
    try:
        too_deep = max_depth(json.dumps(context, default=str)) > MAX_JSON_DEPTH
    except (RecursionError, ValueError):
        too_deep = True
    if too_deep:
        raise FieldError(f"context: nested deeper than {MAX_JSON_DEPTH} levels")
    return finite_json(context, "context")


def check_event(rec: EventRecord) -> None:
    """FieldError when an event of any format cannot be stored as it is."""
    check_lengths({"user_id": rec.user_id, "item_id": rec.item_id, "event": rec.event,
                   "platform": rec.platform, "device": rec.device}, EVENT_LENGTHS)
    finite(rec.value, "value")


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()  # not "²" or "٣", which int() rejects


def _int_id(prefix: str, row: Mapping[str, Any], column: str) -> str:
    text = _opt(row.get(column))
    if text is None:
        raise FieldError(f"{column}: required, but missing or empty")
    if not _digits(text):
        raise FieldError(f"{column}: expected an integer id, got {text!r}")
    return f"{prefix}:{text}" if prefix else text


def _number(row: Mapping[str, Any], column: str, low: float, high: float) -> float:
    text = _opt(row.get(column))
    if text is None:
        raise FieldError(f"{column}: required, but missing or empty")
    try:
        value = float(text)
    except ValueError:
        raise FieldError(f"{column}: expected a number, got {text!r}") from None
    if not (math.isfinite(value) and low <= value <= high):
        raise FieldError(f"{column}: expected a number from {low:g} to {high:g}, got {text!r}")
    return value


def movielens_event(row: Mapping[str, Any]) -> EventRecord:
    """ratings.csv: userId, movieId, rating (0.5..5), timestamp (Unix seconds)."""
    user = _int_id("movielens", row, "userId")
    item = _int_id("movielens", row, "movieId")
    value = _number(row, "rating", 0.5, 5.0)
    stamp = _opt(row.get("timestamp"))
    if stamp is None:
        raise FieldError("timestamp: required, but missing or empty")
    if not _digits(stamp):
        raise FieldError(f"timestamp: expected Unix seconds, got {stamp!r}")
    try:
        timestamp = datetime.fromtimestamp(int(stamp), tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise FieldError(f"timestamp: Unix time {stamp} is out of range") from None
    return EventRecord(user_id=user, event="rate", timestamp=timestamp, item_id=item,
                       item_kind="show", value=value)


def lastfm_event(row: Mapping[str, Any]) -> EventRecord:
    """user_artists.dat: userID, artistID, weight (the user's play count for the artist)."""
    user = _int_id("lastfm", row, "userID")
    item = _int_id("lastfm", row, "artistID")
    plays = _opt(row.get("weight"))
    if plays is None:
        raise FieldError("weight: required, but missing or empty")
    if not _digits(plays):
        raise FieldError(f"weight: expected a play count (a whole number), got {plays!r}")
    return EventRecord(user_id=user, event="play", timestamp=UNKNOWN_TIME, item_id=item,
                       item_kind="show", value=float(plays), context={"timestamp": "unknown"})


def _join(title: str | None, body: str | None) -> str | None:
    if title and body:
        return f"{title} {body}" if title[-1] in ".!?…" else f"{title}. {body}"
    return title or body


def apple_review_event(row: Mapping[str, Any]) -> EventRecord:
    """reviews.csv: itunes_id, user, rating (1..5), title, review."""
    item = _int_id("", row, "itunes_id")
    user = _opt(row.get("user"))
    if user is None:
        raise FieldError("user: required, but missing or empty")
    value = _number(row, "rating", 1, 5)
    return EventRecord(user_id=user, event="review", timestamp=UNKNOWN_TIME, item_id=item,
                       item_kind="show", value=value,
                       text=_join(_opt(row.get("title")), _opt(row.get("review"))),
                       context={"timestamp": "unknown"})


EVENT_FORMATS: dict[str, Callable[[Mapping[str, Any]], EventRecord]] = {
    "generic": event_from_row,
    "movielens": movielens_event,
    "lastfm": lastfm_event,
    "apple-reviews": apple_review_event,
}

# Header columns each format needs; detection tries them in this order.
_EVENT_SIGNATURES: dict[str, set[str]] = {
    "movielens": {"userId", "movieId", "rating", "timestamp"},
    "lastfm": {"userID", "artistID", "weight"},
    "apple-reviews": {"itunes_id", "user", "rating", "title", "review"},
    "generic": {"user_id", "event"},
}


def detect_event_format(path: Path) -> str:
    """The event format of ``path`` from its header; JSON files are always generic."""
    if path.suffix.lower() not in CSV_SUFFIXES:
        return "generic"
    cols = set(csv_header(path))
    if not cols - {""}:
        return "generic"  # empty file: the reader reports it
    for name, needed in _EVENT_SIGNATURES.items():
        if needed <= cols:
            return name
    raise FormatError(
        f"{path}: cannot tell the event format from its columns "
        f"({', '.join(sorted(cols)[:12])}); expected the generic format (user_id, event, "
        f"timestamp, ...) or pass --format ({', '.join(EVENT_FORMATS)})")


def read_events(path: Path, report: IngestReport, fmt: str | None = None) -> Iterator[EventRecord]:
    """Events of one file in ``fmt`` (detected when None); bad rows are reported and skipped."""
    fmt = fmt or detect_event_format(path)
    if fmt not in EVENT_FORMATS:
        raise FormatError(f"unknown event format {fmt!r}; expected one of "
                          f"{', '.join(EVENT_FORMATS)}")
    if fmt != "generic" and path.suffix.lower() in CSV_SUFFIXES:
        missing = _EVENT_SIGNATURES[fmt] - set(csv_header(path))
        if missing:
            raise FormatError(f"{path}: the {fmt} event format needs the columns "
                              f"{', '.join(sorted(missing))}, which the file lacks")
    parse = EVENT_FORMATS[fmt]
    for location, row in read_rows(path, report):
        notes: list[str] = []
        try:
            rec = parse({str(k): strip_nul(v, str(k), notes) for k, v in row.items()})
            check_event(rec)
        except FieldError as exc:
            field_name, _, message = str(exc).partition(": ")
            report.fail(str(path), location, field_name or None, message or str(exc))
            continue
        except (TypeError, ValueError, AttributeError, RecursionError) as exc:
            report.fail(str(path), location, None, f"cannot read this event: {exc}")
            continue
        report_notes(report, str(path), location, list(dict.fromkeys(notes)))
        yield rec
