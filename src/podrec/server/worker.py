"""One server worker process: its ``Podrec``, and how its threads compute.

Each uvicorn worker builds one ``ServedPodrec`` (``create_app``); every route reaches it
through the dependencies of ``server/deps.py``. The service owns its fitted models and
drops them through its one change hook (``podrec.models.invalidate``); what a worker adds
is keeping the garbage collector off the fitted models and one BLAS thread per request.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from podrec.config import Config
from podrec.service import Podrec
from podrec.storage import StoreError

log = logging.getLogger("podrec.server")

# Requests one worker computes at once (anyio's thread limiter; the rest wait in the event
# loop). Its default of 40 threads fighting over the GIL cost 25-50% of the recommendation
# throughput and up to doubled its p99 under load (benchmarks/README.md, "REST API under
# load"). A slow request (an ingest fetching a URL, a training) holds one of them while it
# runs. 2 rather than 4 since 2026-12-03: on 2 cores, 4 threads cost 6.2 ms of CPU a list
# in-process against 3.9 ms for 2 (GIL hand-offs); over HTTP the gain was within the noise
# (benchmarks/README.md, "Request threads per worker").
SERVE_THREADS = 2
ANYIO_THREADS = 40  # anyio's default, what ``threads=None`` means

_threads = threading.local()
_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ThreadPoolExecutor] = \
    weakref.WeakKeyDictionary()
T = TypeVar("T")


def one_thread() -> None:
    """Limit BLAS and OpenMP to one thread for work done on this thread. Serving answers
    many small requests at once; with the libraries' default threads each request's matrix
    products fight the others for the cores (10-50x worse latency under load on 2 cores).
    `podrec serve` also sets OMP_NUM_THREADS=1 etc. before the workers load numpy; this
    covers the threads of an in-process server, once per thread (OpenMP's limit is per
    thread)."""
    if not getattr(_threads, "limited", False):
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
        _threads.limited = True


def start_request_threads(threads: int | None) -> None:
    """Give the running event loop ``threads`` request threads (None: anyio's 40); the
    worker's lifespan calls this once, before any request."""
    stop_request_threads()
    _pools[asyncio.get_running_loop()] = ThreadPoolExecutor(
        threads or ANYIO_THREADS, thread_name_prefix="podrec-request", initializer=one_thread)


def stop_request_threads() -> None:
    """Let the running loop's request threads end once their requests are done."""
    pool = _pools.pop(asyncio.get_running_loop(), None)
    if pool is not None:
        pool.shutdown(wait=False)


async def on_request_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on one of the event loop's request threads (at most ``threads`` at
    once; the rest wait in order), with the caller's context variables.

    What anyio's ``to_thread.run_sync`` (FastAPI's ``run_in_threadpool``) does for a sync
    route, without its capacity limiter and cancel scopes: with 100 requests waiting those
    cost ~170 µs of CPU a hand-off on the event loop, a plain executor ~20 µs
    (benchmarks/README.md, "HTTP, 100 concurrent cache-miss requests")."""
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is None:  # an app run without its lifespan (a test's client)
        pool = _pools[loop] = ThreadPoolExecutor(
            SERVE_THREADS, thread_name_prefix="podrec-request", initializer=one_thread)
    return await loop.run_in_executor(pool, contextvars.copy_context().run, fn, *args)


def settle_heap() -> None:
    """Move what is alive now (the fitted models, the embedder) out of the garbage
    collector's sight. A full collection walks every tracked object, 10-80 ms with a model
    loaded, and lands on whichever request allocates at that moment: the p99 under load.
    Frozen objects are still freed by reference counting; unfreezing first lets a collection
    reclaim the cycles of models dropped since the last freeze."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class ServedPodrec(Podrec):
    """``Podrec`` in a server worker: the heap is settled after every model fit, and warming
    up happens on a thread limited to one BLAS thread. Locking, the catalog-version check
    and dropping models are the service's own (``podrec.service.models.ModelCache``)."""

    def __init__(self, config: Config, database_url: str | None = None) -> None:
        super().__init__(config, database_url=database_url, on_fit=settle_heap)

    def warm(self) -> None:
        """Load the embedder and fit the show pipeline now rather than on the first request."""
        one_thread()
        try:
            super().warm()
        except StoreError as exc:
            log.info("no show model yet (%s)", exc)
        except Exception:  # noqa: BLE001 - a failed warm-up only makes the first query slow
            log.exception("warming up failed; the first request will retry")
        settle_heap()
