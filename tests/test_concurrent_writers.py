"""Several podrec processes writing one database at once, on a SQLite file and on
PostgreSQL: a new database opened by several at the same moment (migrations under a lock),
one file ingested by several at once (each record stored once, no traceback), and the one
retrying write every store write goes through."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, func, select
from sqlalchemy.exc import IntegrityError, OperationalError

from podrec.enrich.pipeline import Enricher
from podrec.records import ItemRecord
from podrec.storage import Store, StoreError, retry, schema

HERE = Path(__file__).parent
PROCESSES = 4


def _events_file(path: Path, n: int, tag: str) -> Path:
    """``n`` distinct events over 50 listeners (``tag`` makes files disjoint)."""
    with path.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({"user_id": f"u{i % 50}", "item_id": f"{tag}-{i}",
                                 "item_kind": "show", "event": "play",
                                 "timestamp": f"2026-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z",
                                 "value": 1.0}) + "\n")
    return path


def _catalog_file(path: Path, n: int) -> Path:
    with path.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": f"s{i}", "kind": "show", "title": f"Show number {i}",
                                 "author": f"Host {i}", "description": f"Talk about topic {i}.",
                                 "categories": ["Society & Culture"], "language": "en"}) + "\n")
    return path


def _run_together(tmp_path: Path, commands: list[list[str]]) -> list[subprocess.CompletedProcess]:
    """Start every command (podrec arguments) at the same moment; wait for all."""
    gate = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, str(HERE / "start_together.py"), str(gate), *cmd],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "COLUMNS": "200"}) for cmd in commands]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("go.*.ready"))) < len(procs):
        assert time.monotonic() < deadline, "the processes did not start"
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.01)
    gate.touch()
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return out


def _count(url: str, table: object) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar())
    finally:
        engine.dispose()


def _assert_clean(results: list[subprocess.CompletedProcess]) -> list[dict]:
    reports = []
    for r in results:
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr and "error" not in r.stderr.lower(), r.stderr
        reports.append(json.loads(r.stdout))
    return reports


def test_processes_opening_a_new_database_at_once_all_succeed(db_url, tmp_path):
    """Four `podrec ingest events` on a database nobody has opened yet: each creates the
    schema or waits for the one that does; every event of every file is stored."""
    files = [_events_file(tmp_path / f"e{n}.jsonl", 300, f"p{n}") for n in range(PROCESSES)]
    results = _run_together(tmp_path, [["ingest", "events", str(f), "--db", db_url, "--json"]
                                       for f in files])
    reports = _assert_clean(results)
    assert [r["added"] for r in reports] == [300] * PROCESSES
    assert _count(db_url, schema.events) == 300 * PROCESSES
    assert _count(db_url, schema.users) == 50
    Store(db_url).close()  # and it opens again, at head


def test_one_events_file_ingested_by_several_processes_at_once(db_url, tmp_path):
    """The same 3,000 events (six chunks) from three processes at once: every process
    exits cleanly, every event is stored once, and between them they added each once."""
    Store(db_url).close()  # an existing database: the writers meet on the rows
    events = _events_file(tmp_path / "events.jsonl", 3000, "same")
    results = _run_together(tmp_path, [["ingest", "events", str(events), "--db", db_url,
                                         "--json"]] * 3)
    reports = _assert_clean(results)
    assert sum(r["added"] for r in reports) == 3000
    assert _count(db_url, schema.events) == 3000
    assert _count(db_url, schema.users) == 50


def test_one_catalog_ingested_by_several_processes_at_once(db_url, tmp_path):
    """Items are planned from what was stored when the chunk began: a chunk another
    process stored meanwhile is planned again, so no item is stored twice or refused."""
    Store(db_url).close()
    catalog = _catalog_file(tmp_path / "catalog.jsonl", 3000)
    results = _run_together(tmp_path, [["ingest", "catalog", str(catalog), "--db", db_url,
                                        "--json"]] * 3)
    reports = _assert_clean(results)
    assert sum(r["added"] for r in reports) == 3000
    assert all(not r["problems"] for r in reports)
    assert _count(db_url, schema.items) == 3000


# -- the retrying write ----------------------------------------------------------------------

def _locked() -> OperationalError:
    return OperationalError("INSERT ...", {}, sqlite3.OperationalError("database is locked"))


def test_a_busy_database_is_tried_again_until_the_write_goes_in(sqlite_url, monkeypatch):
    monkeypatch.setattr(retry, "pause", lambda attempt: 0.0)
    store = Store(sqlite_url)
    calls = []

    def write(conn):
        calls.append(1)
        if len(calls) < 3:
            raise _locked()
        conn.execute(schema.users.insert().values(id="u1", created_at=datetime.now(UTC),
                                                  attrs={}))
        return "written"

    assert store._write(write, what="a listener") == "written" and len(calls) == 3
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.users)).scalar() == 1
    store.close()


def test_a_database_that_stays_busy_is_one_clear_error(sqlite_url, monkeypatch):
    monkeypatch.setattr(retry, "pause", lambda attempt: 0.0)
    store = Store(sqlite_url)
    calls = []

    def write(conn):
        calls.append(1)
        raise _locked()

    with pytest.raises(StoreError, match=r"stayed busy: a listener not written after 10 "
                                         r"attempts \(database is locked\)"):
        store._write(write, what="a listener")
    assert len(calls) == retry.ATTEMPTS
    with pytest.raises(IntegrityError):  # not transient, not a conflict it may plan again
        store._write(lambda conn: (_ for _ in ()).throw(
            IntegrityError("INSERT", {}, sqlite3.IntegrityError("NOT NULL constraint failed"))),
            on_conflict=lambda: None)
    store.close()


def test_a_write_stopped_by_a_real_lock_waits_and_goes_in(tmp_path, monkeypatch):
    """A second connection holds the write lock longer than SQLite's busy timeout: the
    store's write fails with "database is locked", waits and goes in once it is free."""
    db = tmp_path / "locked.db"
    store = Store(f"sqlite:///{db}")
    store.engine.dispose()
    store.engine = create_engine(f"sqlite:///{db}", connect_args={"timeout": 0.05})
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    failed = []
    event.listen(store.engine, "handle_error",
                 lambda ctx: failed.append(str(ctx.original_exception)))

    def release(attempt: int) -> float:
        if attempt == 1:
            holder.execute("COMMIT")
        return 0.0

    monkeypatch.setattr(retry, "pause", release)
    store.ensure_user("waiting listener")
    holder.close()
    assert failed and all("database is locked" in f for f in failed)
    assert store.user_exists("waiting listener")
    store.close()


