"""Listening events: one at a time, or up to 10,000 in a batch."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError

from podrec.ingest.events import event_from_row
from podrec.ingest.normalize import FieldError
from podrec.records import IngestReport
from podrec.server import metrics, schemas
from podrec.server.auth import CLIENT
from podrec.server.deps import Lists, Service, router
from podrec.server.errors import error, field_of, message_of
from podrec.server.lists import KeptLists
from podrec.server.middleware import trusted_json
from podrec.server.worker import ServedPodrec, on_request_thread

log = logging.getLogger("podrec.server")

EVENT_WRITE_ATTEMPTS = 3

routes = router("events")


@routes.post("/events", response_model=schemas.EventReport, dependencies=[CLIENT],
             responses={422: {"description": "invalid event; nothing stored"}})
def add_event(podrec: Service, lists: Lists, event: schemas.EventIn) -> Any:
    """Store one event. An invalid event is a 422 naming the field, and nothing is
    stored. Sending the same event twice stores it once (`unchanged`)."""
    row = event.as_row(datetime.now(UTC))
    problem = check_row(row)
    if problem is not None:
        field, message = problem
        metrics.EVENTS.labels("rejected").inc()
        return error(422, f"field {field!r}: {message}",
                     errors=[{"field": field, "location": "body", "message": message}])
    return events_json(store_events(podrec, lists, [row], [0], IngestReport()))


async def add_event_fast(scope: dict[str, Any], body: bytes) -> Response | None:
    """``POST /events`` without FastAPI's routing and dependency solving: an event that
    validates and can be stored as sent, with a key this worker checked lately
    (``trusted_json``), is stored here, on a request thread as the route does. None: the
    full app answers the same request (a first or a bad key, an invalid event's 422)."""
    data = trusted_json(scope, body)
    if data is None:
        return None
    try:
        row = schemas.EventIn.model_validate(data).as_row(datetime.now(UTC))
    except ValidationError:
        return None
    if check_row(row) is not None:
        return None
    app = scope["app"]
    scope["route"] = ADD_EVENT  # the metrics' route label
    report = await on_request_thread(store_events, app.state.podrec, app.state.lists, [row],
                                     [0], IngestReport())
    return JSONResponse(events_json(report))  # EventReport's fields, in its order


def check_row(row: dict[str, Any]) -> tuple[str, str] | None:
    """(field, message) when an event cannot be stored as sent: any FieldError, and also
    NUL characters, which a file import removes but an API client should not send."""
    notes: list[str] = []
    try:
        event_from_row(row, notes)
    except FieldError as exc:
        field, _, message = str(exc).partition(": ")
        return (field, message) if message else ("event", str(exc))
    if notes:
        field = notes[0].partition(": ")[0].split(".")[0]
        return field, "expected text without NUL characters"
    return None


@routes.post("/events/batch", response_model=schemas.EventReport, dependencies=[CLIENT])
def add_events(podrec: Service, lists: Lists, batch: schemas.EventBatch) -> Any:
    """Store up to 10,000 events. Each bad event is reported by its index (`event 3`,
    0-based) and field, and skipped; the good ones are stored."""
    now = datetime.now(UTC)
    report = IngestReport()
    rows, positions = [], []
    for i, raw in enumerate(batch.events):
        if not isinstance(raw, dict):
            report.fail("request", f"event {i}", None, "expected a JSON object")
            continue
        try:
            row = schemas.EventIn.model_validate(raw).as_row(now)
        except ValidationError as exc:
            e = exc.errors()[0]
            field, _ = field_of(("body", *e["loc"]))
            report.fail("request", f"event {i}", field, message_of(e))
            continue
        problem = check_row(row)
        if problem is not None:
            report.fail("request", f"event {i}", *problem)
            continue
        rows.append(row)
        positions.append(i)
    return events_json(store_events(podrec, lists, rows, positions, report))


def events_json(report: IngestReport) -> dict[str, Any]:
    return {"added": report.added, "unchanged": report.unchanged, "failed": report.failed,
            "problems": [{"location": p.location, "field": p.field, "message": p.message}
                         for p in report.problems]}


def _add(podrec: ServedPodrec, rows: list[dict[str, Any]]) -> IngestReport:
    # Two requests storing the same event at once: the second transaction fails on the
    # event's unique key and rolls back. Store again: the store's de-duplication skips
    # what the other request stored. (New listeners are inserted idempotently by the
    # store; a batch is written in chunks of 500, and chunks committed before the
    # failure then count as unchanged.)
    for attempt in range(EVENT_WRITE_ATTEMPTS):
        try:
            return podrec.add_events(rows)
        except IntegrityError:
            if attempt == EVENT_WRITE_ATTEMPTS - 1:
                raise
            log.info("another request stored the same event: storing again")
    raise AssertionError("unreachable")


def store_events(podrec: ServedPodrec, lists: KeptLists, rows: list[dict[str, Any]],
                 positions: list[int], report: IngestReport) -> IngestReport:
    """Store the good ``rows`` (at ``positions`` of the request) and merge their report
    into ``report``, whose problems then name each event by its index in the request."""
    stored = _add(podrec, rows)
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


ADD_EVENT = next(r for r in routes.routes if getattr(r, "path", None) == "/events")
