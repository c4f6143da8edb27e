"""Privacy: keyed-hash listener ids at every entry point, deleting every trace of a listener,
retention, and Laplace noise on published counts. Real SQLite files and PostgreSQL, the real
CLI and a real `podrec serve`."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pickle
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import create_engine, text

from podrec.config import Config, ConfigError, load_config
from podrec.model.collaborative import ALSModel, PopularityModel
from podrec.model.interactions import build_interactions
from podrec.privacy.forget import scrub_models
from podrec.privacy.ids import ListenerIds, StoredId
from podrec.privacy.noise import Releases, noisy_counts
from podrec.records import EventRecord
from podrec.service import Podrec
from podrec.storage import Store
from podrec.train.artifacts import artifact_prefix, save_model
from podrec.train.trainer import Trainer

KEY = "test-key-do-not-use-in-production"
PODREC = [sys.executable, "-m", "podrec.cli"]
NOW = datetime.now(UTC).replace(microsecond=0)


def hashed(raw: str, key: str = KEY) -> str:
    return hmac.new(key.encode(), raw.encode(), hashlib.sha256).hexdigest()


def ev(user: str, item: str, days_ago: float = 1.0, event: str = "play") -> EventRecord:
    return EventRecord(user_id=user, event=event, item_id=item, item_kind="show",
                       timestamp=NOW - timedelta(days=days_ago), value=1.0)


def config(**privacy: object) -> Config:
    c = Config()
    return replace(c, privacy=replace(c.privacy, **privacy),
                   llm=replace(c.llm, backend="none", reasons=False, summaries=False))


def stored_ids(url: str) -> dict[str, set[str]]:
    """Every listener or person id in the database, read with plain SQL."""
    engine = create_engine(url)
    with engine.connect() as conn:
        out = {"users": set(conn.execute(text("SELECT id FROM users")).scalars()),
               "persons": set(conn.execute(text(
                   "SELECT person_id FROM users WHERE person_id IS NOT NULL")).scalars()),
               "events": set(conn.execute(text("SELECT user_id FROM events")).scalars())}
    engine.dispose()
    return out


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("PODREC_", "PROMETHEUS_"))}
    return out | extra


def cli(*args: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([*PODREC, *args], capture_output=True, text=True, env=env(**extra),
                          timeout=300)


# -- keyed-hash ids ---------------------------------------------------------------------------
def test_ids_hash_once_and_only_with_a_key() -> None:
    ids = ListenerIds(KEY)
    once = ids.stored("alice")
    assert once == hashed("alice") and isinstance(once, StoredId)
    assert ids.stored(once) == once  # a stored id handed back is not hashed again
    assert ListenerIds("other").stored("alice") != once  # a new key: a new listener
    off = ListenerIds("")
    assert off.stored("alice") == "alice" and not off.enabled
    assert load_config(env={"PODREC_PRIVACY_ID_KEY": "k"}).privacy.id_key == "k"
    with pytest.raises(ConfigError, match="privacy.dp_epsilon: expected at least 0"):
        load_config(env={}, path=_toml("[privacy]\ndp_epsilon = -1\n"))


def _toml(body: str) -> Path:
    import tempfile

    f = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    f.write(body)
    f.close()
    return Path(f.name)


def test_every_store_entry_point_takes_raw_ids_and_stores_hashes(db_url: str) -> None:
    store = Store(db_url, id_key=KEY)
    store.add_events([ev("alice@example.com", "s1"), ev("alice@example.com", "s2"),
                      ev("bob", "s1")])
    store.ensure_user("carol")
    person = store.link_users(["alice@example.com", "alice-phone"], person_id="alice-person")
    raw = {"alice@example.com", "bob", "carol", "alice-phone", "alice-person"}
    found = stored_ids(db_url)
    assert found["users"] == {hashed(u) for u in raw - {"alice-person"}}
    assert found["persons"] == {hashed("alice-person")} and person == hashed("alice-person")
    assert found["events"] == {hashed("alice@example.com"), hashed("bob")}
    assert not raw & (found["users"] | found["persons"] | found["events"])

    # the raw id finds the listener everywhere; ids the store hands out work as they are
    assert [e.item_id for e in store.user_events("alice@example.com")] == ["s1", "s2"]
    assert store.user_exists("carol") and not store.user_exists(hashed("carol"))
    assert sorted(store.linked_accounts("alice-phone")) == sorted(
        [hashed("alice@example.com"), hashed("alice-phone")])
    assert store.listener_version("alice@example.com")[1] == 2
    for stored in store.list_users():
        assert store.user_exists(stored)
    assert len(store.user_events(store.list_users()[0], linked=False)) in (0, 1, 2)
    export = store.export_user("alice@example.com")
    assert export["user_id"] == hashed("alice@example.com") and export["pseudonymised"]
    assert len(export["events"]) == 2
    assert store.delete_user("alice@example.com") == 2
    assert not store.user_exists("alice@example.com")
    store.close()

    # a store without the key (or with another) does not find them: nothing maps back
    for other in ("", "another key"):
        store = Store(db_url, id_key=other)
        assert not store.user_exists("bob") and store.user_events("bob") == []
        store.close()


def test_event_files_and_the_cli_take_raw_ids(sqlite_url: str, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(
        {"user_id": u, "item_id": "s1", "event": "play", "timestamp": NOW.isoformat()})
        for u in ("file-listener", "file-listener-2")) + "\n")
    keyed = {"PODREC_PRIVACY_ID_KEY": KEY}
    out = cli("ingest", "events", str(events), "--db", sqlite_url, **keyed)
    assert out.returncode == 0, out.stderr
    assert stored_ids(sqlite_url)["users"] == {hashed("file-listener"),
                                               hashed("file-listener-2")}
    out = cli("users", "link", "file-listener", "file-listener-2", "--db", sqlite_url, **keyed)
    assert out.returncode == 0 and hashed("file-listener") in out.stdout.replace("\n", "")
    out = cli("users", "export", "file-listener", "--db", sqlite_url, **keyed)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["user_id"] == hashed("file-listener")
    out = cli("users", "delete", "file-listener", "--yes", "--db", sqlite_url, **keyed)
    assert out.returncode == 0 and "1 events" in out.stdout, out.stdout + out.stderr
    assert "1 linked accounts given a new person id" in out.stdout
    assert stored_ids(sqlite_url) == {"users": {hashed("file-listener-2")}, "persons": set(),
                                      "events": {hashed("file-listener-2")}}
    # without the key the raw id is simply unknown: one clear line, no traceback
    out = cli("users", "export", "file-listener-2", "--db", sqlite_url)
    assert out.returncode == 2 and "no listener with id 'file-listener-2'" in out.stderr
    assert "Traceback" not in out.stderr


def test_recommendations_for_a_raw_id_read_the_hashed_history(sample_app, tmp_path: Path
                                                              ) -> None:
    """The served list of a pseudonymised listener is built from their (hashed) events."""
    db = tmp_path / "copy.db"
    src = sqlite3.connect(sample_app.store.url.removeprefix("sqlite:///"))
    dst = sqlite3.connect(db)
    with dst:
        src.backup(dst)
    src.close()
    dst.close()
    app = Podrec(config(id_key=KEY), database_url=f"sqlite:///{db}",
                 embedder=sample_app.embedder)
    try:
        seed = app.list_items(kind="show", limit=1)[0]["id"]
        app.add_events([{"user_id": "raw-listener", "item_id": seed, "event": "subscribe",
                         "timestamp": NOW.isoformat()}])
        assert app.user_exists("raw-listener")
        assert hashed("raw-listener") in stored_ids(f"sqlite:///{db}")["events"]
        recs = app.recommend(user_id="raw-listener", k=5)
        assert recs and seed not in [r.id for r in recs]  # the history was found: seen item
        assert app.profile("raw-listener")["events"] == 1
    finally:
        app.close()


# -- deleting every trace -----------------------------------------------------------------------
def test_delete_renames_a_person_named_after_the_deleted_account(db_url: str) -> None:
    for key in ("", KEY):
        store = Store(db_url, id_key=key)
        store.link_users(["x", "y", "z"])  # person id: x's
        store.link_users(["p", "q"])  # person id: p's
        assert store.person_of("y") == store.ids.stored("x")
        gone = store.forget_user("x")
        assert gone["relinked"] == 2
        assert store.person_of("y") == store.person_of("z")
        assert store.person_of("y") == min(store.ids.stored("y"), store.ids.stored("z"))
        store.forget_user("p")  # one account left: no person at all
        assert store.person_of("q") is None
        ids = stored_ids(db_url)
        assert store.ids.stored("x") not in ids["users"] | ids["persons"]
        assert store.ids.stored("p") not in ids["users"] | ids["persons"]
        for u in ("y", "z", "q"):
            store.forget_user(u)
        store.close()


def test_texts_generated_for_a_listener_go_with_them(db_url: str) -> None:
    """A reading of their search, written for them in the background, is deleted with them;
    one written for another listener stays."""
    from fixed_answer import FixedAnswer

    from podrec.llm.base import StoreCache
    from podrec.service.intents import IntentReader
    from podrec.service.writer import GenerationWriter

    store = Store(db_url, id_key=KEY)
    store.add_events([ev("ann", "s1"), ev("bob", "s2")])
    generator = FixedAnswer({"topics": ["ancient rome"], "exclusions": [], "max_minutes": 0,
                             "kind": "show", "mood": ""})
    generator.cache = StoreCache(store)
    reader = IntentReader(GenerationWriter(generator))
    assert reader.read("ann's secret words", owner="ann").fell_back == "pending"
    assert reader.read("bob's words", owner="bob").fell_back == "pending"
    reader.writer.wait()
    assert store.count_generations("intent") == 2
    with create_engine(db_url).connect() as conn:
        owners = set(conn.execute(text("SELECT user_id FROM generation_owners")).scalars())
    assert owners == {hashed("ann"), hashed("bob")}  # stored as the keyed hash too
    store.forget_user("ann")
    assert store.count_generations("intent") == 1
    assert reader.read("bob's words").fell_back is None  # bob's reading is still cached
    assert reader.read("ann's secret words").fell_back == "pending"  # ann's is gone
    reader.writer.stop()
    store.close()


def _trained(store: Store, users: list[str]) -> tuple[str, dict]:
    """A stored model with an iALS part fitted on a few listeners (what `train` saves)."""
    events = [ev(u, f"s{(i + j) % 6}") for i, u in enumerate(users) for j in range(3)]
    items = [f"s{i}" for i in range(6)]
    pairs = build_interactions(events, items)
    als = ALSModel(factors=4, iterations=2, seed=1).fit(None, pairs)
    payload = {"model": "ials", "fitted": {"ials": als},
               "users": {u: (n, 3, 3.0) for n, u in enumerate(pairs.user_ids)},
               "item_popularity": pairs.item_popularity()}
    return save_model(store, "show", {"model": "ials"}, payload), payload


def test_delete_takes_the_listener_out_of_trained_models(db_url: str) -> None:
    store = Store(db_url, id_key=KEY)
    users = ["gone", "stays-1", "stays-2", "stays-3"]
    store.add_events([ev(u, "s1") for u in users])
    _version, before = _trained(store, [store.ids.stored(u) for u in users])
    row = before["users"][store.ids.stored("gone")][0]
    other = before["users"][store.ids.stored("stays-1")][0]
    factors = np.array(before["fitted"]["ials"]._model.user_factors)
    app = Podrec(config(id_key=KEY), database_url=db_url)
    try:
        out = app.delete_user("gone")
        assert out["deleted_events"] == 1 and out["scrubbed_models"] == 1
    finally:
        app.close()
    (name, _c, _m), = store.artifact_versions(artifact_prefix("show"))
    payload = pickle.loads(store.get_artifact(name)[1])  # noqa: S301
    assert store.ids.stored("gone") not in payload["users"]
    assert sorted(payload["users"]) == sorted(store.ids.stored(u) for u in users[1:])
    als = payload["fitted"]["ials"]
    assert als._train[row].nnz == 0 and als._train[other].nnz == 3
    assert not np.asarray(als._model.user_factors)[row].any()
    assert np.allclose(np.asarray(als._model.user_factors)[other], factors[other])
    assert scrub_models(store, store.ids.stored("gone")) == 0  # nothing left to take
    store.close()


def test_a_deleted_id_is_not_left_in_the_sqlite_file(tmp_path: Path) -> None:
    """secure_delete zeroes what was deleted, and the write-ahead log is emptied."""
    path = tmp_path / "podrec.db"
    url = f"sqlite:///{path}"
    marker = "zz-distinctive-listener-7f3a91"
    store = Store(url)
    store.add_events([ev(marker, f"s{i}", days_ago=i) for i in range(50)]
                     + [ev("someone-else", "s1")])
    store.link_users([marker, "marker-phone"])  # marker-phone's person id: the marker
    _trained(store, [marker, "someone-else", "marker-phone"])
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.checkpoint()
    assert marker.encode() in path.read_bytes()  # it was really written
    app = Podrec(config(), database_url=url)
    app.delete_user(marker)
    app.close()
    wal = Path(str(path) + "-wal")
    assert marker.encode() not in path.read_bytes()
    assert not wal.exists() or marker.encode() not in wal.read_bytes()
    assert store.user_exists("someone-else") and store.person_of("marker-phone") is None
    store.close()


# -- retention --------------------------------------------------------------------------------
def test_purge_deletes_events_past_retention(db_url: str) -> None:
    app = Podrec(config(id_key=KEY, retain_days=30), database_url=db_url)
    try:
        app.store.add_events([ev("old-and-new", "s1", days_ago=40),
                              ev("old-and-new", "s2", days_ago=2),
                              ev("only-old", "s3", days_ago=31)])
        out = app.purge()
        assert (out["events"], out["listeners"], out["retain_days"]) == (2, 2, 30)
        assert [e.item_id for e in app.listener_events("old-and-new")] == ["s2"]
        assert app.user_exists("only-old")  # the account stays, without its old events
        assert app.purge()["events"] == 0
        assert app.purge(retain_days=1)["events"] == 1
        assert Podrec(config(), database_url=db_url).purge() == {
            "events": 0, "listeners": 0, "before": None, "retain_days": 0}
    finally:
        app.close()


def test_purge_command(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    store.add_events([ev("a", "s1", days_ago=10), ev("a", "s2", days_ago=1)])
    store.close()
    out = cli("purge", "--db", sqlite_url)
    assert out.returncode == 0 and "nothing purged" in out.stdout
    out = cli("purge", "--retain-days", "5", "--db", sqlite_url)
    assert out.returncode == 0, out.stderr
    assert "purged 1 events of 1 listeners older than 5 days" in out.stdout
    out = cli("purge", "--retain-days", "-1", "--db", sqlite_url)
    assert out.returncode == 2 and "Traceback" not in out.stderr


# -- noise on published counts -------------------------------------------------------------------
def test_noise_is_one_draw_per_release_and_never_negative(db_url: str) -> None:
    counts = np.array([0, 1, 5, 50, 500], dtype=float)
    fresh = noisy_counts(counts, 0.5)
    assert (fresh >= 0).all() and not np.array_equal(fresh, counts)
    assert np.array_equal(noisy_counts(counts, 0), counts)
    assert np.array_equal(noisy_counts(counts, float("inf")), counts)
    ints = noisy_counts(counts, 0.5, integer=True)
    assert np.array_equal(ints, np.rint(ints)) and (ints >= 0).all()
    # the spread follows 1/epsilon: at 0.1 far noisier than at 10
    many = np.full(2000, 1000.0)
    assert 5 < np.abs(noisy_counts(many, 0.1) - many).mean() < 20
    assert np.abs(noisy_counts(many, 10.0) - many).mean() < 0.3

    store = Store(db_url)
    releases = Releases(store, 0.5)
    first = releases.counts("model/show/100/100/pop", counts)
    again = Releases(Store(db_url), 0.5).counts("model/show/100/100/pop", counts)
    assert np.array_equal(first, again)  # kept: another process reads the same draw
    assert not np.array_equal(first, releases.counts("model/show/101/101/pop", counts))
    assert releases.count("users", 12) == releases.count("users", 12)
    store.close()


def test_trained_popularity_is_noisy_when_epsilon_is_set(sqlite_url: str) -> None:
    events = [ev(f"u{n}", f"s{n % 7}") for n in range(60)]
    pairs = build_interactions(events, [f"s{i}" for i in range(7)])
    exact = PopularityModel().fit(None, pairs).popularity.copy()
    store = Store(sqlite_url)
    trainer = Trainer(store, Config().train, {})
    trainer.dp = Releases(store, 0.5)
    fitted = {"pop": PopularityModel().fit(None, pairs),
              "pop-recent": PopularityModel(30.0).fit(None, pairs)}
    payload = {"item_popularity": pairs.item_popularity()}
    trainer._noisy(fitted, payload, "show/60/60")
    assert not np.array_equal(fitted["pop"].popularity, exact)
    assert (fitted["pop"].popularity >= 0).all()
    assert (payload["item_popularity"] >= 0).all()
    assert np.array_equal(payload["item_popularity"], np.rint(payload["item_popularity"]))
    again = {"pop": PopularityModel().fit(None, pairs)}  # trained again on the same events
    trainer._noisy(again, {"item_popularity": pairs.item_popularity()}, "show/60/60")
    assert np.array_equal(again["pop"].popularity, fitted["pop"].popularity)
    store.close()


# -- the REST API ---------------------------------------------------------------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_api_hashes_ids_purges_and_publishes_noisy_counts(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'api.db'}"
    store = Store(db, id_key=KEY)
    store.add_events([ev("api-old", "s1", days_ago=400), ev("api-old", "s2", days_ago=1)])
    store.close()
    cfg = tmp_path / "podrec.toml"
    cfg.write_text(f'[privacy]\nid_key = "{KEY}"\nretain_days = 30\ndp_epsilon = 0.5\n'
                   '[llm]\nbackend = "none"\nreasons = false\nsummaries = false\n')
    keys = {}
    for scope in ("admin", "client"):
        out = cli("keys", "create", "--name", scope, "--scope", scope, "--db", db)
        keys[scope] = out.stdout.strip()
    port = _free_port()
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen([*PODREC, "serve", "--port", str(port), "--db", db, "--config",
                             str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                            env=env(PODREC_SERVE_WARM="0"))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        api = httpx.Client(base_url=base, timeout=60,
                           headers={"Authorization": f"Bearer {keys['client']}"})
        admin = httpx.Client(base_url=base, timeout=60,
                             headers={"Authorization": f"Bearer {keys['admin']}"})
        # the schedule purged the 400-day-old event at start-up
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            export = admin.get("/users/api-old/export").json()
            if len(export["events"]) == 1:
                break
            time.sleep(0.2)
        assert [e["item_id"] for e in export["events"]] == ["s2"]

        assert api.post("/users", json={"user_id": "api-alice"}).status_code == 201
        assert api.post("/events", json={"user_id": "api-alice", "item_id": "s1",
                                         "event": "play"}).status_code in (200, 201)
        assert api.post("/events/batch", json={"events": [
            {"user_id": "api-alice-phone", "item_id": "s2", "event": "like"},
            {"user_id": "api-alice", "item_id": "s3", "event": "like"}]}).status_code in (
                200, 201)
        linked = admin.post("/users/api-alice/link", json={"accounts": ["api-alice-phone"]})
        assert linked.json()["person_id"] == hashed("api-alice")
        export = admin.get("/users/api-alice/export").json()
        assert export["user_id"] == hashed("api-alice") and len(export["events"]) == 2
        found = stored_ids(db)
        assert "api-alice" not in found["users"] | found["events"]
        assert hashed("api-alice") in found["events"]

        # the listener count is noisy, and the same on every read
        first = api.get("/catalog/stats").json()
        assert first["dp_epsilon"] == 0.5 and first["users"] >= 0
        assert all(api.get("/catalog/stats").json()["users"] == first["users"]
                   for _ in range(5))

        gone = admin.delete("/users/api-alice")
        assert gone.json()["user_id"] == "api-alice" and gone.json()["deleted_events"] == 2
        assert gone.json()["relinked_accounts"] == 1  # the phone no longer names alice
        assert admin.get("/users/api-alice/export").status_code == 404
        assert admin.get("/users/api-alice-phone/export").json()["person_id"] is None
        found = stored_ids(db)
        assert hashed("api-alice") not in found["users"] | found["persons"] | found["events"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
