"""What a serving worker keeps in memory is bounded: result cards within
``recommend.card_cache_mb``, and what the worker does not need once its arrays are built (the
catalog's texts) is not kept."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
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


def test_a_worker_keeps_no_texts_yet_reads_them_back_when_asked(enriched, wordllama):
    from podrec.service.catalog_cache import SavedTexts

    built = Podrec(_config(16), database_url=enriched, embedder=wordllama)
    expected = built.catalog.data(built.models.model_id, "show").texts
    data = built.models.data("show")  # built from the store and saved: texts on disk
    assert isinstance(data.texts, SavedTexts) and not data.texts.loaded
    seeds = (data.ids[1], data.ids[7])
    want = [r.id for r in built.recommend(seeds=seeds, k=6)]
    loaded = Podrec(_config(16), database_url=enriched, embedder=wordllama)
    texts = loaded.models.data("show").texts
    assert loaded.models.disk_cache.loads == 1
    assert [r.id for r in loaded.recommend(seeds=seeds, k=6)] == want
    assert [r.id for r in loaded.similar(seeds[0], k=5)] == \
        [r.id for r in built.similar(seeds[0], k=5)]
    assert isinstance(texts, SavedTexts) and not texts.loaded  # serving never read them
    assert len(texts) == len(expected) and list(texts) == expected and texts.loaded
    assert texts[3] == expected[3]
    built.close()
    loaded.close()


ML = Path(__file__).parent / "fixtures" / "movielens_40users"


def _trained_config(cache: bool) -> Config:
    cfg = _config(16)
    return replace(cfg, embedder=Config().embedder, tagger=replace(cfg.tagger, keyphrases=0),
                   index=replace(cfg.index, catalog_cache=cache))


@pytest.fixture(scope="module")
def trained_url(tmp_path_factory: pytest.TempPathFactory, wordllama) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('mapped') / 'ml.db'}"
    app = Podrec(_trained_config(True), database_url=url, embedder=wordllama)
    app.ingest_catalog(ML / "movies.csv")
    app.ingest_events(ML / "ratings.csv")
    app.enrich()
    app.train("show")
    app.close()
    return url


def _mapped(a) -> bool:
    import mmap

    import numpy as np

    while isinstance(a, np.ndarray) and a.base is not None:
        a = a.base
    return isinstance(a, memoryview) and isinstance(a.obj, mmap.mmap)


def test_a_trained_model_is_mapped_from_disk_and_serves_as_the_stores_copy(
        trained_url, wordllama):
    from podrec.model.hybrid import parts_of
    from podrec.train.artifacts import ItemKeys, ListenerRows

    first = Podrec(_trained_config(True), database_url=trained_url, embedder=wordllama)
    served = first.models.pipeline("show").served
    assert first.models.model_files.saves == 1  # unpacked on first use
    second = Podrec(_trained_config(True), database_url=trained_url, embedder=wordllama)
    reads = []
    original = second.store.get_artifact
    second.store.get_artifact = lambda name: reads.append(name) or original(name)
    mapped = second.models.pipeline("show").served
    assert second.models.model_files.loads == 1 and second.models.model_files.saves == 0
    assert not [n for n in reads if n.startswith("model/")]  # the store's pickle unread
    ease = parts_of(mapped.model)["ease"].model
    assert _mapped(ease.weights) and ease.weights.flags.writeable  # copy-on-write pages
    assert isinstance(mapped.users, ListenerRows) and len(mapped.users) == 40
    keys = parts_of(mapped.model)["ease"].trained_keys
    assert isinstance(keys, ItemKeys)  # (small here: in the pickle, not mapped)
    assert list(keys) == list(zip(second.models.data("show").kinds,
                                  second.models.data("show").ids, strict=True))
    plain = Podrec(_trained_config(False), database_url=trained_url, embedder=wordllama)
    stored = plain.models.pipeline("show").served
    assert not _mapped(parts_of(stored.model)["ease"].model.weights)
    assert dict(stored.users.items()) == dict(mapped.users.items()) == \
        dict(served.users.items())
    for user in list(stored.users)[:8]:
        a = second.recommend(user_id=user, k=10)
        b = plain.recommend(user_id=user, k=10)
        assert [r.id for r in a] == [r.id for r in b]
        assert [r.score for r in a] == pytest.approx([r.score for r in b], rel=1e-5)
    for app in (first, second, plain):
        app.close()


def test_listener_rows_answer_as_the_dict_they_replace():
    from podrec.train.artifacts import ListenerRows, ServedModel

    users = {"b": (1, 3, 2.5), "a": (0, 1, 1.0), "été-κ": (2, 7, 9.25), "aa": (3, 2, 4.0)}
    rows = ListenerRows(users)
    assert len(rows) == 4 and dict(rows.items()) == users and sorted(rows) == sorted(users)
    for key, value in users.items():
        assert key in rows and rows[key] == value and rows.get(key) == value
    for missing in ("", "ab", "c", "été", None):
        assert missing not in rows and rows.get(missing) is None
    assert len(ListenerRows({})) == 0 and ListenerRows({}).get("a") is None
    served = ServedModel("show", None, "v1", users=rows)  # type: ignore[arg-type]
    assert served.user_row("été-κ", 7, 9.25) == 2 and served.user_row("été-κ", 6, 9.25) == -1


def test_a_loaded_catalog_holds_one_object_per_repeated_value(enriched, wordllama):
    built = Podrec(_config(16), database_url=enriched, embedder=wordllama)
    fresh = built.catalog.data(built.models.model_id, "show")
    built.models.data("show")  # saved
    loaded = Podrec(_config(16), database_url=enriched, embedder=wordllama)
    data = loaded.models.data("show")
    assert loaded.models.disk_cache.loads == 1
    for name in ("ids", "kinds", "titles", "categories", "authors", "languages", "explicit",
                 "show_ids", "platforms"):
        assert getattr(data, name) == getattr(fresh, name), name
    assert len({id(k) for k in data.kinds}) == 1
    same = [i for i in range(1, len(data)) if data.categories[i] == data.categories[0]]
    assert same and all(data.categories[i] is data.categories[0] for i in same)
    built.close()
    loaded.close()


def test_a_damaged_model_set_is_served_from_the_stores_copy(trained_url, wordllama):
    first = Podrec(_trained_config(True), database_url=trained_url, embedder=wordllama)
    first.models.pipeline("show")
    files = first.models.model_files
    (saved,) = [p for p in files.root.iterdir() if (p / "meta.json").is_file()]
    (saved / "payload.pkl").write_bytes(b"not a pickle")
    other = Podrec(_trained_config(True), database_url=trained_url, embedder=wordllama)
    user = next(iter(other.models.pipeline("show").served.users))
    # unreadable: unpacked again from the store's pickle, and mapped
    assert (other.models.model_files.saves, other.models.model_files.loads) == (1, 1)
    assert (saved / "payload.pkl").read_bytes() != b"not a pickle"
    plain = Podrec(_trained_config(False), database_url=trained_url, embedder=wordllama)
    assert [r.id for r in other.recommend(user_id=user, k=10)] == \
        [r.id for r in plain.recommend(user_id=user, k=10)]
    for app in (first, other, plain):
        app.close()


def test_item_keys_answer_as_the_list_they_replace():
    import numpy as np

    from podrec.model.aligned import trained_to_current
    from podrec.model.base import CatalogData
    from podrec.train.artifacts import ItemKeys

    listed = [("show", "a"), ("episode", "été-1"), ("show", "b"), ("episode", "")]
    keys = ItemKeys(listed)
    assert len(keys) == 4 and list(keys) == listed
    assert keys[1] == listed[1] and keys[-1] == listed[-1] and keys[1:3] == listed[1:3]
    with pytest.raises(IndexError):
        keys[4]
    catalog = CatalogData(ids=["b", "été-1", "c"], kinds=["show", "episode", "show"],
                          vectors=np.eye(3, dtype=np.float32))
    assert trained_to_current(keys, catalog).tolist() == \
        trained_to_current(listed, catalog).tolist() == [-1, 1, 0, -1]
    assert list(ItemKeys([])) == []


def test_catalog_arrays_read_a_few_items_at_a_time_are_the_same(enriched, wordllama,
                                                               monkeypatch):
    from podrec.service import catalog as catalog_module

    app = Podrec(_config(16), database_url=enriched, embedder=wordllama)
    whole = app.catalog.data(app.models.model_id, "show")
    monkeypatch.setattr(catalog_module, "ITEM_ROWS", 7)  # the sample's shows in blocks of 7
    blocks = app.catalog.data(app.models.model_id, "show")
    assert len(whole) > 7 * 3
    for name in ("ids", "kinds", "titles", "categories", "authors", "languages", "explicit",
                 "show_ids", "texts", "platforms"):
        assert list(getattr(blocks, name)) == list(getattr(whole, name)), name
    for name in ("vectors", "pks", "popularity", "durations", "published"):
        np.testing.assert_array_equal(getattr(blocks, name), getattr(whole, name))
    app.close()
