"""A stored BLOB read as a stream, so that loading a large artefact (a trained model's pickle,
a saved vector index) does not hold its bytes whole beside what is built from them.

SQLite can read a BLOB in place (``sqlite3.Connection.blobopen``): ``BlobReader`` makes that
a seekable raw stream for ``pickle.load`` and ``np.load``. Other databases hand over the
value whole; there the stream is over those bytes.
"""

from __future__ import annotations

import io
from typing import Any

CHUNK = 1 << 20  # bytes copied from the BLOB at a time


class BlobReader(io.RawIOBase):
    """A read-only, seekable raw stream over one ``sqlite3.Blob``."""

    def __init__(self, blob: Any) -> None:
        super().__init__()
        self._blob = blob

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        # in pieces: one large read would make the piece and then copy it into ``buffer``
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view):
            piece = self._blob.read(min(len(view) - done, CHUNK))
            if not piece:
                break
            view[done:done + len(piece)] = piece
            done += len(piece)
        return done

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:  # sqlite3.Blob refuses offsets past either end
            offset, whence = len(self._blob) + offset, io.SEEK_SET
        elif whence == io.SEEK_CUR:
            offset, whence = self._blob.tell() + offset, io.SEEK_SET
        self._blob.seek(max(0, min(offset, len(self._blob))), whence)
        return self._blob.tell()

    def tell(self) -> int:
        return self._blob.tell()

    def close(self) -> None:
        if not self.closed:
            self._blob.close()
        super().close()
