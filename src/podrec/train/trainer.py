"""``podrec train``: choose and fit the served model on the stored events, save it.

The procedure is evaluate's (``train/selection.py``): a validation split is carved out of
the events with the configured protocol, each part's parameters and the hybrid's blend are
chosen there, and every part is refitted on all events. With too few events or listeners
there is nothing to choose with: the fallback (profile + popularity) is saved, and the report
says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from podrec.config import TrainConfig
from podrec.enrich.embedders import TextEmbedder
from podrec.evaluate.folds import EvalData, make_fold
from podrec.evaluate.protocols import SplitConfig, split_pairs
from podrec.model.base import CatalogData, Recommender
from podrec.model.hybrid import DEFAULT_BUCKETS
from podrec.model.interactions import Interactions, build_interactions
from podrec.model.registry import REGISTRY
from podrec.privacy.noise import Releases
from podrec.recommend.history import TextEvent
from podrec.records import EventRecord
from podrec.storage import Store
from podrec.train.artifacts import CATALOG_PARTS, save_model
from podrec.train.selection import Selection, choose, fit_chosen

Progress = Callable[[str], None]
# The fallback's blend per activity bucket (≤2, 3–10, >10 history items): the listener's
# profile (content similarity plus the catalog's popularity prior), with event popularity to
# order what a history of one or two items cannot tell apart.
FALLBACK_BLEND = [{"profile": 1.0, "pop": 0.1}, {"profile": 1.0}, {"profile": 1.0}]


@dataclass
class TrainReport:
    """What one training did: the version saved, and the meta stored with it."""

    kind: str
    version: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def fallback(self) -> str | None:
        return self.meta.get("fallback")


def events_on(catalog: CatalogData, events: Iterable[EventRecord]
              ) -> tuple[list[EventRecord], dict[str, list[TextEvent]]]:
    """The events about ``catalog``'s items (of its kind), and what each listener wrote."""
    kinds = set(catalog.kinds)
    kept, texts = [], {}
    for ev in events:
        if (words := TextEvent.of(ev)) is not None:
            texts.setdefault(ev.user_id, []).append(words)
        if not ev.item_id or (ev.item_kind and ev.item_kind not in kinds):
            continue
        if catalog.row_of(ev.item_id, ev.item_kind) is not None:
            kept.append(ev)
    return kept, texts


