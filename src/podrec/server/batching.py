"""Cache-miss lists computed together (``Podrec.recommend_many``).

Under load a worker's requests queue for the CPU anyway. Rather than hand each one to a
request thread on its own, the lists asked for while one batch is being computed go into the
next batch, up to ``server.batch_lists`` of them: the served model scores their listeners in
one call per part, and the event loop hands one batch to a thread instead of one list each.
A request that finds nothing being computed starts a batch at once, so a lone request never
waits for company. Each request still gets its own list, or its own error.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, field

from podrec.recommend.request import RecommendRequest
from podrec.recommend.results import Recommendation
from podrec.server.worker import ServedPodrec, on_request_thread

Waiting = tuple[RecommendRequest, "asyncio.Future[list[Recommendation]]"]


@dataclass
class _LoopBatches:
    """One event loop's lists waiting, and the task computing them."""

    waiting: list[Waiting] = field(default_factory=list)
    draining: asyncio.Task[None] | None = None


class ListBatcher:
    """Lists to compute, batched per event loop (a worker runs one; a test's clients may
    run several at once): at most one batch at a time per loop, on its request threads."""

    def __init__(self, most: int = 32) -> None:
        self.most = max(1, int(most))
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopBatches] = \
            weakref.WeakKeyDictionary()

    async def recommend(self, podrec: ServedPodrec, request: RecommendRequest
                        ) -> list[Recommendation]:
        """The list for ``request`` (what ``podrec.recommend(request)`` returns or raises),
        computed with the others waiting now."""
        loop = asyncio.get_running_loop()
        mine = self._loops.get(loop)
        if mine is None:
            mine = self._loops[loop] = _LoopBatches()
        answer: asyncio.Future[list[Recommendation]] = loop.create_future()
        mine.waiting.append((request, answer))
        if mine.draining is None or mine.draining.done():
            mine.draining = loop.create_task(self._drain(podrec, mine))
        return await answer

    async def _drain(self, podrec: ServedPodrec, mine: _LoopBatches) -> None:
        while mine.waiting:
            batch, mine.waiting = mine.waiting[:self.most], mine.waiting[self.most:]
            requests = [r for r, _ in batch]
            try:
                if len(batch) == 1:  # alone: the plain call, nothing to gather
                    answers: list[list[Recommendation] | Exception] = [
                        await on_request_thread(podrec.recommend, requests[0])]
                else:
                    answers = await on_request_thread(podrec.recommend_many, requests)
            except Exception as exc:  # noqa: BLE001 - every request of the batch is told
                answers = [exc] * len(batch)
            for (_, answer), found in zip(batch, answers, strict=True):
                if answer.done():  # the client went away
                    continue
                if isinstance(found, Exception):
                    answer.set_exception(found)
                else:
                    answer.set_result(found)
