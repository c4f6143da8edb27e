"""Normalisation of raw catalog fields: text, durations, dates, flags, categories.

Each parser raises ``FieldError`` with a message that says what was expected, so the caller can
report the file, the record and the field.
"""

from __future__ import annotations

import html
import math
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any


class FieldError(ValueError):
    """A field's value cannot be understood; the message says what was expected."""


_BLOCK_TAGS = {"p", "br", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr",
               "blockquote", "section", "article"}


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


# Promotional lines that say nothing about the content and pull unrelated shows together.
_BOILERPLATE = [
    r"support this (?:podcast|show)\b[^\n]*",
    r"(?:subscribe|listen|follow us) (?:on|to|at|wherever)\b[^\n]*",
    r"(?:hosted|powered) (?:on|by) (?:acast|anchor|libsyn|podbean|buzzsprout|spreaker|megaphone"
    r"|simplecast|art19|omny)[^\n]*",
    r"see (?:omnystudio\.com/listener|acast\.com/privacy|pcm\.adswizz\.com)[^\n]*",
    r"learn more about your ad[- ]choices[^\n]*",
    r"(?:this episode is )?(?:sponsored|brought to you) by\b[^\n]*",
    r"become a (?:patron|supporter|member)\b[^\n]*",
    r"(?:rate|review)(?:,| and)? (?:rate|review|subscribe)\b[^\n]*",
    r"https?://\S+",
]
_BOILERPLATE_RE = re.compile("|".join(f"(?:{p})" for p in _BOILERPLATE), re.IGNORECASE)


def clean_text(value: Any, strip_boilerplate: bool = True) -> str:
    """HTML (or plain text) to clean text: tags gone, entities decoded, whitespace collapsed."""
    if value is None:
        return ""
    text = str(value)
    if "<" in text and ">" in text:
        parser = _TextExtractor()
        parser.feed(text)
        parser.close()
        text = "".join(parser.parts)
    text = html.unescape(html.unescape(text))
    text = text.replace("\u00a0", " ").replace("\r", "\n")
    if strip_boilerplate:
        text = _BOILERPLATE_RE.sub(" ", text)
    lines = [re.sub(r"[ \t\f\v]+", " ", line).strip() for line in text.split("\n")]
    text = " ".join(line for line in lines if line)
    return re.sub(r"\s+([,.;:!?])", r"\1", text).strip()


def clean_title(value: Any) -> str:
    return clean_text(value, strip_boilerplate=False)


# The largest duration stored: an INTEGER column (32 bits on PostgreSQL).
MAX_DURATION_S = 2**31 - 1


def parse_duration(value: Any) -> int | None:
    """'3600', '1:00:00', '60:00', 3600.0, '1h 2m' → seconds; empty → None. Non-finite,
    negative or past 2³¹−1 seconds is a FieldError (it could not be stored)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise FieldError(f"expected a duration, got {value!r}")
    if isinstance(value, int | float):
        return _seconds(float(value) if isinstance(value, float) else value, value)
    text = str(value).strip()
    if not text:
        return None
    if len(text) > 40:
        raise FieldError(f"expected a duration, got {len(text)} characters")
    if re.fullmatch(r"\d+(?:\.\d*)?(?:[eE][+-]?\d+)?", text):
        return _seconds(int(text) if text.isdigit() else float(text), text)
    if re.fullmatch(r"\d+(?::\d{1,2}){1,2}(?:\.\d+)?", text):
        seconds = 0.0
        for part in text.split(":"):
            seconds = seconds * 60 + float(part)
        return _seconds(seconds, text)
    m = re.fullmatch(r"(?:(\d+)\s*h(?:ours?|rs?)?)?\s*(?:(\d+)\s*m(?:in(?:utes?)?)?)?\s*"
                     r"(?:(\d+)\s*s(?:ec(?:onds?)?)?)?", text, re.IGNORECASE)
    if m and any(m.groups()):
        h, mi, s = (int(g or 0) for g in m.groups())
        return _seconds(h * 3600 + mi * 60 + s, text)
    raise FieldError(f"expected a duration in seconds, HH:MM:SS or MM:SS, got {text!r}")


def _seconds(value: int | float, raw: Any) -> int:
    """A whole number of seconds within what can be stored, else FieldError."""
    if isinstance(value, float) and not math.isfinite(value):
        raise FieldError(f"expected a finite duration, got {raw!r}")
    if value < 0:
        raise FieldError(f"expected a non-negative duration, got {raw!r}")
    if value > MAX_DURATION_S:
        raise FieldError(f"expected a duration of at most {MAX_DURATION_S} seconds, "
                         f"got {str(raw)[:40]!r}")
    return int(round(value))


def parse_datetime(value: Any) -> datetime | None:
    """ISO 8601, RFC 822 (feeds) or Unix seconds → aware UTC datetime; empty → None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return _to_utc(value, value)
    if isinstance(value, bool):
        raise FieldError(f"expected a date, got {value!r}")
    if isinstance(value, int | float):
        return _from_unix(value)
    text = str(value).strip()
    if not text:
        return None
    if len(text) > 80:
        raise FieldError(f"expected a date, got {len(text)} characters")
    if re.fullmatch(r"-?\d+(?:\.\d+)?", text):
        return _from_unix(float(text) if "." in text else int(text))
    iso = text.replace("Z", "+00:00").replace("z", "+00:00")
    if re.search(r"[+-]\d\d$", iso):  # '2017-12-01 00:09:47+00' (PostgreSQL style)
        iso += ":00"
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        try:
            dt = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            raise FieldError(
                f"expected an ISO 8601 date, an RFC 822 date or Unix seconds, got {text!r}"
            ) from None
    return _to_utc(dt, text)


