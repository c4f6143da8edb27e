"""Trained models unpacked on disk once per version, their arrays memory-mapped by every worker.

A trained model is a pickle in the store (train/artifacts.py). Unpickled by each worker, its
arrays (EASE's item × item matrix: up to 256 MB; the factor and neighbour matrices; the
listeners' rows) would be private to that worker, and the pickle and its copy would both be in
memory while it loads. Here the first worker to load a version writes it beside the catalog
cache: the pickle stream without its large arrays (``payload.pkl``, protocol 5 with
out-of-band buffers) and the arrays' bytes in one file (``buffers.bin``), each at a page
boundary. Every worker then maps that file copy-on-write: the pages are shared between the
workers of a machine and read from the page cache, the store's pickle is not read at all, and
a worker that writes to an array (none does while serving) gets a private copy of those pages
only. Sets are named by the artefact's name (one version, never rewritten) and written to a
temporary folder then renamed, so a reader sees a whole set or none.

The folder is trusted as the database is: it holds pickles, so it must be writable only by
the user podrec runs as.
"""

from __future__ import annotations

import json
import logging
import mmap
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FORMAT = 3  # bump when what is unpacked changes (2: item keys as arrays; 3: PackedStrings)
IN_BAND = 1 << 16  # buffers smaller than this stay in the pickle stream
PAGE = mmap.ALLOCATIONGRANULARITY


class ModelFiles:
    """The unpacked trained models of one database, under ``root``."""

    def __init__(self, root: Path, keep: int = 3) -> None:
        self.root, self.keep = root, max(keep, 1)
        self.loads = 0  # sets mapped by this object (tests and logs)
        self.saves = 0

    def folder(self, name: str) -> Path:
        return self.root / "".join(c if c.isalnum() or c in "-." else "_" for c in name)

    def load(self, name: str) -> tuple[dict[str, Any], Any] | None:
        """(meta, payload) of the artefact ``name`` when unpacked here, else None."""
        path = self.folder(name)
        if not (path / "meta.json").is_file():
            return None
        try:
            head = json.loads((path / "meta.json").read_text(encoding="utf-8"))
            if head.get("format") != FORMAT:
                return None
            buffers = _map(path / "buffers.bin", head["buffers"])
            payload = pickle.loads((path / "payload.pkl").read_bytes(),  # noqa: S301
                                   buffers=buffers)  # written by ``save`` from our own pickle
        except (OSError, KeyError, ValueError, TypeError, pickle.UnpicklingError) as exc:
            log.warning("model files %s unreadable (%s): unpacked again from the store's copy",
                        path, exc)
            shutil.rmtree(path, ignore_errors=True)  # so that ``save`` writes it afresh
            return None
        self.loads += 1
        return head["meta"], payload

    def save(self, name: str, meta: dict[str, Any], payload: Any) -> bool:
        """Write ``payload`` unpacked under ``name``; False when it cannot be written (it is
        then served from the store's copy: only memory is lost, not correctness)."""
        final = self.folder(name)
        if (final / "meta.json").is_file():
            return True
        tmp: Path | None = None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.root))
            views: list[memoryview] = []

            def keep_large(buffer: pickle.PickleBuffer) -> bool:
                view = buffer.raw()
                if view.nbytes < IN_BAND:
                    return True  # in-band
                views.append(view)
                return False

            (tmp / "payload.pkl").write_bytes(
                pickle.dumps(payload, protocol=5, buffer_callback=keep_large))
            spans = _write_buffers(tmp / "buffers.bin", views)
            (tmp / "meta.json").write_text(json.dumps(
                {"format": FORMAT, "meta": meta, "buffers": spans}, default=str),
                encoding="utf-8")
            try:
                tmp.rename(final)
            except OSError:  # another worker saved the same version first
                shutil.rmtree(tmp, ignore_errors=True)
                return (final / "meta.json").is_file()
        except (OSError, TypeError, ValueError, pickle.PicklingError) as exc:
            log.warning("model files: cannot save %s in %s (%s)", name, self.root, exc)
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            return False
        self.saves += 1
        self._prune(name)
        return True

    def _prune(self, newest: str) -> None:
        """Keep the ``keep`` newest versions of this kind (names sort by age); a worker
        that still maps an older one keeps reading it until it drops it."""
        prefix = self.folder(newest.rsplit("/", 1)[0] + "/").name
        sets = sorted(p for p in self.root.iterdir()
                      if p.is_dir() and p.name.startswith(prefix))
        for old in sets[:-self.keep]:
            shutil.rmtree(old, ignore_errors=True)


def _write_buffers(path: Path, views: list[memoryview]) -> list[list[int]]:
    """The buffers one after another, each at a page boundary: [[offset, length], ...]."""
    spans = []
    with path.open("wb") as f:
        for view in views:
            offset = -(-f.tell() // PAGE) * PAGE
            f.seek(offset)
            f.write(view)
            spans.append([offset, view.nbytes])
    return spans


def _map(path: Path, spans: list[list[int]]) -> list[memoryview]:
    """Copy-on-write views of each span of ``path`` (pages shared until written)."""
    if not spans:
        return []
    with path.open("rb") as f:
        whole = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    view = memoryview(whole)
    return [view[offset:offset + length] for offset, length in spans]
