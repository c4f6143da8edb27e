"""OPML ingest: feeds per second at 1,000 and 10,000 outlines, so its cost is seen to grow
linearly with the list (each outline costs the same, however many are stored).

Every outline is a small feed (one show, three episodes) served by a local http.server on
loopback (``--mode http``, the default) or read from a file path (``--mode file``), ingested
into a fresh SQLite file as ``podrec ingest feeds list.opml`` does, then ingested again (all
already stored: nothing is fetched). Run from the repository root:
``python benchmarks/bench_opml.py [--sizes 1000,10000] [--mode http|file]``.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from podrec.ingest.pipeline import ingest_feeds
from podrec.storage import Store

FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"><channel>
<title>Show {n}</title><link>https://example.com/show/{n}</link>
<itunes:author>Host {n}</itunes:author><description>A show about topic {n}.</description>
{items}</channel></rss>
"""
ITEM = """<item><title>Episode {e} of show {n}</title><guid>show-{n}-ep-{e}</guid>
<enclosure url="https://cdn.example.com/{n}/{e}.mp3" type="audio/mpeg" length="1"/>
<itunes:duration>{e}0:00</itunes:duration><pubDate>Fri, 05 Jan 2024 10:00:00 +0000</pubDate>
</item>
"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # no line per request
        pass


def write_feeds(folder: Path, count: int, base: str) -> Path:
    """``count`` feed files in ``folder`` and an OPML list of them under ``base``."""
    outlines = []
    for n in range(count):
        items = "".join(ITEM.format(n=n, e=e) for e in range(1, 4))
        (folder / f"f{n}.xml").write_text(FEED.format(n=n, items=items), encoding="utf-8")
        url = f"{base}/f{n}.xml" if base else str(folder / f"f{n}.xml")
        outlines.append(f'<outline text="Show {n}" type="rss" xmlUrl="{url}"/>')
    opml = folder / "list.opml"
    opml.write_text('<?xml version="1.0"?><opml version="2.0"><body>'
                    + "\n".join(outlines) + "</body></opml>", encoding="utf-8")
    return opml


def run(count: int, mode: str) -> tuple[float, float]:
    """Seconds to ingest ``count`` outlines into a fresh store, and to ingest them again."""
    with tempfile.TemporaryDirectory(prefix="bench-opml-") as tmp:
        folder = Path(tmp)
        (folder / "feeds").mkdir()
        server = None
        base = ""
        if mode == "http":
            handler = partial(_Quiet, directory=str(folder / "feeds"))
            server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            base = f"http://127.0.0.1:{server.server_address[1]}"
        opml = write_feeds(folder / "feeds", count, base)
        store = Store(f"sqlite:///{folder / 'bench.db'}")
        try:
            start = time.perf_counter()
            report = ingest_feeds(store, [str(opml)])
            first = time.perf_counter() - start
            assert report.added == 4 * count and report.failed == 0, report.summary()
            start = time.perf_counter()
            ingest_feeds(store, [str(opml)])
            again = time.perf_counter() - start
        finally:
            store.close()
            if server is not None:
                server.shutdown()
    return first, again


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--mode", choices=("http", "file"), default="http")
    args = parser.parse_args()
    print(f"OPML ingest ({args.mode}), one show and three episodes per outline")
    print(f"{'outlines':>9} {'seconds':>9} {'feeds/s':>9} {'again s':>9} {'again feeds/s':>14}")
    for count in (int(s) for s in args.sizes.split(",")):
        first, again = run(count, args.mode)
        print(f"{count:>9} {first:>9.1f} {count / first:>9.1f} {again:>9.2f} "
              f"{count / again:>14.0f}")


if __name__ == "__main__":
    main()
