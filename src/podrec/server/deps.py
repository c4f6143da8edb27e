"""What a route may depend on, as FastAPI dependencies over the worker's state (set up once
by ``create_app``):

- ``Service``: the worker's ``Podrec`` facade; ``FreshService``: the same, after checking
  that no other process changed the catalog or the served model (at most one read a second);
- ``Lists``: the worker's kept lists (``KeptLists``);
- ``Settings``: the configuration;
- ``Training``: the lock that lets one training run at a time over the database.

The dependencies are async, so they cost no thread hand-off: a kept list is answered on the
event loop. Routes are registered with ``ServeRoute``, which runs each sync route on one of
the worker's request threads (``on_request_thread``), limited to one BLAS/OpenMP thread
(``one_thread``), and which documents every error status the route can answer
(server/openapi.py).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.routing import APIRoute

from podrec.config import Config
from podrec.server.lists import KeptLists
from podrec.server.openapi import error_responses
from podrec.server.training import TrainLock
from podrec.server.worker import ServedPodrec, on_request_thread


async def get_podrec(request: Request) -> ServedPodrec:
    return request.app.state.podrec


async def get_fresh_podrec(request: Request) -> ServedPodrec:
    podrec: ServedPodrec = request.app.state.podrec
    podrec.refresh()
    return podrec


async def get_lists(request: Request) -> KeptLists:
    return request.app.state.lists


async def get_settings(request: Request) -> Config:
    return request.app.state.config


async def get_train_lock(request: Request) -> TrainLock:
    return request.app.state.train_lock


Service = Annotated[ServedPodrec, Depends(get_podrec)]
FreshService = Annotated[ServedPodrec, Depends(get_fresh_podrec)]
Lists = Annotated[KeptLists, Depends(get_lists)]
Settings = Annotated[Config, Depends(get_settings)]
Training = Annotated[TrainLock, Depends(get_train_lock)]


def _on_request_thread(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """The sync ``endpoint`` as a coroutine that runs it on a request thread
    (``on_request_thread``: FastAPI's own hand-off to anyio costs ~8x the CPU under load);
    its signature, name and docstring stay the endpoint's, for FastAPI and the document."""

    def run(kwargs: dict[str, Any]) -> Any:
        return endpoint(**kwargs)  # request threads start limited to one BLAS thread

    @functools.wraps(endpoint)
    async def call(**kwargs: Any) -> Any:
        return await on_request_thread(run, kwargs)

    return call


class ServeRoute(APIRoute):
    """A route whose sync endpoint runs on one of the worker's request threads, limited to
    one BLAS thread."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint):
            endpoint = _on_request_thread(endpoint)
        super().__init__(path, endpoint, **kwargs)
        # The OpenAPI document: every error status this route can answer (server/openapi.py)
        body = self.body_field is not None or "requestBody" in (self.openapi_extra or {})
        self.responses = error_responses(self.dependant, self.responses, body=body,
                                         database=(get_podrec, get_fresh_podrec))


def router(tag: str) -> APIRouter:
    """A resource's router: its OpenAPI tag, its routes run as ``ServeRoute``s."""
    return APIRouter(tags=[tag], route_class=ServeRoute)
