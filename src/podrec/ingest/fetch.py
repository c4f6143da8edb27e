"""Reading sources from the web, and telling a file's format from its name and first bytes.

One place for what the CLI's feed ingest and the REST API's ingest (uploads and URLs) both
need: the HTTP fetch (with podrec's User-Agent and a size limit), the suffixes of catalog,
feed and OPML files, the suffix of a file whose name says nothing (sniffed from its first
bytes or the server's Content-Type), and the check of a requested format.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path

from podrec.ingest.datasets import FORMATS
from podrec.records import IngestReport

USER_AGENT = "podrec/0.1 (+https://github.com/podrec)"
CATALOG_SUFFIXES = {".csv", ".tsv", ".dat", ".jsonl", ".ndjson", ".json"}
FEED_SUFFIXES = {".xml", ".rss", ".atom", ".feed"}
OPML_SUFFIXES = {".opml"}
SOURCE_FORMATS = ("feed", "opml")  # besides the catalog formats of ingest/datasets.py


class TooLarge(ValueError):
    """A download past its size limit."""


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def open_url(url: str, timeout: float = 20.0, limit: int | None = None
             ) -> tuple[bytes, str]:
    """The body of ``url`` and its Content-Type. More than ``limit`` bytes: ``TooLarge``.
    Network and HTTP errors are ``OSError``s (``URLError``, ``HTTPError``)."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s)
        data = response.read() if limit is None else response.read(limit + 1)
        ctype = response.headers.get("Content-Type", "")
    if limit is not None and len(data) > limit:
        raise TooLarge(f"larger than {limit} bytes")
    return data, ctype


def fetch(url: str, timeout: float = 20.0) -> bytes:
    """The body of ``url`` (a feed or OPML list): ``OSError`` when it cannot be read."""
    return open_url(url, timeout)[0]


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
        data, ctype = open_url(url, timeout=30, limit=limit)
    except TooLarge:
        report.fail(url, "fetch", None, f"larger than {limit} bytes (server.max_upload_bytes)")
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