def test_enrich_stopped_while_storing_tags_leaves_no_vector_without_tags(sqlite_url, wordllama):
    """The second write's tags fail as a kill would stop it: that write's vectors are not
    kept either, and the next run embeds and tags exactly what is left (a write per batch
    here: ``write_items`` 3)."""
    store = Store(sqlite_url)
    store.upsert_items([ItemRecord(id=f"s{i}", title=f"History of Rome part {i}",
                                   categories=["History"], description="Emperors and wars.",
                                   language="en") for i in range(6)])
    inserts = []

    def fail_second_tag_write(conn, cursor, statement, *args):
        if statement.startswith("INSERT INTO tags"):
            inserts.append(1)
            if len(inserts) == 2:
                raise RuntimeError("killed while storing tags")

    event.listen(store.engine, "before_cursor_execute", fail_second_tag_write)
    with pytest.raises(RuntimeError, match="killed"):
        Enricher(store, wordllama, batch_size=3, write_items=3).run()
    event.remove(store.engine, "before_cursor_execute", fail_second_tag_write)
    embedded = set(store.embedding_hashes(wordllama.model_id))
    assert len(embedded) == 3 and embedded <= store.tagged_items("category")
    again = Enricher(store, wordllama, batch_size=3, write_items=3).run()
    assert (again.unchanged, again.tagged) == (3, 3)
    pks = {i.pk for i in store.iter_items()}
    assert set(store.embedding_hashes(wordllama.model_id)) == pks
    assert store.tagged_items("category") == pks
    store.close()


def test_a_vector_stored_without_its_tags_is_tagged_on_the_next_run(sqlite_url, wordllama):
    """A database enriched by a version that stored vectors and tags apart may hold a
    vector without tags: the next run tags that item, reusing the stored vector."""
    store = Store(sqlite_url)
    store.upsert_items([ItemRecord(id="a", title="Cooking at home", categories=["Food"],
                                   description="Recipes for every day.", language="en")])
    first = Enricher(store, wordllama).run()
    assert first.embedded == 1
    pk = next(store.iter_items()).pk
    store.replace_tags({pk: []}, ["category", "taxonomy", "keyphrase"])  # tags lost
    again = Enricher(store, wordllama).run()
    assert (again.embedded, again.reused, again.tagged) == (0, 1, 1)
    assert {t["tag"] for t in store.tags_for([pk])[pk] if t["source"] == "category"} == {"Food"}
    assert Enricher(store, wordllama).run().unchanged == 1  # and then it is done
    assert len(store.embedding_hashes(wordllama.model_id)) == 1
    store.close()
