"""The service itself: liveness, metrics, and the web page (no key needed)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Response
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from podrec.server import metrics, schemas
from podrec.server.deps import Lists, Service, router
from podrec.server.errors import error

log = logging.getLogger("podrec.server")

WEB_DIR = Path(__file__).parents[1] / "web"

routes = router("service")


@routes.get("/health", response_model=schemas.Health,
            responses={503: {"description": "the database is unreachable"}})
def health(podrec: Service, lists: Lists) -> Any:
    """Liveness and the item counts; no key needed."""
    try:
        counts = podrec.item_counts()
    except Exception as exc:  # noqa: BLE001 - any database failure is "unavailable"
        log.error("health check: %s", exc)
        return error(503, f"the database is unreachable ({type(exc).__name__})",
                     status="unavailable", database=podrec.dialect)
    return {"status": "ok", "database": podrec.dialect,
            "items": {"show": counts.get("show", 0), "episode": counts.get("episode", 0)},
            "cache": lists.mode}


@routes.get("/metrics", response_class=Response, responses={200: {
    "description": "every metric in Prometheus' text format",
    "content": {"text/plain": {"schema": {"type": "string"}}}}})
def prometheus() -> Response:
    """Prometheus metrics (text format); no key needed."""
    body, ctype = metrics.render()
    return Response(body, media_type=ctype)


@routes.get("/", include_in_schema=False)
def index() -> Any:
    page = WEB_DIR / "index.html"
    if not page.is_file():
        return error(404, "the web page is not installed (podrec/server/web/index.html is "
                     "missing); the API is at /docs")
    return FileResponse(page, media_type="text/html")


def mount_static(app: FastAPI) -> None:
    """The web page's scripts and styles under /static."""
    try:
        WEB_DIR.mkdir(exist_ok=True)
    except OSError:  # an installed, read-only package: serve what is there
        pass
    app.mount("/static", StaticFiles(directory=WEB_DIR, check_dir=False), name="static")
