"""The REST API, served for real: `podrec serve` in a subprocess on a free port, requests over
loopback with httpx. One server over a copy of the enriched sample database serves most tests
(each test uses its own listener ids); the consistency test runs two servers, one of them
with two uvicorn workers, over one fresh PostgreSQL database."""

from __future__ import annotations

import io
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from conftest import FIXTURES, PG_ADMIN, SAMPLE

PODREC = [sys.executable, "-m", "podrec.cli"]
UPLOAD_LIMIT = 2_000_000  # server.max_upload_bytes in the test configuration
WEB_INDEX = Path(__file__).parents[1] / "src" / "podrec" / "server" / "web" / "index.html"
# A 1x1 PNG: the plot of the fake evaluation report.
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("PODREC_", "PROMETHEUS_"))}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*PODREC, *args], capture_output=True, text=True, env=_env(),
                          timeout=120)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`podrec serve ...` in a subprocess; ``url`` once /health answers."""

    def __init__(self, *args: str, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._out = log.open("wb")
        self.proc = subprocess.Popen([*PODREC, "serve", "--port", str(self.port), *args],
                                     stdout=self._out, stderr=subprocess.STDOUT, env=_env())

    def wait(self, timeout: float = 120.0) -> Server:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log.read_text()}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._out.close()


def copy_sqlite(src_url: str, dst: Path) -> str:
    """A consistent copy of a SQLite database in WAL mode (the backup API, not a file copy)."""
    src = sqlite3.connect(src_url.removeprefix("sqlite:///"))
    out = sqlite3.connect(dst)
    with out:
        src.backup(out)
    src.close()
    out.close()
    return f"sqlite:///{dst}"


def client(url: str, key: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=url, headers=headers, timeout=60)


# -- the shared server ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def served(sample_app, tmp_path_factory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("served")
    db = copy_sqlite(sample_app.store.url, tmp / "served.db")
    reports = tmp / "reports"
    (reports / "old").mkdir(parents=True)
    (reports / "old" / "results.json").write_text('{"protocol": "random"}')
    time.sleep(0.01)
    (reports / "ml").mkdir()
    (reports / "ml" / "results.json").write_text('{"protocol": "temporal", "models": {}}')
    (reports / "ml" / "results.md").write_text("# results\n")
    (reports / "ml" / "accuracy.png").write_bytes(PNG)
    (tmp / "secret.json").write_text("{}")
    config = tmp / "podrec.toml"
    config.write_text(f'[server]\nmax_upload_bytes = {UPLOAD_LIMIT}\n'
                      f'reports_dir = "{reports.as_posix()}"\n'
                      'fetch_allow = ["127.0.0.0/8"]\n'  # the test feed server
                      # template wording: a reason still being written keeps a list from
                      # being kept, and the background model would slow every test here
                      '[llm]\nreasons = false\nsummaries = false\n')
    keys = {}
    for scope in ("admin", "client"):
        out = cli("keys", "create", "--name", f"test {scope}", "--scope", scope, "--db", db)
        assert out.returncode == 0, out.stderr
        keys[scope] = out.stdout.strip()
        assert keys[scope].startswith("podrec_") and "shown again" in out.stderr
    server = Server("--db", db, "--config", str(config), log=tmp / "server.log").wait()
    try:
        yield {"url": server.url, "db": db, **keys}
    finally:
        server.stop()


@pytest.fixture
def anon(served) -> Iterator[httpx.Client]:
    with client(served["url"]) as c:
        yield c


@pytest.fixture
def api(served) -> Iterator[httpx.Client]:
    """A client-scope key."""
    with client(served["url"], served["client"]) as c:
        yield c


@pytest.fixture
def admin(served) -> Iterator[httpx.Client]:
    with client(served["url"], served["admin"]) as c:
        yield c


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["id"] for r in response.json()["items"]]


def detail(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert "Traceback" not in response.text
    return body["detail"]


# -- open routes -----------------------------------------------------------------------------
def test_health_openapi_docs_and_page_need_no_key(anon):
    health = anon.get("/health").json()
    assert (health["status"], health["database"]) == ("ok", "sqlite")
    assert health["items"]["show"] >= 232 and health["items"]["episode"] >= 44
    paths = set(anon.get("/openapi.json").json()["paths"])
    assert paths >= {
        "/health", "/metrics", "/catalog/ingest", "/items", "/items/{kind}/{item_id}",
        "/items/{kind}/{item_id}/similar", "/tags", "/catalog/stats", "/events",
        "/events/batch", "/recommendations", "/users/{user_id}/recommendations", "/search",
        "/onboarding", "/users", "/users/{user_id}/profile", "/users/{user_id}/link",
        "/users/{user_id}/export", "/users/{user_id}", "/reports/latest",
        "/reports/files/{path}"}
    assert anon.get("/docs").status_code == 200
    page = anon.get("/")
    if WEB_INDEX.is_file():
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    else:
        assert "web page is not installed" in detail(page, 404)
    assert anon.get("/static/no-such-file.js").status_code == 404


# -- keys and scopes ---------------------------------------------------------------------------
def test_keys_are_required_and_scoped(served, anon, api, admin):
    missing = anon.get("/items")
    assert "missing API key" in detail(missing, 401)
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "invalid or revoked" in detail(
        anon.get("/items", headers={"Authorization": "Bearer podrec_nope_nope"}), 401)
    assert anon.get("/items", headers={"Authorization": f"Basic {served['client']}"}
                    ).status_code == 401
    # client: events, recommendations, search, catalog reads, profiles, new listeners ...
    assert api.get("/items", params={"limit": 1}).status_code == 200
    assert api.get("/search", params={"q": "history"}).status_code == 200
    # ... but not ingest or the user operations
    for method, path, body in [("POST", "/catalog/ingest", {"url": "http://127.0.0.1:9/f"}),
                               ("POST", "/users/demo-listener/link", {"accounts": ["x"]}),
                               ("GET", "/users/demo-listener/export", None),
                               ("DELETE", "/users/demo-listener", None)]:
        r = api.request(method, path, json=body)
        assert "needs an admin key" in detail(r, 403), path
        assert anon.request(method, path, json=body).status_code == 401
    # admin may do everything
    assert admin.get("/items", params={"limit": 1}).status_code == 200
    assert admin.get("/users/demo-listener/export").status_code == 200


def test_a_revoked_key_stops_working(served):
    out = cli("keys", "create", "--name", "short-lived", "--scope", "client", "--db",
              served["db"])
    key = out.stdout.strip()
    with client(served["url"], key) as c:
        assert c.get("/catalog/stats").status_code == 200
        listed = json.loads(cli("keys", "list", "--json", "--db", served["db"]).stdout)
        mine = [k for k in listed if k["name"] == "short-lived"]
        assert mine and mine[0]["scope"] == "client" and mine[0]["revoked_at"] is None
        assert all(key not in json.dumps(k) for k in listed)  # never the key itself
        key_id = mine[0]["key_id"]
        assert c.get("/catalog/stats").status_code == 200  # now trusted for 1 s
        assert cli("keys", "revoke", key_id, "--db", served["db"]).returncode == 0
        revoked_at = time.monotonic()
        # The worker trusts a key it checked for server.key_cache_seconds (1 s by default).
        while (r := c.get("/catalog/stats")).status_code == 200:
            assert time.monotonic() - revoked_at < 1.5, "revoked key still served after 1 s"
            time.sleep(0.05)
        assert "invalid or revoked" in detail(r, 401)
    again = cli("keys", "revoke", key_id, "--db", served["db"])
    assert again.returncode == 2 and "no live key" in again.stderr
    bad = cli("keys", "create", "--name", "x", "--scope", "root", "--db", served["db"])
    assert bad.returncode == 2 and "scope must be one of admin, client" in bad.stderr


# -- catalog -----------------------------------------------------------------------------------
def test_catalog_reads(api):
    shows = api.get("/items", params={"kind": "show", "limit": 1000}).json()
    assert len(shows["items"]) >= 232 and all(s["kind"] == "show" for s in shows["items"])
    page = api.get("/items", params={"kind": "show", "limit": 5, "offset": 5}).json()["items"]
    assert [s["id"] for s in page] == [s["id"] for s in shows["items"][5:10]]
    show_id = next(s["id"] for s in shows["items"] if s["id"].startswith("listennotes:"))
    episodes = api.get("/items", params={"show_id": show_id}).json()["items"]
    assert episodes and all(e["show_id"] == show_id and e["kind"] == "episode" for e in episodes)
    history = api.get("/items", params={"tag": "History"}).json()["items"]
    assert history and all(any(t["tag"].lower() == "history" for t in h["tags"]) for h in history)

    item = api.get("/items/show/1322200189").json()
    assert item["title"] == "Crime Junkie" and {t["source"] for t in item["tags"]} >= {
        "taxonomy", "category"}
    episode = api.get(f"/items/episode/{episodes[0]['id']}").json()
    assert episode["id"] == episodes[0]["id"] and episode["published"].endswith("Z")
    assert "no show with id 'nope'" in detail(api.get("/items/show/nope"), 404)
    assert "'kind'" in detail(api.get("/items/movie/1322200189"), 422)

    tags = api.get("/tags", params={"source": "taxonomy", "limit": 5}).json()["tags"]
    assert len(tags) == 5 and tags[0]["count"] >= tags[-1]["count"] > 0
    assert "'source'" in detail(api.get("/tags", params={"source": "genre"}), 422)
    stats = api.get("/catalog/stats").json()
    assert stats["items"]["show"] >= 232 and stats["languages"]["zh"] >= 1 and stats["tags"]


# -- recommendations ---------------------------------------------------------------------------
def test_recommendations_for_a_user_seeds_and_text(api):
    r = api.post("/recommendations", json={"user_id": "demo-listener", "k": 5, "explain": True})
    recs = r.json()["items"]
    assert len(recs) == 5 and all(rec["reason"] and rec["evidence"] for rec in recs)
    assert {"id", "kind", "title", "score", "image", "duration_s", "tags", "components"} <= set(
        recs[0])
    seeded = ids(api.post("/recommendations", json={"seeds": ["1322200189"], "k": 4}))
    assert len(seeded) == 4 and "1322200189" not in seeded
    chinese = api.post("/recommendations", json={"query": "学习英语的播客", "k": 3}).json()
    assert any(rec["language"] == "zh" for rec in chinese["items"])
    only_zh = api.post("/recommendations", json={
        "query": "history", "k": 3, "filters": {"languages": ["zh"]}}).json()["items"]
    assert only_zh and all(rec["language"] in ("zh", None) for rec in only_zh)
    blocked = ids(api.post("/recommendations", json={
        "seeds": ["1322200189"], "k": 4, "filters": {"blocked": seeded[:2]}}))
    assert not set(blocked) & set(seeded[:2])
    episodes = api.post("/recommendations", json={
        "query": "history", "kind": "episode", "k": 5, "filters": {"per_show": 1}}).json()
    shows = [rec["show_id"] for rec in episodes["items"]]
    assert all(rec["kind"] == "episode" for rec in episodes["items"])
    assert len(shows) == len(set(shows))
    diverse = ids(api.post("/recommendations", json={"user_id": "demo-listener", "k": 5,
                                                     "diversity": 0.7}))
    assert len(diverse) == 5
    shortcut = ids(api.get("/users/demo-listener/recommendations", params={"k": 5}))
    assert shortcut == ids(api.post("/recommendations", json={"user_id": "demo-listener",
                                                              "k": 5}))


def test_context_and_platform_reach_the_recommender(api):
    base = {"user_id": "demo-listener", "k": 8}
    plain = api.post("/recommendations", json=base)
    short = api.post("/recommendations", json={
        **base, "platform": "web",
        "context": {"device": "car", "minutes": 15, "hour": 8, "weekday": 0,
                    "intent": "something calm before sleep"}})
    assert plain.status_code == short.status_code == 200, short.text
    # the context is used, so the scores move (the order may or may not)
    assert [r["score"] for r in plain.json()["items"]] != [
        r["score"] for r in short.json()["items"]]
    timed = api.post("/recommendations", json={**base, "context": {
        "time": "2026-11-23T07:30:00+01:00"}})
    assert timed.status_code == 200, timed.text


def test_concurrent_requests_each_get_their_own_list_or_error(served, sample_app):
    """Lists asked for at once are computed together: each still gets its own list, and an
    unknown listener among them their own 404."""
    from concurrent.futures import ThreadPoolExecutor

    bodies = [{"user_id": "demo-listener", "k": k} for k in (2, 3, 4, 5, 6, 7)]
    bodies += [{"user_id": "nobody-at-all", "k": 5}, {"query": "true crime", "k": 4},
               {"seeds": ["1322200189"], "k": 3}, {"seeds": ["nope"], "k": 3}] * 2

    def ask(body: dict) -> httpx.Response:
        with client(served["url"], served["client"]) as c:  # a connection each
            return c.post("/recommendations", json=body)

    with ThreadPoolExecutor(len(bodies)) as pool:
        answers = list(pool.map(ask, bodies))
    for body, answer in zip(bodies, answers, strict=True):
        if body.get("user_id") == "nobody-at-all":
            assert "no listener" in detail(answer, 404)
        elif body.get("seeds") == ["nope"]:
            assert "seed 'nope'" in detail(answer, 404)
        else:
            alone = sample_app.recommend(**body)  # the same database, in-process
            assert ids(answer) == [r.id for r in alone], body
            assert len(alone) == body["k"]


def test_similar_search_onboarding(api):
    similar = api.get("/items/show/1322200189/similar", params={"k": 3}).json()["items"]
    assert len(similar) == 3 and "1322200189" not in [s["id"] for s in similar]
    assert "no show with id 'nope'" in detail(api.get("/items/show/nope/similar"), 404)
    found = api.get("/search", params={"q": "学习投资理财的播客", "k": 5}).json()["items"]
    assert len(found) == 5 and sum(f["language"] == "zh" for f in found) >= 3
    zh = api.get("/search", params=[("q", "investing"), ("language", "zh")]).json()["items"]
    assert zh and all(f["language"] in ("zh", None) for f in zh)
    assert "'q'" in detail(api.get("/search"), 422)
    assert "blank" in detail(api.get("/search", params={"q": "  "}), 422)
    first = api.get("/onboarding", params={"k": 6}).json()["items"]
    assert len(first) == 6 and len({tuple(f["categories"][:1]) for f in first}) >= 5


def test_validation_errors_name_the_field(api):
    cases = [
        ({"user_id": "demo-listener", "k": 0}, "'k'"),
        ({"user_id": "demo-listener", "diversity": 2}, "'diversity'"),
        ({"user_id": "demo-listener", "kind": "movie"}, "'kind'"),
        ({"user_id": "demo-listener", "context": {"hour": 25}}, "'context.hour'"),
        ({"user_id": "demo-listener", "filters": {"per_show": 0}}, "'filters.per_show'"),
        ({"user_id": "demo-listener", "colour": "red"}, "'colour'"),
        ({"seeds": "1322200189"}, "'seeds'"),
    ]
    for body, field in cases:
        r = api.post("/recommendations", json=body)
        message = detail(r, 422)
        assert field in message, (body, message)
        assert r.json()["errors"][0]["field"] == field.strip("'")
    assert "not valid JSON" in detail(api.post(
        "/recommendations", content=b"{bad", headers={"content-type": "application/json"}),
        422)
    assert "give a user, one or more seed items, or a query" in detail(
        api.post("/recommendations", json={}), 422)
    assert "no listener with id 'nobody'" in detail(
        api.post("/recommendations", json={"user_id": "nobody"}), 404)
    assert "seed 'nope' is not in the catalog" in detail(
        api.post("/recommendations", json={"seeds": ["nope"]}), 404)
    assert "'limit'" in detail(api.get("/items", params={"limit": 0}), 422)


# -- events --------------------------------------------------------------------------------------
def test_an_invalid_event_stores_nothing(api, admin):
    for body, field in [({"user_id": "ev-bad", "item_id": "1322200189", "event": "liek"},
                         "event"),
                        ({"user_id": "ev-bad", "item_id": "1322200189", "event": "like",
                          "timestamp": "yesterday"}, "timestamp"),
                        ({"user_id": "ev-bad", "event": "like"}, "item_id"),
                        ({"item_id": "1322200189", "event": "like"}, "user_id"),
                        ({"user_id": "ev-bad", "item_id": "1322200189", "event": "like",
                          "value": "lots"}, "value"),
                        ({"user_id": "ev-bad", "item_id": "1", "event": "like",
                          "platform": "p" * 65}, "platform")]:
        r = api.post("/events", json=body)
        assert f"'{field}'" in detail(r, 422), body
        assert r.json()["errors"][0]["field"] == field
    assert admin.get("/users/ev-bad/export").status_code == 404  # not even the listener

    good = {"user_id": "ev-good", "item_id": "1322200189", "item_kind": "show",
            "event": "like", "timestamp": "2026-11-01T10:00:00Z", "platform": "web",
            "device": "phone", "context": {"mood": "calm"}}
    assert api.post("/events", json=good).json() == {
        "added": 1, "unchanged": 0, "failed": 0, "problems": []}
    assert api.post("/events", json=good).json()["unchanged"] == 1
    now = api.post("/events", json={"user_id": "ev-good", "item_id": "283605519",
                                    "event": "play", "value": 0.4})  # no time: now
    assert now.json()["added"] == 1
    events = admin.get("/users/ev-good/export").json()["events"]
    assert [e["item_id"] for e in events] == ["1322200189", "283605519"]
    assert events[0]["context"] == {"mood": "calm"} and events[0]["device"] == "phone"


def test_an_event_the_fast_path_stores_is_answered_and_stored_as_the_route_does(api, admin):
    """Events sent as plain ``application/json`` (the middleware's fast path, once the key is
    known) and with a charset parameter (which the fast path leaves to the full app): the
    same answers, and both stored."""
    def post(item: str, content_type: str) -> httpx.Response:
        body = {"user_id": "ev-fast", "item_id": item, "event": "play", "value": 0.5,
                "timestamp": "2026-11-02T10:00:00Z"}
        return api.post("/events", content=json.dumps(body).encode(),
                        headers={"content-type": content_type})

    api.get("/users/ev-fast/recommendations")  # the key checked: it is known from here on
    plain = "application/json"
    full = "application/json; charset=utf-8"
    answers = [post("1322200189", plain), post("283605519", full)]
    assert [(r.status_code, r.json()) for r in answers] == [
        (200, {"added": 1, "unchanged": 0, "failed": 0, "problems": []})] * 2
    assert [post("1322200189", full).json(), post("283605519", plain).json()] == [
        {"added": 0, "unchanged": 1, "failed": 0, "problems": []}] * 2
    events = admin.get("/users/ev-fast/export").json()["events"]
    assert sorted(e["item_id"] for e in events) == ["1322200189", "283605519"]
    assert all(e["value"] == 0.5 for e in events)


def test_a_batch_stores_the_good_events_and_reports_the_bad(api, admin):
    events = [
        {"user_id": "batch-1", "item_id": "1322200189", "event": "subscribe",
         "timestamp": 1763000000},
        {"user_id": "batch-1", "item_id": "283605519", "event": "sing"},
        "not an object",
        {"user_id": "batch-1", "item_id": "1028908750", "event": "complete", "value": 1},
        {"user_id": "batch-1", "event": "like", "timestamp": "2026-01-01"},
        {"user_id": "batch-1", "event": "search", "text": "roman history"},
    ]
    r = api.post("/events/batch", json={"events": events})
    report = r.json()
    assert (report["added"], report["failed"]) == (3, 3), report
    assert [(p["location"], p["field"]) for p in report["problems"]] == [
        ("event 1", "event"), ("event 2", None), ("event 4", "item_id")]
    assert "expected one of play" in report["problems"][0]["message"]
    stored = admin.get("/users/batch-1/export").json()["events"]
    assert sorted(e["event"] for e in stored) == ["complete", "search", "subscribe"]
    assert "'events'" in detail(api.post("/events/batch", json={"events": []}), 422)
    many = [{"user_id": "b", "item_id": "1", "event": "play"}] * 10_001
    assert "'events'" in detail(api.post("/events/batch", json={"events": many}), 422)
    assert admin.get("/users/b/export").status_code == 404


def test_request_size_limits(api, admin):
    text = "x" * 1_100_000  # over server.max_request_bytes (1 MiB)
    r = api.post("/events", json={"user_id": "big", "item_id": "1", "event": "review",
                                  "text": text})
    assert "larger than 1048576 bytes" in detail(r, 413)
    body = json.dumps({"events": [{"user_id": "big", "item_id": "1", "event": "play",
                                   "text": "y" * 9000}] * 130}).encode()

    def chunks():  # no Content-Length: the limit holds on the bytes streamed
        for i in range(0, len(body), 65536):
            yield body[i:i + 65536]

    r = api.post("/events/batch", content=chunks(), headers={"content-type":
                                                            "application/json"})
    assert "larger than 1048576 bytes" in detail(r, 413)
    assert admin.get("/users/big/export").status_code == 404  # nothing stored
    upload = io.BytesIO(b"id,title\n" + b"a,b\n" * (UPLOAD_LIMIT // 4))
    r = admin.post("/catalog/ingest", files={"file": ("huge.csv", upload, "text/csv")})
    assert "server.max_upload_bytes" in detail(r, 413)


# -- listeners ---------------------------------------------------------------------------------
def test_listeners_create_profile_link_export_delete(api, admin):
    created = api.post("/users", json={"user_id": "alice"})
    assert created.status_code == 201 and created.json() == {"user_id": "alice",
                                                              "created": True}
    again = api.post("/users", json={"user_id": "alice"})
    assert again.status_code == 200 and again.json()["created"] is False
    assert "'user_id'" in detail(api.post("/users", json={"user_id": ""}), 422)
    assert "no listener with id 'ghost'" in detail(api.get("/users/ghost/profile"), 404)

    api.post("/events/batch", json={"events": [
        {"user_id": "alice", "item_id": "1322200189", "event": "subscribe"},
        {"user_id": "alice-phone", "item_id": "283605519", "event": "like",
         "platform": "ios"}]})
    profile = api.get("/users/alice/profile").json()
    assert profile["user_id"] == "alice" and "interests" in profile

    linked = admin.post("/users/alice/link", json={"accounts": ["alice-phone"]}).json()
    assert sorted(linked["accounts"]) == ["alice", "alice-phone"]
    profile = api.get("/users/alice/profile").json()
    assert sorted(profile["accounts"]) == ["alice", "alice-phone"]
    assert "'accounts'" in detail(admin.post("/users/alice/link", json={"accounts": []}), 422)

    export = admin.get("/users/alice/export").json()
    assert export["user_id"] == "alice" and export["person_id"] == linked["person_id"]
    assert [e["item_id"] for e in export["events"]] == ["1322200189"]
    assert sorted(export["linked_accounts"]) == ["alice", "alice-phone"]

    assert admin.delete("/users/alice").json() == {"user_id": "alice", "deleted_events": 1,
                                                   "relinked_accounts": 1,  # alice-phone
                                                   "scrubbed_models": 0}
    assert admin.get("/users/alice/export").status_code == 404
    assert "no listener with id 'alice'" in detail(admin.delete("/users/alice"), 404)
    phone = admin.get("/users/alice-phone/export")
    assert phone.status_code == 200 and phone.json()["person_id"] is None  # no alice in it


def cached_lists(anon: httpx.Client) -> float:
    """How many lists the server answered from its cache so far (its Prometheus counter)."""
    for line in anon.get("/metrics").text.splitlines():
        if line.startswith('podrec_cached_lists_total{endpoint="recommendations"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_kept_lists_are_served_only_while_nothing_changed(api, admin, anon):
    api.post("/events", json={"user_id": "kept", "item_id": "1322200189", "event": "like"})
    ask = {"user_id": "kept", "k": 5, "explain": True}
    first = api.post("/recommendations", json=ask)
    before = cached_lists(anon)
    again = api.post("/recommendations", json=ask)
    assert again.content == first.content and cached_lists(anon) == before + 1
    # Another request (here another k) is another list.
    other = api.post("/recommendations", json={**ask, "k": 3})
    assert len(other.json()["items"]) == 3 and cached_lists(anon) == before + 1
    # A new event: the next list is computed afresh and leaves the turned-down show out.
    top = ids(first)[0]
    api.post("/events", json={"user_id": "kept", "item_id": top, "event": "dislike"})
    fresh = api.post("/recommendations", json=ask)
    assert top not in ids(fresh) and cached_lists(anon) == before + 1
    # Linking another account with its own history changes the list too.
    api.post("/events", json={"user_id": "kept-car", "item_id": "1488295306",
                              "event": "subscribe"})
    assert api.post("/recommendations", json=ask).content == fresh.content
    admin.post("/users/kept/link", json={"accounts": ["kept-car"]})
    linked = api.post("/recommendations", json=ask)
    assert "1488295306" not in ids(linked) and linked.content != fresh.content
    # A deleted listener is gone at once, not served from the cache.
    admin.delete("/users/kept")
    assert "no listener with id 'kept'" in detail(api.post("/recommendations", json=ask), 404)


# -- ingest --------------------------------------------------------------------------------------
@pytest.fixture
def feed_server() -> Iterator[str]:
    handler = partial(SimpleHTTPRequestHandler, directory=str(FIXTURES / "feeds"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.RequestHandlerClass.log_message = lambda *a, **k: None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_ingest_upload_and_url(api, admin, feed_server):
    with (FIXTURES / "bad_catalog.csv").open("rb") as f:
        r = admin.post("/catalog/ingest", files={"file": ("bad_catalog.csv", f)},
                       data={"enrich": "true"})
    report = r.json()
    assert (report["added"], report["failed"]) == (3, 5), report
    first = report["problems"][0]
    assert (first["source"], first["location"], first["field"]) == (
        "bad_catalog.csv", "line 3", "id")
    assert report["enrich"]["embedded"] == 3
    assert api.get("/items/show/s1").json()["title"] == "Birds of the World"
    assert len(ids(api.get("/items/show/s1/similar", params={"k": 2}))) == 2

    with (FIXTURES / "feeds" / "et_yoga.rss.xml").open("rb") as f:
        r = admin.post("/catalog/ingest", files={"file": ("feed", f)}, data={"format": "feed"})
    assert r.json()["added"] >= 2 and r.json()["failed"] == 0
    r = admin.post("/catalog/ingest", json={"url": f"{feed_server}/polite_conversations.atom",
                                            "type": "feed"})
    assert r.json()["added"] >= 1, r.text
    again = admin.post("/catalog/ingest", json={
        "url": f"{feed_server}/polite_conversations.atom"}).json()
    assert again["added"] == 0 and again["unchanged"] + again["duplicates"] >= 1
    broken = admin.post("/catalog/ingest", json={"url": f"{feed_server}/missing.xml"}).json()
    assert broken["failed"] == 1 and "cannot read" in broken["problems"][0]["message"]

    assert "'url'" in detail(admin.post("/catalog/ingest", json={"url": "file:///etc/passwd"}),
                             422)
    assert "'type'" in detail(admin.post("/catalog/ingest", json={"url": "http://x/",
                                                                  "type": "csv"}), 422)
    assert "'format'" in detail(admin.post(
        "/catalog/ingest", files={"file": ("c.csv", b"id,title\n1,a\n")},
        data={"format": "nope"}), 422)
    assert "'file'" in detail(admin.post("/catalog/ingest", files={"other": ("c.csv", b"x")}),
                              422)
    assert admin.post("/catalog/ingest", content=b"x", headers={
        "content-type": "text/plain"}).status_code == 415


def test_events_the_database_could_not_store_are_4xx_and_the_rest_kept(api):
    """NaN, infinities, NUL characters and over-long bounded fields: a 422 for one event,
    reported by index in a batch, whose valid events are stored (SQLite and PostgreSQL
    alike: nothing reaches the database that it would refuse)."""
    def post(path: str, body: str) -> httpx.Response:
        return api.post(path, content=body.encode(),
                        headers={"content-type": "application/json"})

    base = '"item_id": "1322200189", "event": "play", "timestamp": "2024-01-01T00:00:00Z"'

    def event(fields: str) -> str:
        return "{" + fields + ", " + base + "}"

    bad = [event('"user_id": "t-nan", "value": NaN'),
           event('"user_id": "t-inf", "value": 1e400'),
           event('"user_id": "t-ctx", "context": {"x": NaN}'),
           event('"user_id": "t-nul\\u0000"'),
           event('"user_id": "' + "u" * 300 + '"'),
           event('"user_id": "t-plat", "platform": "' + "p" * 100 + '"')]
    for body in bad:
        r = post("/events", body)
        assert r.status_code == 422, (body[:60], r.text)
        assert "Traceback" not in r.text
    batch = [event('"user_id": "t-good-1"'), *bad, event('"user_id": "t-good-2"')]
    report = post("/events/batch", '{"events": [' + ", ".join(batch) + "]}").json()
    assert (report["added"], report["failed"]) == (2, len(bad))
    assert [p["location"] for p in report["problems"]] == [f"event {i}" for i in range(1, 7)]
    assert [p["field"] for p in report["problems"]] == ["value", "value", "context.x",
                                                        "user_id", "user_id", "platform"]


def test_an_uploaded_opml_cannot_make_the_server_read_its_files(admin, api, feed_server,
                                                                tmp_path):
    """Outlines naming server files (present or not) are refused with one message that says
    nothing about them; the http outline beside them is fetched."""
    feed = tmp_path / "local_feed.xml"
    feed.write_bytes((FIXTURES / "feeds" / "et_yoga.rss.xml").read_bytes())
    outlines = [f"file://{feed}", str(feed), "file:///etc/passwd", "/etc/hostname",
                "/no/such/file.xml", f"{feed_server}/polite_conversations.atom"]
    opml = ('<?xml version="1.0"?><opml version="2.0"><body>' + "".join(
        f'<outline text="o{i}" type="rss" xmlUrl="{u}"/>' for i, u in enumerate(outlines))
        + "</body></opml>").encode()
    report = admin.post("/catalog/ingest", files={"file": ("subs.opml", opml)}).json()
    refused = [p for p in report["problems"] if p["location"] == "outline"]
    assert [p["source"] for p in refused] == outlines[:5]
    assert {p["message"] for p in refused} == {
        "refused: local paths and file:// URLs are not read by the server; expected an "
        "http(s) URL"}
    assert "Traceback" not in json.dumps(report) and "Errno" not in json.dumps(report)
    shows = api.get("/items", params={"kind": "show", "limit": 1000}).json()["items"]
    assert not any((s.get("feed_url") or "").startswith("file") or s["id"].startswith("file:")
                   and "local_feed" in s["id"] for s in shows)


# -- reports and metrics -----------------------------------------------------------------------
def test_latest_evaluation_report_and_its_files(api, anon):
    latest = api.get("/reports/latest").json()
    assert latest["name"] == "ml" and latest["results"]["protocol"] == "temporal"
    assert latest["markdown"] == "# results\n"
    assert latest["images"] == [{"name": "accuracy.png",
                                 "url": "/reports/files/ml/accuracy.png"}]
    png = api.get(latest["images"][0]["url"])
    assert png.status_code == 200 and png.content == PNG
    assert png.headers["content-type"] == "image/png"
    assert api.get("/reports/files/../secret.json").status_code == 404
    assert api.get("/reports/files/%2e%2e/secret.json").status_code == 404
    assert anon.get("/reports/latest").status_code == 401


def test_metrics(api, anon):
    api.post("/recommendations", json={"seeds": ["1322200189"], "k": 3})
    api.get("/items/show/no-such-show")
    api.post("/events", json={"user_id": "metrics-1", "item_id": "1322200189",
                              "event": "play"})
    text = anon.get("/metrics").text
    assert 'podrec_http_requests_total{method="POST",route="/recommendations",status="200"}' \
        in text
    assert 'podrec_http_request_duration_seconds_bucket{le="0.05",method="POST",' \
        'route="/recommendations",status="200"}' in text
    assert 'podrec_events_total{outcome="accepted"}' in text
    assert 'podrec_recommendations_total{endpoint="recommendations"}' in text
    assert 'route="/items/{kind}/{item_id:path}",status="404"' in text


# -- several workers, one PostgreSQL database ---------------------------------------------------
def copy_into_postgres(sqlite_url: str, pg_url: str, hold_back: str) -> dict:
    """Every table of the sample database into PostgreSQL, but without the embedding of the
    show ``hold_back`` (returned, to be stored later as another process's enrich would)."""
    from sqlalchemy import create_engine, delete, select, text

    from podrec.storage import Store, schema

    Store(pg_url).close()
    src, dst = create_engine(sqlite_url), create_engine(pg_url)
    with src.connect() as s, dst.begin() as d:
        for table in schema.metadata.sorted_tables:
            rows = [dict(r) for r in s.execute(select(table)).mappings()]
            if rows:
                d.execute(table.insert(), rows)
        for table in ("items", "users", "events"):
            d.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'pk'), "
                           f"(SELECT coalesce(max(pk), 1) FROM {table}))"))
        pk = d.execute(select(schema.items.c.pk).where(schema.items.c.id == hold_back,
                                                       schema.items.c.kind == "show")).scalar()
        held = d.execute(select(schema.embeddings).where(schema.embeddings.c.item_pk == pk)
                         ).mappings().one()
        d.execute(delete(schema.embeddings).where(schema.embeddings.c.item_pk == pk))
    src.dispose()
    dst.dispose()
    return dict(held)


