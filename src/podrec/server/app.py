"""The FastAPI app: the worker's state, middleware, error handlers, and the routers.

``create_app`` builds one ``ServedPodrec`` per worker process and the state the routes
depend on (server/deps.py), and includes one router per resource (server/routes/). The
routes are thin calls into the ``Podrec`` facade; what the API adds is keys and scopes
(auth.py), validation with 4xx messages that name the field (errors.py), request size limits
and Prometheus metrics (middleware.py), kept lists (lists.py) and training (training.py).
The service owns its fitted models and drops them through its one change hook; a change made
by another process reaches the worker through ``podrec.refresh``.
"""

from __future__ import annotations

import os
import threading
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from podrec.config import Config, load_config
from podrec.server.cache import KeyCache
from podrec.server.errors import install_error_handlers
from podrec.server.lists import KeptLists
from podrec.server.middleware import ServeMiddleware
from podrec.server.openapi import install_openapi
from podrec.server.retention import Purger
from podrec.server.routes import ROUTERS
from podrec.server.routes.events import add_event_fast
from podrec.server.routes.recommend import recommend_fast
from podrec.server.routes.service import mount_static
from podrec.server.training import Retrainer, TrainLock
from podrec.server.worker import (
    SERVE_THREADS,
    ServedPodrec,
    one_thread,
    settle_heap,
    start_request_threads,
    stop_request_threads,
)

__all__ = ["SERVE_THREADS", "ServedPodrec", "app_from_env", "create_app", "one_thread",
           "settle_heap"]

# the hot routes the middleware answers itself when their request is well-formed
FAST = {("POST", "/recommendations"): recommend_fast, ("POST", "/events"): add_event_fast}

DESCRIPTION = (
    "Podcast recommendations over HTTP. Send `Authorization: Bearer <key>` (keys: `podrec "
    "keys create --scope admin|client`). Client keys: events, recommendations, similar, "
    "search, onboarding, the catalog, profiles, creating listeners, the served models. Admin "
    "keys: everything, including ingest, training and linking, exporting and deleting "
    "listeners. Errors are JSON `{\"detail\": message}`; validation errors also list "
    "`errors: [{field, location, message}]`.")


def _lifespan(podrec: ServedPodrec, lists: KeptLists, retrainer: Retrainer | None,
              warm: bool, threads: int | None, purger: Purger | None = None) -> Any:
    @asynccontextmanager
    async def lifespan(_app: FastAPI):  # noqa: ANN202
        if threads:  # what still runs on anyio's threads (uploads, static files)
            import anyio.to_thread

            anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        start_request_threads(threads)  # sync routes and lists to compute
        if warm:
            threading.Thread(target=podrec.warm, name="podrec-warm", daemon=True).start()
        lists.start()
        if retrainer is not None:
            retrainer.start()
        if purger is not None:
            purger.start()
        yield
        if retrainer is not None:
            retrainer.stop()
        if purger is not None:
            purger.stop()
        lists.stop()
        stop_request_threads()
        podrec.close()

    return lifespan


def create_app(config: Config | None = None, database_url: str | None = None, *,
               warm: bool = True, threads: int | None = SERVE_THREADS) -> FastAPI:
    """The API over the database ``database_url`` (default: the configuration's). With
    ``warm``, the embedder and the show model load in the background at start-up.
    ``threads``: requests computed at once, each on a request thread (None: 40). With
    ``train.interval`` > 0, a new model of each kind is trained on that schedule; with
    ``privacy.retain_days`` > 0, old events are purged every ``privacy.purge_interval``."""
    config = config or load_config()
    podrec = ServedPodrec(config, database_url=database_url)
    podrec.refresh(force=True)  # the baseline, taken before any model is fitted
    lists = KeptLists(config.server, podrec.dialect, podrec.database_url)
    train_lock = TrainLock(podrec.database_url, podrec.dialect)
    retrainer = (Retrainer(podrec, train_lock, config.train.interval)
                 if config.train.interval > 0 else None)
    purger = (Purger(podrec, config.privacy.purge_interval)
              if config.privacy.retain_days > 0 else None)
    app = FastAPI(title="podrec", version="0.1.0", description=DESCRIPTION,
                  lifespan=_lifespan(podrec, lists, retrainer, warm, threads, purger))
    app.state.podrec = podrec
    app.state.config = config
    app.state.lists = lists
    app.state.train_lock = train_lock
    app.state.purger = purger
    app.state.keys = KeyCache(config.server.key_cache_seconds)
    app.add_middleware(ServeMiddleware, max_request_bytes=config.server.max_request_bytes,
                       max_upload_bytes=config.server.max_upload_bytes, fast=FAST)
    install_error_handlers(app)
    install_openapi(app)
    for router in ROUTERS:
        app.include_router(router)
    mount_static(app)
    return app


def app_from_env() -> FastAPI:
    """The uvicorn factory of `podrec serve`: each worker process builds its own Podrec from
    PODREC_CONFIG / PODREC_DB (set by `podrec serve --config/--db`)."""
    return create_app(load_config(), warm=os.environ.get("PODREC_SERVE_WARM", "1") != "0",
                      threads=int(os.environ.get("PODREC_SERVE_THREADS") or SERVE_THREADS))
