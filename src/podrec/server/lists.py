"""Recommendation lists as answered: from the worker's kept lists when nothing changed, else
computed on a request thread, together with the other lists asked for meanwhile
(``ListBatcher``, server/batching.py), and kept (``ResponseCache``, server/cache.py).

Whether the listener changed since a list was kept is known from the database (their
version, one indexed read, part of the kept list's key) or, with ``server.cache_sync =
"notify"`` on PostgreSQL, from the database's announcements (server/notify.py), which drop
the listener's lists. The model generation is part of the key too, so a list computed before
the catalog or the served model changed is never answered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pydantic_core
from fastapi import Response

from podrec.config import ServerConfig
from podrec.recommend.request import RecommendRequest
from podrec.recommend.results import Recommendation
from podrec.server import metrics
from podrec.server.batching import ListBatcher
from podrec.server.cache import CachedResponse, ResponseCache
from podrec.server.notify import ListenerChanges
from podrec.server.worker import ServedPodrec

log = logging.getLogger("podrec.server")

# what ``schemas.Recommendation`` writes for an item without a reason
_NO_REASON = {"reason": None, "evidence": None, "reason_source": None, "reason_fallback": None}


def list_json(items: list[Recommendation]) -> bytes:
    """The body of ``schemas.RecommendationList`` for ``items``, byte for byte what the model
    writes (``model_validate(...).model_dump_json()``: every field, in its order, by the
    same serialiser) without validating what the core already typed; the round trip
    through the model cost a tenth of the HTTP path (tests/test_server_lists.py)."""
    out = []
    for r in items:
        item = r.to_dict()
        if "reason" not in item:
            item.update(_NO_REASON)
        out.append(item)
    return pydantic_core.to_json({"items": out}, inf_nan_mode="null")


class KeptLists:
    """The worker's kept lists and, with ``cache_sync = "notify"``, the thread that hears of
    changed listeners."""

    def __init__(self, server: ServerConfig, dialect: str, database_url: str) -> None:
        self.cache = ResponseCache(server.cache_mb * 2**20, server.cache_seconds)
        self.batcher = ListBatcher(server.batch_lists)
        self.watcher: ListenerChanges | None = None
        if self.cache.enabled and server.cache_sync == "notify":
            if dialect == "postgresql":
                self.watcher = ListenerChanges(database_url, self.cache.forget,
                                               self.cache.clear)
            else:
                log.warning("server.cache_sync = \"notify\" needs PostgreSQL; on %s each "
                            "listener's version is read instead", dialect)

    @property
    def mode(self) -> str:
        """How kept lists learn of changed listeners now: off, notify or read."""
        if not self.cache.enabled:
            return "off"
        return "notify" if self.watcher is not None and self.watcher.ready else "read"

    def start(self) -> None:
        if self.watcher is not None:
            self.watcher.start()

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()

    def forget(self, user_id: str, person: str | None = None) -> None:
        """Drop this worker's lists of a listener (by stored id, ``Podrec.listener_key``;
        and their person) at once."""
        self.cache.forget(user_id, person)

    async def respond(self, podrec: ServedPodrec, endpoint: str, user_id: str | None,
                      asked: Callable[[], str], request: RecommendRequest) -> Response:
        """The list for ``request`` (``asked()``: it canonically serialised, only called
        when lists are kept), kept or computed."""
        key: tuple[Any, ...] | None = None
        stamp: tuple[int, ...] | None = None
        person = None
        # kept under the id as stored: what the database's announcements and forget() name
        listener = podrec.listener_key(user_id) if user_id else None
        if self.cache.enabled:
            watching = self.watcher is not None and self.watcher.ready
            # Without announcements the listener's version is part of the key; with them it
            # is read only on a miss, for their person (None: an unknown listener, 404).
            version = podrec.listener_version(user_id) if user_id and not watching else ()
            if version is not None:
                key = (endpoint, asked(), podrec.generation, version)
                if (hit := self.cache.get(key)) is not None:
                    metrics.served(endpoint, hit.n_items, cached=True)
                    return Response(hit.body, media_type="application/json")
                if user_id and watching:
                    found = podrec.listener_version(user_id)
                    key, person = (None, None) if found is None else (key, found[0] or None)
                stamp = self.cache.stamp(listener, person)  # before the events are read
        items = await self.batcher.recommend(podrec, request)  # on a request thread
        body = list_json(items)
        metrics.served(endpoint, len(items))
        # a list whose reasons are still being written is not kept: the next request
        # shows the written ones
        if key is not None and not any(r.reason_fallback == "pending" for r in items):
            self.cache.put(key, CachedResponse(body, len(items)), stamp, listener, person)
        return Response(body, media_type="application/json")
