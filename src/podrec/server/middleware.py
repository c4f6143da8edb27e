"""Request body limits and the request metrics: one pure ASGI middleware, so a body over the
limit is refused before anything is parsed or stored. It also answers the hot routes given
as ``fast`` (``POST /recommendations``, ``POST /events``) without FastAPI's routing and
dependency solving when their request is well-formed; anything else goes through the full
app."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import HTTPException

from podrec.server import metrics
from podrec.server.auth import known_scope
from podrec.server.errors import error

# (scope, the whole body) -> the response, or None: the full app answers (and words the error)
Fast = Callable[[dict[str, Any], bytes], Awaitable[Any]]


def trusted_json(scope: dict[str, Any], body: bytes) -> dict[str, Any] | None:
    """The body's JSON object when the request is ``application/json`` sent with a bearer key
    this worker checked lately (``known_scope``): a request a fast route may answer itself.
    None: the full app answers it (a first or a bad key, a body that is not an object)."""
    content_type = authorization = None
    for name, value in scope["headers"]:  # the first of each, as Starlette reads them
        if name == b"content-type" and content_type is None:
            content_type = value
        elif name == b"authorization" and authorization is None:
            authorization = value
    if content_type != b"application/json" or authorization is None or known_scope(
            scope["app"].state.keys, authorization.decode("latin-1")) is None:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


async def answer_fast(app: Any, fast: Fast, scope: dict[str, Any], receive: Any,
                      send: Any) -> None:
    """``fast``'s answer when it has one, else the full ``app``'s, which is handed the same
    request: the messages already received are replayed to it (an exception raised while
    receiving, a 413, is raised again there)."""
    received: list[dict[str, Any]] = []
    failed: Exception | None = None
    try:
        while True:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request" or not message.get("more_body"):
                break
    except HTTPException as exc:
        failed = exc
    response = None
    if failed is None and received[-1]["type"] == "http.request":
        try:
            response = await fast(scope, b"".join(m.get("body", b"") for m in received))
        except Exception:  # noqa: BLE001 - the full app answers it, with the API's error
            response = None
    if response is not None:
        await response(scope, receive, send)
        return

    async def replay() -> dict[str, Any]:
        if failed is not None:
            raise failed
        return received.pop(0) if received else await receive()

    await app(scope, replay, send)


class ServeMiddleware:
    """Request body limits (413, on Content-Length and on the bytes actually streamed), the
    request count and latency metrics by route and status, and the ``fast`` routes, by
    (method, path)."""

    def __init__(self, app: Any, max_request_bytes: int, max_upload_bytes: int,
                 upload_paths: tuple[str, ...] = ("/catalog/ingest",),
                 fast: dict[tuple[str, str], Fast] | None = None) -> None:
        self.app = app
        self.max_request = max_request_bytes
        self.max_upload = max_upload_bytes
        self.upload_paths = upload_paths
        self.fast = fast or {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        limit = self.max_upload if scope["path"] in self.upload_paths else self.max_request
        what = ("server.max_upload_bytes" if limit == self.max_upload
                else "server.max_request_bytes")

        async def sending(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        received = 0

        async def receiving() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, f"request body larger than {limit} bytes "
                                        f"({what})")
            return message

        try:
            length = dict(scope.get("headers") or []).get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > limit):
                detail = (f"request body of {int(length)} bytes is larger than {limit} "
                          f"bytes ({what})" if length.isdigit() else "bad Content-Length")
                response = error(413 if length.isdigit() else 400, detail)
                response.headers["Connection"] = "close"
                await response(scope, receive, sending)
            elif (fast := self.fast.get((scope["method"], scope["path"]))) is not None:
                await answer_fast(self.app, fast, scope, receiving, sending)
            else:
                await self.app(scope, receiving, sending)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            if route is not None and route.__class__.__name__ == "Mount":
                label += "/*"
            code = str(status)
            metrics.REQUESTS.labels(scope["method"], label, code).inc()
            metrics.LATENCY.labels(scope["method"], label, code).observe(
                time.perf_counter() - start)
