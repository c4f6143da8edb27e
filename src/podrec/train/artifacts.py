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
    users: dict[str, tuple[int, int, float]] = field(default_factory=dict)

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


def load_model(store: Store, kind: str, catalog: CatalogData, configure: Any = None,
               vector_index: VectorIndex | None = None) -> ServedModel | None:
    """The newest trained model of ``kind`` on ``catalog``, or None when none is stored.
    ``configure(name, model)`` may adjust a rebuilt catalog part (serving-only settings);
    ``vector_index``: the catalog's (cosine) index that rebuilt content parts search, so a
    large catalog's approximate index serves them rather than a scan of every vector."""
    name = store.newest_artifact_name(artifact_prefix(kind))
    if name is None:
        return None
    found = store.get_artifact(name)
    if found is None or found[1] is None:  # deleted between the two reads
        return None
    meta, blob = found
    payload = pickle.loads(blob)  # noqa: S301 - our own artefact, written by save_model
    keys = [tuple(k) for k in payload["item_keys"]]
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
    return ServedModel(kind, model, meta["version"], meta, payload.get("users", {}))
