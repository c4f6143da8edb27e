"""The OpenAPI document, made to say what the API answers.

FastAPI documents only the success of each route and, for routes with parameters, its own
422 (``detail`` as a list), which is not what podrec sends: every error here is
``{"detail": message}`` (server/errors.py), a 422 also with ``errors: [{field, location,
message}]``. Each route (``ServeRoute``, server/deps.py) declares the error statuses it can
answer, all with the one ``Error`` model, derived from what the route is made of:

- a key (server/auth.py): 401 (with ``WWW-Authenticate``), and 403 on admin routes;
- parameters or a body: 422; a body: 400 (a Content-Length that is not a number, a
  multipart body that cannot be read) and 413 (larger than the configured limit);
- the database (the key check reads it too): 503 when it is unreachable.

Statuses a route knows of itself (404 for an unknown listener, 409, 415) are declared on
the route with a description; they get the same model. ``install_openapi`` adds the model
to the document's components.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_flat_params

from podrec.server.schemas import Error

ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
# FastAPI's own 422 models, unused once every route declares its 422: dropped.
FASTAPI_422 = ("HTTPValidationError", "ValidationError")

UNAUTHORIZED = "missing, invalid or revoked API key (send `Authorization: Bearer <key>`)"
FORBIDDEN = "the key is a client key; this route needs an admin key"
BAD_REQUEST = ("the request cannot be read: a Content-Length that is not a number, or a "
               "multipart body that cannot be parsed")
TOO_LARGE = "request body larger than server.max_request_bytes"
INVALID = ("a parameter or field is invalid: `detail` names it and says what was expected; "
           "`errors` lists each bad field")
UNAVAILABLE = "the database is unreachable; try again later"
WWW_AUTHENTICATE = {"WWW-Authenticate": {"description": "`Bearer`: how a key is sent",
                                         "schema": {"type": "string"}}}


def error_responses(dependant: Dependant, declared: dict[int | str, Any], *, body: bool,
                    database: tuple[Callable[..., Any], ...]) -> dict[int | str, Any]:
    """``declared`` (a route's ``responses``) with every error status the route can answer
    added, each error with the ``Error`` model. ``body``: the route reads a request body;
    ``database``: the dependencies that read the database."""
    calls = list(_calls(dependant))
    scopes = {getattr(call, "scope", None) for call in calls} - {None}
    found: dict[int, str] = {}
    if body:
        found |= {400: BAD_REQUEST, 413: TOO_LARGE}
    if scopes:
        found[401] = UNAUTHORIZED
    if "admin" in scopes:
        found[403] = FORBIDDEN
    if body or get_flat_params(dependant):
        found[422] = INVALID
    if scopes or any(call in database for call in calls):
        found[503] = UNAVAILABLE
    out: dict[int | str, Any] = {code: dict(response) for code, response in declared.items()}
    for code, description in found.items():
        if code not in out and str(code) not in out:
            out[code] = {"description": description}
    for code, response in out.items():
        if str(code)[0] in "45" and "content" not in response and "model" not in response:
            response["content"] = ERROR_CONTENT
        if str(code) == "401":
            response["headers"] = {**response.get("headers", {}), **WWW_AUTHENTICATE}
    return dict(sorted(out.items(), key=lambda kv: str(kv[0])))


def install_openapi(app: FastAPI) -> None:
    """Serve ``app``'s document with the ``Error`` model in its components."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = generate()
            schemas = doc.setdefault("components", {}).setdefault("schemas", {})
            error = Error.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(error.pop("$defs", {}))
            schemas["Error"] = error
            if FASTAPI_422[0] not in str(doc["paths"]):
                for name in FASTAPI_422:
                    schemas.pop(name, None)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    """Every dependency ``dependant`` calls, however deep."""
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _calls(dependency)
