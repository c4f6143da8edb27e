"""Trained models as versioned artefacts in the store, and the served model loaded from one.

An artefact is named ``model/{kind}/{version}`` (the version is the UTC time of training, so
names sort by age). Its meta says what was trained on what: model name, chosen parameters,
validation metrics, the data snapshot and how long it took. Its payload holds the fitted
collaborative parts (on the item index of training time) and the listeners' training rows;
the content parts are refitted from the catalog when the model is loaded, so they always
see today's catalog.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from podrec.index.vector_index import VectorIndex
from podrec.model.aligned import AlignedModel, trained_to_current
from podrec.model.base import CatalogData, Recommender
from podrec.model.content import ContentModel
from podrec.model.hybrid import HybridModel
from podrec.model.profile import ProfileModel
from podrec.model.registry import make_model
from podrec.storage import Store

PREFIX = "model/"
# Parts rebuilt from today's catalog when a model is loaded (their state is the catalog).
CATALOG_PARTS = ("content", "profile", "profile-static", "profile-context")


def artifact_prefix(kind: str) -> str:
    return f"{PREFIX}{kind}/"


def new_version() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


class PackedStrings:
    """Strings as one byte array and their offsets (a few bytes each, against ~60 for a
    Python ``str``); pickled as two arrays, so they are memory-mapped with the model."""

    def __init__(self, strings: Iterable[str]) -> None:
        encoded = [s.encode("utf-8") for s in strings]
        self.offsets = np.zeros(len(encoded) + 1, np.int64)
        np.cumsum([len(e) for e in encoded], out=self.offsets[1:])
        self.blob = np.frombuffer(b"".join(encoded), np.uint8)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def raw(self, i: int) -> bytes:
        return self.blob[self.offsets[i]:self.offsets[i + 1]].tobytes()

    def __iter__(self) -> Iterator[str]:
        blob, offsets = self.blob.tobytes(), self.offsets.tolist()
        return (blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(len(self)))


class ListenerRows(Mapping[str, tuple[int, int, float]]):
    """Listener id → (training row, positive items, confidence sum), held as sorted arrays:
    a dict of tuples takes ~300 bytes a listener (150,000 listeners at 100k episodes: 45 MB
    per worker), these ~30, and they are memory-mapped with the rest of the model
    (service/model_files.py)."""

    def __init__(self, users: Mapping[str, tuple[int, int, float]]) -> None:
        ids = sorted(users)
        self._ids = PackedStrings(ids)
        values = [users[u] for u in ids]
        self._rows = np.array([v[0] for v in values], np.int64)
        self._counts = np.array([v[1] for v in values], np.int64)
        self._sums = np.array([v[2] for v in values], np.float64)

    def _find(self, user_id: object) -> int:
        if not isinstance(user_id, str):
            return -1
        key = user_id.encode("utf-8")
        lo, hi = 0, len(self)
        while lo < hi:  # binary search over the sorted ids
            mid = (lo + hi) // 2
            if self._ids.raw(mid) < key:
                lo = mid + 1
            else:
                hi = mid
        return lo if lo < len(self) and self._ids.raw(lo) == key else -1

    def __getitem__(self, user_id: str) -> tuple[int, int, float]:
        i = self._find(user_id)
        if i < 0:
            raise KeyError(user_id)
        return int(self._rows[i]), int(self._counts[i]), float(self._sums[i])

    def __contains__(self, user_id: object) -> bool:
        return self._find(user_id) >= 0

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)


class ItemKeys(Sequence[tuple[str, str]]):
    """The trained items' (kind, id) keys, held as arrays: a list of tuples takes ~180 bytes
    an item (18 MB a worker at 100k episodes), these ~20, memory-mapped with the rest of the
    model. Iterated, it gives the tuples the list held."""

    def __init__(self, keys: Iterable[Sequence[str]]) -> None:
        pairs = [(str(k[0]), str(k[1])) for k in keys]
        self._kinds = sorted({kind for kind, _ in pairs})
        code = {kind: i for i, kind in enumerate(self._kinds)}
        self._codes = np.array([code[kind] for kind, _ in pairs], np.int32)
        self._ids = PackedStrings(i for _, i in pairs)

    def __len__(self) -> int:
        return len(self._codes)

    def __getitem__(self, row: Any) -> Any:
        if isinstance(row, slice):
            return [self[i] for i in range(*row.indices(len(self)))]
        row = range(len(self))[row]  # negative rows, and IndexError past the end
        return (self._kinds[self._codes[row]], self._ids.raw(row).decode("utf-8"))

    def __iter__(self) -> Iterator[tuple[str, str]]:
        kinds = [self._kinds[c] for c in self._codes.tolist()]
        return zip(kinds, self._ids, strict=True)


@dataclass
class ServedModel:
    """The model a worker serves for one kind of item, and what it knows of its listeners.

    ``users``: account id → (training row, positive items, confidence sum) at training time;
    a listener whose history is unchanged is scored with their trained state (iALS, BPR
    factors), one with new events is folded in."""

    kind: str
    model: Recommender
    version: str | None  # None: not trained, the fallback
    meta: dict[str, Any] = field(default_factory=dict)
    users: Mapping[str, tuple[int, int, float]] = field(default_factory=dict)

    @property
    def fallback(self) -> bool:
        return self.version is None or bool(self.meta.get("fallback"))

    def user_row(self, user_id: str | None, n_items: int, confidence_sum: float) -> int:
        """The listener's training row if their history is what training saw, else -1."""
        known = self.users.get(user_id) if user_id else None
        if known is None:
            return -1
        row, n, total = known
        return row if n == n_items and abs(total - confidence_sum) < 1e-3 else -1


