"""Property-based fuzzing of every reader: whatever bytes or values come in, a reader yields
records or reports problems and never raises; what it yields can be stored and read back as
strict JSON. Examples are bounded so the suite stays fast."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podrec.ingest.catalog import read_rows, records_from_rows
from podrec.ingest.events import read_events
from podrec.ingest.feeds import parse_feed, parse_opml
from podrec.ingest.normalize import FieldError, parse_datetime, parse_duration, parse_float
from podrec.records import IngestReport

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                    st.text(max_size=30), st.sampled_from(["NaN", "Infinity", "1e400", "\x00",
                                                           "9999-12-31T23:59:59-01:00"]))
json_values = st.recursive(scalars, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=8), kids, max_size=4)),
    max_leaves=12)
FIELDS = ["id", "title", "kind", "show_id", "duration_s", "published", "popularity",
          "explicit", "categories", "extra", "user_id", "item_id", "event", "timestamp",
          "value", "context", "platform", "device", "text"]
records = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=10)


_FOLDER = tempfile.TemporaryDirectory(prefix="podrec-fuzz-")  # removed at exit


def _write(suffix: str, data: bytes) -> Path:
    """The example's bytes in the one scratch file per suffix (examples run one by one)."""
    path = Path(_FOLDER.name) / f"input{suffix}"
    path.write_bytes(data)
    return path


def _strict_json(records: list) -> None:
    for rec in records:
        json.dumps(getattr(rec, "extra", None) or getattr(rec, "context", None),
                   allow_nan=False)
        for name in ("popularity", "value"):
            value = getattr(rec, name, None)
            assert value is None or math.isfinite(value)


@FUZZ
@given(st.lists(records, max_size=8))
def test_jsonl_catalog_and_events_from_any_objects(rows):
    text = "\n".join(json.dumps(r, default=str) for r in rows)
    path = _write(".jsonl", text.encode("utf-8", "surrogatepass"))
    report = IngestReport()
    items = list(records_from_rows(read_rows(path, report), str(path), "generic", None,
                                   report))
    assert len(items) + report.failed == len(rows)
    _strict_json(items)
    report = IngestReport()
    events = list(read_events(path, report))
    assert len(events) + report.failed == len(rows)
    _strict_json(events)


@FUZZ
@given(st.binary(max_size=400), st.sampled_from([".csv", ".jsonl", ".json", ".tsv"]))
def test_row_readers_take_any_bytes(data, suffix):
    path = _write(suffix, data)
    report = IngestReport()
    items = list(records_from_rows(read_rows(path, report), str(path), "generic", None,
                                   report))
    _strict_json(items)


@FUZZ
@given(st.lists(st.lists(st.text(max_size=12), min_size=1, max_size=5), max_size=6))
def test_csv_with_any_cells(cells):
    lines = ["id,title,duration_s,published,popularity"]
    lines += [",".join('"' + c.replace('"', '""') + '"' for c in row) for row in cells]
    path = _write(".csv", "\n".join(lines).encode("utf-8", "surrogatepass"))
    report = IngestReport()
    items = list(records_from_rows(read_rows(path, report), str(path), "generic", None,
                                   report))
    _strict_json(items)


FEED_PARTS = st.lists(st.sampled_from([
    "<rss>", "</rss>", "<channel>", "</channel>", "<item>", "</item>", "<title>T</title>",
    "<title>", "<guid>g</guid>", "<itunes:duration>1:00</itunes:duration>",
    "<enclosure url='/a b.mp3'/>", "<pubDate>32 Foo 2024</pubDate>", "&nbsp;", "&amp;",
    "<![CDATA[x]]>", "<description>d</description>", "<feed xmlns='http://www.w3.org/2005/Atom'>",
    "<entry><title>e</title></entry>", "</feed>", "\x00", "\u00e9", "<?xml version='1.0'?>"]),
    max_size=25)


@FUZZ
@given(FEED_PARTS, st.sampled_from(["utf-8", "latin-1", "utf-16"]))
def test_feed_reader_takes_any_feed_like_document(parts, encoding):
    data = "".join(parts).encode(encoding, "replace")
    report = IngestReport()
    records = list(parse_feed(data, "fuzz.xml", report))
    assert all(r.title and r.id for r in records)
    assert all(len(r.id) <= 512 for r in records)


@FUZZ
@given(st.binary(max_size=300))
def test_feed_and_opml_readers_take_any_bytes(data):
    list(parse_feed(data, "fuzz.xml", IngestReport()))
    for sub in parse_opml(data, "fuzz.opml", IngestReport()):
        assert isinstance(sub.url, str)


@FUZZ
@given(scalars)
def test_normalisers_answer_or_say_what_was_expected(value):
    for parse in (parse_duration, parse_datetime, parse_float):
        try:
            out = parse(value)
        except FieldError as exc:
            assert "expected" in str(exc) or "out of range" in str(exc)
            continue
        if isinstance(out, float):
            assert math.isfinite(out)
        if parse is parse_duration and out is not None:
            assert 0 <= out <= 2**31 - 1
