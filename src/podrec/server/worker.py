"""One server worker process: its ``Podrec``, and how its threads compute.

Each uvicorn worker builds one ``ServedPodrec`` (``create_app``); every route reaches it
through the dependencies of ``server/deps.py``. The service owns its fitted models and
drops them through its one change hook (``podrec.models.invalidate``); what a worker adds
is keeping the garbage collector off the fitted models and one BLAS thread per request.
"""

from __future__ import annotations

import gc
import logging
import threading

from podrec.config import Config
from podrec.service import Podrec
from podrec.storage import StoreError

log = logging.getLogger("podrec.server")

# Requests one worker computes at once (anyio's thread limiter; the rest wait in the event
# loop). Its default of 40 threads fighting over the GIL cost 25-50% of the recommendation
# throughput and up to doubled its p99 under load (benchmarks/README.md, "REST API under
# load"). A slow request (an ingest fetching a URL, a training) holds one of them while it
# runs.
SERVE_THREADS = 4

_threads = threading.local()


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
