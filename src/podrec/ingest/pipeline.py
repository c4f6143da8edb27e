"""Ingest jobs: read sources, fill in what is missing (language), write to the store."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from podrec.ingest.datasets import read_catalog
from podrec.ingest.events import read_events
from podrec.ingest.feeds import expand_sources, parse_feed, parse_opml, read_source
from podrec.ingest.language import LanguageDetector
from podrec.records import EventRecord, IngestReport, ItemRecord
from podrec.storage import Store
from podrec.storage.bulk import import_events


def with_language(records: Iterable[ItemRecord],
                  detector: LanguageDetector | None) -> Iterator[ItemRecord]:
    """Detect the language of records that do not declare one."""
    for rec in records:
        if rec.language is None and detector is not None:
            rec.language = detector.detect(f"{rec.title}. {rec.description[:600]}")
        yield rec


def ingest_catalog(store: Store, path: Path, fmt: str | None = None,
                   detector: LanguageDetector | None = None) -> IngestReport:
    report = IngestReport()
    if not path.is_file():
        report.fail(str(path), "file", None, "no such file")
        return report
    store.upsert_items(with_language(read_catalog(path, report, fmt), detector), report)
    return report


def ingest_feeds(store: Store, sources: list[str], detector: LanguageDetector | None = None,
                 user_id: str | None = None) -> IngestReport:
    """Ingest feeds (files, folders, URLs, OPML lists); with ``user_id``, OPML outlines become
    that listener's subscriptions (matched to stored shows by feed URL, then by title)."""
    report = IngestReport()
    subscriptions = []
    known = store.item_matcher()  # read once: each feed then costs the same
    for kind, src in expand_sources(sources, report):
        data = read_source(src, report)
        if data is None:
            continue
        if kind == "opml":
            subs = parse_opml(data, src, report)
            subscriptions.extend(subs)
            for sub in subs:
                if known.has_feed(sub.url):
                    continue  # already stored: nothing to fetch
                feed = read_source(sub.url, report, outline=True)
                if feed is not None:
                    store.upsert_items(with_language(
                        parse_feed(feed, sub.url, report, feed_url=sub.url), detector), report,
                        known)
        else:
            feed_url = src if src.startswith(("http://", "https://")) else None
            store.upsert_items(with_language(parse_feed(data, src, report, feed_url=feed_url),
                                             detector), report, known)
    if user_id and subscriptions:
        now = datetime.now(UTC)
        events = []
        for sub in subscriptions:
            show = store.find_show(feed_url=sub.url, title=sub.title)
            if show is None:
                report.fail(sub.url, "outline", "xmlUrl",
                            f"subscription {sub.title!r} matches no stored show")
                continue
            events.append(EventRecord(user_id=user_id, event="subscribe", timestamp=now,
                                      item_id=show.id, item_kind="show", platform="opml"))
        # Subscribing is a state: the same subscription imported twice is stored once.
        stored = {(e.item_id, e.event) for e in store.user_events(user_id)}
        store.add_events([e for e in events if (e.item_id, e.event) not in stored])
    return report


def ingest_events(store: Store, path: Path, fmt: str | None = None,
                  bulk: bool = True) -> IngestReport:
    """A file of events; ``bulk`` (the default) writes it in large transactions
    (storage/bulk.py: COPY on PostgreSQL), else 500 events a transaction (``add_events``)."""
    report = IngestReport()
    if not path.is_file():
        report.fail(str(path), "file", None, "no such file")
        return report
    if bulk:
        import_events(store, read_events(path, report, fmt), report)
    else:
        store.add_events(read_events(path, report, fmt), report)
    return report
