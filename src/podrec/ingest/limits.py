"""Limits every reader applies before and after parsing, so one bad record cannot stop a file.

SQLite stores almost anything; PostgreSQL refuses NUL characters, non-finite numbers in JSON,
strings longer than their column and integers past 32 bits. Checking here, once, makes both
databases take and refuse the same records, with a message that names the field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from podrec.ingest.normalize import FieldError
from podrec.storage import schema

# Deepest JSON nesting a record may have. Python's parser recurses and fails near 1,000;
# real catalog and event records nest a few levels.
MAX_JSON_DEPTH = 64
# Largest CSV field and JSON line, in characters: far above any real description, far below
# what would exhaust memory on a 2-core box.
MAX_FIELD_CHARS = 4 * 1024 * 1024
# Longest URL kept (feed_url is indexed; PostgreSQL's index entries hold about 2,700 bytes).
MAX_URL_CHARS = 2000
# duration_s is an INTEGER column (32 bits on PostgreSQL).
MAX_INT = 2**31 - 1


def column_length(table: Any, name: str) -> int:
    """The declared length of a String column of the one schema."""
    length = table.c[name].type.length
    assert isinstance(length, int), f"{table.name}.{name} has no length"
    return length


# Bounded columns a record's fields go into: over-long values are refused on PostgreSQL.
ITEM_LENGTHS = {"id": column_length(schema.items, "id"),
                "show_id": column_length(schema.items, "show_id")}
EVENT_LENGTHS = {name: column_length(schema.events, name)
                 for name in ("user_id", "item_id", "event", "platform", "device")}


def check_lengths(values: dict[str, str | None], lengths: dict[str, int]) -> None:
    """FieldError for the first value longer than its column."""
    for name, limit in lengths.items():
        value = values.get(name)
        if value is not None and len(value) > limit:
            raise FieldError(f"{name}: expected at most {limit} characters, got {len(value)}")


def strip_nul(value: Any, where: str, notes: list[str] | None) -> Any:
    """``value`` (a string, list or dict, recursively) without NUL characters, which
    PostgreSQL cannot store in text; each repair is noted as 'field: message'."""
    if isinstance(value, str):
        if "\x00" in value:
            if notes is not None:
                notes.append(f"{where}: NUL characters removed")
            return value.replace("\x00", "")
        return value
    if isinstance(value, dict):
        return {strip_nul(k, where, notes): strip_nul(v, f"{where}.{k}", notes)
                for k, v in value.items()}
    if isinstance(value, list):
        return [strip_nul(v, where, notes) for v in value]
    return value


def finite_json(value: Any, where: str, notes: list[str] | None = None,
                drop: bool = False) -> Any:
    """``value`` with every number finite, so it is valid JSON when written back. A NaN or
    infinity is a FieldError, or (``drop``) left out with a note."""
    if isinstance(value, float) and not math.isfinite(value):
        if not drop:
            raise FieldError(f"{where}: expected a finite number, got {value!r}")
        if notes is not None:
            notes.append(f"{where}: non-finite number {value!r} left out")
        return _DROP
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            kept = finite_json(item, f"{where}.{key}", notes, drop)
            if kept is not _DROP:
                out[str(key)] = kept
        return out
    if isinstance(value, list | tuple):
        return [v for v in (finite_json(v, where, notes, drop) for v in value) if v is not _DROP]
    return value


_DROP = object()


def finite(value: float | None, name: str) -> float | None:
    """A float that must be finite (popularity, an event's value)."""
    if value is not None and not math.isfinite(value):
        raise FieldError(f"{name}: expected a finite number, got {value!r}")
    return value


def json_too_deep(text: str | bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``text`` nests arrays and objects deeper than ``limit``, checked before
    parsing (Python's parser would recurse until RecursionError). Brackets inside strings do
    not count; a text with fewer opening brackets than the limit is not scanned at all."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if text.count("[") + text.count("{") <= limit:
        return False
    return max_depth(text) > limit


_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)


def max_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` in a JSON text, strings skipped."""
    depth = deepest = 0
    for m in _TOKENS.finditer(text):
        ch = m.group(0)[0]
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def safe_loads(text: str, loads: Callable[[str], Any], limit: int = MAX_JSON_DEPTH) -> Any:
    """``loads(text)`` after the nesting check: ValueError when too deep."""
    if json_too_deep(text, limit):
        raise ValueError(f"nested deeper than {limit} levels")
    try:
        return loads(text)
    except RecursionError:
        raise ValueError(f"nested deeper than {limit} levels") from None
