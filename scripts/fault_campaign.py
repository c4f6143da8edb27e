"""Kill `podrec` again and again: each command is SIGKILLed at rising points of its progress
until a run finishes, on a SQLite file and on a new PostgreSQL database; after every kill
the database must open, hold everything the killed run had committed, unchanged, and hold
no vector without its tags. Prints one line per command and database, and the totals.

    python scripts/fault_campaign.py [--kills 6] [--pg postgresql+psycopg://postgres@127.0.0.1/test]

tests/test_faults.py runs one kill of each command in the suite; this runs many.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine, select, text

from podrec.records import ItemRecord
from podrec.storage import Store, bulk, schema

ENV = {**os.environ, "PODREC_EMBEDDER": "wordllama", "PODREC_EMBED_BATCH": "8"}
TOPICS = ["gardening", "football", "chess", "jazz", "astronomy", "cooking", "startups",
          "history", "poetry", "running", "knitting", "sailing"]


def cli(db: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "podrec.cli", *args, "--db", db],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=ENV)


def rows(engine, query) -> dict:
    with engine.connect() as conn:
        return dict(conn.execute(query).all())


def campaign(db: str, args: list[str], snapshot: Callable[[], dict], step: int, kills: int,
             check: Callable[[], None]) -> dict:
    """Kill ``podrec args`` each time ``step`` more rows are committed, ``kills`` times at
    most, then let it finish. Every snapshot taken before a kill must survive unchanged."""
    killed, lost, done_before = 0, 0, {}
    while True:
        proc = cli(db, *args)
        target = len(done_before) + step
        seen: dict = {}
        while proc.poll() is None and killed < kills:
            seen = snapshot()
            if len(seen) >= target:
                proc.kill()
                break
            time.sleep(0.02)
        proc.wait()
        after = snapshot()
        lost += sum(1 for k, v in {**done_before, **seen}.items() if after.get(k) != v)
        check()
        if proc.returncode == 0:
            return {"kills": killed, "rows": len(after), "lost": lost}
        if proc.returncode != -9:
            raise SystemExit(f"{args[0]} failed: {proc.stderr.read()[-2000:]}")
        killed += 1
        done_before = after


def run(db: str, tmp: Path, kills: int) -> list[tuple[str, dict]]:
    engine = create_engine(db)
    Store(db).close()
    out = []
    sqlite = engine.dialect.name == "sqlite"

    def check() -> None:
        Store(db).close()
        with engine.connect() as conn:
            if sqlite:
                assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
            vec = set(conn.execute(select(schema.embeddings.c.item_pk)).scalars())
            tagged = set(conn.execute(select(schema.tags.c.item_pk).where(
                schema.tags.c.source == "category")).scalars())
            assert vec <= tagged, "a vector without its tags"

    n_items = 20_000
    catalog = tmp / "catalog.jsonl"
    with catalog.open("w") as fh:
        for i in range(n_items):
            fh.write(json.dumps({"id": f"s{i}", "kind": "show", "title": f"Show {i}",
                                 "author": f"Host {i}", "description": f"About topic {i}.",
                                 "language": "en", "categories": ["News"]}) + "\n")
    items = schema.items
    res = campaign(db, ["ingest", "catalog", str(catalog)],
                   lambda: rows(engine, select(items.c.id, items.c.content_hash)),
                   n_items // (kills + 1), kills, check)
    assert res["rows"] == n_items
    out.append((f"ingest catalog ({n_items:,} shows)", res))

    n_events = 40_000 if sqlite else 4 * bulk.PG_CHUNK
    events = tmp / "events.jsonl"
    with events.open("w") as fh:
        for i in range(n_events):
            fh.write(json.dumps({"user_id": f"u{i % 300}", "item_id": f"s{i % 977}",
                                 "item_kind": "show", "event": "play", "value": float(i),
                                 "timestamp": "2026-01-02T03:04:05Z"}) + "\n")
    ev = schema.events
    step = bulk.SQLITE_CHUNK if sqlite else bulk.PG_CHUNK
    res = campaign(db, ["ingest", "events", str(events)],
                   lambda: rows(engine, select(ev.c.dedupe_key, ev.c.pk)), step, kills, check)
    assert res["rows"] == n_events
    out.append((f"ingest events ({n_events:,})", res))

    store = Store(db)
    with engine.begin() as conn:
        conn.execute(items.delete())
    n_enrich = 1200
    store.upsert_items([ItemRecord(
        id=f"e{i}", title=f"The {TOPICS[i % 12]} hour {i}", language="en",
        categories=[TOPICS[(i // 12) % 12].title()],
        description=f"Weekly talk about {TOPICS[i % 12]} and {TOPICS[(i * 7) % 12]}.")
        for i in range(n_enrich)])
    store.close()
    emb = schema.embeddings
    res = campaign(db, ["enrich"], lambda: rows(engine, select(emb.c.item_pk, emb.c.vector)),
                   n_enrich // (kills + 1), kills, check)
    assert res["rows"] == n_enrich
    out.append((f"enrich ({n_enrich:,} items)", res))
    engine.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=6, help="kills per command at most")
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    opts = parser.parse_args()
    admin = create_engine(opts.pg, isolation_level="AUTOCOMMIT")
    name = f"podrec_faults_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    totals = {"kills": 0, "lost": 0}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for label, url in (("SQLite", f"sqlite:///{tmp}/faults.db"),
                               ("PostgreSQL", opts.pg.rsplit("/", 1)[0] + f"/{name}")):
                t0 = time.perf_counter()
                for what, res in run(url, Path(tmp), opts.kills):
                    print(f"{label:10s} {what:28s} killed {res['kills']} times, "
                          f"then finished: {res['rows']:,} rows, lost {res['lost']}")
                    totals["kills"] += res["kills"]
                    totals["lost"] += res["lost"]
                print(f"{label:10s} {time.perf_counter() - t0:.0f} s")
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    print(f"total: {totals['kills']} SIGKILLs, {totals['lost']} committed rows lost or changed")


if __name__ == "__main__":
    main()
