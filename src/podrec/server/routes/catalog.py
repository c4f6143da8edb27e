"""The catalog: ingest (admin), items, similar items, tags and counts."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from podrec.ingest import fetch
from podrec.ingest.datasets import FORMATS
from podrec.records import IngestReport
from podrec.server import metrics, schemas
from podrec.server.auth import ADMIN, CLIENT
from podrec.server.deps import FreshService, Service, Settings, router
from podrec.server.errors import error, invalid
from podrec.server.worker import ServedPodrec, one_thread

routes = router("catalog")

INGEST_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {
            "file": {"type": "string", "format": "binary",
                     "description": "a catalog (CSV, JSONL, JSON), feed or OPML file"},
            "format": {"type": "string", "description": "feed, opml or a catalog format ("
                       + ", ".join(FORMATS) + "); detected when left out"},
            "enrich": {"type": "boolean", "description": "embed and tag what is new "
                       "afterwards"}}}},
    "application/json": {"schema": schemas.IngestURL.model_json_schema()}}}}


@routes.post("/catalog/ingest", response_model=schemas.IngestReport, dependencies=[ADMIN],
             openapi_extra=INGEST_BODY,
             responses={400: {"description": "a multipart body that cannot be parsed, or a "
                              "Content-Length that is not a number"},
                        413: {"description": "upload larger than server.max_upload_bytes"},
                        415: {"description": "neither multipart/form-data nor JSON"},
                        422: {"description": "no file, an unknown format, or a bad URL request: "
                              "`detail` names the field"}})
async def ingest(request: Request, podrec: Service, settings: Settings) -> Any:
    """Ingest a catalog, feed or OPML file (multipart upload: `file`, optional `format`
    and `enrich`), or the same from a URL (JSON: `url`, `type`, `format`, `enrich`).
    Bad records are reported and skipped; the rest go in. Admin only."""
    ctype = request.headers.get("content-type", "").lower()
    with tempfile.TemporaryDirectory(prefix="podrec-ingest-") as tmp:
        policy = fetch.server_policy(settings.server)
        if ctype.startswith("multipart/form-data"):
            report, rename, enrich = await _ingest_upload(request, podrec, Path(tmp), policy)
        elif ctype.startswith("application/json") or not ctype:
            req = await _url_request(request)
            fmt, enrich = _format(req.format), req.enrich
            report, rename = await run_in_threadpool(
                _ingest_url, podrec, req, fmt, Path(tmp), settings.server.max_upload_bytes,
                policy)
        else:
            return error(415, "send multipart/form-data with a file, or JSON {\"url\": ..., "
                         "\"type\": \"feed\"|\"opml\"|\"catalog\"}")
    out = report_json(report, rename)
    if enrich:
        out["enrich"] = await run_in_threadpool(_enrich, podrec)
    return out


@routes.get("/items", response_model=schemas.ItemList, dependencies=[CLIENT])
def list_items(podrec: Service, kind: schemas.Kind | None = None, show_id: str | None = None,
               tag: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 50,
               offset: Annotated[int, Query(ge=0)] = 0) -> Any:
    """Stored shows and episodes with every normalised field and tag, in storage order."""
    items = podrec.list_items(kind=kind, show_id=show_id, tag=tag, limit=limit, offset=offset)
    return {"items": items, "limit": limit, "offset": offset}


@routes.get("/items/{kind}/{item_id:path}/similar", response_model=schemas.RecommendationList,
            tags=["recommend"], dependencies=[CLIENT],
            responses={404: {"description": "no item of this kind with this id, or it is not "
                             "embedded yet"}})
def similar(podrec: FreshService, kind: schemas.Kind, item_id: str,
            k: Annotated[int | None, Query(ge=1, le=1000)] = None) -> Any:
    """The items most like one item (of its kind)."""
    found = podrec.similar(item_id, k, kind=kind)
    metrics.served("similar", len(found))
    return {"items": [r.to_dict() for r in found]}


@routes.get("/items/{kind}/{item_id:path}", dependencies=[CLIENT],
            responses={404: {"description": "no item of this kind with this id"}})
def item(podrec: Service, kind: schemas.Kind, item_id: str) -> dict[str, Any]:
    """One show or episode: every field and every tag (with source and score)."""
    return podrec.item_details(item_id, kind)


@routes.get("/tags", response_model=schemas.TagList, dependencies=[CLIENT])
def tags(podrec: Service,
         source: Annotated[str | None,
                           Query(pattern="^(category|taxonomy|keyphrase|generated)$")] = None,
         limit: Annotated[int, Query(ge=1, le=1000)] = 30) -> Any:
    """The most used tags, with how many items carry each."""
    return {"tags": [{"tag": t, "count": n} for t, n in podrec.tag_counts(source, limit)]}


@routes.get("/catalog/stats", dependencies=[CLIENT])
def catalog_stats(podrec: Service) -> dict[str, Any]:
    """Items per kind, languages, top tags and the number of listeners (with Laplace noise
    when privacy.dp_epsilon is set)."""
    return podrec.catalog_stats(published=True)


# -- ingest's steps ---------------------------------------------------------------------------
def report_json(report: IngestReport, rename: dict[str, str] | None = None) -> dict[str, Any]:
    """An ingest report, each problem's source named as the client knows it (the uploaded
    file's name, the URL) rather than by the temporary file's path."""
    rename = rename or {}
    return {"added": report.added, "updated": report.updated, "unchanged": report.unchanged,
            "duplicates": report.duplicates, "failed": report.failed,
            "skipped": report.skipped,
            "problems": [{"source": rename.get(p.source, p.source), "location": p.location,
                          "field": p.field, "message": p.message} for p in report.problems]}


def _format(fmt: str | None) -> str | None:
    try:
        return fetch.check_format(fmt)
    except ValueError as exc:
        raise invalid(("body", "format"), str(exc)) from None


async def _ingest_upload(request: Request, podrec: ServedPodrec, tmpdir: Path,
                         policy: fetch.FetchPolicy
                         ) -> tuple[IngestReport, dict[str, str], bool]:
    """The multipart upload saved (under a suffix that says its format) and ingested."""
    form = await request.form(max_files=1, max_fields=10)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise invalid(("body", "file"), "required: a catalog, feed or OPML file", "missing")
    fmt = _format(str(form.get("format") or ""))
    enrich = str(form.get("enrich") or "").lower() in ("1", "true", "yes", "on")
    name = upload.filename or "upload"
    head = await upload.read(2000)
    path = tmpdir / f"upload{fetch.upload_suffix(name, fmt, head)}"
    with path.open("wb") as out:
        out.write(head)
        while chunk := await upload.read(1 << 20):
            out.write(chunk)
    await upload.close()
    report = await run_in_threadpool(_ingest_file, podrec, path, fmt, policy)
    return report, {str(path): name}, enrich


async def _url_request(request: Request) -> schemas.IngestURL:
    """The JSON body of an ingest from a URL, validated (422s name the field)."""
    try:
        body = json.loads(await request.body() or b"null")
    except json.JSONDecodeError as exc:
        raise invalid(("body",), "JSON decode error", "json_invalid",
                      ctx={"error": exc.msg}) from None
    if not isinstance(body, dict):
        raise invalid(("body",), "expected a JSON object {url, type, format, enrich}",
                      "model_type")
    try:
        return schemas.IngestURL.model_validate(body)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None


def _ingest_file(podrec: ServedPodrec, path: Path, fmt: str | None,
                 policy: fetch.FetchPolicy) -> IngestReport:
    """An uploaded file; the feeds an uploaded OPML names are fetched under ``policy``
    (local paths and file:// refused, non-public addresses only where allowed)."""
    one_thread()
    with fetch.fetch_policy(policy):
        return podrec.ingest_file(path, fmt)


def _ingest_url(podrec: ServedPodrec, req: schemas.IngestURL, fmt: str | None, tmpdir: Path,
                limit: int, policy: fetch.FetchPolicy) -> tuple[IngestReport, dict[str, str]]:
    """A URL fetched under the server's fetch ``policy``."""
    one_thread()
    with fetch.fetch_policy(policy):
        return _ingest_url_policed(podrec, req, fmt, tmpdir, limit)


def _ingest_url_policed(podrec: ServedPodrec, req: schemas.IngestURL, fmt: str | None,
                        tmpdir: Path, limit: int) -> tuple[IngestReport, dict[str, str]]:
    """A feed URL goes to feed ingest as it is; anything else is downloaded first."""
    if req.type == "feed" and fmt in (None, "feed"):
        return podrec.ingest_feeds([req.url]), {}
    report = IngestReport()
    kind = "opml" if req.type == "opml" else fmt
    path = fetch.download(req.url, tmpdir, limit, report,
                          ".opml" if kind == "opml" else ".xml" if kind == "feed" else None)
    if path is None:
        return report, {}
    report.merge(podrec.ingest_file(path, kind))
    return report, {str(path): req.url}


def _enrich(podrec: ServedPodrec) -> dict[str, int]:
    one_thread()
    return podrec.enrich().summary()
