"""A stored BLOB read as a stream, so that loading a large artefact (a trained model's pickle,
a saved vector index) does not hold its bytes whole beside what is built from them.

``BlobReader`` is a seekable raw stream over a stored value, read a piece at a time by a
``read_at(offset, length)`` the store gives it: on SQLite from a BLOB opened in place
(``sqlite3.Connection.blobopen``), on PostgreSQL by ``substring`` of the ``bytea`` value. A
large artefact is stored in parts (no value may pass 1 GB); ``pieced_reader`` reads them as
one stream.
"""

from __future__ import annotations

import bisect
import io
import itertools
from collections.abc import Callable
from typing import Any

CHUNK = 1 << 20  # bytes read from the database at a time


class BlobReader(io.RawIOBase):
    """A read-only, seekable raw stream over ``size`` stored bytes."""

    def __init__(self, size: int, read_at: Callable[[int, int], bytes],
                 on_close: Callable[[], Any] | None = None) -> None:
        super().__init__()
        self.size, self._read_at, self._on_close = size, read_at, on_close
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        # in pieces: one large read would make the piece and then copy it into ``buffer``
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._pos < self.size:
            piece = self._read_at(self._pos, min(len(view) - done, CHUNK, self.size - self._pos))
            if not piece:
                break
            view[done:done + len(piece)] = piece
            done += len(piece)
            self._pos += len(piece)
        return done

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        if not self.closed and self._on_close is not None:
            self._on_close()
        super().close()


ReadAt = Callable[[int, int], bytes]


def pieced_reader(pieces: list[tuple[int, ReadAt]],
                  on_close: Callable[[], Any] | None = None) -> BlobReader:
    """One stream over stored values read one after another (an artefact's parts): each
    piece is (its size, its ``read_at``); a read that crosses a boundary stops at it, and
    ``BlobReader`` asks again for the rest."""
    starts = list(itertools.accumulate((size for size, _ in pieces), initial=0))

    def read_at(offset: int, length: int) -> bytes:
        i = bisect.bisect_right(starts, offset) - 1
        if i >= len(pieces):
            return b""
        size, read = pieces[i]
        local = offset - starts[i]
        return read(local, min(length, size - local))

    return BlobReader(starts[-1], read_at, on_close)


class SqliteBlob:
    """``read_at`` of one SQLite BLOB (``payload`` of ``table``'s row ``rowid``), opened in
    place (``sqlite3.Connection.blobopen``) on first use."""

    def __init__(self, connection: Any, table: str, rowid: int) -> None:
        self.connection, self.table, self.rowid = connection, table, rowid
        self._blob: Any = None

    def __call__(self, offset: int, length: int) -> bytes:
        if self._blob is None:
            self._blob = self.connection.blobopen(self.table, "payload", self.rowid,
                                                  readonly=True)
        self._blob.seek(offset)
        return bytes(self._blob.read(length))

    def close(self) -> None:
        if self._blob is not None:
            self._blob.close()
            self._blob = None
