"""Reading sources from the web, and telling a file's format from its name and first bytes.

One place for what the CLI's feed ingest and the REST API's ingest (uploads and URLs) both
need: the HTTP fetch (with podrec's User-Agent and a size limit), the suffixes of catalog,
feed and OPML files, the suffix of a file whose name says nothing (sniffed from its first
bytes or the server's Content-Type), and the check of a requested format.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from podrec.ingest.datasets import FORMATS
from podrec.records import IngestReport

USER_AGENT = "podrec/0.1 (+https://github.com/podrec)"
CATALOG_SUFFIXES = {".csv", ".tsv", ".dat", ".jsonl", ".ndjson", ".json"}
FEED_SUFFIXES = {".xml", ".rss", ".atom", ".feed"}
OPML_SUFFIXES = {".opml"}
SOURCE_FORMATS = ("feed", "opml")  # besides the catalog formats of ingest/datasets.py


class TooLarge(ValueError):
    """A download past its size limit."""


class Refused(OSError):
    """A fetch the policy does not allow; the message says why, naming no server file."""


@dataclass(frozen=True)
class FetchPolicy:
    """What a fetch may reach. The CLI's default reaches anything, local paths included;
    the server's (``server_policy``) only http(s) on public addresses and the networks the
    operator allows, each redirect hop checked again, within a size and time limit."""

    local_paths: bool = True  # OPML outlines that are paths or file:// URLs
    any_address: bool = True  # False: loopback, private, link-local ... refused
    allow: tuple[str, ...] = ()  # networks allowed all the same ("10.0.0.0/8")
    max_bytes: int | None = None
    timeout: float = 20.0  # seconds for the whole download, redirects included
    max_redirects: int = 5

    def allowed(self, address: str) -> bool:
        """Whether a resolved address may be connected to."""
        if self.any_address:
            return True
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in ipaddress.ip_network(net, strict=False) for net in self.allow):
            return True
        return ip.is_global and not ip.is_multicast


def server_policy(server: Any) -> FetchPolicy:
    """The policy of ``podrec serve`` from its ``[server]`` configuration."""
    return FetchPolicy(local_paths=False, any_address=False, allow=tuple(server.fetch_allow),
                       max_bytes=server.fetch_max_bytes, timeout=server.fetch_timeout,
                       max_redirects=server.fetch_max_redirects)


CLI_POLICY = FetchPolicy()
_POLICY: ContextVar[FetchPolicy | None] = ContextVar("podrec_fetch_policy", default=None)


@contextmanager
def fetch_policy(policy: FetchPolicy) -> Iterator[FetchPolicy]:
    """Every fetch in this thread (or task) under ``policy`` until the block ends."""
    token = _POLICY.set(policy)
    try:
        yield policy
    finally:
        _POLICY.reset(token)


def current_policy() -> FetchPolicy:
    """The policy in force here: the CLI's unless a ``fetch_policy`` block set another."""
    return _POLICY.get() or CLI_POLICY


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def open_url(url: str, timeout: float | None = None, limit: int | None = None
             ) -> tuple[bytes, str]:
    """The body of ``url`` and its Content-Type, under the current policy: http(s) only,
    each hop's resolved address checked, redirects followed by hand. More than ``limit``
    (or the policy's) bytes: ``TooLarge``. Network, HTTP and policy errors are OSErrors."""
    policy = current_policy()
    limit = min(x for x in (limit, policy.max_bytes) if x is not None) \
        if limit is not None or policy.max_bytes is not None else None
    deadline = time.monotonic() + (timeout if timeout is not None else policy.timeout)
    for _hop in range(policy.max_redirects + 1):
        status, headers, body = _get(url, policy, deadline, limit)
        if status in (301, 302, 303, 307, 308) and headers.get("location"):
            url = urljoin(url, headers["location"])
            continue
        if not 200 <= status < 300:
            raise OSError(f"HTTP Error {status}: {headers.get(':reason', '')}".strip())
        return body, headers.get("content-type", "")
    raise OSError(f"more than {policy.max_redirects} redirects")


