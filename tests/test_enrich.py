"""Embedding and tagging with the real models."""

import numpy as np
import pytest

from podrec.enrich.embedders import E5Embedder, TextEmbedder, WordLlamaEmbedder, make_embedder
from podrec.enrich.pipeline import Enricher
from podrec.enrich.tagger import KeyphraseExtractor
from podrec.records import ItemRecord
from podrec.storage import Store


def test_both_embedders_honour_the_protocol_and_give_unit_vectors(e5, wordllama):
    for emb, dim in ((e5, 384), (wordllama, 256)):
        assert isinstance(emb, TextEmbedder)
        v = emb.embed_passages(["A podcast about the history of Rome", "Cooking at home"])
        assert v.shape == (2, dim) and v.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
        assert emb.embed_queries([]).shape == (0, dim)


def test_e5_matches_chinese_and_english_texts_about_the_same_thing(e5):
    q = e5.embed_queries(["学习英语的播客"])[0]  # "a podcast for learning English"
    docs = e5.embed_passages([
        "Learn English with short daily lessons, vocabulary and pronunciation practice.",
        "Weekly true crime stories about unsolved murders.",
        "Baseball scores, trades and analysis from the major leagues.",
    ])
    assert int(np.argmax(docs @ q)) == 0


def test_unknown_embedder_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown embedder 'bert'"):
        make_embedder("bert")
    assert isinstance(make_embedder("wordllama"), WordLlamaEmbedder)


ZH_TEXT = "每天十分钟学习英语口语和单词"


class CountingEmbedder:
    """The real e5 model, counting the texts it is asked to embed."""

    def __init__(self, inner: E5Embedder) -> None:
        self.inner, self.calls = inner, 0
        self.model_id, self.dim = inner.model_id, inner.dim

    def embed_passages(self, texts):
        self.calls += len(texts)
        return self.inner.embed_passages(texts)

    def embed_queries(self, texts):
        return self.inner.embed_queries(texts)


def test_unchanged_text_is_never_embedded_twice(sqlite_url, e5):
    store = Store(sqlite_url)
    store.upsert_items([
        ItemRecord(id="a", title="Crime Junkie", categories=["True Crime"],
                   description="Each week we cover a true crime case, from murders to "
                               "disappearances.", language="en"),
        ItemRecord(id="b", title="Crime Junkie Mirror", categories=["True Crime"],
                   description="Each week we cover a true crime case, from murders to "
                               "disappearances.", language="en"),
        ItemRecord(id="c", title="每日英语", description=ZH_TEXT, language="zh"),
    ])
    counting = CountingEmbedder(e5)
    first = Enricher(store, counting).run()
    assert first.embedded == 3 and counting.calls == 3
    second = Enricher(store, counting).run()
    assert (second.embedded, second.unchanged) == (0, 3) and counting.calls == 3
    store.upsert_items([ItemRecord(id="a", title="Crime Junkie", categories=["True Crime"],
                                   description="New description about cold cases.",
                                   language="en")])
    third = Enricher(store, counting).run()
    assert (third.embedded, third.unchanged) == (1, 2) and counting.calls == 4
    # an item whose text equals one already embedded reuses that vector
    store.upsert_items([ItemRecord(id="d", title="每日英语", description=ZH_TEXT, language="zh",
                                   author="another producer")])
    fourth = Enricher(store, counting).run()
    assert (fourth.embedded, fourth.reused) == (0, 1) and counting.calls == 4
    store.close()


def test_items_get_taxonomy_tags_and_keyphrases(sqlite_url, e5):
    store = Store(sqlite_url)
    store.upsert_items([
        ItemRecord(id="crime", title="Murder Mysteries Weekly", language="en",
                   description="Detectives and journalists investigate unsolved murders, "
                               "cold cases and serial killers in true crime stories."),
        ItemRecord(id="zh", title="美股投资学", language="zh",
                   description="每周分析美国股市、投资理财和经济新闻，帮助你学习价值投资。"),
    ])
    Enricher(store, e5).run()
    crime = store.get_item("crime")
    tags = store.tags_for([crime.pk])[crime.pk]
    taxonomy = [t["tag"] for t in tags if t["source"] == "taxonomy"]
    assert "True Crime" in taxonomy
    assert any(t["source"] == "keyphrase" for t in tags)
    zh = store.get_item("zh")
    zh_tags = store.tags_for([zh.pk])[zh.pk]
    assert "Investing" in [t["tag"] for t in zh_tags if t["source"] == "taxonomy"]
    zh_phrases = [t["tag"] for t in zh_tags if t["source"] == "keyphrase"]
    assert any(p in {"美国股市", "股市", "价值投资", "理财"} for p in zh_phrases)
    assert not {"美股", "投资"} & set(zh_phrases)  # pieces of the show's own title
    store.close()


