"""Crashes: a real `podrec` process killed with SIGKILL in the middle of ingest, enrich and
train, on a SQLite file and on PostgreSQL, then the same command run again.

Each process is stopped at a point chosen by watching it (rows committed, a progress line
printed), never after a blind sleep. Then: the database opens and is consistent, nothing
the process had committed or reported done is lost, and the second run finishes the work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import FIXTURES
from sqlalchemy import create_engine, func, select, text

from podrec.config import load_config
from podrec.records import ItemRecord
from podrec.service import Podrec
from podrec.storage import Store, bulk, schema

ENV = {**os.environ, "PODREC_EMBEDDER": "wordllama", "PODREC_EMBED_BATCH": "8",
       "COLUMNS": "200"}
ML = FIXTURES / "movielens_40users"


def _podrec(db: str, *args: str, stderr: int = subprocess.PIPE) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "podrec.cli", *args, "--db", db],
                            stdout=subprocess.PIPE, stderr=stderr, text=True, env=ENV)


def _run(db: str, *args: str) -> dict | list:
    """The command run to the end: it must exit 0 and print its JSON report."""
    out = subprocess.run([sys.executable, "-m", "podrec.cli", *args, "--db", db, "--json"],
                         capture_output=True, text=True, env=ENV, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    return json.loads(out.stdout)


def _kill_when(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float = 300) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` says so; it must still have been running."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"the process ended ({proc.returncode}) before it could be stopped "
                        f"mid-way: {proc.communicate()[1][-2000:]}")
        assert time.monotonic() < deadline, "no progress to stop the process at"
        time.sleep(0.02)
    proc.kill()
    proc.communicate(timeout=60)
    assert proc.returncode == -9, "the process finished before the kill reached it"


class _Db:
    """Read-only looks at the database from outside the killed process."""

    def __init__(self, url: str) -> None:
        self.url, self.engine = url, create_engine(url)

    def scalar(self, query: object) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)

    def column(self, query: object) -> list:
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def count(self, table: object) -> int:
        return self.scalar(select(func.count()).select_from(table))

    def check(self) -> None:
        """The database opens (migrated, at head) and, on SQLite, its pages are sound."""
        Store(self.url).close()
        if self.engine.dialect.name == "sqlite":
            with self.engine.connect() as conn:
                assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"

    def close(self) -> None:
        self.engine.dispose()


@pytest.fixture
def db(db_url):
    look = _Db(db_url)
    yield look
    look.close()


# -- ingest --------------------------------------------------------------------------------

N_ITEMS = 20_000
N_EVENTS = 40_000  # four of SQLite's bulk transactions; PostgreSQL's hold 50,000 each


def test_ingest_catalog_killed_mid_file(db, tmp_path):
    path = tmp_path / "catalog.jsonl"
    with path.open("w") as fh:
        for i in range(N_ITEMS):
            fh.write(json.dumps({"id": f"s{i}", "kind": "show", "title": f"Show {i}",
                                 "author": f"Host {i}", "description": f"About topic {i}.",
                                 "language": "en", "categories": ["News"]}) + "\n")
    Store(db.url).close()
    seen: set[str] = set()

    def committed() -> bool:  # two chunks in: remember what the process had committed
        if db.count(schema.items) < 1000:
            return False
        seen.update(db.column(select(schema.items.c.id)))
        return True

    _kill_when(_podrec(db.url, "ingest", "catalog", str(path)), committed)
    db.check()
    kept = set(db.column(select(schema.items.c.id)))
    assert seen <= kept and len(kept) < N_ITEMS
    report = _run(db.url, "ingest", "catalog", str(path))
    assert report["added"] == N_ITEMS - len(kept) and report["skipped"] == len(kept)
    assert db.count(schema.items) == N_ITEMS
    assert db.scalar(select(func.count(func.distinct(schema.items.c.id)))) == N_ITEMS


def test_ingest_events_killed_mid_file(db, tmp_path):
    n = N_EVENTS if db.engine.dialect.name == "sqlite" else 2 * bulk.PG_CHUNK + N_EVENTS
    path = tmp_path / "events.jsonl"
    with path.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({"user_id": f"u{i % 300}", "item_id": f"s{i % 977}",
                                 "item_kind": "show", "event": "play", "value": float(i),
                                 "timestamp": "2026-01-02T03:04:05Z"}) + "\n")
    Store(db.url).close()
    seen: set[str] = set()

    def committed() -> bool:
        if db.count(schema.events) < 1000:
            return False
        seen.update(db.column(select(schema.events.c.dedupe_key)))
        return True

    _kill_when(_podrec(db.url, "ingest", "events", str(path)), committed)
    db.check()
    kept = set(db.column(select(schema.events.c.dedupe_key)))
    assert seen <= kept and len(kept) < n
    report = _run(db.url, "ingest", "events", str(path))
    assert report["added"] == n - len(kept) and report["skipped"] == len(kept)
    assert db.count(schema.events) == n
    assert db.count(schema.users) == 300


# -- enrich --------------------------------------------------------------------------------

N_ENRICH = 1200
TOPICS = ["gardening", "football", "chess", "jazz", "astronomy", "cooking", "startups",
          "history", "poetry", "running", "knitting", "sailing"]


def _vectors(db: _Db) -> dict[int, bytes]:
    e = schema.embeddings
    with db.engine.connect() as conn:
        return dict(conn.execute(select(e.c.item_pk, e.c.vector)).all())


def test_enrich_killed_mid_catalog(db):
    store = Store(db.url)
    store.upsert_items([ItemRecord(
        id=f"s{i}", title=f"The {TOPICS[i % 12]} hour {i}", language="en",
        categories=[TOPICS[(i // 12) % 12].title()],
        description=f"Weekly talk about {TOPICS[i % 12]} and {TOPICS[(i * 7) % 12]}, "
                    f"with guests, news and listener questions, episode {i}.")
        for i in range(N_ENRICH)])
    store.close()
    done: dict[int, bytes] = {}

    def committed() -> bool:  # a few batches in
        if db.count(schema.embeddings) < 40:
            return False
        done.update(_vectors(db))
        return True

    _kill_when(_podrec(db.url, "enrich"), committed)
    db.check()
    vectors = _vectors(db)
    tagged = set(db.column(select(schema.tags.c.item_pk).where(
        schema.tags.c.source == "category").distinct()))
    assert len(vectors) < N_ENRICH
    assert set(vectors) <= tagged  # no item has a vector without its tags
    assert all(vectors[pk] == vec for pk, vec in done.items())
    report = _run(db.url, "enrich")
    assert report["unchanged"] == len(vectors)  # what was stored is not done again
    assert report["embedded"] + report["reused"] == N_ENRICH - len(vectors)
    after = _vectors(db)
    assert len(after) == N_ENRICH and all(after[pk] == vec for pk, vec in done.items())
    pks = set(db.column(select(schema.items.c.pk)))
    assert set(db.column(select(schema.tags.c.item_pk).where(
        schema.tags.c.source == "category").distinct())) == pks


# -- train ---------------------------------------------------------------------------------

# Four quick parts: the choosing still takes seconds, the test does not take minutes.
TRAIN_TOML = """
[tagger]
keyphrases = 0
[train]
parts = ["pop", "pop-recent", "itemknn", "bpr"]
[llm]
reasons = false
summaries = false
"""


def _app(url: str, config: Path, wordllama) -> Podrec:
    return Podrec(load_config(config), database_url=url, embedder=wordllama)


def test_train_killed_mid_training(db, wordllama, tmp_path):
    """A trained version exists (reported saved); a second training is killed while it
    chooses its parts: the first version is still there and served, no half-written
    version appears, and training again saves a new version that loads."""
    config = tmp_path / "podrec.toml"
    config.write_text(TRAIN_TOML)
    app = _app(db.url, config, wordllama)
    app.ingest_catalog(ML / "movies.csv")
    app.ingest_events(ML / "ratings.csv")
    app.enrich()
    first = app.train("show").version
    app.close()

    proc = _podrec(db.url, "train", "--config", str(config))
    lines: list[str] = []

    def choosing() -> bool:  # the training has read its data and is choosing parts
        line = proc.stderr.readline()
        lines.append(line)
        return line.startswith("validation:")

    _kill_when(proc, choosing)
    assert not any(line.startswith("saved") for line in lines)
    db.check()
    prefix = "model/show/"
    names = db.column(select(schema.artifacts.c.name).where(
        schema.artifacts.c.name.startswith(prefix)))
    assert names == [prefix + first]
    app = _app(db.url, config, wordllama)
    assert app.served_model("show")["version"] == first
    app.close()

    report = _run(db.url, "train", "--kind", "show", "--config", str(config))[0]
    assert report["version"] > first and report["model"] == "hybrid"
    app = _app(db.url, config, wordllama)
    served = app.served_model("show")
    assert served["version"] == report["version"] and not served["fallback"]
    assert app.recommend(user_id=next(iter(app.store.list_users())), k=5)
    app.close()
