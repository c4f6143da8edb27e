"""The fetch policy: what `podrec serve` may download for POST /catalog/ingest (http(s) only,
public addresses or the networks the operator allows, each redirect hop checked again, size
and time limits), and that the CLI's default still reads anything it is given."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from podrec.config import ConfigError, ServerConfig, load_config
from podrec.ingest.fetch import (
    FetchPolicy,
    Refused,
    TooLarge,
    fetch,
    fetch_policy,
    read_local,
    server_policy,
)
from podrec.ingest.pipeline import ingest_feeds
from podrec.storage import Store

FEED = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>Policed</title>'
        b'<item><title>One</title><guid>p-1</guid></item></channel></rss>')


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        port = self.server.server_address[1]
        if self.path == "/feed.xml":
            self._send(200, FEED)
        elif self.path == "/big":
            self._send(200, b"x" * 300_000)
        elif self.path == "/to-feed":
            self._redirect("/feed.xml")
        elif self.path == "/to-other-loopback":  # an address the narrow policy refuses
            self._redirect(f"http://127.0.0.2:{port}/feed.xml")
        elif self.path == "/loop":
            self._redirect("/loop")
        elif self.path == "/slow":  # drips bytes: only the overall time limit stops it
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            try:
                for _ in range(20):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:  # the client gave up, as it should
                pass
        else:
            self._send(404, b"no")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture(scope="module")
def web() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


SERVER = server_policy(ServerConfig())
LOOPBACK = server_policy(ServerConfig(fetch_allow=("127.0.0.1/32",)))


def test_the_cli_policy_fetches_anything(web):
    assert fetch(f"{web}/feed.xml") == FEED
    assert fetch(f"{web}/to-feed") == FEED


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.0.1", "172.16.5.5",
                                     "169.254.169.254", "::1", "fe80::1", "100.64.0.1",
                                     "0.0.0.0", "224.0.0.1", "::ffff:127.0.0.1"])
def test_the_server_refuses_non_public_addresses(address):
    assert not SERVER.allowed(address)
    assert SERVER.allowed("93.184.216.34") and SERVER.allowed("2606:2800:220:1::1")


def test_allowed_networks_are_taken(web):
    policy = FetchPolicy(any_address=False, allow=("10.0.0.0/8",))
    assert policy.allowed("10.9.8.7") and not policy.allowed("192.168.1.1")
    with fetch_policy(SERVER), pytest.raises(Refused, match="non-public address"):
        fetch(f"{web}/feed.xml")
    with fetch_policy(LOOPBACK):
        assert fetch(f"{web}/feed.xml") == FEED


def test_every_redirect_hop_is_checked_again(web):
    with fetch_policy(LOOPBACK):
        assert fetch(f"{web}/to-feed") == FEED
        with pytest.raises(Refused, match="non-public address"):
            fetch(f"{web}/to-other-loopback")
        with pytest.raises(OSError, match="more than 5 redirects"):
            fetch(f"{web}/loop")


def test_only_http_and_https(web):
    with fetch_policy(LOOPBACK):
        for url in ("ftp://127.0.0.1/x", "file:///etc/passwd", "gopher://127.0.0.1/"):
            with pytest.raises(Refused, match="only http and https"):
                fetch(url)


def test_size_and_time_limits(web):
    small = FetchPolicy(any_address=False, allow=("127.0.0.0/8",), max_bytes=100_000)
    with fetch_policy(small), pytest.raises(TooLarge, match="larger than 100000 bytes"):
        fetch(f"{web}/big")
    hasty = FetchPolicy(any_address=False, allow=("127.0.0.0/8",), timeout=0.3)
    with fetch_policy(hasty), pytest.raises(TimeoutError):
        fetch(f"{web}/slow")


def test_local_paths_are_for_the_cli_only(tmp_path):
    feed = tmp_path / "f.xml"
    feed.write_bytes(FEED)
    assert read_local(str(feed)) == FEED and read_local(f"file://{feed}") == FEED
    messages = set()
    with fetch_policy(SERVER):
        for source in (str(feed), f"file://{feed}", "/no/such/file", "/etc/passwd"):
            with pytest.raises(Refused) as refused:
                read_local(source)
            messages.add(str(refused.value))
    assert len(messages) == 1  # the same answer whether the file exists or not


def test_opml_outlines_under_the_server_policy(tmp_path, web):
    feed = tmp_path / "f.xml"
    feed.write_bytes(FEED)
    opml = tmp_path / "subs.opml"
    opml.write_text('<?xml version="1.0"?><opml version="2.0"><body>'
                    f'<outline text="a" type="rss" xmlUrl="{feed}"/>'
                    f'<outline text="b" type="rss" xmlUrl="{web}/feed.xml"/>'
                    '</body></opml>')
    store = Store(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        with fetch_policy(SERVER):
            report = ingest_feeds(store, [str(opml)])
        assert report.added == 0 and report.failed == 2
        assert [p.location for p in report.problems] == ["outline", "fetch"]
        cli = ingest_feeds(store, [str(opml)])  # the CLI reads both: two shows, one episode
        assert (cli.added, cli.updated, cli.failed) == (3, 1, 0)
    finally:
        store.close()


def test_fetch_keys_are_configured_and_checked(tmp_path):
    path = tmp_path / "podrec.toml"
    path.write_text('[server]\nfetch_allow = ["10.0.0.0/8", "fd00::/8"]\n'
                    'fetch_max_bytes = 1000\nfetch_timeout = 5\nfetch_max_redirects = 2\n')
    policy = server_policy(load_config(path, env={}).server)
    assert policy.allow == ("10.0.0.0/8", "fd00::/8") and policy.max_bytes == 1000
    assert (policy.timeout, policy.max_redirects, policy.local_paths) == (5.0, 2, False)
    path.write_text('[server]\nfetch_allow = ["intranet"]\n')
    with pytest.raises(ConfigError, match="server.fetch_allow: expected IP networks"):
        load_config(path, env={})
