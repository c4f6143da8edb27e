"""Listener ids as stored: a keyed hash (HMAC-SHA256) of the id a client or operator gives.

Every id that comes in (event files, the REST API, the CLI) reaches the database through
``Store``, and the store turns it into its stored form with ``ListenerIds.stored`` before
anything is written or looked up, so no entry point can store or query a raw id. Without the
key nothing maps a stored id back: no table of raw ids is kept. The same raw id always gives
the same stored id under the same key, so exporting or deleting by the raw id works.

An id the store hands out (``Store.list_users``, ``linked_accounts``, an event's
``user_id``) is already in its stored form; it comes back as a ``StoredId`` so that passing
it to the store again does not hash it twice.
"""

from __future__ import annotations

import hashlib
import hmac


class StoredId(str):
    """A listener (or person) id in the form the database holds: never hashed again."""

    __slots__ = ()


class ListenerIds:
    """The one place raw listener and person ids become stored ids.

    ``key`` empty: ids are stored as given (pseudonymisation off)."""

    def __init__(self, key: str = "") -> None:
        self._key = key.encode("utf-8") if key else b""

    @property
    def enabled(self) -> bool:
        return bool(self._key)

    def stored(self, raw: str) -> str:
        """The stored form of ``raw``: its HMAC-SHA256 under the key, as 64 hex digits
        (``raw`` itself when off, or when it is already a ``StoredId``)."""
        if isinstance(raw, StoredId) or not self._key:
            return raw
        return StoredId(hmac.new(self._key, raw.encode("utf-8"), hashlib.sha256).hexdigest())

    def stored_opt(self, raw: str | None) -> str | None:
        return None if raw is None else self.stored(raw)

    def mark(self, value: str) -> str:
        """A value read from the database, marked as stored (so it is not hashed again)."""
        return StoredId(value) if self._key and not isinstance(value, StoredId) else value
