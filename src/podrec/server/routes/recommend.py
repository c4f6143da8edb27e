"""Recommendations: for a listener, seed items and/or free text; search; onboarding.

The list routes are async: a kept list (server/lists.py) is answered on the event loop, a
list to compute goes to a request thread."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Query, Response
from pydantic import ValidationError

from podrec.recommend.context import RequestContext
from podrec.recommend.request import RecommendRequest
from podrec.server import metrics, schemas
from podrec.server.auth import CLIENT
from podrec.server.deps import FreshService, Lists, router
from podrec.server.errors import invalid
from podrec.server.middleware import trusted_json

routes = router("recommend")

K = Annotated[int | None, Query(ge=1, le=1000)]
NOT_EMBEDDED = "no item of the kind asked for is embedded yet (`podrec enrich`)"
Languages = Annotated[list[str] | None, Query()]


def request_of(body: schemas.RecommendRequest) -> RecommendRequest:
    """The service's request for the API's body."""
    f = body.filters or schemas.FiltersIn()
    context = RequestContext(**body.context.model_dump()) if body.context is not None else None
    return RecommendRequest(
        user_id=body.user_id, seeds=tuple(body.seeds or ()), query=body.query, k=body.k,
        kind=body.kind, diversity=body.diversity, explain=body.explain,
        languages=tuple(f.languages or ()), allow_explicit=f.allow_explicit,
        blocked=tuple(f.blocked or ()), per_show=f.per_show, context=context,
        platform=body.platform, now=body.now, balance=body.balance)


@routes.post("/recommendations", response_model=schemas.RecommendationList,
             dependencies=[CLIENT],
             responses={404: {"description": "no listener with this id, a seed item not in "
                              "the catalog, or " + NOT_EMBEDDED}})
async def recommend(podrec: FreshService, lists: Lists, body: schemas.RecommendRequest) -> Any:
    """Recommendations for a listener (their history as stored now), seed items and/or
    free text, with filters, context, diversity and explanations."""
    request = request_of(body)
    return await lists.respond(podrec, "recommendations", body.user_id,
                               body.model_dump_json, request)


async def recommend_fast(scope: dict[str, Any], body: bytes) -> Response | None:
    """``POST /recommendations`` without FastAPI's routing and dependency solving (about
    half of the HTTP path's CPU): a JSON object that validates, sent with a key this worker
    checked lately (``trusted_json``), is answered by ``recommend`` itself. None: the full
    app answers, the same request (a first or a bad key, a bad body, an error to word)."""
    data = trusted_json(scope, body)
    if data is None:
        return None
    try:
        asked = schemas.RecommendRequest.model_validate(data)
    except ValidationError:
        return None
    app = scope["app"]
    podrec = app.state.podrec
    podrec.refresh()
    scope["route"] = RECOMMEND  # the metrics' route label
    return await recommend(podrec, app.state.lists, asked)


RECOMMEND = next(r for r in routes.routes if getattr(r, "path", None) == "/recommendations")


@routes.get("/users/{user_id}/recommendations", response_model=schemas.RecommendationList,
            dependencies=[CLIENT],
            responses={404: {"description": "no listener with this id, or " + NOT_EMBEDDED}})
async def user_recommendations(podrec: FreshService, lists: Lists, user_id: str, k: K = None,
                               kind: schemas.Kind = "show", explain: bool = False) -> Any:
    """A listener's recommendations (the short form of POST /recommendations)."""
    request = RecommendRequest(user_id=user_id, k=k, kind=kind, explain=explain)
    return await lists.respond(podrec, "recommendations", user_id,
                               lambda: json.dumps([user_id, k, kind, explain]), request)


@routes.get("/search", response_model=schemas.RecommendationList, dependencies=[CLIENT],
            responses={404: {"description": NOT_EMBEDDED}})
async def search(podrec: FreshService, lists: Lists,
                 q: Annotated[str, Query(min_length=1, max_length=2000)], k: K = None,
                 kind: schemas.Kind = "show", language: Languages = None) -> Any:
    """Semantic search in any language ("podcasts about the history of Rome")."""
    if not q.strip():
        raise invalid(("query", "q"), "must not be blank")
    return await lists.respond(podrec, "search", None,
                               lambda: json.dumps([q.strip(), k, kind, language]),
                               RecommendRequest.of_query(q, k, kind, language))


@routes.get("/onboarding", response_model=schemas.RecommendationList, dependencies=[CLIENT],
            responses={404: {"description": NOT_EMBEDDED}})
def onboarding(podrec: FreshService, k: Annotated[int, Query(ge=1, le=200)] = 12,
               language: Languages = None) -> Any:
    """Popular shows spread over genres, for a new listener to pick from."""
    found = podrec.onboarding(k=k, languages=language)
    metrics.served("onboarding", len(found))
    return {"items": [r.to_dict() for r in found]}
