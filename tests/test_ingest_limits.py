"""Record-level isolation, the same on SQLite and PostgreSQL: every value that once stopped an
ingest or was stored unreadable is reported with its place and skipped (or repaired and
noted), and the good records around it, in the same 500-record chunk, go in."""

from __future__ import annotations

import codecs
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from podrec.ingest.catalog import read_rows
from podrec.ingest.limits import MAX_FIELD_CHARS
from podrec.ingest.normalize import FieldError, parse_datetime, parse_duration, parse_float
from podrec.ingest.pipeline import ingest_catalog, ingest_events
from podrec.records import EventRecord, IngestReport, ItemRecord
from podrec.storage import Store

GOOD_ITEM = '{{"id": "good-{0}", "title": "Good show {0}", "duration_s": 60}}'
BAD_ITEMS = [  # (line, field or None, what the message says)
    ('{"id": "b1", "title": "x", "duration_s": Infinity}', "duration_s", "finite"),
    ('{"id": "b2", "title": "x", "duration_s": 1e400}', "duration_s", "finite"),
    (json.dumps({"id": "b3", "title": "x", "duration_s": 10**30}), "duration_s", "at most"),
    (json.dumps({"id": "b4", "title": "x", "duration_s": "1" * 23}), "duration_s", "at most"),
    (json.dumps({"id": "b5", "title": "x", "published": "9999-12-31T23:59:59-01:00"}),
     "published", "between years 1 and 9999"),
    (json.dumps({"id": "b6", "title": "x", "published": "0001-01-01T00:00:00+01:00"}),
     "published", "between years 1 and 9999"),
    ('{"id": "b7", "title": "x", "popularity": NaN}', "popularity", "finite"),
    (json.dumps({"id": "b" * 513, "title": "x"}), "id", "at most 512 characters"),
    (json.dumps({"id": "b9", "kind": "episode", "show_id": "s" * 600, "title": "x"}),
     "show_id", "at most 512"),
    ("[" * 1_000_000 + "]" * 1_000_000, None, "nested deeper than 64"),
    ('{"id": "b11", "title": "x", "extra": ' + "[" * 100 + "]" * 100 + "}", None,
     "nested deeper than 64"),
]


def _catalog(tmp_path: Path) -> Path:
    lines = [GOOD_ITEM.format(0)]
    for i, (bad, _, _) in enumerate(BAD_ITEMS, start=1):
        lines += [bad, GOOD_ITEM.format(i)]
    lines += [json.dumps({"id": "nul", "title": "NUL\u0000 in title", "author": "A\u0000"}),
              '{"id": "nan-extra", "title": "NaN in extra", "rating": NaN, '
              '"nested": {"ok": 1, "bad": -Infinity}}']
    path = tmp_path / "catalog.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_bad_catalog_records_are_skipped_and_their_neighbours_kept(db_url, tmp_path):
    store = Store(db_url)
    try:
        report = ingest_catalog(store, _catalog(tmp_path))
        goods = len(BAD_ITEMS) + 1
        assert (report.added, report.failed) == (goods + 2, len(BAD_ITEMS))
        for problem, (_, field, says) in zip(report.problems, BAD_ITEMS, strict=True):
            assert problem.location.startswith("line ") and problem.field == field
            assert says in problem.message
        assert [p.location for p in report.problems][:3] == ["line 2 (id 'b1')",
                                                             "line 4 (id 'b2')",
                                                             "line 6 (id 'b3')"]
        repaired = {(r.field, r.message) for r in report.repairs}
        assert ("title", "NUL characters removed") in repaired
        assert ("extra.rating", "non-finite number nan left out") in repaired
        assert ("extra.nested.bad", "non-finite number -inf left out") in repaired
        items = {i.id: i for i in store.iter_items()}
        assert all(f"good-{i}" in items for i in range(goods))
        assert items["nul"].title == "NUL in title" and items["nul"].author == "A"
        assert items["nan-extra"].extra == {"nested": {"ok": 1}}
        # everything stored reads back as strict JSON (catalog list --json)
        json.dumps([i.to_dict() for i in items.values()], allow_nan=False, default=str)
    finally:
        store.close()


def _event(user: str = "u", **fields: object) -> str:
    return json.dumps({"user_id": user, "item_id": "good-0", "event": "play",
                       "timestamp": "2024-01-01T00:00:00Z", **fields})


def test_bad_events_are_skipped_and_their_neighbours_kept(db_url, tmp_path):
    lines = [_event("ok-1"),
             '{"user_id": "nan", "item_id": "i", "event": "play", "timestamp": 1, '
             '"context": {"x": NaN}}',
             _event("u" * 257),
             _event("plat", platform="p" * 65),
             _event("dev", device="d" * 65),
             _event("late", timestamp="9999-12-31T23:59:59-01:00"),
             _event("early", timestamp="0001-01-01T00:00:00+01:00"),
             _event("secs", timestamp=253402300800),
             '{"user_id": "inf", "item_id": "i", "event": "play", "timestamp": 1, '
             '"value": Infinity}',
             _event("deep", context="[" * 5000 + "]" * 5000),
             _event("n\u0000ul", text="t\u0000"),
             _event("ok-2", timestamp=253402300799),
             _event("ok-3", timestamp=1_700_000_000_000)]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    store = Store(db_url)
    try:
        report = ingest_events(store, path)
        assert (report.added, report.failed) == (4, 9)
        fields = [p.field for p in report.problems]
        assert fields == ["context.x", "user_id", "platform", "device", "timestamp",
                          "timestamp", "timestamp", "value", "context"]
        assert "out of range" in report.problems[6].message
        assert {r.field for r in report.repairs} == {"user_id", "text"}
        assert set(store.list_users()) == {"ok-1", "nul", "ok-2", "ok-3"}
        ok2 = store.user_events("ok-2")[0]
        assert ok2.timestamp == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
        assert store.user_events("ok-3")[0].timestamp.year == 2023
        json.dumps(store.export_user("nul"), allow_nan=False)  # users export
    finally:
        store.close()


