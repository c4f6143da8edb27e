"""The FastAPI app: routes over one ``Podrec`` per worker process.

Every route is a thin call into ``podrec.service.Podrec``; what the API adds is keys and
scopes (auth.py), validation with 4xx messages that name the field, request size limits,
Prometheus metrics, and keeping each worker's cached models in step with the database that
all workers share (``ServedPodrec.refresh``).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import tempfile
import threading
import time
import urllib.request
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from podrec.config import Config, load_config
from podrec.ingest.datasets import FORMATS
from podrec.ingest.feeds import FEED_SUFFIXES, OPML_SUFFIXES, USER_AGENT
from podrec.recommend.context import RequestContext
from podrec.recommend.request import RecommendRequest
from podrec.records import IngestReport
from podrec.server import metrics, schemas
from podrec.server.auth import ADMIN, CLIENT
from podrec.server.cache import CachedResponse, KeyCache, ResponseCache
from podrec.server.notify import ListenerChanges
from podrec.service import NotFoundError, Podrec
from podrec.storage import StoreError

log = logging.getLogger("podrec.server")

WEB_DIR = Path(__file__).parent / "web"
CATALOG_SUFFIXES = {".csv", ".tsv", ".dat", ".jsonl", ".ndjson", ".json"}
REPORT_FILES = {".png", ".svg", ".json", ".md"}
VERSION_CHECK_SECONDS = 1.0
# Requests one worker computes at once (anyio's thread limiter; the rest wait in the event
# loop). Its default of 40 threads fighting over the GIL cost 25-50% of the recommendation
# throughput and up to doubled its p99 under load (benchmarks/README.md, "REST API under
# load"). A slow request (an ingest fetching a URL) holds one of them while it runs.
SERVE_THREADS = 4
EVENT_WRITE_ATTEMPTS = 3

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


# -- errors ----------------------------------------------------------------------------------
def _error(code: int, detail: str, /, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=code)


def _field_of(loc: tuple[Any, ...]) -> tuple[str, str]:
    """('body', 'filters', 'per_show') -> ('filters.per_show', 'body')."""
    where = str(loc[0]) if loc else "request"
    parts = [str(p) for p in loc[1:]] if len(loc) > 1 else []
    return ".".join(parts) or where, where


def _where(field: str, location: str) -> str:
    if field == location:
        return "request body" if location == "body" else location
    return {"body": "field", "query": "query parameter", "path": "path parameter"}.get(
        location, location) + f" {field!r}"


def _validation_errors(errors: list[dict[str, Any]]) -> JSONResponse:
    out = []
    for e in errors:
        field, where = _field_of(tuple(e.get("loc") or ()))
        if e.get("type") == "json_invalid":
            message = f"not valid JSON ({(e.get('ctx') or {}).get('error', 'decode error')})"
            field = "body"
        elif e.get("type") == "missing":
            message = "required, but missing"
        else:
            message = str(e.get("msg", "invalid"))
            message = message.removeprefix("Value error, ")
        out.append({"field": field, "location": where, "message": message})
    detail = "; ".join(f"{_where(o['field'], o['location'])}: {o['message']}" for o in out)
    return _error(422, detail or "invalid request", errors=out)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_errors(list(exc.errors()))

    @app.exception_handler(ValidationError)
    async def _invalid_model(_request: Request, exc: ValidationError) -> JSONResponse:
        return _validation_errors(list(exc.errors()))

    @app.exception_handler(NotFoundError)
    async def _not_found(_request: Request, exc: NotFoundError) -> JSONResponse:
        return _error(404, str(exc))

    @app.exception_handler(ValueError)
    async def _bad_value(_request: Request, exc: ValueError) -> JSONResponse:
        return _error(422, str(exc))

    @app.exception_handler(StoreError)
    @app.exception_handler(OperationalError)
    async def _no_database(_request: Request, exc: Exception) -> JSONResponse:
        log.error("database error: %s", exc)
        return _error(503, "the database is unavailable; try again later")

    @app.exception_handler(DBAPIError)
    async def _database_error(_request: Request, exc: DBAPIError) -> JSONResponse:
        log.error("database error: %s", exc)
        return _error(500, "the database refused the request")

    @app.exception_handler(Exception)
    async def _internal(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error", exc_info=exc)
        return _error(500, "internal server error")


# -- request size limits and metrics -----------------------------------------------------------
class ServeMiddleware:
    """Request body limits (413, on Content-Length and on the bytes actually streamed), and
    the request count and latency metrics by route and status."""

    def __init__(self, app: Any, max_request_bytes: int, max_upload_bytes: int,
                 upload_paths: tuple[str, ...] = ("/catalog/ingest",)) -> None:
        self.app = app
        self.max_request = max_request_bytes
        self.max_upload = max_upload_bytes
        self.upload_paths = upload_paths

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
                response = _error(413 if length.isdigit() else 400, detail)
                response.headers["Connection"] = "close"
                await response(scope, receive, sending)
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


# -- helpers ---------------------------------------------------------------------------------
def _podrec(request: Request, fresh: bool = False) -> ServedPodrec:
    """The worker's Podrec, on a thread limited to one BLAS/OpenMP thread; with ``fresh``,
    after checking that no other worker changed the catalog."""
    one_thread()
    podrec: ServedPodrec = request.app.state.podrec
    if fresh:
        podrec.refresh()
    return podrec


def _report_json(report: IngestReport, rename: dict[str, str] | None = None
                 ) -> dict[str, Any]:
    rename = rename or {}
    return {"added": report.added, "updated": report.updated, "unchanged": report.unchanged,
            "duplicates": report.duplicates, "failed": report.failed,
            "skipped": report.skipped,
            "problems": [{"source": rename.get(p.source, p.source), "location": p.location,
                          "field": p.field, "message": p.message} for p in report.problems]}


def _recs(items: list[Any], endpoint: str) -> dict[str, Any]:
    metrics.served(endpoint, len(items))
    return {"items": [r.to_dict() for r in items]}


def _sniff_suffix(head: bytes) -> str:
    text = head.lstrip()[:2000].lower()
    if text.startswith(b"<"):
        return ".opml" if b"<opml" in text else ".xml"
    if text.startswith(b"["):
        return ".json"
    if text.startswith(b"{"):
        return ".jsonl"
    return ".csv"


def _check_format(fmt: str | None) -> str | None:
    fmt = (fmt or "").strip() or None
    if fmt is not None and fmt not in FORMATS and fmt not in ("feed", "opml"):
        raise RequestValidationError([{
            "loc": ("body", "format"), "type": "value_error",
            "msg": f"expected feed, opml or a catalog format ({', '.join(FORMATS)}), "
                   f"got {fmt!r}"}])
    return fmt


def _ingest_path(podrec: ServedPodrec, path: Path, fmt: str | None) -> IngestReport:
    if fmt in ("feed", "opml") or (fmt is None and path.suffix in FEED_SUFFIXES
                                    | OPML_SUFFIXES):
        return podrec.ingest_feeds([str(path)])
    return podrec.ingest_catalog(path, fmt)


def _download(url: str, dest_dir: Path, limit: int, report: IngestReport,
              suffix: str | None = None) -> Path | None:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - http(s)
            data = response.read(limit + 1)
            ctype = response.headers.get("Content-Type", "")
    except (OSError, ValueError) as exc:
        report.fail(url, "fetch", None, f"cannot read: {exc}")
        return None
    if len(data) > limit:
        report.fail(url, "fetch", None, f"larger than {limit} bytes (server.max_upload_bytes)")
        return None
    if suffix is None:
        suffix = Path(urllib.request.urlparse(url).path).suffix.lower()
        if suffix not in CATALOG_SUFFIXES:
            suffix = (".csv" if "csv" in ctype else ".json" if "json" in ctype
                      else _sniff_suffix(data[:2000]))
    path = dest_dir / f"download{suffix}"
    path.write_bytes(data)
    return path


def _latest_report(reports_dir: Path) -> Path | None:
    if not reports_dir.is_dir():
        return None
    found = [p for p in reports_dir.rglob("results.json") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


# -- the app ---------------------------------------------------------------------------------
def create_app(config: Config | None = None, database_url: str | None = None, *,
               warm: bool = True, threads: int | None = SERVE_THREADS) -> FastAPI:
    """The API over the database ``database_url`` (default: the configuration's). With
    ``warm``, the embedder and the show model load in the background at start-up.
    ``threads``: requests computed at once (None: anyio's default, 40)."""
    config = config or load_config()
    podrec = ServedPodrec(config, database_url=database_url)
    podrec.refresh(force=True)  # the baseline, taken before any model is fitted
    server = config.server
    reports_dir = Path(server.reports_dir)
    lists = ResponseCache(server.cache_mb * 2**20, server.cache_seconds)
    watcher: ListenerChanges | None = None
    if lists.enabled and server.cache_sync == "notify":
        if podrec.store.engine.dialect.name == "postgresql":
            watcher = ListenerChanges(podrec.store.url, lists.forget, lists.clear)
        else:
            log.warning("server.cache_sync = \"notify\" needs PostgreSQL; on %s each "
                        "listener's version is read instead",
                        podrec.store.engine.dialect.name)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        if threads:
            import anyio.to_thread

            anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        if warm:
            threading.Thread(target=podrec.warm, name="podrec-warm", daemon=True).start()
        if watcher is not None:
            watcher.start()
        yield
        if watcher is not None:
            watcher.stop()
        podrec.close()

    app = FastAPI(
        title="podrec", version="0.1.0", lifespan=lifespan,
        description="Podcast recommendations over HTTP. Send `Authorization: Bearer <key>` "
        "(keys: `podrec keys create --scope admin|client`). Client keys: events, "
        "recommendations, similar, search, onboarding, the catalog, profiles, creating "
        "listeners. Admin keys: everything, including ingest and linking, exporting and "
        "deleting listeners. Errors are JSON `{\"detail\": message}`; validation errors "
        "also list `errors: [{field, location, message}]`.")
    app.state.podrec = podrec
    app.state.config = config
    app.state.keys = KeyCache(server.key_cache_seconds)
    app.add_middleware(ServeMiddleware, max_request_bytes=server.max_request_bytes,
                       max_upload_bytes=server.max_upload_bytes)
    _install_error_handlers(app)

    # -- open routes ---------------------------------------------------------------------
    @app.get("/health", response_model=schemas.Health, tags=["service"],
             responses={503: {"description": "the database is unreachable"}})
    def health(request: Request) -> Any:
        """Liveness and the item counts; no key needed."""
        podrec = _podrec(request)
        try:
            counts = podrec.store.count_items()
        except Exception as exc:  # noqa: BLE001 - any database failure is "unavailable"
            log.error("health check: %s", exc)
            return _error(503, f"the database is unreachable ({type(exc).__name__})",
                          status="unavailable", database=podrec.store.engine.dialect.name)
        cache = ("off" if not lists.enabled else "notify" if watcher is not None
                 and watcher.ready else "read")
        return {"status": "ok", "database": podrec.store.engine.dialect.name,
                "items": {"show": counts.get("show", 0), "episode": counts.get("episode", 0)},
                "cache": cache}

    @app.get("/metrics", tags=["service"], response_class=Response)
    def prometheus() -> Response:
        """Prometheus metrics (text format); no key needed."""
        body, ctype = metrics.render()
        return Response(body, media_type=ctype)

    @app.get("/", include_in_schema=False)
    def index() -> Any:
        page = WEB_DIR / "index.html"
        if not page.is_file():
            return _error(404, "the web page is not installed (podrec/server/web/index.html "
                          "is missing); the API is at /docs")
        return FileResponse(page, media_type="text/html")

    try:
        WEB_DIR.mkdir(exist_ok=True)
    except OSError:  # an installed, read-only package: serve what is there
        pass
    app.mount("/static", StaticFiles(directory=WEB_DIR, check_dir=False), name="static")

    # -- catalog -------------------------------------------------------------------------
    ingest_body = {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {
                "file": {"type": "string", "format": "binary",
                         "description": "a catalog (CSV, JSONL, JSON), feed or OPML file"},
                "format": {"type": "string", "description": "feed, opml or a catalog "
                           "format (" + ", ".join(FORMATS) + "); detected when left out"},
                "enrich": {"type": "boolean", "description": "embed and tag what is new "
                           "afterwards"}}}},
        "application/json": {"schema": schemas.IngestURL.model_json_schema()}}}}

    @app.post("/catalog/ingest", response_model=schemas.IngestReport, tags=["catalog"],
              dependencies=[ADMIN], openapi_extra=ingest_body,
              responses={413: {"description": "upload larger than server.max_upload_bytes"},
                         415: {"description": "neither multipart/form-data nor JSON"}})
    async def ingest(request: Request) -> Any:
        """Ingest a catalog, feed or OPML file (multipart upload: `file`, optional `format`
        and `enrich`), or the same from a URL (JSON: `url`, `type`, `format`, `enrich`).
        Bad records are reported and skipped; the rest go in. Admin only."""
        podrec = _podrec(request)
        ctype = request.headers.get("content-type", "").lower()
        with tempfile.TemporaryDirectory(prefix="podrec-ingest-") as tmp:
            tmpdir = Path(tmp)
            if ctype.startswith("multipart/form-data"):
                form = await request.form(max_files=1, max_fields=10)
                upload = form.get("file")
                if not isinstance(upload, UploadFile):
                    raise RequestValidationError([{
                        "loc": ("body", "file"), "type": "missing",
                        "msg": "required: a catalog, feed or OPML file"}])
                fmt = _check_format(str(form.get("format") or ""))
                enrich = str(form.get("enrich") or "").lower() in ("1", "true", "yes", "on")
                name = upload.filename or "upload"
                suffix = Path(name).suffix.lower()
                head = await upload.read(2000)
                if fmt == "opml":
                    suffix = ".opml"
                elif fmt == "feed":
                    suffix = suffix if suffix in FEED_SUFFIXES else ".xml"
                elif suffix not in CATALOG_SUFFIXES | FEED_SUFFIXES | OPML_SUFFIXES:
                    suffix = _sniff_suffix(head)
                path = tmpdir / f"upload{suffix}"
                with path.open("wb") as out:
                    out.write(head)
                    while chunk := await upload.read(1 << 20):
                        out.write(chunk)
                await upload.close()
                report = await run_in_threadpool(_ingest_path, podrec, path, fmt)
                rename = {str(path): name}
            elif ctype.startswith("application/json") or not ctype:
                try:
                    body = json.loads(await request.body() or b"null")
                except json.JSONDecodeError as exc:
                    raise RequestValidationError([{"loc": ("body",), "type": "json_invalid",
                                                   "msg": "JSON decode error",
                                                   "ctx": {"error": exc.msg}}]) from None
                if not isinstance(body, dict):
                    raise RequestValidationError([{
                        "loc": ("body",), "type": "model_type",
                        "msg": "expected a JSON object {url, type, format, enrich}"}])
                try:
                    req = schemas.IngestURL.model_validate(body)
                except ValidationError as exc:
                    raise RequestValidationError(
                        [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None
                fmt = _check_format(req.format)
                enrich = req.enrich
                report, rename = await run_in_threadpool(
                    _ingest_url, podrec, req, fmt, tmpdir, config.server.max_upload_bytes)
            else:
                return _error(415, "send multipart/form-data with a file, or JSON "
                              "{\"url\": ..., \"type\": \"feed\"|\"opml\"|\"catalog\"}")
        out = _report_json(report, rename)
        if enrich:
            summary = await run_in_threadpool(_enrich, podrec)
            out["enrich"] = summary
        return out

    def _ingest_url(podrec: ServedPodrec, req: schemas.IngestURL, fmt: str | None,
                    tmpdir: Path, limit: int) -> tuple[IngestReport, dict[str, str]]:
        one_thread()
        if req.type == "feed" and fmt in (None, "feed"):
            return podrec.ingest_feeds([req.url]), {}
        report = IngestReport()
        kind = "opml" if req.type == "opml" else fmt
        path = _download(req.url, tmpdir, limit, report,
                         ".opml" if kind == "opml" else ".xml" if kind == "feed" else None)
        if path is None:
            return report, {}
        report.merge(_ingest_path(podrec, path, kind))
        return report, {str(path): req.url}

    def _enrich(podrec: ServedPodrec) -> dict[str, int]:
        one_thread()
        return podrec.enrich().summary()

    @app.get("/items", response_model=schemas.ItemList, tags=["catalog"],
             dependencies=[CLIENT])
    def list_items(request: Request, kind: schemas.Kind | None = None,
                   show_id: str | None = None, tag: str | None = None,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                   offset: Annotated[int, Query(ge=0)] = 0) -> Any:
        """Stored shows and episodes with every normalised field and tag, in storage order."""
        items = _podrec(request).list_items(kind=kind, show_id=show_id, tag=tag, limit=limit,
                                            offset=offset)
        return {"items": items, "limit": limit, "offset": offset}

    @app.get("/items/{kind}/{item_id:path}/similar", response_model=schemas.RecommendationList,
             tags=["recommend"], dependencies=[CLIENT])
    def similar(request: Request, kind: schemas.Kind, item_id: str,
                k: Annotated[int | None, Query(ge=1, le=1000)] = None) -> Any:
        """The items most like one item (of its kind)."""
        return _recs(_podrec(request, fresh=True).similar(item_id, k, kind=kind), "similar")

    @app.get("/items/{kind}/{item_id:path}", tags=["catalog"], dependencies=[CLIENT])
    def item(request: Request, kind: schemas.Kind, item_id: str) -> dict[str, Any]:
        """One show or episode: every field and every tag (with source and score)."""
        return _podrec(request).item_details(item_id, kind)

    @app.get("/tags", response_model=schemas.TagList, tags=["catalog"], dependencies=[CLIENT])
    def tags(request: Request,
             source: Annotated[str | None, Query(pattern="^(category|taxonomy|keyphrase)$")]
             = None, limit: Annotated[int, Query(ge=1, le=1000)] = 30) -> Any:
        """The most used tags, with how many items carry each."""
        counts = _podrec(request).store.tag_counts(source=source, limit=limit)
        return {"tags": [{"tag": t, "count": n} for t, n in counts]}

    @app.get("/catalog/stats", tags=["catalog"], dependencies=[CLIENT])
    def catalog_stats(request: Request) -> dict[str, Any]:
        """Items per kind, languages, top tags and the number of listeners."""
        return _podrec(request).catalog_stats()

    # -- events --------------------------------------------------------------------------
    def _store_events(podrec: ServedPodrec, rows: list[dict[str, Any]],
                      positions: list[int], report: IngestReport) -> IngestReport:
        # Two requests storing the same event at once: the second transaction fails on the
        # event's unique key and rolls back. Store again: the store's de-duplication skips
        # what the other request stored. (New listeners are inserted idempotently by the
        # store; a batch is written in chunks of 500, and chunks committed before the
        # failure then count as unchanged.)
        for attempt in range(EVENT_WRITE_ATTEMPTS):
            try:
                stored = podrec.add_events(rows)
                break
            except IntegrityError:
                if attempt == EVENT_WRITE_ATTEMPTS - 1:
                    raise
                log.info("another request stored the same event: storing again")
        for user in {str(r.get("user_id")) for r in rows}:  # this worker's lists, at once
            lists.forget(user)
        for p in stored.problems:  # "event 2" of the good rows -> its index in the request
            head, _, index = p.location.partition(" ")
            if head == "event" and index.isdigit() and int(index) < len(positions):
                p.location = f"event {positions[int(index)]}"
        report.merge(stored)
        report.problems.sort(key=lambda p: int(p.location.partition(" ")[2] or 0)
                             if p.location.partition(" ")[2].isdigit() else 0)
        metrics.EVENTS.labels("accepted").inc(report.added)
        metrics.EVENTS.labels("unchanged").inc(report.unchanged)
        metrics.EVENTS.labels("rejected").inc(report.failed)
        return report

    def _events_json(report: IngestReport) -> dict[str, Any]:
        return {"added": report.added, "unchanged": report.unchanged, "failed": report.failed,
                "problems": [{"location": p.location, "field": p.field, "message": p.message}
                             for p in report.problems]}

    @app.post("/events", response_model=schemas.EventReport, tags=["events"],
              dependencies=[CLIENT], responses={422: {"description": "invalid event; "
                                                      "nothing stored"}})
    def add_event(request: Request, event: schemas.EventIn) -> Any:
        """Store one event. An invalid event is a 422 naming the field, and nothing is
        stored. Sending the same event twice stores it once (`unchanged`)."""
        podrec = _podrec(request)
        from podrec.ingest.events import event_from_row
        from podrec.ingest.normalize import FieldError

        row = event.as_row(datetime.now(UTC))
        try:
            event_from_row(row)
        except FieldError as exc:
            field, _, message = str(exc).partition(": ")
            metrics.EVENTS.labels("rejected").inc()
            if not message:
                field, message = "event", str(exc)
            return _error(422, f"field {field!r}: {message}",
                          errors=[{"field": field, "location": "body", "message": message}])
        return _events_json(_store_events(podrec, [row], [0], IngestReport()))

    @app.post("/events/batch", response_model=schemas.EventReport, tags=["events"],
              dependencies=[CLIENT])
    def add_events(request: Request, batch: schemas.EventBatch) -> Any:
        """Store up to 10,000 events. Each bad event is reported by its index (`event 3`,
        0-based) and field, and skipped; the good ones are stored."""
        podrec = _podrec(request)
        now = datetime.now(UTC)
        report = IngestReport()
        rows, positions = [], []
        for i, raw in enumerate(batch.events):
            if not isinstance(raw, dict):
                report.fail("request", f"event {i}", None, "expected a JSON object")
                continue
            try:
                rows.append(schemas.EventIn.model_validate(raw).as_row(now))
                positions.append(i)
            except ValidationError as exc:
                e = exc.errors()[0]
                field, _ = _field_of(("body", *e["loc"]))
                message = ("required, but missing" if e["type"] == "missing"
                           else str(e["msg"]).removeprefix("Value error, "))
                report.fail("request", f"event {i}", field, message)
        return _events_json(_store_events(podrec, rows, positions, report))

    # -- recommendations -----------------------------------------------------------------
    async def _list_response(request: Request, endpoint: str, user_id: str | None,
                             asked: str, compute: Any) -> Response:
        """A list from the worker's cache when one was computed for the same request, the
        same listener version and the same models; else computed on a request thread and
        kept. ``asked``: the request, canonically serialised.

        Whether the listener changed since is known from the database (their version, one
        indexed read, the key of the kept list) or, with ``cache_sync = "notify"`` on
        PostgreSQL, from the database's announcements, which drop the listener's lists."""
        podrec = _podrec(request, fresh=True)
        key: tuple[Any, ...] | None = None
        stamp: tuple[int, ...] | None = None
        person = None
        if lists.enabled:
            watching = watcher is not None and watcher.ready
            # Without announcements the listener's version is part of the key; with them it
            # is read only on a miss, for their person (None: an unknown listener, 404).
            version = podrec.store.listener_version(user_id) \
                if user_id and not watching else ()
            if version is not None:
                key = (endpoint, asked, podrec.generation, version)
                if (hit := lists.get(key)) is not None:
                    metrics.served(endpoint, hit.n_items, cached=True)
                    return Response(hit.body, media_type="application/json")
                if user_id and watching:
                    found = podrec.store.listener_version(user_id)
                    key, person = (None, None) if found is None else (key, found[0] or None)
                stamp = lists.stamp(user_id, person)  # before the events are read
        items = await run_in_threadpool(compute, podrec)
        body = schemas.RecommendationList.model_validate(
            {"items": [r.to_dict() for r in items]}).model_dump_json().encode()
        metrics.served(endpoint, len(items))
        if key is not None:
            lists.put(key, CachedResponse(body, len(items)), stamp, user_id, person)
        return Response(body, media_type="application/json")

    @app.post("/recommendations", response_model=schemas.RecommendationList,
              tags=["recommend"], dependencies=[CLIENT])
    async def recommend(request: Request, body: schemas.RecommendRequest) -> Any:
        """Recommendations for a listener (their history as stored now), seed items and/or
        free text, with filters, context, diversity and explanations."""
        f = body.filters or schemas.FiltersIn()
        context = (RequestContext(**body.context.model_dump())
                   if body.context is not None else None)

        def compute(podrec: ServedPodrec) -> list[Any]:
            one_thread()
            return podrec.recommend(RecommendRequest(
                user_id=body.user_id, seeds=tuple(body.seeds or ()), query=body.query,
                k=body.k, kind=body.kind, diversity=body.diversity, explain=body.explain,
                languages=tuple(f.languages or ()), allow_explicit=f.allow_explicit,
                blocked=tuple(f.blocked or ()), per_show=f.per_show, context=context,
                platform=body.platform, now=body.now))

        return await _list_response(request, "recommendations", body.user_id,
                                    body.model_dump_json(), compute)

    @app.get("/users/{user_id}/recommendations", response_model=schemas.RecommendationList,
             tags=["recommend"], dependencies=[CLIENT])
    async def user_recommendations(request: Request, user_id: str,
                                   k: Annotated[int | None, Query(ge=1, le=1000)] = None,
                                   kind: schemas.Kind = "show", explain: bool = False) -> Any:
        """A listener's recommendations (the short form of POST /recommendations)."""
        def compute(podrec: ServedPodrec) -> list[Any]:
            one_thread()
            return podrec.recommend(user_id=user_id, k=k, kind=kind, explain=explain)

        return await _list_response(request, "recommendations", user_id,
                                    json.dumps([user_id, k, kind, explain]), compute)

    @app.get("/search", response_model=schemas.RecommendationList, tags=["recommend"],
             dependencies=[CLIENT])
    async def search(request: Request, q: Annotated[str, Query(min_length=1, max_length=2000)],
                     k: Annotated[int | None, Query(ge=1, le=1000)] = None,
                     kind: schemas.Kind = "show",
                     language: Annotated[list[str] | None, Query()] = None) -> Any:
        """Semantic search in any language ("podcasts about the history of Rome")."""
        if not q.strip():
            raise RequestValidationError([{"loc": ("query", "q"), "type": "value_error",
                                           "msg": "must not be blank"}])

        def compute(podrec: ServedPodrec) -> list[Any]:
            one_thread()
            return podrec.search(q, k=k, kind=kind, languages=language)

        return await _list_response(request, "search", None,
                                    json.dumps([q.strip(), k, kind, language]), compute)

    @app.get("/onboarding", response_model=schemas.RecommendationList, tags=["recommend"],
             dependencies=[CLIENT])
    def onboarding(request: Request, k: Annotated[int, Query(ge=1, le=200)] = 12,
                   language: Annotated[list[str] | None, Query()] = None) -> Any:
        """Popular shows spread over genres, for a new listener to pick from."""
        return _recs(_podrec(request, fresh=True).onboarding(k=k, languages=language),
                     "onboarding")

    # -- users ---------------------------------------------------------------------------
    @app.post("/users", response_model=schemas.UserCreated, status_code=201, tags=["users"],
              dependencies=[CLIENT])
    def create_user(request: Request, body: schemas.UserIn, response: Response) -> Any:
        """Create a listener with no events yet (201; 200 when they already exist)."""
        podrec = _podrec(request)
        user_id = body.user_id.strip()
        if not user_id:
            raise RequestValidationError([{"loc": ("body", "user_id"), "type": "value_error",
                                           "msg": "must not be blank"}])
        existed = podrec.store.user_exists(user_id)
        podrec.create_user(user_id)
        if existed:
            response.status_code = 200
        return {"user_id": user_id, "created": not existed}

    @app.get("/users/{user_id}/profile", tags=["users"], dependencies=[CLIENT])
    def profile(request: Request, user_id: str) -> dict[str, Any]:
        """A listener's profile: linked accounts, event counts and their interests."""
        podrec = _podrec(request, fresh=True)
        if not podrec.store.user_exists(user_id):
            raise NotFoundError(f"no listener with id {user_id!r}")
        return podrec.profile(user_id)

    @app.post("/users/{user_id}/link", response_model=schemas.Linked, tags=["users"],
              dependencies=[ADMIN])
    def link(request: Request, user_id: str, body: schemas.LinkIn) -> Any:
        """Link a listener's accounts on several platforms: one person, one profile."""
        podrec = _podrec(request)
        person = podrec.link_users([user_id, *body.accounts], body.person_id)
        accounts = podrec.store.linked_accounts(user_id)
        for account in accounts:  # this worker's lists at once; others as the database says
            lists.forget(account, person)
        return {"person_id": person, "accounts": accounts}

    @app.get("/users/{user_id}/export", tags=["users"], dependencies=[ADMIN])
    def export(request: Request, user_id: str) -> dict[str, Any]:
        """Everything stored about one account: its record, links and every event."""
        return _podrec(request).export_user(user_id)

    @app.delete("/users/{user_id}", response_model=schemas.Deleted, tags=["users"],
                dependencies=[ADMIN])
    def delete_user(request: Request, user_id: str) -> Any:
        """Delete an account and every event it sent (linked accounts stay)."""
        podrec = _podrec(request)
        person = podrec.store.person_of(user_id)
        deleted = podrec.delete_user(user_id)
        lists.forget(user_id, person)
        return deleted

    # -- evaluation reports --------------------------------------------------------------
    @app.get("/reports/latest", tags=["reports"], dependencies=[CLIENT])
    def latest_report() -> dict[str, Any]:
        """The newest `podrec evaluate` run under server.reports_dir: its results.json,
        its Markdown and the URLs of its plots."""
        found = _latest_report(reports_dir)
        if found is None:
            raise NotFoundError(f"no evaluation report under {str(reports_dir)!r} "
                                "(run `podrec evaluate --out` there)")
        folder = found.parent
        rel = folder.relative_to(reports_dir).as_posix()
        prefix = "/reports/files/" + (f"{rel}/" if rel != "." else "")
        md = folder / "results.md"
        return {"name": rel if rel != "." else folder.name,
                "modified": datetime.fromtimestamp(found.stat().st_mtime, UTC).isoformat(),
                "results": json.loads(found.read_text(encoding="utf-8")),
                "markdown": md.read_text(encoding="utf-8") if md.is_file() else None,
                "images": [{"name": p.name, "url": prefix + p.name}
                           for p in sorted(folder.glob("*.png"))]}

    @app.get("/reports/files/{path:path}", tags=["reports"], dependencies=[CLIENT],
             response_class=FileResponse)
    def report_file(path: str) -> Any:
        """A file of an evaluation report (PNG plots, results.json, results.md)."""
        root = reports_dir.resolve()
        target = (root / path).resolve()
        if (not target.is_relative_to(root) or not target.is_file()
                or target.suffix.lower() not in REPORT_FILES):
            raise NotFoundError(f"no report file {path!r}")
        return FileResponse(target)

    return app


def app_from_env() -> FastAPI:
    """The uvicorn factory of `podrec serve`: each worker process builds its own Podrec from
    PODREC_CONFIG / PODREC_DB (set by `podrec serve --config/--db`)."""
    return create_app(load_config(), warm=os.environ.get("PODREC_SERVE_WARM", "1") != "0",
                      threads=int(os.environ.get("PODREC_SERVE_THREADS") or SERVE_THREADS))
