"""Errors as JSON: ``{"detail": message}``, and for validation errors also
``errors: [{field, location, message}]`` naming each bad field. The service's exceptions map
to status codes here, once: ``NotFoundError`` 404, ``ValueError`` 422, an unreachable database
503, a refused statement 500; nothing shows a traceback."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, OperationalError

from podrec.service import NotFoundError
from podrec.storage import StoreError

log = logging.getLogger("podrec.server")


def error(code: int, detail: str, /, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=code)


def invalid(loc: tuple[Any, ...], message: str, kind: str = "value_error", **extra: Any
            ) -> RequestValidationError:
    """A 422 for one field, e.g. ``invalid(("body", "format"), "expected ...")``."""
    return RequestValidationError([{"loc": loc, "type": kind, "msg": message, **extra}])


def field_of(loc: tuple[Any, ...]) -> tuple[str, str]:
    """('body', 'filters', 'per_show') -> ('filters.per_show', 'body')."""
    where = str(loc[0]) if loc else "request"
    parts = [str(p) for p in loc[1:]] if len(loc) > 1 else []
    return ".".join(parts) or where, where


def _where(field: str, location: str) -> str:
    if field == location:
        return "request body" if location == "body" else location
    return {"body": "field", "query": "query parameter", "path": "path parameter"}.get(
        location, location) + f" {field!r}"


def message_of(e: dict[str, Any]) -> str:
    """One pydantic error's message, as the API words it."""
    if e.get("type") == "missing":
        return "required, but missing"
    return str(e.get("msg", "invalid")).removeprefix("Value error, ")


def validation_errors(errors: list[dict[str, Any]]) -> JSONResponse:
    out = []
    for e in errors:
        field, where = field_of(tuple(e.get("loc") or ()))
        if e.get("type") == "json_invalid":
            message = f"not valid JSON ({(e.get('ctx') or {}).get('error', 'decode error')})"
            field = "body"
        else:
            message = message_of(e)
        out.append({"field": field, "location": where, "message": message})
    detail = "; ".join(f"{_where(o['field'], o['location'])}: {o['message']}" for o in out)
    return error(422, detail or "invalid request", errors=out)


async def _invalid(_request: Request, exc: RequestValidationError | ValidationError
                   ) -> JSONResponse:
    return validation_errors(list(exc.errors()))


async def _not_found(_request: Request, exc: Exception) -> JSONResponse:
    return error(404, str(exc))


async def _bad_value(_request: Request, exc: Exception) -> JSONResponse:
    return error(422, str(exc))


async def _no_database(_request: Request, exc: Exception) -> JSONResponse:
    log.error("database error: %s", exc)
    return error(503, "the database is unavailable; try again later")


async def _database_error(_request: Request, exc: Exception) -> JSONResponse:
    log.error("database error: %s", exc)
    return error(500, "the database refused the request")


async def _internal(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("internal error", exc_info=exc)
    return error(500, "internal server error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(ValidationError, _invalid)
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(ValueError, _bad_value)
    app.add_exception_handler(StoreError, _no_database)
    app.add_exception_handler(OperationalError, _no_database)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(Exception, _internal)
