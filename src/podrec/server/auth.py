"""API keys: ``Authorization: Bearer <key>``, checked against the store's sha256 hashes.

Two scopes. ``client`` keys may send events, ask for recommendations, similar items, search
and onboarding, read the catalog and a listener's profile, and create a listener. ``admin``
keys may do all of that, plus ingest and the user operations (link, export, delete). No key
or a bad or revoked one is 401 (with ``WWW-Authenticate: Bearer``); a client key on an admin
route is 403. A worker trusts a key it checked for ``server.key_cache_seconds`` (default 1 s),
so a revoked key stops working within that time.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from podrec.server.cache import KeyCache

bearer = HTTPBearer(auto_error=False, scheme_name="apiKey",
                    description="An API key from `podrec keys create --scope admin|client`.")

Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


def known_scope(keys: KeyCache, authorization: str) -> str | None:
    """The scope of the bearer key in ``authorization`` when this worker checked it lately
    and it was live: what ``require`` would let through without reading the store. None:
    not known (or no bearer key), and ``require`` decides."""
    scheme, _, key = authorization.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        return None
    known, got = keys.get(key)
    return got if known else None


def require(scope: str):
    """A dependency that lets a request through only with a live key of ``scope`` (or
    admin, which may do everything); it returns the key's scope."""

    async def check(request: Request, credentials: Credentials) -> str:
        # Run on the event loop, not a thread: with the worker's key cache this is a dict
        # look-up, and otherwise one indexed read (well under a millisecond).
        if credentials is None or not credentials.credentials.strip():
            raise _unauthorized("missing API key: send the header 'Authorization: Bearer "
                                "<key>' (create a key with `podrec keys create`)")
        key = credentials.credentials.strip()
        keys = request.app.state.keys
        known, got = keys.get(key)
        if not known:
            got = request.app.state.podrec.store.check_api_key(key)
            keys.put(key, got)
        if got is None:
            raise _unauthorized("invalid or revoked API key")
        if scope == "admin" and got != "admin":
            raise HTTPException(403, f"this needs an admin key; this key's scope is {got!r}")
        return got

    check.__name__ = f"require_{scope}"
    check.scope = scope  # type: ignore[attr-defined]  # the OpenAPI document's 401/403
    return check


ADMIN = Depends(require("admin"))
CLIENT = Depends(require("client"))
