"""The catalog's arrays and the content model's derived arrays, kept on disk per catalog version.

A fresh process (a CLI call, a server worker) would otherwise read every embedded item back
from the store and refit TF-IDF over their texts before it can answer anything. The first
process to build them saves them here; the next ones load them (the vectors and the content
arrays memory-mapped, so workers on one machine share their pages).

A saved set is named by a key: a hash of the database, the embedding model, the item kind, the
embedded text length and the store's catalog version (items, embeddings, tags, artefacts), so
any change to the catalog, from any process, leads to a new key and a rebuild; the older sets
of that model and kind are then removed (``keep`` are left). A set is written to a temporary
folder and renamed into place, so a reader sees a whole set or none.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from podrec.model.base import CatalogData
from podrec.model.content import ContentArrays, attach_arrays

log = logging.getLogger(__name__)

FORMAT = 2  # bump when what is saved changes
LISTS = ("ids", "kinds", "titles", "categories", "authors", "languages", "explicit",
         "show_ids", "platforms")
TEXTS = "texts.json"  # apart: only a refit reads them (the content arrays are saved)
ARRAYS = ("vectors", "pks", "popularity", "durations", "published")
STALE_TMP_S = 3600.0  # a half-written set older than this was abandoned
STALE_DB_S = 7 * 86400.0  # a database's folder unused this long is removed (shared folders)
_DB_FOLDER = re.compile(r"[0-9a-f]{16}")


def cache_root(database_url: str, configured: str = "") -> Path | None:
    """Where the sets of one database live: ``configured`` if set, else beside a SQLite file
    (``podrec.db`` → ``podrec.db.cache/``), else under ``$PODREC_HOME/cache`` or
    ``~/.cache/podrec/cache``, in a folder named by the database URL (password left out).
    None for an in-memory database, which no other process can see."""
    from sqlalchemy.engine import make_url

    try:
        url = make_url(database_url)
    except Exception:  # noqa: BLE001 - an unparsable URL: the store reports it, not the cache
        return None
    name = hashlib.sha256(url.render_as_string(hide_password=True).encode()).hexdigest()[:16]
    if configured:
        return Path(configured).expanduser() / name
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            return None
        return Path(url.database).expanduser().resolve().parent / f"{Path(url.database).name}.cache"
    home = os.environ.get("PODREC_HOME")
    base = Path(home) / "cache" if home else Path.home() / ".cache" / "podrec" / "cache"
    return base / name


class CatalogCache:
    """Saved catalog arrays (``CatalogData``) with their content arrays attached."""

    def __init__(self, root: Path, keep: int = 2) -> None:
        self.root, self.keep = root, max(keep, 1)
        self.loads = 0  # sets loaded by this object (logs and tests)
        self.saves = 0

    @staticmethod
    def key(model_id: str, kind: str | None, max_chars: Any, version: Any) -> str:
        """The name of the set built from this catalog version."""
        raw = json.dumps([FORMAT, model_id, kind, max_chars, version], default=str)
        return hashlib.sha256(raw.encode()).hexdigest()[:24]

    def folder(self, model_id: str, kind: str | None) -> Path:
        slug = "".join(c if c.isalnum() or c in "-." else "_" for c in model_id)
        return self.root / f"{slug}--{kind or 'all'}"

    def load(self, model_id: str, kind: str | None, key: str) -> CatalogData | None:
        """The set saved under ``key``, or None (never saved, removed, or unreadable)."""
        path = self.folder(model_id, kind) / key
        if not (path / "catalog.json").is_file():
            return None
        try:
            fields = _shared(json.loads((path / "catalog.json").read_text(encoding="utf-8")))
            arrays = {name: np.asarray(np.load(path / f"{name}.npy", mmap_mode="r"))
                      for name in ARRAYS if (path / f"{name}.npy").is_file()}
            texts = SavedTexts(path / TEXTS, len(fields["ids"]))
            data = CatalogData(**{name: fields[name] for name in LISTS}, **arrays,
                               texts=texts)  # type: ignore[arg-type]
            attach_arrays(data, ContentArrays.load(path / "content"))
        except (OSError, KeyError, ValueError, TypeError) as exc:
            log.warning("catalog cache %s unreadable (%s): rebuilding", path, exc)
            return None
        self.loads += 1
        log.info("catalog cache: loaded %d %s items from %s", len(data), kind or "", path)
        return data

    def save(self, model_id: str, kind: str | None, key: str, data: CatalogData,
             arrays: ContentArrays) -> Path | None:
        """Write the set under ``key`` (a whole set or nothing) and remove older ones. An
        unwritable cache costs only speed: it is logged, not raised."""
        parent = self.folder(model_id, kind)
        final = parent / key
        if final.exists():
            return final
        tmp: Path | None = None
        try:
            parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=parent))
            fields = {name: getattr(data, name) for name in LISTS}
            (tmp / "catalog.json").write_text(json.dumps(fields, ensure_ascii=False),
                                              encoding="utf-8")
            (tmp / TEXTS).write_text(json.dumps(list(data.texts), ensure_ascii=False),
                                     encoding="utf-8")
            for name in ARRAYS:
                value = getattr(data, name)
                if value is not None:
                    np.save(tmp / f"{name}.npy", np.asarray(value))
            arrays.save(tmp / "content")
            try:
                tmp.rename(final)
            except OSError:  # another process saved the same set first
                shutil.rmtree(tmp, ignore_errors=True)
                return final if final.exists() else None
        except (OSError, TypeError, ValueError) as exc:
            log.warning("catalog cache: cannot save in %s (%s)", parent, exc)
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            return None
        self.saves += 1
        self._prune(parent, final)
        log.info("catalog cache: saved %d %s items in %s", len(data), kind or "", final)
        return final

    def _prune(self, parent: Path, newest: Path) -> None:
        """Keep the ``keep`` most recent sets of this model and kind (a process that still
        maps an older one keeps reading it: removed files live on until unmapped)."""
        now = time.time()
        sets = []
        for p in parent.iterdir():
            try:
                if p.name.startswith(".tmp-") and now - p.stat().st_mtime > STALE_TMP_S:
                    shutil.rmtree(p, ignore_errors=True)  # left by a process that died
                elif p.is_dir() and not p.name.startswith(".") and p != newest:
                    sets.append((p.stat().st_mtime, p))
            except OSError:  # removed meanwhile by another process
                continue
        for _, old in sorted(sets, reverse=True)[self.keep - 1:]:
            shutil.rmtree(old, ignore_errors=True)
        self._prune_databases(now)

    def _prune_databases(self, now: float) -> None:
        """In a shared cache folder (one subfolder per database, named by its hash), remove
        the folders of databases no process has saved to for ``STALE_DB_S``: databases come
        and go (a test suite makes one per test) and their sets would pile up."""
        if not _DB_FOLDER.fullmatch(self.root.name):
            return  # beside a SQLite file: the folder around it is the user's
        try:
            siblings = list(self.root.parent.iterdir())
        except OSError:
            return
        for other in siblings:
            try:
                if other != self.root and _DB_FOLDER.fullmatch(other.name) and \
                        now - _newest_mtime(other) > STALE_DB_S:
                    shutil.rmtree(other, ignore_errors=True)
            except OSError:
                continue


REPEATED = ("kinds", "languages", "authors", "show_ids", "categories", "platforms")


def _shared(fields: dict[str, Any]) -> dict[str, Any]:
    """The lists with one object per distinct value: JSON gives every item its own copy of
    its kind, language, producer, show and category list, though a catalog has few of each
    (100,000 episodes: one ``"episode"``, a few thousand shows and category sets)."""
    pool: dict[Any, Any] = {}
    for name in REPEATED:
        values = fields.get(name)
        if not isinstance(values, list):
            continue
        for i, v in enumerate(values):
            try:
                key = (type(v), tuple(v)) if isinstance(v, list) else (type(v), v)
                values[i] = pool.setdefault(key, v)
            except TypeError:  # an unhashable value: kept as it is
                continue
    return fields


class SavedTexts(Sequence[str]):
    """The texts of a loaded catalog, read from its saved set only when something asks for
    them (a refit of TF-IDF, ``evaluate-similar``): a serving worker has the content arrays
    built from them and never does, so it does not hold them. The file is opened when the
    set is loaded, so a set removed meanwhile (``_prune``) can still be read."""

    def __init__(self, path: Path, count: int) -> None:
        self.count = count
        self._file: Any = path.open("rb")
        self._texts: list[str] | None = None

    def __del__(self) -> None:
        file = getattr(self, "_file", None)
        if file is not None and not file.closed:
            file.close()

    @property
    def loaded(self) -> bool:
        return self._texts is not None

    def _read(self) -> list[str]:
        if self._texts is None:
            with self._file as f:
                texts = json.loads(f.read().decode("utf-8"))
            if len(texts) != self.count:
                raise ValueError(f"saved texts: {len(texts)} for {self.count} items")
            self._texts = texts
        return self._texts

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, row: Any) -> Any:
        return self._read()[row]

    def __iter__(self) -> Iterator[str]:
        return iter(self._read())

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled (to another process) as the plain list."""
        return (list, (self._read(),))


def _newest_mtime(folder: Path) -> float:
    """The newest modification time of a database folder or the model/kind folders in it
    (a save touches those)."""
    return max([folder.stat().st_mtime, *(p.stat().st_mtime for p in folder.iterdir())])