def _to_utc(dt: datetime, raw: Any) -> datetime:
    """``dt`` in UTC (naive: taken as UTC). A time whose UTC date falls outside years
    1..9999 (9999-12-31T23:59:59-01:00) is a FieldError, not an OverflowError."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    try:
        return dt.astimezone(UTC)
    except OverflowError:
        raise FieldError(f"expected a date between years 1 and 9999 in UTC, got {raw!r}"
                         ) from None


# Unix times of 10**12 and more are milliseconds: every millisecond time since 2001-09-09 is
# that large, and no time in seconds before the year 33658 is. Below it, seconds (so
# 253402300799 is 9999-12-31T23:59:59Z, and a second more is out of range).
MILLISECONDS_FROM = 10**12


def _from_unix(stamp: int | float) -> datetime:
    if isinstance(stamp, float) and not math.isfinite(stamp):
        raise FieldError(f"expected a finite Unix time, got {stamp!r}")
    seconds = stamp / 1000 if abs(stamp) >= MILLISECONDS_FROM else stamp
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise FieldError(f"Unix time {stamp!r} is out of range (years 1 to 9999; "
                         f"{MILLISECONDS_FROM} and more are milliseconds)") from None


def parse_bool(value: Any) -> bool | None:
    """'yes', 'explicit', 'true', '1' → True; 'no', 'clean', 'false', '0' → False; '' → None."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value)
    text = str(value).strip().lower()
    if not text:
        return None
    if text in {"1", "true", "yes", "y", "explicit", "t"}:
        return True
    if text in {"0", "false", "no", "n", "clean", "f", "none"}:
        return False
    raise FieldError(f"expected true/false (or yes/no, explicit/clean), got {value!r}")


def parse_categories(value: Any) -> list[str]:
    """A list, "A | B", "A, B" or a Python-style "['A', 'B']" → distinct, trimmed names."""
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        if text.startswith("[") and text.endswith("]"):
            items = re.findall(r"['\"]([^'\"]+)['\"]", text)
        elif "|" in text:
            items = text.split("|")
        else:
            items = text.split(",")
    elif isinstance(value, list | tuple):
        items = [str(v) for v in value]
    else:
        raise FieldError(f"expected a list or 'A | B', got {value!r}")
    out: list[str] = []
    for item in items:
        name = clean_title(item)
        if name and name not in out:
            out.append(name)
    return out


def parse_float(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise FieldError(f"expected a number, got {str(value)[:40]!r}") from None
    if not math.isfinite(number):
        raise FieldError(f"expected a finite number, got {str(value)[:40]!r}")
    return number


def normalise_language(value: Any) -> str | None:
    """'en-US', 'EN', 'zh-Hant', "['en']" → 'en', 'zh'."""
    if value is None:
        return None
    text = str(value).strip().strip("[]'\" ").lower()
    if not text:
        return None
    code = re.split(r"[-_,\s]", text)[0]
    return code if re.fullmatch(r"[a-z]{2,3}", code) else None
