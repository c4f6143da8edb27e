"""The generic catalog format (JSONL or CSV rows) and the row reader every importer shares.

A row is a mapping with ``id`` (required), ``kind`` (show|episode, default show), ``show_id``
(episodes), ``title`` (required), ``description``, ``author``, ``categories`` (list or "A | B"),
``language``, ``image``, ``audio_url``, ``duration_s``, ``published`` (ISO 8601 or Unix seconds),
``explicit``, ``feed_url``, ``guid`` and ``popularity``; other keys are kept in ``extra``.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from podrec.ingest.limits import (
    ITEM_LENGTHS,
    MAX_FIELD_CHARS,
    MAX_JSON_DEPTH,
    MAX_URL_CHARS,
    check_lengths,
    finite_json,
    json_too_deep,
    strip_nul,
)
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


def record_from_row(row: Mapping[str, Any], source: str,
                    notes: list[str] | None = None) -> ItemRecord:
    """Turn one generic row into an ItemRecord; raise FieldError('field: message') if bad.
    Repairs that keep the record (NUL characters removed, non-finite numbers left out of
    ``extra``) are appended to ``notes`` as 'field: message'."""
    row = {str(k): strip_nul(v, str(k), notes) for k, v in row.items()}

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
    check_lengths({"id": item_id, "show_id": show_id}, ITEM_LENGTHS)
    extra = {k: v for k, v in row.items() if k not in KNOWN_FIELDS and not _blank(v)}
    if isinstance(row.get("extra"), dict):
        extra.update(row["extra"])
    extra = finite_json(extra, "extra", notes, drop=True)
    urls = {name: _url_field(row, name, notes) for name in ("image", "audio_url", "feed_url")}
    return ItemRecord(
        id=item_id,
        kind=kind,
        show_id=show_id if kind == "episode" else None,
        title=title,
        description=clean_text(row.get("description")),
        author=clean_title(row.get("author")) or None,
        categories=field("categories", parse_categories),
        language=normalise_language(row.get("language")),
        image=urls["image"],
        audio_url=urls["audio_url"],
        feed_url=urls["feed_url"],
        guid=_str(row.get("guid")),
        duration_s=field("duration_s", parse_duration),
        published=field("published", parse_datetime),
        explicit=field("explicit", parse_bool),
        popularity=field("popularity", parse_float),
        extra=extra,
        source=source,
    )


def _url_field(row: Mapping[str, Any], name: str, notes: list[str] | None) -> str | None:
    """A URL field; one longer than MAX_URL_CHARS (no real URL is; feed_url is indexed) is
    left out, with a note."""
    url = _str(row.get(name))
    if url is not None and len(url) > MAX_URL_CHARS:
        if notes is not None:
            notes.append(f"{name}: {len(url)} characters, more than {MAX_URL_CHARS}; left out")
        return None
    return url


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


# Byte-order marks, longest first (a UTF-32 LE mark begins like a UTF-16 LE one).
_BOMS = [(codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16")]
# The hard limit of Python's CSV parser (its default is 131,072 characters, which real
# descriptions exceed). A field over MAX_FIELD_CHARS is reported per record; one over this
# is a parse error, reported, and reading goes on.
CSV_PARSE_LIMIT = 16 * MAX_FIELD_CHARS
csv.field_size_limit(CSV_PARSE_LIMIT)


def sniff_encoding(head: bytes) -> str:
    """The text encoding of a file from its first bytes: a BOM says it; without one, ASCII
    text in UTF-16 has a zero in every other byte; else UTF-8."""
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name
    sample = head[:4000]
    half = len(sample) // 2
    if half >= 2:
        even, odd = sample[0::2].count(0), sample[1::2].count(0)
        if odd > 0.4 * half and even < 0.05 * half:
            return "utf-16-le"
        if even > 0.4 * half and odd < 0.05 * half:
            return "utf-16-be"
    return "utf-8"


def read_text(path: Path, report: IngestReport | None = None, limit: int | None = None
              ) -> str:
    """A file's text in its own encoding (UTF-8, or UTF-16/32 by BOM or zero bytes).
    Bytes that are not UTF-8 stay as lone surrogates (``_BAD_BYTE``) for the row readers to
    report; a broken UTF-16/32 file is reported once and read with replacement characters."""
    with path.open("rb") as fh:
        data = fh.read() if limit is None else fh.read(limit)
    encoding = sniff_encoding(data[:4000])
    if encoding in ("utf-8", "utf-8-sig"):
        return data.decode(encoding, errors="surrogateescape")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        if report is not None and limit is None:
            report.fail(str(path), f"byte {exc.start}", None,
                        f"not valid {encoding.upper()}: {exc.reason}; the text around it "
                        "was read with replacement characters")
        return data.decode(encoding, errors="replace")


def csv_header(path: Path) -> list[str]:
    """The column names of a delimited file (first row), without a BOM or spaces."""
    head = read_text(path, limit=200_000)
    first = next(csv.reader(io.StringIO(head, newline=""), **csv_options(path)), [])
    return [c.strip().lstrip("\ufeff") for c in first]


def read_csv_rows(path: Path, report: IngestReport, delimiter: str = ",",
                  quoting: int = csv.QUOTE_MINIMAL) -> Iterator[Row]:
    """CSV rows with their line numbers; rows with non-UTF-8 bytes or a field longer than
    MAX_FIELD_CHARS are reported and skipped, and reading goes on."""
    text = read_text(path, report)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    try:
        names = reader.fieldnames
    except csv.Error as exc:
        report.fail(str(path), "line 1", None, f"malformed CSV header: {exc}")
        return
    if not names:
        report.fail(str(path), "line 1", None, "empty file: expected a CSV header row")
        return
    reader.fieldnames = [name.strip() for name in names]
    check_bytes = _BAD_BYTE.search(text) is not None  # only a file with a stray byte
    line = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            report.fail(str(path), f"line {line + 1}", None, f"malformed CSV: {exc}")
            if reader.line_num <= line:
                return  # no progress: nothing more can be read
            line = reader.line_num
            continue
        start, line = line + 1, reader.line_num
        problem = _row_problem(row, check_bytes)
        if problem is not None:
            report.fail(str(path), f"line {start}", *problem)
            continue
        yield f"line {start}", row


def _row_problem(row: dict[Any, Any], check_bytes: bool) -> tuple[str | None, str] | None:
    """(field, message) of what makes a CSV row unreadable, else None."""
    if None in row:
        return None, f"{len(row[None])} more values than the header has columns"
    for name, value in row.items():
        if isinstance(value, str) and len(value) > MAX_FIELD_CHARS:
            return str(name), (f"expected at most {MAX_FIELD_CHARS} characters in a field, "
                               f"got {len(value)}")
    bad = _has_bad_bytes(row) if check_bytes else None
    if bad is not None:
        return bad, "not valid UTF-8 (a stray non-UTF-8 byte)"
    return None


def _json_object(text: str) -> tuple[dict[str, Any] | None, str]:
    """One JSON object from a line's text, or (None, why not): size and nesting are
    checked before parsing."""
    if len(text) > MAX_FIELD_CHARS:
        return None, f"expected at most {MAX_FIELD_CHARS} characters on a line, got {len(text)}"
    if json_too_deep(text):
        return None, f"not accepted: JSON nested deeper than {MAX_JSON_DEPTH} levels"
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON: {exc.msg} at column {exc.colno}"
    except RecursionError:
        return None, f"not accepted: JSON nested deeper than {MAX_JSON_DEPTH} levels"
    if not isinstance(obj, dict):
        return None, f"expected a JSON object, got {type(obj).__name__}"
    return obj, ""


def _lines(path: Path, report: IngestReport) -> Iterator[tuple[int, bytes | str]]:
    """Numbered lines: bytes of a UTF-8 file (streamed), text of a UTF-16/32 one."""
    with path.open("rb") as fh:
        encoding = sniff_encoding(fh.read(4000))
    if encoding.startswith("utf-16") or encoding == "utf-32":
        yield from enumerate(read_text(path, report).splitlines(), start=1)
        return
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            yield number, raw[3:] if number == 1 and raw.startswith(codecs.BOM_UTF8) else raw


def read_jsonl_rows(path: Path, report: IngestReport) -> Iterator[Row]:
    """JSON-lines objects with their line numbers; bad lines are reported and skipped."""
    for number, raw in _lines(path, report):
        if not raw.strip():
            continue
        if isinstance(raw, bytes):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                report.fail(str(path), f"line {number}", None,
                            f"not valid UTF-8 (byte {raw[exc.start]:#04x} "
                            f"at column {exc.start + 1})")
                continue
        else:
            line = raw
        obj, why = _json_object(line)
        if obj is None:
            report.fail(str(path), f"line {number}", None, why)
            continue
        yield f"line {number}", obj


def read_json_array_rows(path: Path, report: IngestReport) -> Iterator[Row]:
    """Objects of a JSON array file, located by their index. The whole array is parsed at
    once when it can be; otherwise element by element, so a bad or too deeply nested
    record is reported and the ones after it are still read."""
    text = read_text(path, report)
    if _BAD_BYTE.search(text):
        where = _BAD_BYTE.search(text)
        report.fail(str(path), f"character {where.start() if where else 0}", None,
                    "not valid UTF-8 (a stray non-UTF-8 byte); the file was skipped")
        return
    try:
        data = None if json_too_deep(text) else json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        data = None
    if data is None:
        yield from _array_elements(path, text, report)
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


_SPACE = re.compile(r"\s*")


def _array_elements(path: Path, text: str, report: IngestReport) -> Iterator[Row]:
    """The slow, careful path of ``read_json_array_rows``: one element at a time."""
    pos = _SPACE.match(text).end()  # type: ignore[union-attr]
    if not text.startswith("[", pos):
        report.fail(str(path), "top level", None, "expected a JSON array of objects that "
                    "can be parsed (it is not valid JSON, or nested too deeply)")
        return
    pos, index = _SPACE.match(text, pos + 1).end(), 0  # type: ignore[union-attr]
    while pos < len(text) and text[pos] != "]":
        index += 1
        end = element_end(text, pos)
        if end is None:
            report.fail(str(path), f"record {index}", None,
                        "not valid JSON (unterminated); the rest of the file was skipped")
            return
        obj, why = _json_object(text[pos:end])
        if obj is None:
            report.fail(str(path), f"record {index}", None, why)
        else:
            yield f"record {index}", obj
        pos = _SPACE.match(text, end).end()  # type: ignore[union-attr]
        if text.startswith(",", pos):
            pos = _SPACE.match(text, pos + 1).end()  # type: ignore[union-attr]
        elif pos < len(text) and text[pos] != "]":
            report.fail(str(path), f"after record {index}", None,
                        "expected ',' or ']'; the rest of the file was skipped")
            return


_ELEMENT_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]|[,\]}]', re.DOTALL)


def element_end(text: str, pos: int) -> int | None:
    """Where the JSON value starting at ``pos`` ends (brackets matched, strings skipped);
    None when it never closes."""
    depth = 0
    for m in _ELEMENT_TOKENS.finditer(text, pos):
        token = m.group(0)
        if token[0] in "[{":
            depth += 1
        elif token[0] in "]}":
            if depth == 0:
                return m.start()
            depth -= 1
            if depth == 0:
                return m.end()
        elif token == "," and depth == 0:
            return m.start()
        elif token[0] == '"' and depth == 0:
            return m.end()
    return None


def read_rows(path: Path, report: IngestReport) -> Iterator[Row]:
    """Rows of a CSV (``.dat``: TAB-separated), JSONL or JSON-array file, chosen by extension
    (then by content)."""
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return read_csv_rows(path, report, **csv_options(path))
    if suffix in (".jsonl", ".ndjson"):
        return read_jsonl_rows(path, report)
    head = read_text(path, limit=4000).lstrip("\ufeff \t\r\n")
    if suffix == ".json" and head.startswith("["):
        return read_json_array_rows(path, report)
    return read_jsonl_rows(path, report)


def records_from_rows(rows: Iterator[Row], source_path: str, source: str,
                      mapper: Callable[[dict[str, Any]], dict[str, Any]] | None,
                      report: IngestReport) -> Iterator[ItemRecord]:
    """Map each row (importer-specific), then parse it; a bad row is reported and skipped."""
    for location, row in rows:
        notes: list[str] = []
        try:
            generic = mapper(row) if mapper else row
            record = record_from_row(generic, source, notes)
        except (TypeError, ValueError, AttributeError, RecursionError) as exc:
            if not isinstance(exc, FieldError):
                report.fail(source_path, location, None, f"cannot read this record: {exc}")
                continue
            field_name, _, message = str(exc).partition(": ")
            if not message:
                field_name, message = None, str(exc)
            ident = row.get("id") or row.get("title") or ""
            where = f"{location} (id {str(ident)[:80]!r})" if ident and field_name != "id" \
                else location
            report.fail(source_path, where, field_name, message)
            continue
        report_notes(report, source_path, location, notes)
        yield record


def report_notes(report: IngestReport, source: str, location: str, notes: list[str]) -> None:
    """Each 'field: message' note of a taken record, as a repair at its location."""
    for note in notes:
        field_name, _, message = note.partition(": ")
        report.repair(source, location, field_name or None, message or note)
