"""The generic catalog format (JSONL or CSV rows) and the row reader every importer shares.

A row is a mapping with ``id`` (required), ``kind`` (show|episode, default show), ``show_id``
(episodes), ``title`` (required), ``description``, ``author``, ``categories`` (list or "A | B"),
``language``, ``image``, ``audio_url``, ``duration_s``, ``published`` (ISO 8601 or Unix seconds),
``explicit``, ``feed_url``, ``guid`` and ``popularity``; other keys are kept in ``extra``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from podrec.ingest.normalize import (
    FieldError,
    clean_text,
    clean_title,
    normalise_language,
    parse_bool,
    parse_categories,
    parse_datetime,
    parse_duration,
    parse_float,
)
from podrec.records import KINDS, IngestReport, ItemRecord

KNOWN_FIELDS = {"id", "kind", "show_id", "title", "description", "author", "categories",
                "language", "image", "audio_url", "duration_s", "published", "explicit",
                "feed_url", "guid", "popularity", "extra"}

Row = tuple[str, dict[str, Any]]  # (location, row)
CSV_SUFFIXES = (".csv", ".tsv", ".dat")


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _str(value: Any) -> str | None:
    if _blank(value):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def record_from_row(row: Mapping[str, Any], source: str) -> ItemRecord:
    """Turn one generic row into an ItemRecord; raise FieldError('field: message') if bad."""

    def field(name: str, parse: Callable[[Any], Any]) -> Any:
        try:
            return parse(row.get(name))
        except FieldError as exc:
            raise FieldError(f"{name}: {exc}") from None

    item_id = _str(row.get("id"))
    if item_id is None:
        raise FieldError("id: required, but missing or empty")
    title = clean_title(row.get("title"))
    if not title:
        raise FieldError("title: required, but missing or empty")
    kind = (_str(row.get("kind")) or "show").lower()
    if kind not in KINDS:
        raise FieldError(f"kind: expected 'show' or 'episode', got {kind!r}")
    show_id = _str(row.get("show_id"))
    if kind == "episode" and show_id is None:
        raise FieldError("show_id: required for an episode, but missing or empty")
    extra = {k: v for k, v in row.items() if k not in KNOWN_FIELDS and not _blank(v)}
    if isinstance(row.get("extra"), dict):
        extra.update(row["extra"])
    return ItemRecord(
        id=item_id[:512],
        kind=kind,
        show_id=show_id if kind == "episode" else None,
        title=title,
        description=clean_text(row.get("description")),
        author=clean_title(row.get("author")) or None,
        categories=field("categories", parse_categories),
        language=normalise_language(row.get("language")),
        image=_str(row.get("image")),
        audio_url=_str(row.get("audio_url")),
        feed_url=_str(row.get("feed_url")),
        guid=_str(row.get("guid")),
        duration_s=field("duration_s", parse_duration),
        published=field("published", parse_datetime),
        explicit=field("explicit", parse_bool),
        popularity=field("popularity", parse_float),
        extra=extra,
        source=source,
    )


# A byte that is not UTF-8, as decoded with errors="surrogateescape".
_BAD_BYTE = re.compile("[\udc80-\udcff]")


def _has_bad_bytes(row: Mapping[str, Any]) -> str | None:
    for name, value in row.items():
        if isinstance(value, str) and _BAD_BYTE.search(value):
            return str(name)
    return None


def csv_options(path: Path) -> dict[str, Any]:
    """Reader options by suffix: ``.dat`` (the GroupLens/HetRec dumps) is TAB-separated and
    unquoted (names like ``"Weird Al" Yankovic`` keep their quotes); others are plain CSV."""
    if path.suffix.lower() == ".dat":
        return {"delimiter": "\t", "quoting": csv.QUOTE_NONE}
    return {}


def csv_header(path: Path) -> list[str]:
    """The column names of a delimited file (first row), without a BOM or spaces."""
    head = path.read_bytes()[:200_000].decode("utf-8", errors="replace")
    first = next(csv.reader(io.StringIO(head, newline=""), **csv_options(path)), [])
    return [c.strip().lstrip("\ufeff") for c in first]


def read_csv_rows(path: Path, report: IngestReport, delimiter: str = ",",
                  quoting: int = csv.QUOTE_MINIMAL) -> Iterator[Row]:
    """CSV rows with their line numbers; rows with non-UTF-8 bytes are reported and skipped."""
    text = path.read_bytes().decode("utf-8-sig", errors="surrogateescape")
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    if not reader.fieldnames:
        report.fail(str(path), "line 1", None, "empty file: expected a CSV header row")
        return
    reader.fieldnames = [name.strip() for name in reader.fieldnames]
    check_bytes = _BAD_BYTE.search(text) is not None  # only a file with a stray byte
    line = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            report.fail(str(path), f"line {reader.line_num}", None, f"malformed CSV: {exc}")
            return
        start, line = line + 1, reader.line_num
        if None in row:
            report.fail(str(path), f"line {start}", None,
                        f"{len(row[None])} more values than the header has columns")
            continue
        bad = _has_bad_bytes(row) if check_bytes else None
        if bad is not None:
            report.fail(str(path), f"line {start}", bad, "not valid UTF-8 (a stray non-UTF-8 byte)")
            continue
        yield f"line {start}", row


def read_jsonl_rows(path: Path, report: IngestReport) -> Iterator[Row]:
    """JSON-lines objects with their line numbers; bad lines are reported and skipped."""
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                report.fail(str(path), f"line {number}", None,
                            f"not valid UTF-8 (byte {raw[exc.start]:#04x} "
                            f"at column {exc.start + 1})")
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                report.fail(str(path), f"line {number}", None, f"not valid JSON: {exc.msg} "
                            f"at column {exc.colno}")
                continue
            if not isinstance(obj, dict):
                report.fail(str(path), f"line {number}", None,
                            f"expected a JSON object, got {type(obj).__name__}")
                continue
            yield f"line {number}", obj


def read_json_array_rows(path: Path, report: IngestReport) -> Iterator[Row]:
    """Objects of a JSON array file, located by their index."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        report.fail(str(path), f"byte {exc.start}", None, "not valid UTF-8")
        return
    except json.JSONDecodeError as exc:
        report.fail(str(path), f"line {exc.lineno}", None, f"not valid JSON: {exc.msg}")
        return
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        report.fail(str(path), "top level", None, "expected a JSON array of objects")
        return
    for index, obj in enumerate(data, start=1):
        if not isinstance(obj, dict):
            report.fail(str(path), f"record {index}", None,
                        f"expected a JSON object, got {type(obj).__name__}")
            continue
        yield f"record {index}", obj


