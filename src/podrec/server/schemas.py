"""Request and response bodies of the REST API (pydantic). They are the OpenAPI document's
models too, so every field carries its meaning and limits.

Lengths follow the database columns (user ids 256 characters, item ids 512, platform and
device 64), so an over-long value is a 422 naming the field, never a database error.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from podrec.records import EVENT_TYPES

Kind = Literal["show", "episode"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Open(BaseModel):
    """Responses keep fields the core adds later (extra fields pass through)."""

    model_config = ConfigDict(extra="allow")


# -- errors ---------------------------------------------------------------------------------
class FieldProblem(BaseModel):
    field: str = Field(description="the field or parameter, dotted for nested fields "
                       "('filters.per_show'); 'body' for the request body as a whole")
    location: str = Field(description="where it was sent: body, query, path or header")
    message: str = Field(description="what was expected")


class Error(_Open):
    """Every error response (4xx, 5xx): one message; a 422 also names each bad field. Other
    fields may come with some errors (/health's 503 adds `status` and `database`)."""

    detail: str = Field(description="what went wrong, naming the field or the resource")
    errors: list[FieldProblem] | None = Field(
        None, description="with a 422: each bad field, where it was sent and what was expected")


# -- events ---------------------------------------------------------------------------------
class EventIn(_Strict):
    """One listening event in the generic event format (see the README's "Event format")."""

    user_id: str = Field(min_length=1, max_length=256, description="the listener's id")
    item_id: str | None = Field(None, max_length=512,
                                description="show or episode id; required except for search")
    item_kind: Kind | None = None
    # Any case is accepted ("PLAY"); the document names the canonical values.
    event: str = Field(description="one of " + ", ".join(EVENT_TYPES), max_length=32,
                       json_schema_extra={"enum": list(EVENT_TYPES)})
    value: float | None = Field(None, description="listening progress 0..1, a rating or a "
                                "play count")
    text: str | None = Field(None, max_length=10_000, description="review or search text")
    timestamp: str | float | None = Field(
        None, description="ISO 8601 or Unix seconds; default: when the server receives it")
    platform: str | None = Field(None, max_length=64)
    device: str | None = Field(None, max_length=64)
    context: dict[str, Any] | None = Field(None, description="any JSON object")

    def as_row(self, now: datetime) -> dict[str, Any]:
        row = self.model_dump()
        if row["timestamp"] is None:
            row["timestamp"] = now.isoformat()
        return row


class EventBatch(_Strict):
    events: list[Any] = Field(
        min_length=1, max_length=10_000,
        description="up to 10,000 events, each an EventIn object; bad ones are reported by "
        "index and skipped, the rest are stored",
        json_schema_extra={"items": {"$ref": "#/components/schemas/EventIn"}})


class EventProblem(BaseModel):
    location: str = Field(description="'event 3': the event's 0-based index in the request")
    field: str | None = None
    message: str


class EventReport(BaseModel):
    added: int
    unchanged: int = Field(description="already stored (the same event sent again)")
    failed: int
    problems: list[EventProblem] = []


class Problem(BaseModel):
    source: str = Field(description="the uploaded file's name or the URL")
    location: str = Field(description="'line 12', 'record 5', 'item 3 (guid ...)', 'fetch'")
    field: str | None = None
    message: str


# -- recommendations ------------------------------------------------------------------------
class ContextIn(_Strict):
    """The moment of the request; every field optional."""

    time: datetime | None = Field(None, description="listener's local time (ISO 8601); "
                                  "hour and weekday are read from it when not given")
    hour: int | None = Field(None, ge=0, le=23)
    weekday: int | None = Field(None, ge=0, le=6, description="0 = Monday")
    device: str | None = Field(None, max_length=64,
                               description="phone, car, speaker, desktop, tablet, watch, tv, web")
    minutes: float | None = Field(None, gt=0, le=24 * 60, description="time available to "
                                  "listen")
    intent: str | None = Field(None, max_length=500, description="mood or purpose in free text")


class FiltersIn(_Strict):
    languages: list[str] | None = Field(None, max_length=50,
                                        description="ISO codes; items of unknown language pass")
    allow_explicit: bool = True
    blocked: list[str] | None = Field(None, max_length=5000,
                                      description="item or show ids never to recommend")
    per_show: int | None = Field(None, ge=1, le=1000,
                                 description="at most this many episodes of one show")


class RecommendRequest(_Strict):
    """Give a user, seed items and/or a query text (at least one)."""

    user_id: str | None = Field(None, min_length=1, max_length=256)
    seeds: list[str] | None = Field(None, max_length=200, description="item ids to start from")
    query: str | None = Field(None, max_length=2000, description="free text, any language")
    k: int | None = Field(None, ge=1, le=1000, description="how many (default: recommend.k, 10)")
    kind: Kind = "show"
    context: ContextIn | None = None
    platform: str | None = Field(None, max_length=64)
    filters: FiltersIn | None = None
    diversity: float = Field(0.0, ge=0.0, le=1.0, description="0: by score; up to 1: MMR "
                             "re-ranking for variety")
    explain: bool = Field(False, description="add a reason sentence and its evidence")
    balance: float | None = Field(None, ge=0.0, le=1.0, description="0..1: how strictly "
                                  "each interest (each topic of the query) gets its share of "
                                  "the list (default: recommend.balance)")
    now: datetime | None = Field(None, description="the moment of the request (default: "
                                 "now); older events count less. For replaying history.")


class Recommendation(_Open):
    id: str
    kind: str
    title: str
    score: float
    author: str | None = None
    categories: list[str] = []
    language: str | None = None
    show_id: str | None = None
    image: str | None = None
    duration_s: int | None = None
    tags: list[str] = []
    components: dict[str, float] = {}
    reason: str | None = Field(None, description="with explain")
    evidence: list[dict[str, Any]] | None = Field(None, description="with explain")
    reason_source: Literal["generated", "template"] | None = Field(
        None, description="with explain: the reason was written by the generator from the "
        "evidence (and checked), or is the template")
    reason_fallback: str | None = Field(
        None, description="why the template stands: off, absent, pending (being written; "
        "a later request gets it), timeout, busy, rejected (...)")


class RecommendationList(BaseModel):
    items: list[Recommendation]


# -- catalog --------------------------------------------------------------------------------
class IngestURL(_Strict):
    """Ingest from a URL: an RSS/Atom feed, an OPML list of feeds, or a catalog file."""

    url: str = Field(max_length=4096)
    type: Literal["feed", "opml", "catalog"] = "feed"
    format: str | None = Field(None, description="catalog format (generic, apple, apple-csv, "
                               "listennotes, podcastindex, ...); detected when left out")
    enrich: bool = Field(False, description="embed and tag what is new afterwards")

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        value = value.strip()
        if not value.lower().startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value


class IngestReport(_Open):
    added: int
    updated: int
    unchanged: int
    duplicates: int
    failed: int
    skipped: int
    problems: list[Problem] = []
    enrich: dict[str, int] | None = Field(None, description="with enrich: embedded, reused, "
                                          "unchanged, tagged")


class ItemList(BaseModel):
    items: list[dict[str, Any]]
    limit: int
    offset: int


class TagCount(BaseModel):
    tag: str
    count: int


class TagList(BaseModel):
    tags: list[TagCount]


class Health(BaseModel):
    status: str
    database: str
    items: dict[str, int]
    cache: str = Field("read", description="how this worker's kept lists learn of changed "
                       "listeners now: read (their version, per request), notify (the "
                       "database's announcements) or off (server.cache_mb = 0)")


# -- users ----------------------------------------------------------------------------------
class UserIn(_Strict):
    user_id: str = Field(min_length=1, max_length=256)


class UserCreated(BaseModel):
    user_id: str
    created: bool = Field(description="false when the listener already existed")


class LinkIn(_Strict):
    accounts: list[str] = Field(min_length=1, max_length=100,
                                description="the same person's accounts on other platforms")
    person_id: str | None = Field(None, max_length=256)


class Linked(BaseModel):
    person_id: str
    accounts: list[str]


class Deleted(BaseModel):
    user_id: str
    deleted_events: int
    relinked_accounts: int = Field(0, description="linked accounts that held this id as "
                                   "their person id, given a new one")
    scrubbed_models: int = Field(0, description="trained models this listener was taken out "
                                 "of")


# -- trained models -------------------------------------------------------------------------
class TrainIn(_Strict):
    kind: Kind = Field("show", description="which kind's model to train")


class TrainReport(_Open):
    """One training: the version saved and what it was chosen and fitted on."""

    kind: Kind
    version: str = Field(description="the new version (the UTC time of training); every "
                         "worker serves it within a second")
    model: str | None = Field(None, description="hybrid, or the one registry model served")
    fallback: str | None = Field(None, description="why the fallback (the listener profile "
                                 "plus popularity) was saved instead: too few events or "
                                 "listeners; null when trained")
    data: dict[str, int] | None = Field(None, description="the data snapshot: events, "
                                        "listeners, items, pairs, newest_event_key")
    validation: dict[str, Any] | None = Field(None, description="each part's validation "
                                              "ndcg@10, and the blend per activity bucket")
    params: dict[str, Any] | None = Field(None, description="each part's chosen parameters")
    seconds: float | None = Field(None, description="how long the training took")


class ServedModel(_Open):
    """What a kind of item is served with now."""

    kind: Kind
    version: str | None = Field(description="the trained version served; null: no trained "
                                "model yet, the fallback is served")
    model: str | None = None
    fallback: str | None = Field(None, description="why the fallback is served, if it is")
    trained_at: datetime | None = None
    data: dict[str, int] | None = Field(None, description="what it was trained on")
    validation: dict[str, Any] | None = None


class ServedModels(BaseModel):
    models: list[ServedModel]
