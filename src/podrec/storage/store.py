"""The store: every read and write of podrec's data goes through here.

Writes happen in chunks, each in one transaction, so an interrupted ingest leaves whole chunks
behind and a re-run finishes the job (ingest is idempotent: items are matched by id, feed URL,
GUID, enclosure URL or normalised title + author before anything is inserted). Every write
goes through ``Store._write`` (storage/retry.py): a transaction another writer got in the way
of is run again, so processes writing one database at once neither fail nor lose rows.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import re
import secrets
import threading
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import numpy as np
from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    literal_column,
    select,
    update,
)
from sqlalchemy import text as sql_text
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError, StatementError

from podrec.privacy.ids import ListenerIds
from podrec.records import EventRecord, IngestReport, Item, ItemRecord
from podrec.storage import schema
from podrec.storage.blobs import CHUNK as BLOB_CHUNK
from podrec.storage.blobs import SqliteBlob, pieced_reader
from podrec.storage.retry import WriteGaveUp, run_write

T = TypeVar("T")

# Store.listener_version: the listener's person, and the count and newest key of the events of
# every account of that person (just the listener's own when they have none).
_LISTENER_VERSION = sql_text(
    "SELECT u.person_id, agg.n, agg.newest FROM users u, "
    "(SELECT count(*) AS n, max(pk) AS newest FROM events WHERE user_id IN "
    "(SELECT CAST(:uid AS VARCHAR(256)) UNION SELECT id FROM users WHERE person_id = "
    "(SELECT person_id FROM users WHERE id = :uid))) AS agg WHERE u.id = :uid")

# A listener's events and those of every account linked to them, oldest first: the read of
# every computed list, so it runs as plain SQL on the thread's held connection and its rows are
# converted here (SQLAlchemy's per-execute and per-row type processing cost ~6x the query).
_USER_EVENTS = sql_text(
    "SELECT user_id, event, timestamp, item_id, item_kind, value, text, platform, device, "
    "context FROM events WHERE user_id IN (SELECT CAST(:uid AS VARCHAR(256)) UNION SELECT id "
    "FROM users WHERE person_id = (SELECT person_id FROM users WHERE id = :uid)) "
    "ORDER BY timestamp, pk")

CHUNK = 500
# An artefact's payload is stored in parts of this many bytes (both databases refuse one value
# over 1 GB; at 1M episodes the trained model was 2.1 GB and the HNSW index 1.7 GB).
ARTIFACT_PART_BYTES = 256 << 20
VECTOR_ROWS = 8192  # stored vectors read at a time (load_vectors)


class _RaisedAnyway(logging.Filter):
    """psycopg warns "error ignored terminating <Pipeline>: pipeline aborted" when a
    statement of a pipelined batch fails (a key another writer took meanwhile); the error
    itself reaches the store, which handles it. The warning is not shown to the operator."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("error ignored terminating <psycopg.Pipeline")


logging.getLogger("psycopg").addFilter(_RaisedAnyway())
API_SCOPES = ("admin", "client")
_ITEM_FIELDS = [f.name for f in fields(ItemRecord)]


class StoreError(RuntimeError):
    """The database cannot be reached or used; the message says which and why."""


def _stored_event(row: Any, mark: Any) -> EventRecord:
    """An ``EventRecord`` from a row of ``_USER_EVENTS``: SQLite gives the time as text and
    the context as JSON text, PostgreSQL as a datetime and a dict."""
    ts, ctx = row[2], row[9]
    if isinstance(ts, str):  # SQLite: naive, in UTC; parsed with its zone (replace costs 4x)
        try:
            ts = datetime.fromisoformat(ts + "+00:00")
        except ValueError:  # written with a zone of its own
            ts = datetime.fromisoformat(ts)
    if ts.tzinfo is not UTC:  # _utc, inline
        ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    if isinstance(ctx, str):
        ctx = json.loads(ctx) if ctx not in ("{}", "null") else {}
    if type(ctx) is not dict or row[9] is ctx:  # the record owns a dict of its own
        ctx = dict(ctx or {})
    return EventRecord(mark(row[0]), row[1], ts, row[3], row[4], row[5], row[6], row[7],
                       row[8], ctx)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def normalise_key(*parts: str | None) -> str:
    """Lower-case, accent-free, punctuation-free join: 'The Daily!' and 'the daily' match."""
    out = []
    for part in parts:
        text = unicodedata.normalize("NFKC", part or "").casefold()
        text = re.sub(r"[^\w]+", " ", text).strip()
        out.append(text)
    return "|".join(out)[:512]


def dedupe_key_of(record: ItemRecord) -> str:
    if record.kind == "episode":
        return normalise_key(record.show_id, record.title)
    return normalise_key(record.title, record.author)


def _matchable(norm: str) -> bool:
    """A show is matched by title + author only when both are known: two films called
    'Hamlet (2000)' with no author given are two films."""
    return all(part for part in norm.split("|"))


@dataclass
class _Known:
    """In-memory lookups of what is stored, for matching a batch without a query per record."""

    by_id: dict[tuple[str, str], tuple[int, str]]
    by_feed: dict[str, int]
    by_guid: dict[str, int]
    by_audio: dict[str, tuple[int, str | None]]
    by_norm: dict[tuple[str, str], int]

    def has_feed(self, feed_url: str) -> bool:
        """Whether a show with this feed URL is stored."""
        return feed_url in self.by_feed

    def match(self, rec: ItemRecord, norm: str) -> int | None:
        """The pk of a stored item that is the same as ``rec`` under another id, if any."""
        if rec.kind == "show" and rec.feed_url and rec.feed_url in self.by_feed:
            return self.by_feed[rec.feed_url]
        if rec.kind == "episode":
            if rec.guid and rec.guid in self.by_guid:
                return self.by_guid[rec.guid]
            if rec.audio_url and rec.audio_url in self.by_audio:
                pk, guid = self.by_audio[rec.audio_url]
                # Two different GUIDs are two episodes, even on one (placeholder) enclosure.
                if rec.guid is None or guid is None:
                    return pk
        if _matchable(norm) and (rec.kind, norm) in self.by_norm:
            return self.by_norm[(rec.kind, norm)]
        return None

    def remember(self, rec: ItemRecord, pk: int, chash: str, norm: str,
                 undo: _Undo | None = None) -> None:
        """Learn a stored (or about to be stored) item; with ``undo``, so it can be forgotten
        again if its transaction does not commit."""
        self.set(self.by_id, (rec.kind, rec.id), (pk, chash), undo)
        if rec.feed_url and rec.kind == "show":
            self.set(self.by_feed, rec.feed_url, pk, undo, keep=True)
        if rec.guid and rec.kind == "episode":
            self.set(self.by_guid, rec.guid, pk, undo, keep=True)
        if rec.audio_url and rec.kind == "episode":
            self.set(self.by_audio, rec.audio_url, (pk, rec.guid), undo, keep=True)
        if _matchable(norm):
            self.set(self.by_norm, (rec.kind, norm), pk, undo, keep=True)

    @staticmethod
    def set(table: dict[Any, Any], key: Any, value: Any, undo: _Undo | None,
            keep: bool = False) -> None:
        """``table[key] = value`` (with ``keep``: only when absent), noting the old state."""
        if keep and key in table:
            return
        if undo is not None:
            undo.append((table, key, table.get(key, _ABSENT)))
        table[key] = value