def save_model(store: Store, kind: str, meta: dict[str, Any], payload: dict[str, Any],
               keep: int = 3) -> str:
    """Store a trained model as a new version; keep the newest ``keep`` versions."""
    version = new_version()
    name = artifact_prefix(kind) + version
    store.put_artifact(name, meta | {"version": version, "kind": kind},
                       pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
    for old, _, _ in store.artifact_versions(artifact_prefix(kind))[max(keep, 1):]:
        store.delete_artifact(old)
    return version


def fit_catalog_part(model: Recommender, catalog: CatalogData,
                     vector_index: VectorIndex | None) -> Recommender:
    """A content or profile part fitted on ``catalog``, searching ``vector_index`` when
    given (the part's metric is cosine, as the index's)."""
    if vector_index is None:
        return model.fit(catalog)
    if isinstance(model, ContentModel) and model.metric == "cosine":
        model.vector_index = vector_index
        return model.fit(catalog)
    if isinstance(model, ProfileModel):
        content = ContentModel(replace(model.weights, expand_k=0), vector_index=vector_index)
        return model.fit_from(content.fit(catalog))
    return model.fit(catalog)


def read_payload(store: Store, name: str, files: Any = None
                 ) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(meta, payload) of the artefact ``name``: from ``files`` (service/model_files.py:
    unpacked on disk, arrays memory-mapped) when given, unpacked there on first use; else
    unpickled from the store. The listeners' rows come as ``ListenerRows``, the trained
    items' keys as ``ItemKeys``."""
    if files is not None and (found := files.load(name)) is not None:
        return found
    with store.artifact_stream(name) as stored:
        if stored is None or stored[1] is None:  # deleted between the two reads
            return None
        meta, stream = stored
        # read as it is unpickled: never the pickle's bytes whole beside the model
        payload = pickle.load(stream)  # noqa: S301 - our own artefact, written by save_model
    if not isinstance(payload.get("users"), ListenerRows):
        payload["users"] = ListenerRows(payload.get("users") or {})
    if not isinstance(payload["item_keys"], ItemKeys):
        payload["item_keys"] = ItemKeys(payload["item_keys"])
    if files is not None and files.save(name, meta, payload):
        del payload  # mapped from the files instead of held in this worker's memory
        return files.load(name) or read_payload(store, name)
    return meta, payload


def load_model(store: Store, kind: str, catalog: CatalogData, configure: Any = None,
               vector_index: VectorIndex | None = None, files: Any = None
               ) -> ServedModel | None:
    """The newest trained model of ``kind`` on ``catalog``, or None when none is stored.
    ``configure(name, model)`` may adjust a rebuilt catalog part (serving-only settings);
    ``vector_index``: the catalog's (cosine) index that rebuilt content parts search, so a
    large catalog's approximate index serves them rather than a scan of every vector;
    ``files``: where trained models are unpacked and memory-mapped (``read_payload``)."""
    name = store.newest_artifact_name(artifact_prefix(kind))
    if name is None:
        return None
    found = read_payload(store, name, files)
    if found is None:
        return None
    meta, payload = found
    keys = payload["item_keys"]  # ItemKeys: (kind, id) tuples when iterated
    parts: dict[str, Recommender] = {}
    for part, params in payload["params"].items():
        if part in CATALOG_PARTS:
            model = fit_catalog_part(make_model(part, params, payload.get("seed", 0)),
                                     catalog, vector_index)
            parts[part] = configure(part, model) if configure else model
        else:
            parts[part] = AlignedModel(payload["fitted"][part], keys, catalog)
    trained_pop = np.asarray(payload["item_popularity"], np.float32)
    rows = trained_to_current(keys, catalog)
    pop = np.zeros(len(catalog), np.float32)
    pop[rows[rows >= 0]] = trained_pop[rows >= 0]
    if payload["model"] == "hybrid":
        model: Recommender = HybridModel.assembled(parts, payload["blend"], pop == 0,
                                                   payload["buckets"])
    else:
        model = parts[payload["model"]]
    return ServedModel(kind, model, meta["version"], meta, payload["users"])