def read_rows(path: Path, report: IngestReport) -> Iterator[Row]:
    """Rows of a CSV (``.dat``: TAB-separated), JSONL or JSON-array file, chosen by extension
    (then by content)."""
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return read_csv_rows(path, report, **csv_options(path))
    if suffix in (".jsonl", ".ndjson"):
        return read_jsonl_rows(path, report)
    head = path.read_bytes()[:1].lstrip() if path.stat().st_size else b""
    if suffix == ".json" and head.startswith(b"["):
        return read_json_array_rows(path, report)
    return read_jsonl_rows(path, report)


def records_from_rows(rows: Iterator[Row], source_path: str, source: str,
                      mapper: Callable[[dict[str, Any]], dict[str, Any]] | None,
                      report: IngestReport) -> Iterator[ItemRecord]:
    """Map each row (importer-specific), then parse it; a bad row is reported and skipped."""
    for location, row in rows:
        try:
            generic = mapper(row) if mapper else row
            yield record_from_row(generic, source)
        except FieldError as exc:
            field_name, _, message = str(exc).partition(": ")
            if not message:
                field_name, message = None, str(exc)
            ident = row.get("id") or row.get("title") or ""
            where = f"{location} (id {ident!r})" if ident and field_name != "id" else location
            report.fail(source_path, where, field_name, message)