def drop_database(url: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    admin.dispose()


def test_two_servers_over_one_postgres_database_agree(sample_app, postgres_url, tmp_path):
    from podrec.storage import Store

    held = copy_into_postgres(sample_app.store.url, postgres_url, hold_back="1028908750")
    store = Store(postgres_url)
    key = store.create_api_key("test", "admin")
    a = Server("--db", postgres_url, "--workers", "2", "--no-warm", log=tmp_path / "a.log")
    b = Server("--db", postgres_url, "--no-warm", log=tmp_path / "b.log")
    try:
        a.wait()
        b.wait()
        with client(a.url, key) as ca, client(b.url, key) as cb:
            assert cb.get("/health").json()["database"] == "postgresql"
            # An event sent to A changes what B recommends, at once.
            assert ca.post("/users", json={"user_id": "pg-listener"}).status_code == 201
            ca.post("/events", json={"user_id": "pg-listener", "item_id": "1322200189",
                                     "event": "subscribe"})
            crime = ids(cb.get("/users/pg-listener/recommendations", params={"k": 5}))
            assert "1322200189" not in crime
            for show in ("1488295306", "1546879892"):  # two Chinese investing shows
                r = ca.post("/events", json={"user_id": "pg-listener", "item_id": show,
                                             "event": "like"})
                assert r.json()["added"] == 1
            after = ids(cb.get("/users/pg-listener/recommendations", params={"k": 5}))
            assert after != crime and not {"1488295306", "1546879892"} & set(after)
            assert any(cb.get(f"/items/show/{i}").json()["language"] == "zh" for i in after)
            # B's answers match A's (A answers from either of its two workers).
            for _ in range(4):
                assert ids(ca.get("/users/pg-listener/recommendations",
                                  params={"k": 5})) == after

            # Catalog changes made elsewhere reach both servers' fitted models.
            similar = cb.get("/items/show/1028908750/similar")
            assert "no embedding yet" in detail(similar, 404)
            assert cb.get("/items/show/1322200189/similar").status_code == 200  # model cached
            store.save_embeddings(held["model_id"], [(held["item_pk"], held["content_hash"],
                                                      _vector(held))])
            deadline = time.monotonic() + 10
            while cb.get("/items/show/1028908750/similar").status_code != 200:
                assert time.monotonic() < deadline, "B kept its stale model"
                time.sleep(0.3)
            # Every worker of A too: each checks the catalog version on its own clock, so
            # wait until four answers in a row (from either worker) are fresh.
            fresh = 0
            while fresh < 4:
                assert time.monotonic() < deadline + 10, "a worker of A kept its stale model"
                ok = ca.get("/items/show/1028908750/similar").status_code == 200
                fresh = fresh + 1 if ok else 0
                if not ok:
                    time.sleep(0.3)

            # A's metrics add up over its two worker processes.
            for _ in range(6):
                ca.get("/health")
            metrics = ca.get("/metrics").text
            line = next(m for m in metrics.splitlines() if m.startswith(
                'podrec_http_requests_total{method="GET",route="/health",status="200"}'))
            assert float(line.rsplit(" ", 1)[1]) >= 6

            # The database goes away: health says so, and no request shows a traceback.
            store.close()
            drop_database(postgres_url)
            down = cb.get("/health")
            assert "database is unreachable" in detail(down, 503)
            assert "unavailable" in detail(cb.get("/users/pg-listener/recommendations"), 503)
    finally:
        a.stop()
        b.stop()
        store.close()
    assert "Traceback" not in (tmp_path / "a.log").read_text()
    assert "Traceback" not in (tmp_path / "b.log").read_text()


def test_notify_mode_serves_kept_lists_and_drops_them_when_the_database_says_so(
        sample_app, postgres_url, tmp_path):
    """cache_sync = "notify": kept lists are served without reading the listener's version;
    a change written by anyone (here this test process, straight into the database) reaches
    every worker through the database's announcements."""
    from datetime import UTC, datetime

    from podrec.records import EventRecord
    from podrec.storage import Store

    copy_into_postgres(sample_app.store.url, postgres_url, hold_back="1028908750")
    store = Store(postgres_url)
    key = store.create_api_key("test", "client")
    config = tmp_path / "podrec.toml"
    config.write_text('[server]\ncache_sync = "notify"\n')
    a = Server("--db", postgres_url, "--workers", "2", "--no-warm", "--config", str(config),
               log=tmp_path / "a.log")
    try:
        a.wait()
        def once(method: str, path: str, **kw: object) -> httpx.Response:
            with client(a.url, key) as c:  # a new connection: either worker may answer
                return c.request(method, path, **kw)

        deadline = time.monotonic() + 10
        while {once("GET", "/health").json()["cache"] for _ in range(6)} != {"notify"}:
            assert time.monotonic() < deadline, "the workers never listened"
            time.sleep(0.2)
        once("POST", "/events", json={"user_id": "told", "item_id": "1322200189",
                                      "event": "subscribe"})
        ask = {"user_id": "told", "k": 5}
        first = once("POST", "/recommendations", json=ask)
        with client(a.url) as anon:
            before = cached_lists(anon)
            for _ in range(8):  # each worker computes it once, then keeps it (the scores of
                # two workers' lists differ in the last digits: decay counts to the moment)
                assert ids(once("POST", "/recommendations", json=ask)) == ids(first)
            assert cached_lists(anon) >= before + 6
        # Another writer turns the top show down: every worker hears of it.
        top = ids(first)[0]
        store.add_events([EventRecord(user_id="told", event="dislike", item_id=top,
                                      item_kind="show", timestamp=datetime.now(UTC))])
        deadline = time.monotonic() + 5
        seen = 0
        while seen < 8:  # eight answers in a row without it, from either worker
            assert time.monotonic() < deadline, "a worker kept serving the old list"
            seen = seen + 1 if top not in ids(once("POST", "/recommendations", json=ask)) \
                else 0
    finally:
        a.stop()
        store.close()
    log = (tmp_path / "a.log").read_text()
    assert "Traceback" not in log and "needs PostgreSQL" not in log


def _vector(held: dict):
    import numpy as np

    return np.frombuffer(held["vector"], dtype=np.float32)


def test_serve_and_keys_fail_with_one_clear_line(tmp_path):
    out = cli("serve", "--db", "postgresql+psycopg://nobody@127.0.0.1:1/none", "--port",
              str(free_port()))
    assert out.returncode == 2 and "error:" in out.stderr and "Traceback" not in out.stderr
    out = cli("keys", "list", "--config", str(tmp_path / "missing.toml"))
    assert out.returncode == 2 and "configuration file not found" in out.stderr
    assert SAMPLE.is_dir()


def test_a_retag_by_another_process_drops_the_fitted_models(sample_app, tmp_path):
    """Result cards (cover, duration, tags) live as long as the fitted model, so a change of
    tags alone must change the catalog version that makes a worker refit."""
    from podrec.config import Config
    from podrec.server.app import ServedPodrec
    from podrec.storage import Store

    url = copy_sqlite(sample_app.store.url, tmp_path / "retag.db")
    served = ServedPodrec(Config(), database_url=url)
    try:
        served.refresh(force=True)
        model = served.model("show")
        generation = served.generation
        other = Store(url)  # another process's enrich
        pk = int(model.catalog.pks[0])
        other.replace_tags({pk: [("taxonomy", "brand new tag", 0.9)]}, ["taxonomy"])
        other.close()
        served.refresh(force=True)
        assert served.generation == generation + 1
        assert served.model("show") is not model
        rec = served.recommend(seeds=[model.catalog.ids[1]], k=len(model.catalog) - 2)
        tagged = [r for r in rec if r.id == model.catalog.ids[0]]
        assert tagged and "brand new tag" in tagged[0].tags
    finally:
        served.close()
