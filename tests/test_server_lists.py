"""The list bodies the server writes without the pydantic round trip, and its request threads.

``list_json`` must write what ``schemas.RecommendationList`` would, byte for byte: the
OpenAPI document promises that shape, and kept lists are compared as bytes."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

from podrec.recommend.results import Recommendation
from podrec.server import schemas
from podrec.server.lists import list_json
from podrec.server.worker import on_request_thread, start_request_threads, stop_request_threads


def through_the_model(items: list[Recommendation]) -> bytes:
    return schemas.RecommendationList.model_validate(
        {"items": [r.to_dict() for r in items]}).model_dump_json().encode()


def recommendations() -> list[Recommendation]:
    return [
        Recommendation(id="1028908750", kind="show", title="Revisionist History",
                       score=0.8731234567, author="Pushkin", categories=["History"],
                       language="en", components={"ease": 0.51234567, "itemknn": 1e-05},
                       tags=["history", "essays"], image="https://x.test/a.jpg"),
        Recommendation(id="ep-7", kind="episode", title="学习投资理财 — épisode «7» \"quoted\"\n",
                       score=-2.5, show_id="42", duration_s=3600, categories=[], tags=[],
                       components={}, language=None),
        Recommendation(id="r", kind="show", title="With a reason", score=1e-7,
                       reason="Because you follow History.", reason_source="generated",
                       evidence=[{"kind": "seed", "id": "1", "weight": 0.25, "n": 3,
                                  "names": ["a", "b"], "none": None}],
                       components={"profile": 12345678.9}),
        Recommendation(id="t", kind="show", title="Template reason", score=3.0,
                       reason="Popular now.", reason_fallback="pending"),
        Recommendation(id="z", kind="show", title="Odd numbers", score=float("inf"),
                       components={"x": float("nan"), "y": -0.0, "big": 1e300}),
    ]


def test_list_json_is_the_models_json_byte_for_byte():
    items = recommendations()
    assert list_json(items) == through_the_model(items)
    assert list_json([]) == through_the_model([]) == b'{"items":[]}'
    for one in items:
        assert list_json([one]) == through_the_model([one])


def test_list_json_fills_every_field_of_the_model():
    import json

    item = json.loads(list_json(recommendations()[:1]))["items"][0]
    assert list(item) == list(schemas.Recommendation.model_fields)
    assert item["reason"] is None and item["evidence"] is None
    odd = json.loads(list_json(recommendations()[-1:]))["items"][0]
    assert odd["score"] is None and odd["components"]["x"] is None  # as the model writes


def test_request_threads_run_in_order_with_the_callers_context():
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    async def main() -> tuple[list[str], set[str]]:
        start_request_threads(2)
        try:
            var.set("caller")
            seen = await asyncio.gather(*(on_request_thread(var.get) for _ in range(20)))
            names = await asyncio.gather(*(on_request_thread(
                lambda: threading.current_thread().name) for _ in range(20)))
            with pytest.raises(ZeroDivisionError):
                await on_request_thread(lambda: 1 / 0)
            return list(seen), set(names)
        finally:
            stop_request_threads()

    seen, names = asyncio.run(main())
    assert seen == ["caller"] * 20
    assert len(names) <= 2 and all(n.startswith("podrec-request") for n in names)


def test_request_threads_exist_without_a_lifespan():
    async def main() -> str:
        try:
            return await on_request_thread(lambda: threading.current_thread().name)
        finally:
            stop_request_threads()

    assert asyncio.run(main()).startswith("podrec-request")


class Echo:
    """Answers each request with its own ``k``, slowly enough for batches to overlap."""

    def recommend(self, request):  # noqa: ANN001, ANN201
        time.sleep(0.02)
        return [request.k]

    def recommend_many(self, requests):  # noqa: ANN001, ANN201
        time.sleep(0.02)
        return [[r.k] for r in requests]


def test_one_batcher_serves_several_event_loops_at_once():
    """A worker runs one event loop, but an app may be driven from several (a test's
    clients): each loop's requests are batched and answered on that loop."""
    from podrec.recommend.request import RecommendRequest
    from podrec.server.batching import ListBatcher

    batcher, podrec = ListBatcher(most=4), Echo()
    got: dict[int, list] = {}

    async def main(first: int) -> list:
        try:
            asked = [RecommendRequest(query="q", k=first + i) for i in range(10)]
            return await asyncio.wait_for(asyncio.gather(
                *(batcher.recommend(podrec, r) for r in asked)), timeout=30)
        finally:
            stop_request_threads()

    def run(first: int) -> None:
        got[first] = asyncio.run(main(first))

    threads = [threading.Thread(target=run, args=(first,)) for first in (1, 101, 201)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert got == {first: [[first + i] for i in range(10)] for first in (1, 101, 201)}


# -- the fast path of POST /recommendations ---------------------------------------------------
class FakeLists:
    def __init__(self) -> None:
        self.asked: list[str] = []

    async def respond(self, podrec, endpoint, user_id, asked, compute):  # noqa: ANN001, ANN201
        from fastapi import Response

        self.asked.append(user_id)
        return Response(b'{"items":[]}', media_type="application/json")


class FakePodrec:
    refreshed = 0

    def refresh(self) -> None:
        self.refreshed += 1


def fake_scope(headers: list[tuple[bytes, bytes]]) -> dict:
    from types import SimpleNamespace

    from podrec.server.cache import KeyCache

    keys = KeyCache(60)
    keys.put("good", "client")
    keys.put("revoked", None)
    state = SimpleNamespace(keys=keys, podrec=FakePodrec(), lists=FakeLists())
    return {"type": "http", "method": "POST", "path": "/recommendations", "headers": headers,
            "app": SimpleNamespace(state=state)}


JSON = (b"content-type", b"application/json")


GOOD_KEY = (b"authorization", b"Bearer good")
# requests no fast path may answer, whatever their body: no key, a key not checked yet, a
# revoked one, another scheme, another content type
UNTRUSTED = [[JSON], [JSON, (b"authorization", b"Bearer unknown")],
             [JSON, (b"authorization", b"Bearer revoked")],
             [JSON, (b"authorization", b"Basic good")],
             [(b"content-type", b"text/plain"), GOOD_KEY]]


@pytest.mark.parametrize(("headers", "body"), [
    *((h, b'{"user_id": "u"}') for h in UNTRUSTED),
    ([JSON, (b"authorization", b"Bearer good")], b'{"user_id": '),  # not JSON
    ([JSON, (b"authorization", b"Bearer good")], b'["u"]'),
    ([JSON, (b"authorization", b"Bearer good")], b'{"user_id": "u", "k": 0}'),  # invalid
    ([JSON, (b"authorization", b"Bearer good")], b'{"user_id": "u", "extra": 1}'),
])
def test_the_fast_path_leaves_every_other_request_to_the_app(headers, body):
    from podrec.server.routes.recommend import recommend_fast

    scope = fake_scope(headers)
    assert asyncio.run(recommend_fast(scope, body)) is None
    assert scope["app"].state.lists.asked == [] and "route" not in scope


def test_the_fast_path_answers_a_good_request_with_the_route_itself():
    from podrec.server.routes.recommend import RECOMMEND, recommend_fast

    scope = fake_scope([JSON, (b"authorization", b"bearer  good ")])
    response = asyncio.run(recommend_fast(scope, b'{"user_id": "u", "k": 5}'))
    assert response is not None and response.body == b'{"items":[]}'
    assert scope["app"].state.lists.asked == ["u"] and scope["route"] is RECOMMEND
    assert scope["app"].state.podrec.refreshed == 1


# -- the fast path of POST /events ---------------------------------------------------------------
class StoringPodrec(FakePodrec):
    """Stores nothing: says what it was given, as ``Podrec.add_events`` reports it."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add_events(self, rows):  # noqa: ANN001, ANN201
        from podrec.records import IngestReport

        new = [r for r in rows if r not in self.rows]
        self.rows += new
        report = IngestReport()
        report.added, report.unchanged = len(new), len(rows) - len(new)
        return report


class ForgettingLists(FakeLists):
    def forget(self, user_id: str) -> None:
        self.asked.append(user_id)


def event_scope(headers: list[tuple[bytes, bytes]]) -> dict:
    scope = fake_scope(headers)
    scope["path"] = "/events"
    scope["app"].state.podrec = StoringPodrec()
    scope["app"].state.lists = ForgettingLists()
    return scope


GOOD_EVENT = (b'{"user_id": "u", "item_id": "1322200189", "event": "play", "value": 0.5, '
              b'"timestamp": "2026-11-01T10:00:00Z"}')


@pytest.mark.parametrize(("headers", "body"), [
    *((h, GOOD_EVENT) for h in UNTRUSTED),
    *(([JSON, GOOD_KEY], bad) for bad in (
        GOOD_EVENT[:20],  # not JSON
        b'{"user_id": "u", "event": "liek"}',
        b'{"user_id": "u", "event": "like"}',  # no item
        b'{"user_id": "u", "item_id": "1", "event": "like", "text": "a\\u0000b"}',  # NUL
        GOOD_EVENT[:-1] + b', "extra": 1}')),
])
def test_the_events_fast_path_leaves_every_other_request_to_the_app(headers, body):
    from podrec.server.routes.events import add_event_fast

    scope = event_scope(headers)
    assert asyncio.run(add_event_fast(scope, body)) is None
    assert scope["app"].state.podrec.rows == [] and "route" not in scope


def test_the_events_fast_path_stores_a_good_event_as_the_route_does():
    import json

    from podrec.server.routes.events import ADD_EVENT, add_event_fast

    scope = event_scope([JSON, GOOD_KEY])

    async def twice() -> list:
        try:
            return [await add_event_fast(scope, GOOD_EVENT) for _ in range(2)]
        finally:
            stop_request_threads()

    first, again = asyncio.run(twice())
    assert json.loads(first.body) == {"added": 1, "unchanged": 0, "failed": 0, "problems": []}
    assert json.loads(again.body)["unchanged"] == 1
    stored = scope["app"].state.podrec.rows
    assert len(stored) == 1 and stored[0]["user_id"] == "u" and stored[0]["value"] == 0.5
    assert scope["app"].state.lists.asked == ["u", "u"]  # the listener's kept lists dropped
    assert scope["route"] is ADD_EVENT


def test_the_full_app_gets_the_same_request_when_the_fast_path_declines():
    from fastapi import HTTPException

    from podrec.server.middleware import answer_fast

    async def decline(scope: dict, body: bytes) -> None:
        assert body == b"abcdef"
        return None

    async def run(messages: list[dict], fail: bool = False) -> list[dict]:
        seen: list[dict] = []
        pending = list(messages)

        async def receive() -> dict:
            if fail:
                raise HTTPException(413, "too large")
            return pending.pop(0) if pending else {"type": "http.disconnect"}

        async def app(scope: dict, receive, send) -> None:  # noqa: ANN001
            seen.append(await receive())
            seen.append(await receive())
            seen.append(await receive())

        await answer_fast(app, decline, {"type": "http"}, receive, None)
        return seen

    got = asyncio.run(run([{"type": "http.request", "body": b"abc", "more_body": True},
                           {"type": "http.request", "body": b"def"}]))
    assert [m.get("body") for m in got] == [b"abc", b"def", None]
    assert got[-1]["type"] == "http.disconnect"
    with pytest.raises(HTTPException):
        asyncio.run(run([], fail=True))


# -- cache-miss lists computed together --------------------------------------------------------
class Counted:
    """The real service, counting how it is called."""

    def __init__(self, podrec) -> None:  # noqa: ANN001
        self.podrec = podrec
        self.calls: list[int] = []

    def recommend(self, request):  # noqa: ANN001, ANN201
        self.calls.append(1)
        return self.podrec.recommend(request)

    def recommend_many(self, requests):  # noqa: ANN001, ANN201
        self.calls.append(len(requests))
        return self.podrec.recommend_many(requests)


def test_concurrent_lists_are_computed_together_each_with_its_own_answer(sample_app):
    from podrec.recommend.request import RecommendRequest
    from podrec.server.batching import ListBatcher
    from podrec.service.errors import NotFoundError

    requests = [RecommendRequest(user_id="demo-listener", k=k) for k in (3, 5, 8)]
    requests += [RecommendRequest(user_id="nobody"),
                 RecommendRequest(query="history of ancient rome", k=4),
                 RecommendRequest(seeds=("1322200189",), k=4)] * 3
    counted = Counted(sample_app)

    async def main() -> list:
        start_request_threads(1)
        try:
            batcher = ListBatcher(most=8)
            together = await asyncio.gather(*(batcher.recommend(counted, r) for r in requests),
                                            return_exceptions=True)
            alone = await batcher.recommend(counted, requests[0])  # nobody else waiting
            return [*together, alone]
        finally:
            stop_request_threads()

    *answers, lone = asyncio.run(main())
    # all twelve were asked for before the first batch started: batches of 8 at most; the
    # lone request afterwards is the plain call
    assert counted.calls == [8, len(requests) - 8, 1]
    assert [r.id for r in lone] == [r.id for r in answers[0]]
    for request, got in zip(requests, answers, strict=True):
        if request.user_id == "nobody":
            assert isinstance(got, NotFoundError) and "no listener" in str(got)
        else:
            alone = sample_app.recommend(request)
            assert [r.id for r in got] == [r.id for r in alone]
            assert len(got) == request.k