def test_the_store_keeps_a_chunk_the_database_refuses_one_record_of(postgres_url):
    """Records that bypass the readers' checks: PostgreSQL refuses them; the store writes
    the chunk record by record, so only those are lost, each reported."""
    store = Store(postgres_url)
    try:
        now = datetime(2024, 1, 1, tzinfo=UTC)
        events = [EventRecord(user_id=f"u{i}", event="play", timestamp=now, item_id="x")
                  for i in range(6)]
        events[2].platform = "p" * 100
        events[4].text = "nul\x00"
        report = store.add_events(events)
        assert (report.added, report.failed) == (4, 2)
        assert all("refused by the database" in p.message for p in report.problems)
        assert set(store.list_users()) == {"u0", "u1", "u3", "u5"}
        items = [ItemRecord(id=f"i{i}", title=f"T{i}") for i in range(5)]
        items[1].title = "bad\x00"
        items[3].extra = {"x": float("nan")}
        out = store.upsert_items(items)
        assert (out.added, out.failed) == (3, 2)
        assert {i.id for i in store.iter_items()} == {"i0", "i2", "i4"}
        again = store.add_events(events)  # re-sent: the stored ones are unchanged
        assert (again.added, again.unchanged, again.failed) == (0, 4, 2)
    finally:
        store.close()


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be"])
def test_bom_and_utf16_files_are_read(tmp_path, encoding):
    text = "id,title\n1,Caf\u00e9\n2,\u5b66\u4e60\n"
    csv_path = tmp_path / "c.csv"
    csv_path.write_bytes(text.encode(encoding))
    report = IngestReport()
    rows = [row for _, row in read_rows(csv_path, report)]
    assert [r["title"] for r in rows] == ["Caf\u00e9", "\u5b66\u4e60"] and not report.problems
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_bytes('{"id": "1", "title": "Caf\u00e9"}\n'.encode(encoding))
    assert [row["title"] for _, row in read_rows(jsonl, report)] == ["Caf\u00e9"]
    assert not report.problems


def test_invalid_utf8_is_reported_not_stored_as_mojibake(tmp_path):
    path = tmp_path / "c.csv"
    path.write_bytes(b"id,title\n1,ok\n2,caf\xe9\n3,fine\n")
    report = IngestReport()
    rows = [row["id"] for _, row in read_rows(path, report)]
    assert rows == ["1", "3"]
    assert (report.problems[0].location, report.problems[0].field) == ("line 3", "title")
    assert "not valid UTF-8" in report.problems[0].message
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_bytes(codecs.BOM_UTF8 + b'{"id": "1"}\n{"id": "caf\xe9"}\n{"id": "3"}\n')
    report = IngestReport()
    assert [row["id"] for _, row in read_rows(jsonl, report)] == ["1", "3"]
    assert report.problems[0].location == "line 2"


def test_long_csv_fields_are_read_and_over_long_ones_reported(tmp_path):
    path = tmp_path / "c.csv"
    big, huge = "x" * 200_000, "y" * (MAX_FIELD_CHARS + 1)
    path.write_text(f'id,title,description\n1,a,"{big}"\n2,b,"{huge}"\n3,c,d\n')
    report = IngestReport()
    rows = {row["id"]: row for _, row in read_rows(path, report)}
    assert set(rows) == {"1", "3"} and len(rows["1"]["description"]) == 200_000
    assert (report.problems[0].location, report.problems[0].field) == ("line 3", "description")
    assert f"at most {MAX_FIELD_CHARS} characters" in report.problems[0].message


def test_a_json_array_with_a_bad_record_keeps_the_others(tmp_path):
    path = tmp_path / "c.json"
    deep = "[" * 200_000 + "]" * 200_000
    path.write_text(f'[{{"id": "1", "title": "a"}}, {deep}, {{"id": "2", "title": "b ]"}},'
                    ' {"id": 3, "title": tru}, 7, {"id": "4", "title": "d"}]')
    report = IngestReport()
    rows = [(loc, row["id"]) for loc, row in read_rows(path, report)]
    assert rows == [("record 1", "1"), ("record 3", "2"), ("record 6", "4")]
    assert [p.location for p in report.problems] == ["record 2", "record 4", "record 5"]
    assert "nested deeper than 64" in report.problems[0].message


@pytest.mark.parametrize(("value", "seconds"), [
    ("1:02:03", 3723), ("62:03", 3723), ("3723", 3723), ("1h 2m 3s", 3723), (3723.4, 3723),
    ("2147483647", 2**31 - 1), ("", None), (None, None)])
def test_durations(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["Infinity", "1e400", 10**30, "1" * 23, float("nan"), -1,
                                   "2147483648", "abc"])
def test_durations_refused(value):
    with pytest.raises(FieldError):
        parse_duration(value)


def test_unix_times_seconds_and_milliseconds():
    assert parse_datetime(253402300799) == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert parse_datetime(1_000_000_000_000) == datetime(2001, 9, 9, 1, 46, 40, tzinfo=UTC)
    assert parse_datetime("1700000000") == parse_datetime(1_700_000_000_000)
    # 12 digits are seconds (past year 9999 here), never milliseconds of 1978
    for bad in (253402300800, "253402300800", "999999999999", float("inf"), 10**30):
        with pytest.raises(FieldError, match="out of range|finite"):
            parse_datetime(bad)
    for bad in ("nan", "NaN", "Infinity"):
        with pytest.raises(FieldError):
            parse_float(bad)
