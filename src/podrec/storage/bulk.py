"""Bulk event import: a file of millions of events written in large transactions.

``Store.add_events`` writes 500 events a transaction with a look-up of what is stored first;
that suits the API's small batches but spends most of a large import on round trips. Here:

- **PostgreSQL**: each chunk of ``PG_CHUNK`` events is sent with ``COPY`` into a temporary
  staging table (dropped at commit), then one ``INSERT ... SELECT ... ON CONFLICT
  (dedupe_key) DO NOTHING`` stores the new ones, in file order, and creates the listeners of
  the events it stored, in the same statement;
- **SQLite**: each chunk of ``SQLITE_CHUNK`` events is one transaction of batched
  ``executemany`` inserts (the store's own event write, on a larger chunk).

The semantics are the store's: an event is identified by its dedupe key (a second copy, in
the file or already stored, counts as unchanged), a listener is created with their first
stored event, and listener ids are stored as the store keeps them (keyed hashes when
``privacy.id_key`` is set). Records are validated by the readers before they get here, as
before. A chunk the database refuses (a record that bypassed the readers' checks) is written
again through ``Store.add_events``' path, which isolates and reports the refused records and
keeps the rest.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection
from sqlalchemy import text as sql_text
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, StatementError

from podrec.records import EventRecord, IngestReport

if TYPE_CHECKING:
    from podrec.storage.store import Store

PG_CHUNK = 50_000
# SQLite binds every dedupe key of a chunk in one look-up: well under its 32,766 variables.
SQLITE_CHUNK = 10_000

_STAGE = "podrec_event_stage"
_CREATE_STAGE = (
    f"CREATE TEMPORARY TABLE {_STAGE} (seq integer, user_id varchar(256), "
    "item_kind varchar(16), item_id varchar(512), event varchar(32), value double precision, "
    'text text, "timestamp" timestamptz, platform varchar(64), device varchar(64), '
    "context text, dedupe_key varchar(64)) ON COMMIT DROP")
_COPY = (f"COPY {_STAGE} (seq, user_id, item_kind, item_id, event, value, text, "
         '"timestamp", platform, device, context, dedupe_key) FROM STDIN')
# The new events in file order, then the listeners of the ones stored: one statement.
_MERGE = sql_text(
    "WITH ins AS (INSERT INTO events (user_id, item_kind, item_id, event, value, text, "
    '"timestamp", platform, device, context, dedupe_key) '
    "SELECT user_id, item_kind, item_id, event, value, text, \"timestamp\", platform, device, "
    f"CAST(context AS JSON), dedupe_key FROM {_STAGE} ORDER BY seq "
    "ON CONFLICT (dedupe_key) DO NOTHING RETURNING user_id), "
    "listeners AS (INSERT INTO users (id, created_at, attrs) "
    "SELECT u, :now, CAST('{}' AS JSON) FROM (SELECT DISTINCT user_id AS u FROM ins) AS n "
    "ON CONFLICT (id) DO NOTHING RETURNING 1) "
    "SELECT count(*) FROM ins")


def import_events(store: Store, records: Iterable[EventRecord],
                  report: IngestReport | None = None) -> IngestReport:
    """Store many events the fast way for this database (module docstring); the counts and
    the stored rows are those ``store.add_events`` would give."""
    report = report or IngestReport()
    postgres = store.engine.dialect.name == "postgresql"
    size = PG_CHUNK if postgres else SQLITE_CHUNK
    ids = store.ids
    batch: list[EventRecord] = []
    for rec in records:
        if ids.enabled:
            rec = replace(rec, user_id=ids.stored(rec.user_id))
        batch.append(rec)
        if len(batch) >= size:
            _chunk(store, batch, report, postgres)
            batch = []
    if batch:
        _chunk(store, batch, report, postgres)
    return report


def _chunk(store: Store, batch: list[EventRecord], report: IngestReport,
           postgres: bool) -> None:
    keyed: dict[str, EventRecord] = {}
    for rec in batch:
        keyed.setdefault(rec.dedupe_key(), rec)
    # What a refused record raises: on PostgreSQL a data or integrity error (a mistake in the
    # statements themselves is raised, not hidden by the fallback); on SQLite what
    # add_events' own path falls back on.
    refused = (DataError, IntegrityError, _DataRefused) if postgres else StatementError
    try:
        if postgres:
            added = store._write(lambda conn: _copy_merge(conn, keyed),
                                 what=f"a chunk of {len(keyed)} events")
            unchanged = len(keyed) - added
        else:
            added, unchanged = store._write(lambda conn: store._event_writes(conn, keyed),
                                            on_conflict=lambda: None,
                                            what=f"a chunk of {len(keyed)} events")
    except OperationalError:
        raise
    except refused:
        # a record the database refuses: the small-chunk path finds it and keeps the rest
        from podrec.storage.store import CHUNK

        for i in range(0, len(batch), CHUNK):
            store._write_events(batch[i:i + CHUNK], report)
        return
    report.unchanged += len(batch) - len(keyed) + unchanged
    report.added += added


class _DataRefused(Exception):
    """COPY refused a value (PostgreSQL's own checks: NUL characters, lengths)."""


def _copy_merge(conn: Connection, keyed: dict[str, EventRecord]) -> int:
    """COPY the chunk into the staging table and merge it into events: how many stored."""
    import psycopg

    conn.execute(sql_text(_CREATE_STAGE))
    raw: Any = conn.connection.dbapi_connection
    dumps = json.dumps
    try:
        with raw.cursor() as cur, cur.copy(_COPY) as copy:
            for seq, (key, r) in enumerate(keyed.items()):
                stamp = r.timestamp
                stamp = stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp
                copy.write_row((seq, r.user_id, r.item_kind, r.item_id, r.event, r.value,
                                r.text, stamp, r.platform, r.device, dumps(r.context or {}),
                                key))
    except psycopg.OperationalError:
        raise
    except psycopg.Error as exc:
        raise _DataRefused(str(exc)) from exc
    return int(conn.execute(_MERGE, {"now": datetime.now(UTC)}).scalar() or 0)