def _get(url: str, policy: FetchPolicy, deadline: float, limit: int | None
         ) -> tuple[int, dict[str, str], bytes]:
    """One GET, to an address the policy allows (the connection goes to the address that
    was checked, so a second DNS answer cannot swap it)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused(f"only http and https URLs are fetched, not {parts.scheme or 'this'!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = _resolve(parts.hostname, port, policy)
    remaining = max(0.1, deadline - time.monotonic())
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = _PinnedHTTPS(parts.hostname, port, address, timeout=remaining)
    else:
        conn = http.client.HTTPConnection(address, port, timeout=remaining)
    try:
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("GET", path, headers={"Host": parts.netloc.rsplit("@", 1)[-1],
                                           "User-Agent": USER_AGENT, "Accept": "*/*"})
        response = conn.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        headers[":reason"] = response.reason
        body = b"" if response.status in (301, 302, 303, 307, 308) else \
            _read(response, deadline, limit)
        return response.status, headers, body
    except TooLarge:
        raise
    except (http.client.HTTPException, ValueError) as exc:
        raise OSError(f"bad HTTP response: {exc}") from None
    finally:
        conn.close()


def _resolve(host: str, port: int, policy: FetchPolicy) -> str:
    """The address to connect to; every address the name resolves to must be allowed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OSError(f"cannot resolve the host: {exc}") from None
    addresses = [str(info[4][0]) for info in infos]
    if not addresses or not all(policy.allowed(a) for a in addresses):
        raise Refused("the host resolves to a loopback, private, link-local or otherwise "
                      "non-public address, which the server does not fetch (an operator "
                      "can allow its network in server.fetch_allow)")
    return addresses[0]


def _read(response: http.client.HTTPResponse, deadline: float, limit: int | None) -> bytes:
    chunks, size = [], 0
    while chunk := response.read1(65536):
        chunks.append(chunk)
        size += len(chunk)
        if limit is not None and size > limit:
            raise TooLarge(f"larger than {limit} bytes")
        if time.monotonic() > deadline:
            raise TimeoutError("the download took longer than its time limit")
    return b"".join(chunks)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a checked address, with the certificate checked for the host name."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def fetch(url: str, timeout: float | None = None) -> bytes:
    """The body of ``url`` (a feed or OPML list): ``OSError`` when it cannot be read."""
    return open_url(url, timeout)[0]


def read_local(source: str) -> bytes:
    """A local path or file:// URL named inside a document (an OPML outline): read for the
    CLI; refused under a policy without local paths, before anything is looked at, so the
    answer says nothing about which files exist."""
    if not current_policy().local_paths:
        raise Refused("local paths and file:// URLs are not read by the server; "
                      "expected an http(s) URL")
    if source.startswith("file://"):
        source = unquote(urlsplit(source).path)
    return Path(source).read_bytes()


def sniff_suffix(head: bytes) -> str:
    """A file suffix from the first bytes: XML (a feed, or OPML), JSON, JSON lines, else CSV."""
    text = head.lstrip()[:2000].lower()
    if text.startswith(b"<"):
        return ".opml" if b"<opml" in text else ".xml"
    if text.startswith(b"["):
        return ".json"
    if text.startswith(b"{"):
        return ".jsonl"
    return ".csv"


def check_format(fmt: str | None) -> str | None:
    """``fmt`` stripped (None when empty) if it is feed, opml or a catalog format; else
    ``ValueError`` saying what is expected."""
    fmt = (fmt or "").strip() or None
    if fmt is not None and fmt not in FORMATS and fmt not in SOURCE_FORMATS:
        raise ValueError(f"expected feed, opml or a catalog format ({', '.join(FORMATS)}), "
                         f"got {fmt!r}")
    return fmt


def upload_suffix(name: str, fmt: str | None, head: bytes) -> str:
    """The suffix to store an uploaded file under: the format's when one is given, else its
    name's when known, else sniffed from its first bytes."""
    suffix = Path(name).suffix.lower()
    if fmt == "opml":
        return ".opml"
    if fmt == "feed":
        return suffix if suffix in FEED_SUFFIXES else ".xml"
    if suffix not in CATALOG_SUFFIXES | FEED_SUFFIXES | OPML_SUFFIXES:
        return sniff_suffix(head)
    return suffix


def is_feed_file(path: Path, fmt: str | None) -> bool:
    """Whether ``path`` goes to feed ingest (a feed or OPML list) rather than catalog ingest."""
    return fmt in SOURCE_FORMATS or (fmt is None and path.suffix in FEED_SUFFIXES
                                     | OPML_SUFFIXES)


def download(url: str, dest_dir: Path, limit: int, report: IngestReport,
             suffix: str | None = None) -> Path | None:
    """``url`` saved in ``dest_dir`` under ``suffix`` (default: the URL's when it names a
    catalog file, else from the Content-Type or the first bytes). A failure is reported
    on ``report`` (location ``fetch``) and gives None."""
    try:
        data, ctype = open_url(url, limit=limit)
    except TooLarge as exc:
        report.fail(url, "fetch", None, f"{exc} (server.max_upload_bytes, "
                    "server.fetch_max_bytes)")
        return None
    except (OSError, ValueError) as exc:
        report.fail(url, "fetch", None, f"cannot read: {exc}")
        return None
    if suffix is None:
        suffix = Path(urllib.request.urlparse(url).path).suffix.lower()
        if suffix not in CATALOG_SUFFIXES:
            suffix = (".csv" if "csv" in ctype else ".json" if "json" in ctype
                      else sniff_suffix(data[:2000]))
    path = dest_dir / f"download{suffix}"
    path.write_bytes(data)
    return path