_ABSENT = object()
_Undo = list[tuple[dict[Any, Any], Any, Any]]


def _roll_back(undo: _Undo) -> None:
    """Put a ``_Known`` back as it was before the changes noted in ``undo``."""
    for table, key, old in reversed(undo):
        if old is _ABSENT:
            table.pop(key, None)
        else:
            table[key] = old
    undo.clear()


@dataclass
class _ChunkPlan:
    """What one chunk of items will write, planned against what is known to be stored."""

    inserts: list[tuple[ItemRecord, dict[str, Any]]]
    updates: list[dict[str, Any]]
    counts: IngestReport
    undo: _Undo


class Store:
    """A podrec database (SQLite file or PostgreSQL URL), migrated to the current schema.

    ``id_key`` (``privacy.id_key``): every listener and person id that comes in is stored
    and looked up as its keyed hash (``podrec.privacy.ids``); empty: as given."""

    def __init__(self, url: str, migrate: bool = True, id_key: str = "") -> None:
        self.url = url
        self.ids = ListenerIds(id_key)
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(
                parents=True, exist_ok=True)
        try:
            self.engine: Engine = create_engine(url, future=True, pool_pre_ping=True)
            self._readers = threading.local()  # connections held per thread (_reader)
            self._readers_lock = threading.Lock()
            self._held: list[Connection] = []
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise StoreError(f"cannot open database {url!r}: {exc}") from None
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        if migrate:
            self.migrate()

    # -- schema ---------------------------------------------------------------------------
    def migrate(self) -> None:
        """Bring the schema to the newest revision (Alembic), creating it on a new database."""
        from podrec.storage.migrations import MigrationLockTimeout, upgrade

        try:
            upgrade(self.engine)
        except OperationalError as exc:
            raise StoreError(f"cannot use database {self.url!r}: {exc.orig}") from None
        except MigrationLockTimeout as exc:
            raise StoreError(f"cannot migrate database {self.url!r}: {exc}") from None

    def _write(self, write: Callable[[Connection], T],
               on_conflict: Callable[[], None] | None = None, what: str = "write") -> T:
        """Every write of the store: ``write(conn)`` in one transaction, run again when
        another writer got in the way (storage/retry.py); a database that stays busy is one
        clear ``StoreError``."""
        try:
            return run_write(self.engine, write, on_conflict, what=what)
        except WriteGaveUp as exc:
            raise StoreError(f"{exc} ({self.engine.url.render_as_string()!r})") from None

    def close(self) -> None:
        with self._readers_lock:
            held, self._held = self._held, []
        for conn in held:
            try:
                conn.close()
            except SQLAlchemyError:
                pass
        self.engine.dispose()

    # -- items ----------------------------------------------------------------------------
    def _known(self) -> _Known:
        t = schema.items
        known = _Known({}, {}, {}, {}, {})
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.pk, t.c.kind, t.c.id, t.c.content_hash, t.c.feed_url,
                                       t.c.guid, t.c.audio_url, t.c.norm_key))
            for pk, kind, id_, chash, feed, guid, audio, norm in rows:
                rec = ItemRecord(id=id_, title="", kind=kind, feed_url=feed, guid=guid,
                                 audio_url=audio)
                known.remember(rec, pk, chash, norm or "")
        return known

    def item_matcher(self) -> _Known:
        """What is stored, in memory, for matching: read once and handed to every
        ``upsert_items`` of one job (an OPML list of thousands of feeds) so each feed costs
        the same however many are stored. It learns what those calls write."""
        return self._known()

    def upsert_items(self, records: Iterable[ItemRecord],
                     report: IngestReport | None = None,
                     known: _Known | None = None) -> IngestReport:
        """Insert new items, update changed ones, skip unchanged ones and duplicates."""
        report = report or IngestReport()
        known = known if known is not None else self._known()
        batch: list[ItemRecord] = []
        for rec in records:
            batch.append(rec)
            if len(batch) >= CHUNK:
                self._write_chunk(batch, known, report)
                batch = []
        if batch:
            self._write_chunk(batch, known, report)
        return report

    def _write_chunk(self, batch: list[ItemRecord], known: _Known, report: IngestReport) -> None:
        plan = self._plan_chunk(batch, known)

        def plan_again() -> None:  # another writer stored some of these ids meanwhile
            nonlocal plan
            _roll_back(plan.undo)
            self._refresh_known(batch, known)
            plan = self._plan_chunk(batch, known)

        try:
            self._write(lambda conn: self._item_writes(conn, [row for _, row in plan.inserts],
                                                       plan.updates),
                        on_conflict=plan_again, what=f"a chunk of {len(batch)} items")
            inserts = plan.inserts
        except OperationalError:
            raise
        except StatementError:  # the database refused a record: find it, keep the rest
            inserts = self._items_one_by_one(plan.inserts, plan.updates, known, plan.counts)
        if inserts:  # learn the new row keys so later chunks can match against them
            self._learn_keys([rec for rec, _ in inserts], known)
        report.merge(plan.counts)

    def _plan_chunk(self, batch: list[ItemRecord], known: _Known) -> _ChunkPlan:
        """Sort a chunk into inserts, updates, unchanged records and duplicates. What it
        teaches ``known`` is noted, to be undone if the chunk is planned again."""
        now = datetime.now(UTC)
        inserts: list[tuple[ItemRecord, dict[str, Any]]] = []
        updates: list[dict[str, Any]] = []
        counts = IngestReport()
        undo: _Undo = []
        pending: dict[tuple[str, str], dict[str, Any]] = {}
        for rec in batch:
            chash = rec.content_hash()
            norm = dedupe_key_of(rec)
            row = {name: getattr(rec, name) for name in _ITEM_FIELDS}
            row.update(content_hash=chash, norm_key=norm, updated_at=now,
                       published=_utc(rec.published))
            key = (rec.kind, rec.id)
            if key in pending:  # the same id twice in one chunk: the later one wins
                pending[key].update(row)
                counts.duplicates += 1
                continue
            if key in known.by_id:
                pk, old_hash = known.by_id[key]
                if old_hash == chash:
                    counts.unchanged += 1
                    continue
                row["b_pk"] = pk
                updates.append(row)
                known.set(known.by_id, key, (pk, chash), undo)
                counts.updated += 1
                continue
            if known.match(rec, norm) is not None:
                counts.duplicates += 1
                continue
            row["created_at"] = now
            inserts.append((rec, row))
            pending[key] = row
            known.remember(rec, -1, chash, norm, undo)
            counts.added += 1
        return _ChunkPlan(inserts, updates, counts, undo)

    def _refresh_known(self, batch: list[ItemRecord], known: _Known) -> None:
        """Learn what is stored now under the ids of ``batch`` (another writer's rows)."""
        t = schema.items
        by_kind: dict[str, list[str]] = {}
        for rec in batch:
            by_kind.setdefault(rec.kind, []).append(rec.id)
        with self.engine.connect() as conn:
            for kind, ids in by_kind.items():
                rows = conn.execute(select(t.c.pk, t.c.id, t.c.content_hash, t.c.feed_url,
                                           t.c.guid, t.c.audio_url, t.c.norm_key)
                                    .where(and_(t.c.kind == kind, t.c.id.in_(ids))))
                for pk, id_, chash, feed, guid, audio, norm in rows:
                    known.remember(ItemRecord(id=id_, title="", kind=kind, feed_url=feed,
                                              guid=guid, audio_url=audio), pk, chash, norm or "")

    def _learn_keys(self, records: list[ItemRecord], known: _Known) -> None:
        """The row keys of just-inserted records, looked up by (kind, id): the unique
        index, so the cost does not grow with the table."""
        t = schema.items
        by_kind: dict[str, list[str]] = {}
        for rec in records:
            by_kind.setdefault(rec.kind, []).append(rec.id)
        with self.engine.connect() as conn:
            for kind, ids in by_kind.items():
                for i in range(0, len(ids), CHUNK):
                    rows = conn.execute(select(t.c.pk, t.c.id, t.c.content_hash).where(
                        and_(t.c.kind == kind, t.c.id.in_(ids[i:i + CHUNK]))))
                    for pk, id_, chash in rows:
                        if (kind, id_) in known.by_id:
                            known.by_id[(kind, id_)] = (pk, chash)

    @staticmethod
    def _item_writes(conn: Connection, inserts: list[dict[str, Any]],
                     updates: list[dict[str, Any]]) -> None:
        t = schema.items
        if inserts:
            conn.execute(t.insert(), inserts)
        if updates:
            values = {name: bindparam(name) for name in updates[0] if name != "b_pk"}
            conn.execute(update(t).where(t.c.pk == bindparam("b_pk")).values(values), updates)

    def _items_one_by_one(self, inserts: list[tuple[ItemRecord, dict[str, Any]]],
                          updates: list[dict[str, Any]], known: _Known,
                          counts: IngestReport) -> list[tuple[ItemRecord, dict[str, Any]]]:
        """A chunk the database refused, written record by record: only the records it
        refuses are lost (each reported), and the inserts that went in are returned."""
        kept = []
        for rec, row in inserts:
            if self._try_write(lambda c, row=row: self._item_writes(c, [row], []),
                               counts, f"{rec.kind} {rec.id[:80]!r}"):
                kept.append((rec, row))
            else:
                counts.added -= 1
                known.by_id.pop((rec.kind, rec.id), None)
        for row in updates:
            if not self._try_write(lambda c, row=row: self._item_writes(c, [], [row]),
                                   counts, f"{row['kind']} {row['id'][:80]!r}"):
                counts.updated -= 1
        return kept

    def _try_write(self, write: Any, report: IngestReport, what: str) -> bool:
        """Run ``write(conn)`` in its own transaction; a refusal is reported, not raised."""
        try:
            self._write(write, what=what)
            return True
        except OperationalError:
            raise
        except StatementError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:300]
            report.fail("database", what, None, f"refused by the database: {reason}")
            return False

    def _item_from_row(self, row: Any) -> Item:
        data = dict(row._mapping)
        for key in ("published", "created_at", "updated_at"):
            data[key] = _utc(data[key])
        data = {k: v for k, v in data.items() if k not in ("norm_key", "content_hash")}
        data["categories"] = list(data.get("categories") or [])
        data["extra"] = dict(data.get("extra") or {})
        return Item(**data)

    def get_item(self, item_id: str, kind: str | None = None) -> Item | None:
        """The item with this external id; a show wins over an episode with the same id."""
        t = schema.items
        q = select(t).where(t.c.id == item_id)
        if kind:
            q = q.where(t.c.kind == kind)
        with self.engine.connect() as conn:
            rows = conn.execute(q.order_by(t.c.kind.desc())).all()  # 'show' > 'episode'
        return self._item_from_row(rows[0]) if rows else None

    def find_show(self, feed_url: str | None = None, title: str | None = None) -> Item | None:
        """A stored show by feed URL, else by normalised title (an OPML outline's two clues)."""
        t = schema.items
        with self.engine.connect() as conn:
            if feed_url:
                row = conn.execute(select(t).where(and_(t.c.kind == "show",
                                                        t.c.feed_url == feed_url))).first()
                if row:
                    return self._item_from_row(row)
            if title:
                prefix = normalise_key(title) + "|"
                row = conn.execute(select(t).where(and_(t.c.kind == "show",
                                                        t.c.norm_key.startswith(prefix)))
                                   .order_by(t.c.popularity.desc().nulls_last())).first()
                if row:
                    return self._item_from_row(row)
        return None

    def items_by_pk(self, pks: Sequence[int]) -> dict[int, Item]:
        t = schema.items
        out: dict[int, Item] = {}
        pks = [int(p) for p in pks]
        with self.engine.connect() as conn:
            for i in range(0, len(pks), CHUNK):
                for row in conn.execute(select(t).where(t.c.pk.in_(pks[i:i + CHUNK]))):
                    item = self._item_from_row(row)
                    out[item.pk] = item
        return out

    def iter_items(self, kind: str | None = None, show_id: str | None = None,
                   tag: str | None = None, limit: int | None = None,
                   offset: int = 0) -> Iterator[Item]:
        t = schema.items
        q = select(t).order_by(t.c.pk)
        if kind:
            q = q.where(t.c.kind == kind)
        if show_id:
            q = q.where(t.c.show_id == show_id)
        if tag:
            q = q.where(t.c.pk.in_(select(schema.tags.c.item_pk).where(
                func.lower(schema.tags.c.tag) == tag.lower())))
        if limit is not None:
            q = q.limit(limit)
        if offset:
            q = q.offset(offset)
        with self.engine.connect() as conn:
            for row in conn.execute(q):
                yield self._item_from_row(row)

    def count_items(self) -> dict[str, int]:
        t = schema.items
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.kind, func.count()).group_by(t.c.kind)).all()
        return {kind: int(n) for kind, n in rows}

    def language_counts(self) -> dict[str, int]:
        t = schema.items
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.language, func.count()).group_by(t.c.language)
                                .order_by(func.count().desc())).all()
        return {lang or "unknown": int(n) for lang, n in rows}

    def count_users(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(schema.users)).scalar())

    # -- tags -----------------------------------------------------------------------------
    def replace_tags(self, tagged: dict[int, list[tuple[str, str, float]]],
                     sources: Sequence[str]) -> None:
        """Set the tags of the given items for the given sources, dropping their old ones."""
        self._write(lambda conn: self._replace_tags(conn, tagged, sources),
                    on_conflict=lambda: None, what=f"tags of {len(tagged)} items")

    @staticmethod
    def _replace_tags(conn: Connection, tagged: dict[int, list[tuple[str, str, float]]],
                      sources: Sequence[str]) -> None:
        t = schema.tags
        pks = list(tagged)
        for i in range(0, len(pks), CHUNK):
            conn.execute(delete(t).where(and_(t.c.item_pk.in_(pks[i:i + CHUNK]),
                                              t.c.source.in_(list(sources)))))
        rows = []
        for pk, entries in tagged.items():
            seen: set[tuple[str, str]] = set()
            for source, tag, score in entries:
                tag = tag.strip()[:200]
                if not tag or (source, tag) in seen:
                    continue
                seen.add((source, tag))
                rows.append({"item_pk": pk, "source": source, "tag": tag,
                             "score": float(score)})
        if rows:
            conn.execute(t.insert(), rows)

    def tags_for(self, pks: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
        t = schema.tags
        out: dict[int, list[dict[str, Any]]] = {int(p): [] for p in pks}
        pks = list(out)
        with self.engine.connect() as conn:
            for i in range(0, len(pks), CHUNK):
                q = (select(t.c.item_pk, t.c.source, t.c.tag, t.c.score)
                     .where(t.c.item_pk.in_(pks[i:i + CHUNK]))
                     .order_by(t.c.item_pk, t.c.source, t.c.score.desc()))
                for pk, source, tag, score in conn.execute(q):
                    out[pk].append({"tag": tag, "source": source, "score": round(score, 4)})
        return out

    def tagged_items(self, source: str) -> set[int]:
        """The keys of the items that have at least one tag from ``source``."""
        t = schema.tags
        with self.engine.connect() as conn:
            return set(conn.execute(select(t.c.item_pk).where(t.c.source == source)
                                    .distinct()).scalars())

    def tag_counts(self, source: str | None = None, limit: int = 50) -> list[tuple[str, int]]:
        t = schema.tags
        q = select(t.c.tag, func.count().label("n")).group_by(t.c.tag)
        if source:
            q = q.where(t.c.source == source)
        with self.engine.connect() as conn:
            rows = conn.execute(q.order_by(func.count().desc(), t.c.tag).limit(limit)).all()
        return [(tag, int(n)) for tag, n in rows]

    # -- embeddings -----------------------------------------------------------------------
    def embedding_hashes(self, model_id: str) -> dict[int, str]:
        t = schema.embeddings
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.item_pk, t.c.content_hash)
                                .where(t.c.model_id == model_id))
            return {pk: h for pk, h in rows}

    def vectors_for_hashes(self, model_id: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored vectors of these texts (by content hash): identical text is embedded once."""
        t = schema.embeddings
        out: dict[str, np.ndarray] = {}
        hashes = list(hashes)
        with self.engine.connect() as conn:
            for i in range(0, len(hashes), CHUNK):
                q = select(t.c.content_hash, t.c.vector).where(
                    and_(t.c.model_id == model_id, t.c.content_hash.in_(hashes[i:i + CHUNK])))
                for h, blob in conn.execute(q):
                    out[h] = np.frombuffer(blob, dtype=np.float32)
        return out

    def save_embeddings(self, model_id: str, rows: Sequence[tuple[int, str, np.ndarray]]) -> None:
        if rows:
            self._write(lambda conn: self._save_embeddings(conn, model_id, rows),
                        on_conflict=lambda: None, what=f"vectors of {len(rows)} items")

    def save_enrichment(self, model_id: str, rows: Sequence[tuple[int, str, np.ndarray]],
                        tagged: dict[int, list[tuple[str, str, float]]],
                        sources: Sequence[str]) -> None:
        """Items' vectors and their tags in one transaction: an enrich stopped at any point
        leaves each item either done (vector and tags) or not done (neither new), so a
        re-run, which looks for missing or stale vectors, finds every item left to do."""
        def write(conn: Connection) -> None:
            if rows:
                self._save_embeddings(conn, model_id, rows)
            self._replace_tags(conn, tagged, sources)

        self._write(write, on_conflict=lambda: None, what=f"vectors and tags of {len(rows)} items")

    @staticmethod
    def _save_embeddings(conn: Connection, model_id: str,
                         rows: Sequence[tuple[int, str, np.ndarray]]) -> None:
        t = schema.embeddings
        pks = [pk for pk, _, _ in rows]
        for i in range(0, len(pks), CHUNK):
            conn.execute(delete(t).where(and_(t.c.model_id == model_id,
                                              t.c.item_pk.in_(pks[i:i + CHUNK]))))
        conn.execute(t.insert(), [
            {"item_pk": pk, "model_id": model_id, "content_hash": h, "dim": int(v.shape[0]),
             "vector": np.asarray(v, dtype=np.float32).tobytes()} for pk, h, v in rows])

    def load_vectors(self, model_id: str, kind: str | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
        """(item pks, matrix) of every stored vector of one model, optionally of one kind."""
        e, t = schema.embeddings, schema.items
        q = select(e.c.item_pk, e.c.vector).where(e.c.model_id == model_id)
        if kind:
            q = q.join(t, t.c.pk == e.c.item_pk).where(t.c.kind == kind)
        # Read in blocks into one matrix, not every row fetched and then stacked (2.8x the
        # matrix at its peak: 147 MB of vectors at 100k peaked at 412 MB).
        pk_blocks: list[np.ndarray] = []
        vector_blocks: list[np.ndarray] = []
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=VECTOR_ROWS).execute(
                q.order_by(e.c.item_pk))
            for part in result.partitions():
                pk_blocks.append(np.fromiter((r[0] for r in part), np.int64, len(part)))
                vector_blocks.append(np.vstack([np.frombuffer(r[1], dtype=np.float32)
                                                for r in part]))
                del part
        if not pk_blocks:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        pks = np.concatenate(pk_blocks)
        matrix = np.empty((len(pks), vector_blocks[0].shape[1]), np.float32)
        at = 0
        while vector_blocks:  # each block let go once copied
            block = vector_blocks.pop(0)
            matrix[at:at + len(block)] = block
            at += len(block)
        return pks, matrix

    # -- users and events -----------------------------------------------------------------
    def add_events(self, records: Iterable[EventRecord],
                   report: IngestReport | None = None) -> IngestReport:
        """Store events (idempotent: an event already stored is skipped) and their users."""
        report = report or IngestReport()
        batch: list[EventRecord] = []
        stored = self.ids.stored
        for rec in records:
            if self.ids.enabled:
                rec = replace(rec, user_id=stored(rec.user_id))
            batch.append(rec)
            if len(batch) >= CHUNK:
                self._write_events(batch, report)
                batch = []
        if batch:
            self._write_events(batch, report)
        return report

    def _write_events(self, batch: list[EventRecord], report: IngestReport) -> None:
        keyed = {}
        for rec in batch:
            keyed.setdefault(rec.dedupe_key(), rec)
        report.unchanged += len(batch) - len(keyed)
        try:  # on a conflict the write runs again: it reads what is stored inside it
            added, unchanged = self._write(lambda conn: self._event_writes(conn, keyed),
                                           on_conflict=lambda: None,
                                           what=f"a chunk of {len(keyed)} events")
        except OperationalError:
            raise
        except StatementError:  # a record refused, or another writer stored one meanwhile
            added = unchanged = 0
            for key, rec in keyed.items():
                counts = [0, 0]

                def write(conn: Connection, key: str = key, rec: EventRecord = rec,
                          counts: list[int] = counts) -> None:
                    counts[:] = self._event_writes(conn, {key: rec})

                what = f"event of {rec.user_id[:80]!r} at {rec.timestamp.isoformat()}"
                if self._try_event(write, report, what, key):
                    added, unchanged = added + counts[0], unchanged + counts[1]
                else:
                    unchanged += int(self._event_stored(key))
        report.added += added
        report.unchanged += unchanged

    def _try_event(self, write: Any, report: IngestReport, what: str, key: str) -> bool:
        """One event in its own transaction; another writer's copy is no failure."""
        try:
            self._write(write, what=what)
            return True
        except IntegrityError:
            if self._event_stored(key):
                return False
            return self._try_write(write, report, what)
        except OperationalError:
            raise
        except StatementError:
            return self._try_write(write, report, what)

    def _event_stored(self, key: str) -> bool:
        ev = schema.events
        with self.engine.connect() as conn:
            return conn.execute(select(ev.c.pk).where(ev.c.dedupe_key == key)).first() \
                is not None

    def _event_writes(self, conn: Connection, keyed: dict[str, EventRecord]
                      ) -> tuple[int, int]:
        """Insert the events not yet stored and their new listeners: (added, unchanged)."""
        ev, us = schema.events, schema.users
        keys = list(keyed)
        stored = set(conn.execute(select(ev.c.dedupe_key)
                                  .where(ev.c.dedupe_key.in_(keys))).scalars())
        new = [(k, r) for k, r in keyed.items() if k not in stored]
        user_ids = sorted({r.user_id for _, r in new})
        have = set(conn.execute(select(us.c.id).where(us.c.id.in_(user_ids))).scalars())
        now = datetime.now(UTC)
        missing = [{"id": u, "created_at": now, "attrs": {}} for u in user_ids
                   if u not in have]
        if missing:  # another writer may create the same listener meanwhile: fine
            conn.execute(self._insert_ignoring_duplicates(us), missing)
        if new:
            conn.execute(ev.insert(), [
                {"user_id": r.user_id, "item_kind": r.item_kind, "item_id": r.item_id,
                 "event": r.event, "value": r.value, "text": r.text,
                 "timestamp": _utc(r.timestamp), "platform": r.platform,
                 "device": r.device, "context": r.context or {}, "dedupe_key": k}
                for k, r in new])
        return len(new), len(stored)

    def _insert_ignoring_duplicates(self, table: Any) -> Any:
        """INSERT ... ON CONFLICT DO NOTHING, in this database's dialect."""
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table).on_conflict_do_nothing()

    def user_events(self, user_id: str, linked: bool = True) -> list[EventRecord]:
        """A listener's events, oldest first; with ``linked`` those of every account linked
        to the same person too (one profile across platforms)."""
        ev = schema.events
        user_id = self.ids.stored(user_id)
        mark = self.ids.mark
        if linked:  # one statement: the account and every account of the same person
            conn = self._reader()
            try:
                found = conn.execute(_USER_EVENTS, {"uid": user_id}).all()
            except SQLAlchemyError:
                self._drop_reader()  # a broken connection: the next call opens a new one
                raise
            return [_stored_event(r, mark) for r in found]
        with self.engine.connect() as conn:
            rows = conn.execute(select(ev).where(ev.c.user_id == user_id)
                                .order_by(ev.c.timestamp, ev.c.pk)).all()
        return [EventRecord(user_id=mark(r.user_id), event=r.event,
                            timestamp=_utc(r.timestamp), item_id=r.item_id,
                            item_kind=r.item_kind, value=r.value, text=r.text,
                            platform=r.platform, device=r.device, context=dict(r.context or {}))
                for r in rows]

    def ensure_user(self, user_id: str) -> None:
        """Create a listener with no events yet (onboarding starts here)."""
        us = schema.users
        user_id = self.ids.stored(user_id)

        def write(conn: Connection) -> None:
            if conn.execute(select(us.c.pk).where(us.c.id == user_id)).first() is None:
                conn.execute(self._insert_ignoring_duplicates(us).values(
                    id=user_id, created_at=datetime.now(UTC), attrs={}))

        self._write(write, what="a listener")

    def link_users(self, user_ids: Sequence[str], person_id: str | None = None) -> str:
        """Link accounts into one person and return the person id. Accounts already linked
        bring their whole person along; unknown accounts are created."""
        us = schema.users
        ids = list(dict.fromkeys(self.ids.stored(u) for u in user_ids))
        if len(ids) < 1:
            raise ValueError("name at least one account to link")
        person_id = self.ids.stored_opt(person_id)
        for uid in ids:
            self.ensure_user(uid)

        def write(conn: Connection) -> str:
            current = conn.execute(select(us.c.id, us.c.person_id)
                                   .where(us.c.id.in_(ids))).all()
            persons = sorted({p for _, p in current if p})
            person = person_id or (persons[0] if persons else ids[0])
            members = set(ids)
            if persons:
                members |= set(conn.execute(select(us.c.id).where(us.c.person_id.in_(persons)))
                               .scalars())
            conn.execute(update(us).where(us.c.id.in_(sorted(members)))
                         .values(person_id=person))
            return person

        return self.ids.mark(self._write(write, what="linked accounts"))

    def unlink_user(self, user_id: str) -> None:
        us = schema.users
        user_id = self.ids.stored(user_id)
        self._write(lambda conn: conn.execute(update(us).where(us.c.id == user_id)
                                              .values(person_id=None)), what="an unlink")

    def linked_accounts(self, user_id: str) -> list[str]:
        """``user_id`` and every account linked to the same person (just ``user_id`` when
        unlinked or unknown)."""
        us = schema.users
        user_id = self.ids.stored(user_id)
        with self.engine.connect() as conn:
            person = conn.execute(select(us.c.person_id).where(us.c.id == user_id)).scalar()
            if not person:
                return [user_id]
            ids = list(conn.execute(select(us.c.id).where(us.c.person_id == person)
                                    .order_by(us.c.id)).scalars())
        return [self.ids.mark(i) for i in ids] or [user_id]

    def listener_version(self, user_id: str) -> tuple[str, int, int] | None:
        """A cheap fingerprint of everything stored that a listener's recommendations read:
        (person id, event count, newest event key) over the listener and every linked
        account; None for an unknown listener. Any new event, deleted account or change of
        links changes it, so a cached list keyed by it is never served stale.

        Servers ask this on every request, so it is one statement on a connection this
        thread keeps, in autocommit (no BEGIN/ROLLBACK or pool check-out round trips):
        about 30 us on SQLite, one round trip on PostgreSQL."""
        conn = self._reader()
        try:
            row = conn.execute(_LISTENER_VERSION, {"uid": self.ids.stored(user_id)}).first()
        except SQLAlchemyError:
            self._drop_reader()  # a broken connection: the next call opens a new one
            raise
        if row is None:
            return None
        return (self.ids.mark(row.person_id or ""), int(row.n), int(row.newest or 0))

    def _reader(self) -> Connection:
        conn = getattr(self._readers, "conn", None)
        if conn is None or conn.closed or conn.invalidated:
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._readers.conn = conn
            with self._readers_lock:
                self._held.append(conn)
        return conn

    def _drop_reader(self) -> None:
        conn = getattr(self._readers, "conn", None)
        self._readers.conn = None
        if conn is not None:
            with self._readers_lock:
                if conn in self._held:
                    self._held.remove(conn)
            try:
                conn.invalidate()
                conn.close()
            except SQLAlchemyError:
                pass

    def person_of(self, user_id: str) -> str | None:
        us = schema.users
        with self.engine.connect() as conn:
            person = conn.execute(select(us.c.person_id)
                                  .where(us.c.id == self.ids.stored(user_id))).scalar()
        return None if person is None else self.ids.mark(person)

    def export_user(self, user_id: str) -> dict[str, Any]:
        """Everything stored about one account: its record, links and every event."""
        us = schema.users
        user_id = self.ids.stored(user_id)
        with self.engine.connect() as conn:
            row = conn.execute(select(us).where(us.c.id == user_id)).first()
        if row is None:
            return {}
        return {"user_id": row.id, "created_at": _utc(row.created_at).isoformat(),
                "pseudonymised": self.ids.enabled,
                "person_id": row.person_id, "attrs": dict(row.attrs or {}),
                "linked_accounts": self.linked_accounts(user_id),
                "events": [e.to_dict() for e in self.user_events(user_id, linked=False)]}

    def delete_user(self, user_id: str) -> int:
        """Delete one account and all its events; returns how many events went."""
        return self.forget_user(user_id)["events"]

    def forget_user(self, user_id: str) -> dict[str, Any]:
        """Delete one account, every event it sent, and its id wherever another row holds
        it: linked accounts whose person id is this account's id get a new person id (the
        first remaining account's, or none when one account is left); texts generated for
        it (readings of its searches, reasons, summaries) go too. Trained models are
        scrubbed by ``podrec.privacy.forget``. On SQLite freed pages are zeroed
        (``secure_delete``) and the write-ahead log is checkpointed, so the file no longer
        holds the id. Returns the counts: events, relinked accounts, ``stored_id``."""
        us, ev = schema.users, schema.events
        user_id = self.ids.stored(user_id)

        g, o = schema.generations, schema.generation_owners

        def write(conn: Connection) -> tuple[int, list[str]]:
            n = conn.execute(delete(ev).where(ev.c.user_id == user_id)).rowcount
            written = select(o.c.key).where(o.c.user_id == user_id).scalar_subquery()
            conn.execute(delete(g).where(g.c.key.in_(written)))
            conn.execute(delete(o).where(o.c.user_id == user_id))
            conn.execute(delete(us).where(us.c.id == user_id))
            rest = sorted(conn.execute(select(us.c.id).where(us.c.person_id == user_id))
                          .scalars())
            if rest:  # the person was named after this account: rename it
                conn.execute(update(us).where(us.c.id.in_(rest))
                             .values(person_id=rest[0] if len(rest) > 1 else None))
            return int(n or 0), rest

        n, rest = self._write(write, what="a deleted listener")
        self.checkpoint()
        return {"events": n, "relinked": len(rest), "stored_id": user_id}

    def checkpoint(self) -> bool:
        """SQLite: copy the write-ahead log into the file and empty it (what was deleted is
        then in neither); True when the log was emptied. Other databases: True."""
        if self.engine.dialect.name != "sqlite":
            return True
        with self.engine.connect() as conn:
            busy = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").first()
        return busy is None or int(busy[0]) == 0

    def purge_events(self, before: datetime) -> dict[str, int]:
        """Delete every event older than ``before`` (retention); the counts of events and
        of listeners they belonged to. Listeners stay (with their remaining events)."""
        ev = schema.events
        cutoff = _utc(before)

        def write(conn: Connection) -> tuple[int, int]:
            users = conn.execute(select(func.count(func.distinct(ev.c.user_id)))
                                 .where(ev.c.timestamp < cutoff)).scalar()
            n = conn.execute(delete(ev).where(ev.c.timestamp < cutoff)).rowcount
            return int(n or 0), int(users or 0)

        n, users = self._write(write, what="purged events")
        if n:
            self.checkpoint()
        return {"events": n, "listeners": users}

    def user_exists(self, user_id: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(schema.users.c.pk).where(
                schema.users.c.id == self.ids.stored(user_id))).first() is not None

    def list_users(self) -> list[str]:
        """Every listener id as stored (keyed hashes when pseudonymised)."""
        with self.engine.connect() as conn:
            return [self.ids.mark(u) for u in conn.execute(
                select(schema.users.c.id).order_by(schema.users.c.id)).scalars()]

    # -- API keys -------------------------------------------------------------------------
    def create_api_key(self, name: str, scope: str) -> str:
        """A new key ``podrec_<key id>_<secret>``; only its sha256 is stored, so the key is
        shown once, here."""
        if scope not in API_SCOPES:
            raise ValueError(f"scope must be one of {', '.join(API_SCOPES)}, got {scope!r}")
        key_id = secrets.token_hex(6)
        key = f"podrec_{key_id}_{secrets.token_urlsafe(24)}"
        self._write(lambda conn: conn.execute(schema.api_keys.insert().values(
            key_id=key_id, name=name, scope=scope, key_hash=_key_hash(key),
            created_at=datetime.now(UTC), revoked_at=None)), what="an API key")
        return key

    def check_api_key(self, key: str) -> str | None:
        """The scope of a valid, unrevoked key, else None."""
        parts = key.split("_")
        if len(parts) < 3 or parts[0] != "podrec":
            return None
        t = schema.api_keys
        with self.engine.connect() as conn:
            row = conn.execute(select(t.c.key_hash, t.c.scope, t.c.revoked_at)
                               .where(t.c.key_id == parts[1])).first()
        if row is None or row.revoked_at is not None:
            return None
        return row.scope if hmac.compare_digest(row.key_hash, _key_hash(key)) else None

    def revoke_api_key(self, key_id: str) -> bool:
        """Revoke by key id (or the whole key); False when no such live key."""
        if key_id.startswith("podrec_"):
            key_id = key_id.split("_")[1]
        t = schema.api_keys
        n = self._write(lambda conn: conn.execute(
            update(t).where(and_(t.c.key_id == key_id, t.c.revoked_at.is_(None)))
            .values(revoked_at=datetime.now(UTC))).rowcount, what="a revocation")
        return bool(n)

    def list_api_keys(self) -> list[dict[str, Any]]:
        t = schema.api_keys
        with self.engine.connect() as conn:
            rows = conn.execute(select(t).order_by(t.c.created_at)).all()
        return [{"key_id": r.key_id, "name": r.name, "scope": r.scope,
                 "created_at": _utc(r.created_at).isoformat(),
                 "revoked_at": r.revoked_at and _utc(r.revoked_at).isoformat()} for r in rows]

    # -- generations (podrec/llm: outputs by input hash) -----------------------------------
    def get_generations(self, keys: Sequence[str]) -> dict[str, str]:
        """Stored outputs of the given input hashes (absent keys are left out)."""
        g = schema.generations
        out: dict[str, str] = {}
        keys = list(dict.fromkeys(keys))
        with self.engine.connect() as conn:
            for i in range(0, len(keys), CHUNK):
                rows = conn.execute(select(g.c.key, g.c.output)
                                    .where(g.c.key.in_(keys[i:i + CHUNK])))
                out.update({k: o for k, o in rows})
        return out

    def put_generation(self, key: str, model_id: str, task: str, output: str,
                       seconds: float) -> None:
        """Keep one output under its input hash (a second write of the same key replaces it)."""
        g = schema.generations

        def write(conn: Connection) -> None:
            conn.execute(delete(g).where(g.c.key == key))
            conn.execute(g.insert().values(key=key, model_id=model_id[:200], task=task[:32],
                                           output=output, seconds=float(seconds),
                                           created_at=datetime.now(UTC)))

        self._write(write, on_conflict=lambda: None, what="a generation")

    def own_generation(self, key: str, user_id: str) -> None:
        """Note that the generation ``key`` was written for ``user_id`` (their words or
        history are in it): ``forget_user`` deletes it with them."""
        o = schema.generation_owners
        user_id = self.ids.stored(user_id)

        def write(conn: Connection) -> None:
            if conn.execute(select(o.c.key).where(o.c.key == key, o.c.user_id == user_id)
                            ).first() is None:
                conn.execute(o.insert().values(key=key, user_id=user_id))

        self._write(write, on_conflict=lambda: None, what="a generation's listener")

    def count_generations(self, task: str | None = None) -> int:
        g = schema.generations
        q = select(func.count()).select_from(g)
        if task:
            q = q.where(g.c.task == task)
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar() or 0)

    # -- artefacts ------------------------------------------------------------------------
    def put_artifact(self, name: str, meta: dict[str, Any],
                     payload: bytes | memoryview | None = None) -> None:
        """Store (or replace) an artefact; a payload over ``ARTIFACT_PART_BYTES`` is kept in
        parts (both databases refuse one value over 1 GB), all in one transaction."""
        a, parts = schema.artifacts, schema.artifact_parts
        view = None if payload is None else memoryview(payload).cast("B")
        step = ARTIFACT_PART_BYTES

        def write(conn: Connection) -> None:
            conn.execute(delete(parts).where(parts.c.name == name))
            conn.execute(delete(a).where(a.c.name == name))
            first = None if view is None else \
                payload if isinstance(payload, bytes) and len(view) <= step else \
                bytes(view[:step])
            conn.execute(a.insert().values(name=name, created_at=datetime.now(UTC), meta=meta,
                                           payload=first))
            if view is not None:
                for n, start in enumerate(range(step, len(view), step), start=1):
                    conn.execute(parts.insert().values(name=name, part=n, payload=bytes(
                        view[start:start + step])))

        self._write(write, on_conflict=lambda: None, what=f"artefact {name!r}")

    def get_artifact(self, name: str) -> tuple[dict[str, Any], bytes | None] | None:
        a, parts = schema.artifacts, schema.artifact_parts
        with self.engine.connect() as conn:
            row = conn.execute(select(a.c.meta, a.c.payload).where(a.c.name == name)).first()
            if row is None:
                return None
            rest = conn.execute(select(parts.c.payload).where(parts.c.name == name)
                                .order_by(parts.c.part)).scalars().all()
        payload = row[1] if not rest or row[1] is None else b"".join([row[1], *rest])
        return dict(row[0]), payload

    @contextmanager
    def artifact_stream(self, name: str
                        ) -> Iterator[tuple[dict[str, Any], BinaryIO | None] | None]:
        """``get_artifact`` with the payload as a seekable stream read from the database a
        piece at a time (a 500 MB model is never held whole beside what is unpickled from
        it), across its parts: on SQLite in place, on PostgreSQL by ``substring`` in one
        repeatable-read transaction (one version of the value throughout). Valid inside the
        block only."""
        a, parts = schema.artifacts, schema.artifact_parts
        sqlite = self.engine.dialect.name == "sqlite"
        with self.engine.connect() as conn:
            if not sqlite:
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            rowid = literal_column("rowid")
            row = conn.execute(select(rowid if sqlite else a.c.name, a.c.meta,
                                      func.length(a.c.payload)).where(a.c.name == name)).first()
            if row is None or row[2] is None:
                yield None if row is None else (dict(row[1]), None)
                return
            rest = conn.execute(select(rowid if sqlite else parts.c.part,
                                       func.length(parts.c.payload))
                                .where(parts.c.name == name).order_by(parts.c.part)).all()
            on_close = None
            if sqlite:
                raw = conn.connection.driver_connection
                blobs = [SqliteBlob(raw, "artifacts", int(row[0]))]
                blobs += [SqliteBlob(raw, "artifact_parts", int(key)) for key, _ in rest]
                pieces: list[tuple[int, Callable[[int, int], bytes]]] = list(zip(
                    [int(row[2]), *(int(size) for _, size in rest)], blobs, strict=True))

                def on_close() -> None:
                    for blob in blobs:
                        blob.close()
            else:
                def read_main(offset: int, length: int) -> bytes:
                    return bytes(conn.execute(
                        select(func.substring(a.c.payload, offset + 1, length))
                        .where(a.c.name == name)).scalar_one())

                def read_part(part: int) -> Callable[[int, int], bytes]:
                    def read_at(offset: int, length: int) -> bytes:
                        return bytes(conn.execute(
                            select(func.substring(parts.c.payload, offset + 1, length))
                            .where(parts.c.name == name, parts.c.part == part)).scalar_one())
                    return read_at

                pieces = [(int(row[2]), read_main)]
                pieces += [(int(size), read_part(int(part))) for part, size in rest]
            reader = pieced_reader(pieces, on_close)
            with io.BufferedReader(reader, BLOB_CHUNK) as stream:
                yield dict(row[1]), stream

    def artifact_versions(self, prefix: str) -> list[tuple[str, datetime, dict[str, Any]]]:
        """(name, created, meta) of every artefact whose name starts with ``prefix``, newest
        first (versioned artefacts are named ``prefix`` + a sortable version)."""
        a = schema.artifacts
        with self.engine.connect() as conn:
            rows = conn.execute(select(a.c.name, a.c.created_at, a.c.meta)
                                .where(a.c.name.startswith(prefix, autoescape=True))
                                .order_by(a.c.name.desc())).all()
        return [(r.name, _utc(r.created_at), dict(r.meta or {})) for r in rows]

    def newest_artifact_name(self, prefix: str) -> str | None:
        """The newest versioned artefact's name under ``prefix`` (one indexed read)."""
        a = schema.artifacts
        with self.engine.connect() as conn:
            return conn.execute(select(func.max(a.c.name))
                                .where(a.c.name.startswith(prefix, autoescape=True))).scalar()

    def delete_artifact(self, name: str) -> None:
        a, parts = schema.artifacts, schema.artifact_parts

        def write(conn: Connection) -> None:
            conn.execute(delete(parts).where(parts.c.name == name))
            conn.execute(delete(a).where(a.c.name == name))

        self._write(write, what=f"deleting artefact {name!r}")

    def catalog_version(self) -> tuple[Any, ...]:
        """A cheap fingerprint of everything fitted models are built from: item count and
        newest update, embedding count, every artefact (saved similarity weights, trained
        models) and the tags' count and score sum. Another process's ingest, enrich,
        re-tag or training changes it."""
        items, emb, art = schema.items, schema.embeddings, schema.artifacts
        with self.engine.connect() as conn:
            n_items, newest = conn.execute(select(func.count(), func.max(items.c.updated_at))
                                           ).one()
            n_emb = conn.execute(select(func.count()).select_from(emb)).scalar()
            n_art, art_newest = conn.execute(  # not the vector indexes: derived from vectors
                select(func.count(), func.max(art.c.created_at))
                .where(~art.c.name.startswith("index:"))).one()
            n_tags, tag_sum = conn.execute(select(func.count(), func.sum(schema.tags.c.score))
                                           ).one()
        return (int(n_items), str(newest), int(n_emb or 0), int(n_art or 0), str(art_newest),
                int(n_tags), round(float(tag_sum or 0.0), 3))

    def iter_events(self, chunk: int = 50_000) -> Iterator[EventRecord]:
        """Every stored event, oldest first, read in chunks (training reads them all)."""
        ev = schema.events
        query = select(ev).order_by(ev.c.timestamp, ev.c.pk)
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=chunk).execute(query)
            mark = self.ids.mark
            for r in result:
                yield EventRecord(user_id=mark(r.user_id), event=r.event,
                                  timestamp=_utc(r.timestamp), item_id=r.item_id,
                                  item_kind=r.item_kind, value=r.value, text=r.text,
                                  platform=r.platform, device=r.device,
                                  context=dict(r.context or {}))

    def event_snapshot(self) -> dict[str, int]:
        """How many events are stored and the newest key: what a trained model saw."""
        ev = schema.events
        with self.engine.connect() as conn:
            n, newest = conn.execute(select(func.count(), func.max(ev.c.pk))).one()
        return {"events": int(n or 0), "newest_event_key": int(newest or 0)}


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    # deleted rows (a forgotten listener, purged events) are overwritten with zeros, not left
    # in free pages of the file
    cur.execute("PRAGMA secure_delete=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()