def test_keyphrases_per_language():
    kp = KeyphraseExtractor(top_n=3)
    en = kp.extract("The history of the Roman Empire, from Augustus to the fall of Rome.", "en")
    assert en and all(0 < s <= 1 for _, s in en)
    assert any("Rom" in k for k, _ in en)
    assert kp.extract("", "en") == []


def test_yake_rust_gives_the_python_packages_phrases_and_bad_engines_are_named():
    text = ("Hillsdale College presents the Great Books of the Western World, a rich literary "
            "heritage read with students of its journalism program.")
    rust = KeyphraseExtractor(top_n=5, engine="rust").extract(text, "en")
    python = KeyphraseExtractor(top_n=5, engine="python").extract(text, "en")
    assert [k for k, _ in rust] == [k for k, _ in python]
    np.testing.assert_allclose([s for _, s in rust], [s for _, s in python], rtol=1e-6)
    assert KeyphraseExtractor(engine="rust").extract("Uma história do Império Romano.",
                                                     "xx") == []  # no stop words: none
    with pytest.raises(ValueError, match="unknown keyphrase engine 'java'"):
        KeyphraseExtractor(engine="java")


def test_description_length_can_differ_per_kind():
    from podrec.enrich.pipeline import embedding_text
    from podrec.records import Item

    words = " ".join(f"word{i}" for i in range(200))
    show = Item(id="s", kind="show", title="T", description=words)
    episode = Item(id="e", kind="episode", title="T", description=words)
    limits = {"show": 120, "episode": 40}
    assert embedding_text(show, limits) == embedding_text(show, 120)
    assert embedding_text(episode, limits) == embedding_text(episode, 40)
    assert len(embedding_text(episode, limits)) < len(embedding_text(show, limits)) <= 3 + 120
    # a kind the limits do not name takes the show's
    other = Item(id="o", kind="clip", title="T", description=words)
    assert embedding_text(other, limits) == embedding_text(other, 120)


def test_query_vectors_embed_each_text_once_while_it_is_recent(wordllama):
    from podrec.enrich.embedders import QueryVectors

    class Counting:  # the real embedder, with its calls counted
        model_id, dim = wordllama.model_id, wordllama.dim

        def __init__(self) -> None:
            self.texts: list[str] = []

        def embed_queries(self, texts: list[str]) -> np.ndarray:
            self.texts += texts
            return wordllama.embed_queries(texts)

    counting, cache = Counting(), QueryVectors(size=2)
    first = cache.embed(counting, ["true crime", "ancient rome", "true crime"])
    np.testing.assert_allclose(first, wordllama.embed_queries(
        ["true crime", "ancient rome", "true crime"]), atol=1e-6)
    again = cache.embed(counting, ["ancient rome", "true crime"])
    np.testing.assert_allclose(again, first[[1, 0]], atol=1e-6)
    assert counting.texts == ["true crime", "ancient rome"]  # each embedded once
    cache.embed(counting, ["comedy"])  # room for two: the least recently used goes
    cache.embed(counting, ["true crime"])  # used after "ancient rome": still kept
    cache.embed(counting, ["ancient rome"])  # dropped for "comedy": embedded again
    assert counting.texts == ["true crime", "ancient rome", "comedy", "ancient rome"]
    assert cache.embed(counting, []).shape == (0, wordllama.dim)


def test_rake_is_the_default_and_finds_the_phrases_that_recur():
    from podrec.enrich.tagger import rake

    text = ("Ancient Rome, told one emperor at a time. From the Roman Republic to the fall "
            "of the Roman Empire: senators, legions and the Roman Empire.")
    found = KeyphraseExtractor(top_n=4).extract(text, "en")
    assert found[0] == ("Roman Empire", 1.0)  # occurs twice, its words in longer runs
    assert all(0 < s <= 1 for _, s in found) and [s for _, s in found] == \
        sorted((s for _, s in found), reverse=True)
    assert not {k.lower() for k, _ in found} & {"the", "of", "at", "to"}  # stop words split
    # every candidate is at most two words; runs longer than that give their windows
    assert all(len(k.split()) <= 2 for k, _ in rake(text, {"the", "of"}, 20))
    assert KeyphraseExtractor(engine="rake").extract("Uma história do Império Romano.",
                                                     "xx") == []  # no stop words: none
    assert KeyphraseExtractor().extract("", "en") == []


