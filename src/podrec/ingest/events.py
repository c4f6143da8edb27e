"""The generic event format: JSONL or CSV rows of what listeners did.

Columns: ``user_id`` (required), ``item_id`` (required except for search), ``item_kind``
(show|episode, optional), ``event`` (one of EVENT_TYPES), ``value`` (progress 0..1 or a
rating), ``text`` (review or search text), ``timestamp`` (ISO 8601 or Unix seconds, required),
``platform``, ``device``, ``context`` (a JSON object).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from podrec.ingest.catalog import read_rows
from podrec.ingest.normalize import FieldError, parse_datetime, parse_float
from podrec.records import EVENT_TYPES, KINDS, EventRecord, IngestReport


def _opt(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def event_from_row(row: Mapping[str, Any]) -> EventRecord:
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
    context = row.get("context")
    if isinstance(context, str) and context.strip():
        try:
            context = json.loads(context)
        except json.JSONDecodeError:
            raise FieldError("context: expected a JSON object") from None
    if context in (None, ""):
        context = {}
    if not isinstance(context, dict):
        raise FieldError("context: expected a JSON object")
    return EventRecord(user_id=user, event=event, timestamp=timestamp, item_id=item,
                       item_kind=kind, value=value, text=_opt(row.get("text")),
                       platform=_opt(row.get("platform")), device=_opt(row.get("device")),
                       context=context)


def read_events(path: Path, report: IngestReport) -> Iterator[EventRecord]:
    for location, row in read_rows(path, report):
        try:
            yield event_from_row(row)
        except FieldError as exc:
            field_name, _, message = str(exc).partition(": ")
            report.fail(str(path), location, field_name or None, message or str(exc))
