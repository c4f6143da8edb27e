"""Bulk event import (storage/bulk.py) against the 500-a-transaction path, on a SQLite file and
on PostgreSQL: the same file gives the same stored rows, in the same order, the same counts
and the same reported problems, whatever the chunk size."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from podrec.ingest.pipeline import ingest_events
from podrec.records import EventRecord
from podrec.storage import Store, bulk, schema


def _line(user: str, item: str | None = "e1", event: str = "play", **fields: Any) -> str:
    row = {"user_id": user, "item_id": item, "event": event,
           "timestamp": "2024-03-01T10:00:00+02:00"} | fields
    return json.dumps(row)


def _events_file(tmp_path: Path) -> Path:
    lines = []
    for i in range(40):
        lines.append(_line(f"u{i % 7}", f"e{i % 11}", "play", value=round(i / 40, 3),
                           timestamp=1_700_000_000 + i * 3600,
                           context={"minutes": i, "nested": {"a": [1, 2]}}))
    lines += [
        _line("u1", "e1", "like", timestamp=1_700_000_000),
        _line("u1", "e1", "like", timestamp=1_700_000_000),  # the same event twice
        _line("u2", None, "search", text="birds at night", platform="web", device="phone"),
        _line("", "e1"),  # line 44: no user
        _line("u3", "e2", "jump"),  # line 45: unknown event
        '{"user_id": "u4", "item_id": "e3", "event": "play", "timestamp": 1, '
        '"value": Infinity}',  # line 46
        _line("u5", "e4", "rate", value=4.5, item_kind="show", text="good\u0000 show"),
        _line("u-long", "e5", "play", platform="p" * 65),  # line 48: too long
        _line("u0", "e0", "play", value=0.0, timestamp=1_700_000_000),  # = line 1
        _line("\u00fcber", "e6", "complete", timestamp="2023-12-31T23:59:59Z"),
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _rows(store: Store) -> tuple[list[tuple[Any, ...]], list[str]]:
    ev, us = schema.events, schema.users
    with store.engine.connect() as conn:
        events = [(r.user_id, r.item_kind, r.item_id, r.event, r.value, r.text,
                   r.timestamp.replace(tzinfo=UTC) if r.timestamp.tzinfo is None
                   else r.timestamp.astimezone(UTC), r.platform, r.device,
                   json.dumps(r.context, sort_keys=True), r.dedupe_key)
                  for r in conn.execute(select(ev).order_by(ev.c.pk))]
        users = sorted(conn.execute(select(us.c.id)).scalars())
    return events, users


def _report(report: Any) -> tuple[Any, ...]:
    return (report.added, report.unchanged, report.failed,
            [(p.location, p.field, p.message) for p in report.problems],
            [(r.location, r.field, r.message) for r in report.repairs])


@pytest.mark.parametrize("chunk", [3, 10_000])
def test_bulk_import_stores_what_the_old_path_stores(db_url, tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(bulk, "PG_CHUNK", chunk)
    monkeypatch.setattr(bulk, "SQLITE_CHUNK", chunk)
    path = _events_file(tmp_path)
    old_url = db_url
    if db_url.startswith("sqlite"):
        new_url = f"sqlite:///{tmp_path / 'bulk.db'}"
    else:  # a second database on the same server, made by the fixture's admin connection
        new_url = db_url + "_bulk"
        _create_pg(new_url)
    old, new = Store(old_url), Store(new_url)
    try:
        old.ensure_user("u3")  # a listener stored before the import
        new.ensure_user("u3")
        before = old.add_events([EventRecord(user_id="u1", event="like", item_id="e1",
                                             timestamp=datetime.fromtimestamp(1_700_000_000,
                                                                              UTC))])
        new.add_events([EventRecord(user_id="u1", event="like", item_id="e1",
                                    timestamp=datetime.fromtimestamp(1_700_000_000, UTC))])
        assert before.added == 1
        slow = ingest_events(old, path, bulk=False)

        def small_chunks(*_args: Any) -> None:
            raise AssertionError("the bulk path fell back to small chunks")

        monkeypatch.setattr(new, "_write_events", small_chunks)  # nothing here is refused
        fast = ingest_events(new, path, bulk=True)
        assert _report(fast) == _report(slow)
        assert (fast.added, fast.unchanged, fast.failed) == (43, 3, 4)
        assert [p.location for p in fast.problems] == ["line 44", "line 45", "line 46",
                                                       "line 48"]
        assert [p.field for p in fast.problems] == ["user_id", "event", "value", "platform"]
        assert _rows(new) == _rows(old)
        events, users = _rows(new)
        assert len(events) == 44 and "\u00fcber" in users and "u-long" not in users
        assert [e.text for e in new.user_events("u5") if e.event == "rate"] == ["good show"]
        assert new.user_events("u0")[1].context == {"minutes": 7, "nested": {"a": [1, 2]}}
        again = ingest_events(new, path)  # idempotent
        assert (again.added, again.unchanged, again.failed) == (0, 46, 4)
        assert _rows(new) == _rows(old)
    finally:
        old.close()
        new.close()
        if not db_url.startswith("sqlite"):
            _drop_pg(new_url)


def test_bulk_import_keeps_listener_ids_as_the_store_keeps_them(sqlite_url, tmp_path):
    """With privacy.id_key set, listener ids are stored as keyed hashes on either path."""
    path = _events_file(tmp_path)
    old = Store(sqlite_url, id_key="secret")
    new = Store(f"sqlite:///{tmp_path / 'bulk.db'}", id_key="secret")
    try:
        ingest_events(old, path, bulk=False)
        ingest_events(new, path)
        assert _rows(new) == _rows(old)
        assert "u1" not in _rows(new)[1]
        assert len(new.user_events("u1")) == len(old.user_events("u1")) > 0
    finally:
        old.close()
        new.close()


def test_a_chunk_postgres_refuses_is_written_record_by_record(postgres_url, monkeypatch):
    """Records that bypass the readers' checks: COPY refuses the chunk, and the chunk is
    written through the small-chunk path, so only those records are lost, each reported."""
    monkeypatch.setattr(bulk, "PG_CHUNK", 4)
    store = Store(postgres_url)
    try:
        now = datetime(2024, 1, 1, tzinfo=UTC)
        events = [EventRecord(user_id=f"u{i}", event="play", timestamp=now, item_id="x")
                  for i in range(10)]
        events[2].platform = "p" * 100
        events[7].text = "nul\x00"
        report = bulk.import_events(store, events)
        assert (report.added, report.failed) == (8, 2)
        assert all("refused by the database" in p.message for p in report.problems)
        assert set(store.list_users()) == {f"u{i}" for i in range(10)} - {"u2", "u7"}
        again = bulk.import_events(store, events)
        assert (again.added, again.unchanged, again.failed) == (0, 8, 2)
    finally:
        store.close()


def _admin() -> Any:
    from conftest import PG_ADMIN
    from sqlalchemy import create_engine

    return create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")


def _create_pg(url: str) -> None:
    from sqlalchemy import text

    engine = _admin()
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{url.rsplit("/", 1)[1]}"'))
    engine.dispose()


def _drop_pg(url: str) -> None:
    from sqlalchemy import text

    engine = _admin()
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    engine.dispose()