@pytest.mark.parametrize("engine", ["rake", "rust"])
def test_keyphrases_ahead_of_the_embedding_are_the_ones_made_in_turn(tmp_path, wordllama,
                                                                     engine):
    from conftest import SAMPLE

    from podrec.ingest.datasets import read_catalog
    from podrec.records import IngestReport

    records = list(read_catalog(SAMPLE / "catalog.jsonl", IngestReport()))[:150]
    tags = []
    # in turn; on two threads; in a second process (from 1 item up)
    for threads, above in ((0, 0), (2, 0), (0, 1)):
        store = Store(f"sqlite:///{tmp_path / f'{engine}-{threads}-{above}.db'}")
        store.upsert_items(records)
        Enricher(store, wordllama, batch_size=16, keyphrase_engine=engine,
                 keyphrase_threads=threads, keyphrase_process_above=above).run()
        pks = [i.pk for i in store.iter_items()]
        tags.append({pk: [(t["source"], t["tag"]) for t in row]
                     for pk, row in store.tags_for(pks).items()})
        store.close()
    assert tags[0] == tags[1] == tags[2]
    assert sum(s == "keyphrase" for row in tags[0].values() for s, _ in row) > 100


def test_a_keyphrase_process_that_dies_leaves_its_batches_to_the_caller(caplog):
    from podrec.enrich.pipeline import KeyphrasesAhead
    from podrec.records import Item

    items = [Item(id=str(i), title=f"Deep sea fishing {i}",
                  description="Stories of deep sea fishing boats, their crews and storms.",
                  language="en") for i in range(3)]
    here = KeyphrasesAhead(10, 0)
    expected = here.result(here.submit(items), items)
    ahead = KeyphrasesAhead(10, 0, process=True)
    try:
        assert ahead.result(ahead.submit(items), items) == expected  # from the child
        ahead._process._proc.kill()
        ahead._process._proc.wait()
        later = [ahead.submit(items) for _ in range(3)]  # asked of a dead child
        assert [ahead.result(f, items) for f in later] == [expected] * 3
    finally:
        ahead.close()
    assert expected[0] and expected[0][0][0] == "Deep sea"
    assert "keyphrases are extracted in this process instead" in caplog.text


def test_a_script_without_a_main_guard_enriches_once(tmp_path):
    """The keyphrase process is a fresh ``python -m``: it does not run the caller's script
    again, as a ``multiprocessing`` child would."""
    import subprocess
    import sys

    from conftest import SAMPLE

    script = tmp_path / "enrich_script.py"
    script.write_text(
        "from podrec.enrich.embedders import make_embedder\n"
        "from podrec.enrich.pipeline import Enricher\n"
        "from podrec.ingest.datasets import read_catalog\n"
        "from podrec.records import IngestReport\n"
        "from podrec.storage import Store\n"
        "from pathlib import Path\n"
        f"store = Store('sqlite:///{tmp_path / 'script.db'}')\n"
        f"store.upsert_items(list(read_catalog(Path({str(SAMPLE / 'catalog.jsonl')!r}), "
        "IngestReport()))[:40])\n"
        "print('ran', flush=True)\n"
        "report = Enricher(store, make_embedder('wordllama'), batch_size=8, "
        "keyphrase_process_above=1).run()\n"
        "print('tagged', report.tagged, flush=True)\n", encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["ran", "tagged 40"]


def test_vectors_and_tags_are_written_a_few_batches_at_a_time(tmp_path, wordllama):
    from conftest import SAMPLE

    from podrec.ingest.datasets import read_catalog
    from podrec.records import IngestReport

    records = list(read_catalog(SAMPLE / "catalog.jsonl", IngestReport()))[:100]
    stored = []
    for write_items in (1, 40):
        store = Store(f"sqlite:///{tmp_path / f'w{write_items}.db'}")
        store.upsert_items(records)
        writes: list[int] = []

        def counted(*a, _save=store.save_enrichment, _writes=writes, **k):
            _writes.append(len(a[1]))
            return _save(*a, **k)

        store.save_enrichment = counted
        report = Enricher(store, wordllama, batch_size=16, write_items=write_items).run()
        assert report.tagged == 100 and sum(writes) == 100
        # a write per batch of 16, or once 40 items are waiting (48, 48) and the rest (4)
        assert writes == ([16] * 6 + [4] if write_items == 1 else [48, 48, 4])
        pks = [i.pk for i in store.iter_items()]
        pk_vectors, matrix = store.load_vectors(wordllama.model_id)
        stored.append(({pk: [(t["source"], t["tag"]) for t in row]
                        for pk, row in store.tags_for(pks).items()},
                       dict(zip(pk_vectors.tolist(), matrix.tolist(), strict=True))))
        store.close()
    assert stored[0] == stored[1] and len(stored[0][1]) == 100
