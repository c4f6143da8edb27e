"""The web page in a real browser: Debian's chromium, headless, driven by Playwright, against
a real `podrec serve` process over an enriched copy of the bundled sample database.

It clicks through what a listener and an operator do: enter a key, create a listener, pick
topics and shows, get recommendations, say "not interested" (the list changes at once), set
a context, search, then look at the catalog statistics, the listener's interest map and the
latest evaluation report. Screenshots are kept in tests/artifacts/web-*.png.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).parent / "artifacts"
REPORT = Path(__file__).parents[1] / "docs" / "results" / "eval-movielens-temporal"
PODREC = [sys.executable, "-m", "podrec.cli"]
TIMEOUT_MS = 60_000  # a text query embeds with e5 on 2 busy cores
COVER_ALT = re.compile(r"^(Cover art of|No cover art for) “.+”$")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PODREC_")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, base: str, admin_key: str, client_key: str) -> None:
        self.base, self.admin_key, self.client_key = base, admin_key, client_key

    def get(self, path: str, key: str | None = None) -> Any:
        req = urllib.request.Request(self.base + path.lstrip("/"),
                                     headers={"Authorization": f"Bearer {key or self.admin_key}"})
        with urllib.request.urlopen(req, timeout=60) as res:
            return json.loads(res.read())


@pytest.fixture(scope="module")
def server(sample_app, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`podrec serve` on a free port over a copy of the enriched sample database, with one
    evaluation report to show, and an admin and a client key."""
    root = tmp_path_factory.mktemp("web")
    db = root / "web.db"
    src = sqlite3.connect(sample_app.store.url.removeprefix("sqlite:///"))
    dst = sqlite3.connect(db)
    with dst:
        src.backup(dst)  # consistent even while the sample database is in WAL mode
    src.close()
    dst.close()
    url = f"sqlite:///{db}"
    shutil.copytree(REPORT, root / "reports" / REPORT.name)
    config = root / "podrec.toml"
    config.write_text(f'[server]\nreports_dir = "{(root / "reports").as_posix()}"\n')

    def key(scope: str) -> str:
        out = subprocess.run([*PODREC, "keys", "create", "--scope", scope, "--name",
                              f"web-test-{scope}", "--db", url], capture_output=True, text=True,
                             env=_env(), timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip().splitlines()[-1]

    admin_key, client_key = key("admin"), key("client")
    port = _free_port()
    log = (root / "serve.log").open("w")
    proc = subprocess.Popen([*PODREC, "serve", "--host", "127.0.0.1", "--port", str(port),
                             "--config", str(config), "--db", url],
                            stdout=log, stderr=subprocess.STDOUT, env=_env(), cwd=root)
    base = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 240
        while True:
            if proc.poll() is not None:
                pytest.fail(f"podrec serve exited with {proc.returncode}:\n"
                            f"{(root / 'serve.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(base + "health", timeout=5) as res:
                    if res.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail("podrec serve did not answer /health within 240 s:\n"
                            f"{(root / 'serve.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield Server(base, admin_key, client_key)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium, headless. Playwright's own browser download does not work here, so
    a missing /usr/bin/chromium fails the test with how to install it (never a silent skip)."""
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing at /usr/bin/chromium; the web test drives a "
                    "real browser. Install it with `sudo apt-get install -y "
                    "--no-install-recommends chromium` (.ci/run does this in CI).")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the Playwright package is missing: `.venv/bin/pip install -e '.[test]'`")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server: Server):
    """A fresh page (empty localStorage) that can reach the server only: cover art on other
    hosts is refused, so broken images fall back to the placeholder as they would offline."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    host = re.escape(server.base.rstrip("/"))
    context.route(re.compile(rf"^(?!{host}[/?#]|{host}$)(https?|wss?)://"),
                  lambda route: route.abort())
    p = context.new_page()
    p.problems = []  # uncaught exceptions and console errors other than failed loads
    p.on("pageerror", lambda exc: p.problems.append(f"uncaught: {exc}"))
    p.on("console", lambda m: p.problems.append(f"console.{m.type}: {m.text}")
         if m.type == "error" and "Failed to load resource" not in m.text else None)
    yield p
    context.close()


def _shot(page, name: str, **kwargs: Any) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    page.evaluate("document.querySelector('[data-testid=toast]').hidden = true")
    path = ARTIFACTS / f"web-{name}.png"
    page.screenshot(path=str(path), **kwargs)
    assert path.stat().st_size > 10_000
    return path


def _image_loaded(locator) -> bool:
    return locator.evaluate("img => img.complete && img.naturalWidth > 0")


def test_listener_and_operator_click_through(page, server: Server):
    from playwright.sync_api import expect

    t = page.get_by_test_id
    page.goto(server.base)

    # -- the key: asked once; a wrong key is refused with the server's 401 ----------------
    expect(t("key-panel")).to_be_visible()
    expect(t("view-listener")).to_be_hidden()
    t("key-input").fill("podrec_nothere_wrong")
    t("key-submit").click()
    expect(t("key-error")).to_contain_text("401")
    t("key-input").fill(server.client_key)
    t("key-submit").click()
    expect(t("view-listener")).to_be_visible()
    expect(t("key-panel")).to_be_hidden()

    # -- a new listener, onboarding by topics, own words and shows ----------------------
    listener = "web-listener"
    t("listener-input").fill(listener)
    t("listener-create").click()
    expect(t("listener-name")).to_have_text(listener)
    expect(t("recent-listener")).to_have_text([listener])

    chips = t("topic-chip")
    expect(chips.first).to_be_visible()
    topics = chips.evaluate_all("els => els.map(e => e.dataset.topic)")
    topic = "History" if "History" in topics else topics[0]
    page.locator(f'[data-testid="topic-chip"][data-topic="{topic}"]').click()
    expect(page.locator(f'[data-testid="topic-chip"][data-topic="{topic}"]')).to_have_attribute(
        "aria-pressed", "true")

    t("interest-input").fill("funny science stories")
    t("interest-submit").click()
    expect(t("interest-input")).to_have_value("")

    shows = t("onboarding-show")
    expect(shows).to_have_count(12)
    followed = [shows.nth(i).get_attribute("data-id") for i in (0, 1)]
    for i in (0, 1):
        shows.nth(i).get_by_test_id("onboarding-follow").click()
        expect(shows.nth(i).get_by_test_id("onboarding-follow")).to_have_attribute(
            "aria-pressed", "true")

    # -- recommendations as cards ----------------------------------------------------------
    cards = t("rec-card")
    expect(t("recs")).not_to_have_attribute("aria-busy", "true")
    expect(t("recs-status")).to_contain_text(f"10 shows for {listener}")
    expect(cards).to_have_count(10)
    ids = cards.evaluate_all("els => els.map(e => e.dataset.id)")
    assert not set(ids) & set(followed), "followed shows are not recommended back"
    first = cards.first
    expect(first.get_by_test_id("card-title")).not_to_be_empty()
    expect(first.get_by_test_id("reason")).not_to_be_empty()
    cover = first.get_by_test_id("cover")
    expect(cover).to_have_attribute("alt", COVER_ALT)
    assert _image_loaded(cover), "cover art or its placeholder shows"
    for action in ("play", "like", "dislike", "skip", "not-interested"):
        expect(first.get_by_test_id(f"btn-{action}")).to_be_enabled()

    # -- "not interested" on the first card: the list changes at once -----------------
    gone = ids[0]
    first.get_by_test_id("btn-not-interested").click()
    expect(page.locator(f'[data-testid="rec-card"][data-id="{gone}"]')).to_have_count(0)
    expect(cards.first).not_to_have_attribute("data-id", gone)
    expect(cards).to_have_count(10)
    expect(t("toast")).to_contain_text("Not interested")

    # a dislike on the new first card removes it too
    second = cards.first.get_attribute("data-id")
    cards.first.get_by_test_id("btn-dislike").click()
    expect(page.locator(f'[data-testid="rec-card"][data-id="{second}"]')).to_have_count(0)

    # -- the context re-requests the list with it -------------------------------------
    t("context-device").select_option("car")
    t("context-minutes").fill("25")
    t("context-mood").fill("something calm")
    with page.expect_request(lambda r: r.url.endswith("/recommendations")
                             and r.method == "POST") as sent:
        t("context-apply").click()
    body = sent.value.post_data_json
    assert body["user_id"] == listener and body["explain"] is True
    ctx = body["context"]
    assert (ctx["device"], ctx["minutes"], ctx["intent"]) == ("car", 25, "something calm")
    assert 0 <= ctx["hour"] <= 23 and 0 <= ctx["weekday"] <= 6
    expect(t("recs-status")).to_contain_text("on car, 25 min")
    expect(cards).to_have_count(10)
    assert gone not in cards.evaluate_all("els => els.map(e => e.dataset.id)")

    # -- semantic search -------------------------------------------------------------------
    t("search-input").fill("the history of ancient Rome")
    # the search counts as interest: it is sent as an event, then the list reloads
    with page.expect_response(lambda r: r.url.endswith("/recommendations")):
        t("search-submit").click()
    expect(t("recs")).not_to_have_attribute("aria-busy", "true")
    expect(t("search-status")).to_contain_text("results for")
    expect(t("search-card").first).to_be_visible()
    assert t("search-card").count() >= 3
    _shot(page, "listener", full_page=True)

    # what the page sent is what the server stored
    events = server.get(f"users/{listener}/export")["events"]
    sent_events = [(e["event"], e["item_id"], e["text"]) for e in events]
    assert ("search", None, topic) in sent_events
    assert ("search", None, "funny science stories") in sent_events
    assert ("search", None, "the history of ancient Rome") in sent_events
    for show in followed:
        assert ("subscribe", show, None) in sent_events
    assert ("dislike", gone, None) in sent_events and ("dislike", second, None) in sent_events
    assert all(e["platform"] == "web" for e in events)

    # -- operator view: statistics, the listener's interest map, the report --------------
    t("tab-operator").click()
    expect(t("view-operator")).to_be_visible()
    expect(t("view-listener")).to_be_hidden()
    assert page.url.endswith("#operator")
    stats = server.get("catalog/stats", server.client_key)
    expect(t("stat-shows")).to_contain_text(f"{stats['items']['show']:,}")
    expect(t("stat-episodes")).to_contain_text(f"{stats['items']['episode']:,}")
    expect(t("svg-languages").locator("g.bar")).to_have_count(min(len(stats["languages"]), 11))
    expect(t("svg-tags").locator("g.bar")).to_have_count(min(len(stats["tags"]), 15))

    expect(t("profile-input")).to_have_value(listener)
    expect(t("profile-map")).to_be_visible()
    profile = server.get(f"users/{listener}/profile", server.client_key)
    assert profile["interests"], "the followed shows make at least one interest"
    expect(t("profile-interest")).to_have_count(len(profile["interests"]))
    expect(t("profile-map").locator("circle")).to_have_count(len(profile["interests"]))
    label = profile["interests"][0]["label"]
    expect(t("profile-map")).to_contain_text(label)
    expect(t("profile-facts")).to_contain_text(f"{profile['events']} events")
    expect(t("hour-strip").first).to_be_visible()

    expect(t("report-table")).to_be_visible()
    expect(t("report-table")).to_contain_text("hybrid")
    expect(t("report-table").locator("tbody tr")).to_have_count(
        len(json.loads((REPORT / "results.json").read_text())["models"]))
    plots = t("report-plot")
    expect(plots).to_have_count(len(list(REPORT.glob("*.png"))))
    for i in range(plots.count()):
        assert _image_loaded(plots.nth(i)), "the report's PNG plots load with the key"
    _shot(page, "operator", full_page=True)

    # -- a phone-sized window, and the key is remembered across reloads ----------------
    page.set_viewport_size({"width": 390, "height": 844})
    t("tab-listener").click()
    page.reload()
    expect(t("view-listener")).to_be_visible()
    expect(t("listener-name")).to_have_text(listener)
    expect(cards.first).to_be_visible()
    _shot(page, "phone")

    assert page.problems == []