class Trainer:
    """Fits the configured served model of one kind on a store's events and saves it.

    ``dp`` (``privacy.dp_epsilon`` > 0): the popularity counts saved with the model (what
    lists score and show) carry Laplace noise, one release per snapshot of the events
    (podrec/privacy/noise.py)."""

    dp: Releases | None = None
    runner: Any = None  # where grid points and fits run (podrec.batch; None: here)

    def __init__(self, store: Store, config: TrainConfig, event_weights: dict[str, float],
                 embedder: TextEmbedder | None = None, half_life_days: float = 180.0) -> None:
        self.store = store
        self.config = config
        self.event_weights = event_weights
        self.embedder = embedder
        self.half_life_days = half_life_days

    @property
    def model_seed(self) -> int:
        """The seed the factor models start from (``train.model_seed``, else the split's)."""
        return self.config.seed if self.config.model_seed < 0 else self.config.model_seed

    def split(self) -> SplitConfig:
        c = self.config
        return SplitConfig(protocol=c.protocol, test_fraction=c.test_fraction,
                           leave_n=c.leave_n, seed=c.seed)

    def train(self, catalog: CatalogData, kind: str = "show",
              progress: Progress | None = None) -> TrainReport:
        say = progress or (lambda _m: None)
        t0 = time.perf_counter()
        snapshot = self.store.event_snapshot()
        events, texts = events_on(catalog, self.store.iter_events())
        pairs = build_interactions(events, catalog.ids, self.event_weights)
        assert pairs.n_items == len(catalog)  # every kept event is on a catalog item
        listeners = int((np.bincount(pairs.users, minlength=pairs.n_users) > 0).sum())
        data = {"events": len(events), "listeners": listeners, "items": len(catalog),
                "pairs": int(len(pairs.users))} | snapshot
        say(f"{kind}: {len(events)} events from {listeners} listeners on {len(catalog)} items")
        c = self.config
        short = len(events) < c.min_events or listeners < c.min_listeners
        if short:
            reason = (f"{len(events)} events from {listeners} listeners, fewer than "
                      f"train.min_events {c.min_events} or train.min_listeners "
                      f"{c.min_listeners}: serving the profile (content) plus popularity")
            say(reason)
            params = {"profile": {}, "pop": {}}
            sel = Selection(chosen={n: {"params": p, "validation_ndcg@10": None}
                                    for n, p in params.items()}, blend=FALLBACK_BLEND)
            model_name = "hybrid"
        else:
            sel, model_name = self._select(catalog, pairs, texts, say), c.model
        fitted = self._fit(catalog, pairs, sel, say)
        payload = self._payload(catalog, pairs, sel, fitted, model_name)
        if self.dp is not None:  # one release per data snapshot: retraining redraws nothing
            self._noisy(fitted, payload, f"{kind}/{snapshot['events']}/"
                                         f"{snapshot['newest_event_key']}")
        meta = {"model": model_name, "params": payload["params"], "data": data,
                "validation": {n: c_["validation_ndcg@10"] for n, c_ in sel.chosen.items()}
                | ({"blend": sel.blend_report} if sel.blend_report else {}),
                "protocol": self.split().__dict__, "seconds": round(time.perf_counter() - t0, 2)}
        if short:
            meta["fallback"] = reason
        if self.dp is not None:
            meta["dp_epsilon"] = self.dp.epsilon
        version = save_model(self.store, kind, meta, payload, c.keep_versions)
        say(f"saved model/{kind}/{version} in {meta['seconds']} s")
        return TrainReport(kind, version, meta | {"version": version})

    def _noisy(self, fitted: dict[str, Recommender], payload: dict[str, Any],
               release: str) -> None:
        """The event popularity counts of the saved model, noisy: drawn once per release
        and kept, so training again on the same events gives the same counts."""
        from podrec.model.collaborative import PopularityModel

        assert self.dp is not None
        for name, part in fitted.items():
            if isinstance(part, PopularityModel) and getattr(part, "popularity", None) is not None:
                part.popularity = self.dp.counts(f"{release}/{name}", part.popularity
                                                 ).astype(np.float32)
                part._ranked = None
        payload["item_popularity"] = self.dp.counts(
            f"{release}/items", payload["item_popularity"], integer=True).astype(np.float32)

    def _select(self, catalog: CatalogData, pairs: Interactions,
                texts: dict[str, list[TextEvent]], say: Progress) -> Selection:
        user_index = {u: n for n, u in enumerate(pairs.user_ids)}
        data = EvalData(catalog, pairs, {user_index[u]: t for u, t in texts.items()
                                         if u in user_index})
        mask = split_pairs(pairs, self.split())
        val = make_fold(data, pairs, mask, self._embedder(), None,
                        max_users=self.config.max_validation_users, seed=self.config.seed,
                        half_life_days=self.half_life_days)
        say(f"validation: {len(val.users)} listeners, {int(mask.sum())} held-out pairs")
        names = [self.config.model] if self.config.model != "hybrid" else list(
            self.config.parts)
        unknown = [n for n in names if n not in REGISTRY]
        if unknown:
            raise ValueError(f"train: unknown model(s) {', '.join(unknown)}; expected "
                             f"{', '.join(REGISTRY)}")
        return choose(catalog, val, names, self.model_seed, None,
                      self.config.model == "hybrid", say,
                      extra={"ease": {"max_items": self.config.ease_max_items}},
                      runner=self.runner)

    def _embedder(self) -> TextEmbedder:
        if self.embedder is None:
            raise ValueError("training needs the embedder for listeners' own words")
        return self.embedder

    def _fit(self, catalog: CatalogData, pairs: Interactions, sel: Selection,
             say: Progress) -> dict[str, Recommender]:
        """The chosen collaborative parts refitted on every pair (the catalog parts are
        rebuilt when the model is loaded)."""
        cf = Selection(chosen={n: c for n, c in sel.chosen.items() if n not in CATALOG_PARTS})
        say(f"fitting {', '.join(cf.chosen) or 'nothing'} on {len(pairs.users)} pairs")
        fitted = fit_chosen(catalog, pairs, cf, self.model_seed, self.runner)
        t0 = time.perf_counter()
        for part in fitted.values():  # a large catalog's candidate graphs: saved with the model
            part.prepare_candidates()
        if time.perf_counter() - t0 > 1.0:
            say(f"candidate graphs built in {time.perf_counter() - t0:.0f} s")
        return fitted

    def _payload(self, catalog: CatalogData, pairs: Interactions, sel: Selection,
                 fitted: dict[str, Recommender], model_name: str) -> dict[str, Any]:
        matrix = pairs.matrix()
        counts = np.diff(matrix.indptr)
        sums = np.asarray(matrix.sum(axis=1)).ravel()
        users = {u: (n, int(counts[n]), float(sums[n])) for n, u in enumerate(pairs.user_ids)}
        return {"model": model_name, "seed": self.model_seed,
                "params": {n: c["params"] for n, c in sel.chosen.items()},
                "fitted": fitted, "blend": sel.blend,
                "buckets": list(DEFAULT_BUCKETS),
                "item_keys": list(zip(catalog.kinds, catalog.ids, strict=True)),
                "item_popularity": pairs.item_popularity(), "users": users}
