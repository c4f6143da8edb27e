"""The list bodies the server writes without the pydantic round trip, and its request threads.

``list_json`` must write what ``schemas.RecommendationList`` would, byte for byte: the
OpenAPI document promises that shape, and kept lists are compared as bytes."""

from __future__ import annotations

import asyncio
import contextvars
import threading

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
