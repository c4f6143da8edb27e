"""What a serving worker keeps in memory is bounded: result cards within
``recommend.card_cache_mb``, and what the worker does not need once its arrays are built (the
catalog's texts) is not kept."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from podrec.config import Config
from podrec.recommend.results import Card
from podrec.service import Podrec
from podrec.service.cards import CardCache, card_bytes

SAMPLE = Path(__file__).parents[1] / "src" / "podrec" / "data" / "sample" / "catalog.jsonl"


class Model:
    """A stand-in for a fitted model (cards are kept per model object)."""


def card(pk: int) -> Card:
    return Card(f"https://img.example/{pk}" * (1 + pk % 5), 60 * pk,
                tuple(f"tag {pk} {i}" for i in range(pk % 7)))


def reader(log: list[list[int]]):
    def read(pks: list[int]) -> dict[int, Card]:
        log.append(list(pks))
        return {pk: card(pk) for pk in pks}
    return read


def test_the_card_cache_never_holds_more_than_its_bound_and_drops_the_least_recent():
    limit = 20 * card_bytes(card(3))
    cache, model, log = CardCache(limit), Model(), []
    for start in range(0, 400, 7):
        got = cache.get(model, range(start, start + 9), reader(log))
        assert got == {pk: card(pk) for pk in range(start, start + 9)}  # always right
        assert cache.bytes <= limit
        assert cache.bytes == sum(size for _, size in cache._cards.values())
    assert 0 < len(cache) < 400
    # the most recent cards are kept, the oldest were dropped and are read again
    log.clear()
    cache.get(model, [399, 398], reader(log))
    assert log == []
    cache.get(model, [0], reader(log))
    assert log == [[0]]


def test_cards_are_kept_per_model_and_a_zero_bound_keeps_none():
    cache, log = CardCache(2**20), []
    a, b = Model(), Model()
    cache.get(a, [1, 2], reader(log))
    cache.get(a, [1, 2], reader(log))
    assert log == [[1, 2]]
    cache.get(b, [1], reader(log))  # another fitted model: its own cards
    assert log == [[1, 2], [1]]
    cache.clear()
    assert cache.bytes == 0 and len(cache) == 0
    none, log = CardCache(0), []
    for _ in range(3):
        assert none.get(a, [5, 5, 6], reader(log)) == {5: card(5), 6: card(6)}
    assert log == [[5, 6]] * 3 and none.bytes == 0 and len(none) == 0


def _config(cards_mb: int) -> Config:
    cfg = Config()
    return replace(cfg, embedder=replace(cfg.embedder, name="wordllama"),
                   recommend=replace(cfg.recommend, card_cache_mb=cards_mb),
                   llm=replace(cfg.llm, backend="none", reasons=False, summaries=False))


@pytest.fixture
def enriched(sqlite_url, wordllama) -> str:
    app = Podrec(_config(16), database_url=sqlite_url, embedder=wordllama)
    app.ingest_catalog(SAMPLE)
    app.enrich()
    app.close()
    return sqlite_url


def test_a_worker_without_kept_cards_lists_the_same_items_and_cards(enriched, wordllama):
    kept = Podrec(_config(16), database_url=enriched, embedder=wordllama)
    none = Podrec(_config(0), database_url=enriched, embedder=wordllama)
    seeds = tuple(kept.models.data("show").ids[i] for i in (2, 9, 40))
    for _ in range(2):
        a = kept.recommend(seeds=seeds, k=8)
        b = none.recommend(seeds=seeds, k=8)
        assert [(r.id, r.image, r.duration_s, r.tags) for r in a] == \
            [(r.id, r.image, r.duration_s, r.tags) for r in b]
    assert len(kept.models._cards) > 0 and kept.models._cards.bytes <= 16 * 2**20
    assert len(none.models._cards) == 0 and none.models._cards.bytes == 0
    kept.close()
    none.close()
